#include "load_run.h"

#include <sys/socket.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

namespace stowage::bench {
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

const char* KindName(RequestKind kind) {
  return kind == RequestKind::kPost ? "post" : "get";
}

std::string PostBody(int content_bytes) {
  static const std::string kWords = "stowage load test message ";
  std::string content;
  content.reserve(static_cast<std::size_t>(content_bytes));
  while (content.size() < static_cast<std::size_t>(content_bytes)) content += kWords;
  content.resize(static_cast<std::size_t>(content_bytes));
  return R"({"role":"user","content":")" + content + R"("})";
}

namespace {

// What a worker shares with the watchdog. The watchdog shuts down the
// socket of a request older than the timeout, which wakes the worker's
// blocked read; `mutex` guards every field so it never touches a socket the
// worker has closed (or reopened under the same descriptor).
struct WorkerSlot {
  std::mutex mutex;
  int fd = -1;                  // the open socket's descriptor, -1 when none
  Clock::time_point started{};  // when the request in flight started
  bool in_flight = false;
  bool timed_out = false;  // the watchdog shut the socket down during this request
};

// State all workers share.
struct SharedState {
  SharedState(const LoadOptions& options, Clock::time_point deadline)
      : options(options), deadline(deadline) {}

  const LoadOptions& options;
  Clock::time_point deadline;
  std::atomic<std::int64_t> started_requests{0};
  std::mutex failures_mutex;
  std::vector<std::string> first_failures;

  void RecordFailure(std::string reason) {
    std::lock_guard lock(failures_mutex);
    if (first_failures.size() < kFailuresKept) first_failures.push_back(std::move(reason));
  }
};

// One worker: a thread with one keep-alive connection.
class Worker {
 public:
  Worker(SharedState* shared, WorkerSlot* slot, unsigned seed)
      : shared_(shared), slot_(slot), random_(seed) {}

  // Sends requests until the deadline or the request cap; fills outcome_.
  void Run() {
    const auto& options = shared_->options;
    std::uniform_int_distribution<int> guest(0, options.guests - 1);
    std::uniform_int_distribution<int> kind(0, options.post_weight + options.get_weight - 1);
    const std::string body = PostBody(options.content_bytes);
    const std::string host =
        (options.host.find(':') == std::string::npos ? options.host : "[" + options.host + "]") + ":" +
        std::to_string(options.port);
    while (Clock::now() < shared_->deadline) {
      if (options.max_requests > 0 && shared_->started_requests.fetch_add(1) >= options.max_requests) break;
      auto request_kind = kind(random_) < options.post_weight ? RequestKind::kPost : RequestKind::kGet;
      std::string target = "/v1/guest/chat/bench-" + std::to_string(guest(random_));
      bhttp::request<bhttp::string_body> request{
          request_kind == RequestKind::kPost ? bhttp::verb::post : bhttp::verb::get, target, 11};
      request.set(bhttp::field::host, host);
      if (request_kind == RequestKind::kPost) {
        request.set(bhttp::field::content_type, "application/json");
        request.body() = body;
        request.prepare_payload();
      }
      Send(request_kind, request);
    }
    Close();
  }

  const std::array<KindOutcome, kRequestKinds>& outcome() const { return outcome_; }
  std::int64_t connections_opened() const { return connections_opened_; }

 private:
  void Send(RequestKind request_kind, const bhttp::request<bhttp::string_body>& request) {
    auto& outcome = outcome_[static_cast<std::size_t>(request_kind)];
    ++outcome.sent;
    std::string what = std::string(request.method_string()) + " " + std::string(request.target());
    std::string error;
    int status = 0;
    bool keep_alive = false;
    std::string answer;
    auto start = Clock::now();
    {
      std::lock_guard lock(slot_->mutex);
      slot_->started = start;
      slot_->in_flight = true;
      slot_->timed_out = false;
    }
    boost::system::error_code ec;
    if (!socket_.is_open()) {
      tcp::endpoint endpoint(boost::asio::ip::make_address(shared_->options.host), shared_->options.port);
      socket_.open(endpoint.protocol(), ec);
      if (!ec) {
        std::lock_guard lock(slot_->mutex);
        slot_->fd = socket_.native_handle();
      }
      if (!ec) socket_.connect(endpoint, ec);
      if (ec) {
        error = "connecting failed: " + ec.message();
      } else {
        ++connections_opened_;
        socket_.set_option(tcp::no_delay(true), ec);
      }
    }
    if (error.empty()) {
      bhttp::write(socket_, request, ec);
      if (ec) error = "writing the request failed: " + ec.message();
    }
    if (error.empty()) {
      bhttp::response_parser<bhttp::string_body> parser;
      parser.body_limit(std::uint64_t{64} << 20);
      bhttp::read(socket_, buffer_, parser, ec);
      if (ec) {
        error = "reading the answer failed: " + ec.message();
      } else {
        status = static_cast<int>(parser.get().result_int());
        keep_alive = parser.get().keep_alive();
        answer = std::move(parser.get().body());
      }
    }
    auto end = Clock::now();
    bool timed_out = false;
    {
      std::lock_guard lock(slot_->mutex);
      slot_->in_flight = false;
      timed_out = slot_->timed_out;
    }
    if (timed_out) {
      error = "no answer within " + Seconds(shared_->options.request_timeout_s) + " s (--timeout)";
    }
    if (error.empty() && status >= 200 && status < 300) {
      ++outcome.ok;
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(end - start).count();
      outcome.ok_latencies_us.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(us, UINT32_MAX)));
      if (!keep_alive) Close();
      return;
    }
    ++outcome.failed;
    if (error.empty()) {
      if (answer.size() > 300) answer = answer.substr(0, 300) + "...";
      shared_->RecordFailure(what + ": status " + std::to_string(status) + ": " + answer);
      if (!keep_alive) Close();
      return;
    }
    shared_->RecordFailure(what + ": " + error);
    Close();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  void Close() {
    std::lock_guard lock(slot_->mutex);
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    buffer_.clear();
    slot_->fd = -1;
  }

  static std::string Seconds(double seconds) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", seconds);
    return text;
  }

  SharedState* shared_;
  WorkerSlot* slot_;
  std::mt19937_64 random_;
  boost::asio::io_context ioc_;
  tcp::socket socket_{ioc_};
  boost::beast::flat_buffer buffer_;
  std::array<KindOutcome, kRequestKinds> outcome_;
  std::int64_t connections_opened_ = 0;
};

}  // namespace

LoadOutcome RunLoad(const LoadOptions& options) {
  auto start = Clock::now();
  SharedState shared(options, start + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(options.duration_s)));
  std::vector<WorkerSlot> slots(static_cast<std::size_t>(options.connections));
  std::vector<std::unique_ptr<Worker>> workers;
  std::random_device seed_source;
  for (auto& slot : slots) workers.push_back(std::make_unique<Worker>(&shared, &slot, seed_source()));

  std::atomic<bool> done{false};
  auto timeout =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.request_timeout_s));
  std::thread watchdog([&] {
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      auto now = Clock::now();
      for (auto& slot : slots) {
        std::lock_guard lock(slot.mutex);
        if (slot.in_flight && !slot.timed_out && slot.fd >= 0 && now - slot.started > timeout) {
          slot.timed_out = true;
          ::shutdown(slot.fd, SHUT_RDWR);
        }
      }
    }
  });
  std::vector<std::thread> threads;
  for (auto& worker : workers) threads.emplace_back([&worker] { worker->Run(); });
  for (auto& thread : threads) thread.join();
  done = true;
  watchdog.join();

  LoadOutcome outcome;
  outcome.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& worker : workers) {
    for (std::size_t k = 0; k < kRequestKinds; ++k) {
      const auto& from = worker->outcome()[k];
      auto& to = outcome.kinds[k];
      to.sent += from.sent;
      to.ok += from.ok;
      to.failed += from.failed;
      to.ok_latencies_us.insert(to.ok_latencies_us.end(), from.ok_latencies_us.begin(),
                                from.ok_latencies_us.end());
    }
    outcome.connections_opened += worker->connections_opened();
  }
  outcome.first_failures = std::move(shared.first_failures);
  return outcome;
}

}  // namespace stowage::bench
