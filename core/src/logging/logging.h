// Host logging: spdlog set up once for the process, and the Logger handed to
// each stage, which prefixes every line with the stage's label ("[Redis] ").
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "stowage/logger.h"

namespace stowage::logging {

// Sends the process log (spdlog's default logger) to standard output
// through stdio's buffer: a line reaches the stream when spdlog flushes
// (flush_on, flush_every, an explicit flush, or the process exiting), not
// with a write of its own (the buffer holds 64 KiB when stdout is a file or
// a pipe). On a terminal stdout is line-buffered, so each line shows at
// once. Call once, before anything is logged.
void LogToStdout();

// Sets the process log level ("trace", "debug", "info", "warn", "error").
// Returns false, leaving the level unchanged, for an unknown name.
bool SetLevel(const std::string& level);

// A Logger for a stage; every line starts with "[label] " (the plugin's
// tag, e.g. "[Redis] ") and, when `stage` is given, ends with " stage=NAME"
// (the stage's name in pipeline.toml), so that two stages of one plugin are
// told apart. The same for the host's own parts ("[Database main] "),
// without a stage.
std::shared_ptr<stowage::Logger> MakeStageLogger(const std::string& label, const std::string& stage = "");

// The request a thread is working for: its id (X-Request-Id) and the trace
// id of its W3C traceparent, both possibly empty. While a thread has one,
// every line it writes through the process log (LogToStdout) ends with
// " request_id=<id>" and, with a trace id, " trace_id=<trace>". A plain
// value (no allocation): CallRunner copies it into each call it runs on
// another thread.
struct RequestTag {
  static constexpr std::size_t kMaxId = 128;
  static constexpr std::size_t kMaxTrace = 32;
  std::array<char, kMaxId> id{};
  std::array<char, kMaxTrace> trace{};
  unsigned char id_size = 0;
  unsigned char trace_size = 0;

  // Longer values are cut to kMaxId and kMaxTrace.
  RequestTag(std::string_view request_id = {}, std::string_view trace_id = {}) noexcept;
  std::string_view request_id() const noexcept { return {id.data(), id_size}; }
  std::string_view trace_id() const noexcept { return {trace.data(), trace_size}; }
  bool empty() const noexcept { return id_size == 0 && trace_size == 0; }
};

// The calling thread's tag (empty when it works for no request).
const RequestTag& CurrentRequest() noexcept;

// Makes `tag` the calling thread's tag until destroyed, then restores the
// one before. Lives on the stack of the thread that made it.
class RequestScope {
 public:
  explicit RequestScope(const RequestTag& tag) noexcept;
  ~RequestScope();
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;

 private:
  RequestTag previous_;
};

}  // namespace stowage::logging
