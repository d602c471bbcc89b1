// UsagePolicy: the tier a pipeline counts its users under, the monthly
// request limit of each tier, and whether the limit refuses requests.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "stowage/config.h"

namespace stowage::metrics {

struct UsagePolicy {
  // The tiers a stage may count users under; each has a
  // `<tier>_monthly_limit` config key.
  static constexpr std::string_view kTiers[] = {"guest", "free", "premium"};

  std::string tier = "guest";
  // The limit given to a user's row when it is created (the row keeps it:
  // raising a user's limit is an UPDATE of usage_metrics).
  std::int32_t monthly_limit = 1000;
  bool enforce_limit = true;

  // Adds the keys tier, <tier>_monthly_limit for every tier, and
  // enforce_limit to `schema`.
  static void Declare(ConfigSchema& schema);
  // Reads the keys Declare() added. Throws std::invalid_argument naming the
  // key for an unknown tier or a limit outside 1..2147483647.
  static UsagePolicy FromConfig(const StageConfig& config);
};

}  // namespace stowage::metrics
