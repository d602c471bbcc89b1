#include "usage_policy.h"

#include <limits>
#include <stdexcept>

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
  schema.optional("tier", std::string("guest"),
                  "the tier new users are counted under: guest, free or premium");
  for (std::string_view tier : kTiers) {
    schema.optional(LimitKey(tier), DefaultLimit(tier),
                    "requests a " + std::string(tier) + " user may POST per calendar month (UTC)");
  }
  schema.optional("enforce_limit", true,
                  "refuse a POST beyond the user's monthly limit with 429 (false: count it only)");
}

UsagePolicy UsagePolicy::FromConfig(const StageConfig& config) {
  UsagePolicy policy;
  policy.tier = config.string("tier");
  bool known = false;
  std::string tiers;
  for (std::string_view tier : kTiers) {
    known = known || tier == policy.tier;
    tiers += (tiers.empty() ? "" : ", ") + std::string(tier);
  }
  if (!known) {
    throw std::invalid_argument("stage config key 'tier' is '" + policy.tier + "'; set it to one of " +
                                tiers);
  }
  const std::string key = LimitKey(policy.tier);
  const std::int64_t limit = config.integer(key);
  if (limit < 1 || limit > std::numeric_limits<std::int32_t>::max()) {
    throw std::invalid_argument("stage config key '" + key + "' is " + std::to_string(limit) +
                                "; set it between 1 and 2147483647");
  }
  policy.monthly_limit = static_cast<std::int32_t>(limit);
  policy.enforce_limit = config.boolean("enforce_limit");
  return policy;
}

}  // namespace stowage::metrics
