#include "logging/logging.h"

#include <spdlog/spdlog.h>

namespace stowage::logging {
namespace {

spdlog::level::level_enum ToSpdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace: return spdlog::level::trace;
    case LogLevel::kDebug: return spdlog::level::debug;
    case LogLevel::kInfo: return spdlog::level::info;
    case LogLevel::kWarn: return spdlog::level::warn;
    case LogLevel::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

class StageLogger final : public stowage::Logger {
 public:
  explicit StageLogger(const std::string& label) : prefix_("[" + label + "] ") {}

  void log(LogLevel level, std::string_view text) noexcept override {
    try {
      spdlog::log(ToSpdlog(level), "{}{}", prefix_, text);
    } catch (...) {
      // A log line that cannot be written is dropped; logging never fails a request.
    }
  }
  bool enabled(LogLevel level) const noexcept override { return spdlog::should_log(ToSpdlog(level)); }

 private:
  std::string prefix_;
};

}  // namespace

bool SetLevel(const std::string& level) {
  static const std::pair<const char*, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug}, {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},   {"error", spdlog::level::err}};
  for (const auto& [name, value] : kLevels) {
    if (level == name) {
      spdlog::set_level(value);
      return true;
    }
  }
  return false;
}

std::shared_ptr<stowage::Logger> MakeStageLogger(const std::string& label) {
  return std::make_shared<StageLogger>(label);
}

}  // namespace stowage::logging
