#include "logging/logging.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <mutex>

namespace stowage::logging {
namespace {

thread_local RequestTag current_request;

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

// Writes formatted lines into a stdio stream's buffer; flush_() empties it.
// spdlog's own stdout sinks flush after every line, which costs a write
// system call per line: six per POST.
class BufferedStreamSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit BufferedStreamSink(std::FILE* stream) : stream_(stream) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    spdlog::memory_buf_t line;
    const RequestTag& tag = current_request;
    if (tag.empty()) {
      formatter_->format(message, line);
    } else {
      // The request's ids end the line; the buffer holds 250 bytes inline,
      // so a short line costs no allocation.
      spdlog::memory_buf_t text;
      text.append(message.payload.data(), message.payload.data() + message.payload.size());
      constexpr std::string_view kId = " request_id=", kTrace = " trace_id=";
      if (tag.id_size > 0) {
        text.append(kId.data(), kId.data() + kId.size());
        text.append(tag.id.data(), tag.id.data() + tag.id_size);
      }
      if (tag.trace_size > 0) {
        text.append(kTrace.data(), kTrace.data() + kTrace.size());
        text.append(tag.trace.data(), tag.trace.data() + tag.trace_size);
      }
      spdlog::details::log_msg tagged = message;
      tagged.payload = spdlog::string_view_t(text.data(), text.size());
      formatter_->format(tagged, line);
    }
    std::fwrite(line.data(), 1, line.size(), stream_);
  }
  void flush_() override { std::fflush(stream_); }

 private:
  std::FILE* stream_;
};

class StageLogger final : public stowage::Logger {
 public:
  StageLogger(const std::string& label, const std::string& stage)
      : prefix_("[" + label + "] "), suffix_(stage.empty() ? "" : " stage=" + stage) {}

  void log(LogLevel level, std::string_view text) noexcept override {
    try {
      spdlog::log(ToSpdlog(level), "{}{}{}", prefix_, text, suffix_);
    } catch (...) {
      // A log line that cannot be written is dropped; logging never fails a request.
    }
  }
  bool enabled(LogLevel level) const noexcept override { return spdlog::should_log(ToSpdlog(level)); }

 private:
  std::string prefix_;
  std::string suffix_;
};

}  // namespace

void LogToStdout() {
  // A file or a pipe gets one write per 64 KiB (stdio's default is 4 KiB;
  // glibc ignores the size unless given the buffer).
  static char buffer[1 << 16];
  if (::isatty(::fileno(stdout)) == 0) std::setvbuf(stdout, buffer, _IOFBF, sizeof buffer);
  auto logger = std::make_shared<spdlog::logger>("", std::make_shared<BufferedStreamSink>(stdout));
  logger->set_level(spdlog::get_level());
  spdlog::set_default_logger(std::move(logger));
}

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

std::shared_ptr<stowage::Logger> MakeStageLogger(const std::string& label, const std::string& stage) {
  return std::make_shared<StageLogger>(label, stage);
}

RequestTag::RequestTag(std::string_view request_id, std::string_view trace_id) noexcept {
  id_size = static_cast<unsigned char>(std::min(request_id.size(), kMaxId));
  std::copy_n(request_id.data(), id_size, id.data());
  trace_size = static_cast<unsigned char>(std::min(trace_id.size(), kMaxTrace));
  std::copy_n(trace_id.data(), trace_size, trace.data());
}

const RequestTag& CurrentRequest() noexcept { return current_request; }

RequestScope::RequestScope(const RequestTag& tag) noexcept : previous_(current_request) {
  current_request = tag;
}

RequestScope::~RequestScope() { current_request = previous_; }

}  // namespace stowage::logging
