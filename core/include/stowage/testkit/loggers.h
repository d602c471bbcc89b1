// Loggers for stage tests: one that drops every line, and one that keeps them
// so that a test can check what a stage logged.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stowage/logger.h"

namespace stowage::testkit {

// Drops every line. Thread-safe.
class NullLogger final : public Logger {
 public:
  void log(LogLevel level, std::string_view text) noexcept override {
    (void)level;
    (void)text;
  }
  bool enabled(LogLevel level) const noexcept override {
    (void)level;
    return false;
  }
};

// One line a stage logged.
struct LogLine {
  LogLevel level;
  std::string text;
};

// Keeps every line logged to it, at every level. Thread-safe.
class CapturingLogger final : public Logger {
 public:
  void log(LogLevel level, std::string_view text) noexcept override {
    try {
      std::lock_guard lock(mu_);
      lines_.push_back({level, std::string(text)});
    } catch (...) {
      // Out of memory: the line is lost, the stage goes on.
    }
  }
  bool enabled(LogLevel level) const noexcept override {
    (void)level;
    return true;
  }

  // A copy of every line so far, oldest first.
  std::vector<LogLine> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }
  // How many lines at `level` contain `part`.
  std::size_t Count(LogLevel level, std::string_view part) const {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto& line : lines_)
      if (line.level == level && line.text.find(part) != std::string::npos) ++n;
    return n;
  }
  // Whether any line, at any level, contains `part`.
  bool Contains(std::string_view part) const {
    std::lock_guard lock(mu_);
    for (const auto& line : lines_)
      if (line.text.find(part) != std::string::npos) return true;
    return false;
  }
  // Every line so far, one per line, each as "<level>: <text>", for failure
  // messages.
  std::string All() const {
    std::lock_guard lock(mu_);
    std::string all;
    for (const auto& line : lines_) all += std::string(LevelName(line.level)) + ": " + line.text + "\n";
    return all;
  }
  void Clear() {
    std::lock_guard lock(mu_);
    lines_.clear();
  }

 private:
  static const char* LevelName(LogLevel level) noexcept {
    switch (level) {
      case LogLevel::kTrace:
        return "trace";
      case LogLevel::kDebug:
        return "debug";
      case LogLevel::kInfo:
        return "info";
      case LogLevel::kWarn:
        return "warn";
      case LogLevel::kError:
        return "error";
    }
    return "unknown";
  }

  mutable std::mutex mu_;
  std::vector<LogLine> lines_;
};

}  // namespace stowage::testkit
