// Logger: the host's log, handed to a stage. A stage logs only through the
// Logger it is given; it does not share the host's logging library state.
#pragma once

#include <string_view>

namespace stowage {

enum class LogLevel : int { kTrace = 0, kDebug, kInfo, kWarn, kError };

// Implemented by the host. Every line a stage logs carries the stage's label
// as a prefix (e.g. "[Redis]"), added by the host. Thread-safe; never throws.
class Logger {
 public:
  virtual ~Logger() = default;

  virtual void log(LogLevel level, std::string_view text) noexcept = 0;
  // True when a line at `level` would be written; lets a stage skip building
  // an expensive message.
  virtual bool enabled(LogLevel level) const noexcept = 0;

  void trace(std::string_view text) noexcept { log(LogLevel::kTrace, text); }
  void debug(std::string_view text) noexcept { log(LogLevel::kDebug, text); }
  void info(std::string_view text) noexcept { log(LogLevel::kInfo, text); }
  void warn(std::string_view text) noexcept { log(LogLevel::kWarn, text); }
  void error(std::string_view text) noexcept { log(LogLevel::kError, text); }
};

}  // namespace stowage
