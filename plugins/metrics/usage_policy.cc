#include "usage_policy.h"

#include <limits>
#include <string>
#include <iterator>
#include <vector>

namespace stowage::metrics {
namespace {

std::int64_t DefaultLimit(std::string_view tier) {
  if (tier == "guest") return 1000;
  if (tier == "free") return 10000;
  return 100000;
}

std::string LimitKey(std::string_view tier) {
  return std::string(tier) + "_monthly_limit";
}

}  // namespace

void UsagePolicy::Declare(ConfigSchema& schema) {
  schema.optional("tier", std::string("guest"), "the tier new users are counted under: guest, free or premium")
      .one_of(std::vector<std::string>(std::begin(kTiers), std::end(kTiers)));
  for (std::string_view tier : kTiers) {
    schema.optional(LimitKey(tier), DefaultLimit(tier),
                    "requests a " + std::string(tier) + " user may POST per calendar month (UTC)")
        .range(std::int64_t{1}, std::int64_t{std::numeric_limits<std::int32_t>::max()});
  }
  schema.optional("enforce_limit", true,
                  "refuse a POST beyond the user's monthly limit with 429 (false: count it only)");
}

// The tier and its limit are among the values the schema allows: the host
// checked them.
UsagePolicy UsagePolicy::FromConfig(const StageConfig& config) {
  UsagePolicy policy;
  policy.tier = config.string("tier");
  policy.monthly_limit = static_cast<std::int32_t>(config.integer(LimitKey(policy.tier)));
  policy.enforce_limit = config.boolean("enforce_limit");
  return policy;
}

}  // namespace stowage::metrics
