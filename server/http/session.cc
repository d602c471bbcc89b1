#include "http/session.h"

#include <spdlog/spdlog.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <cstdint>
#include <random>
#include <utility>

namespace stowage::http {
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;

namespace {

// How many bytes of an unwanted body are read and dropped after a refusal,
// so the client sees the answer rather than a connection reset.
constexpr std::size_t kDrainLimit = 8 * 1024 * 1024;
constexpr auto kDrainTimeout = std::chrono::seconds(2);

bool IsParseError(const beast::error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category();
}

bool IsHex(std::string_view text) {
  for (char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

std::string RequestIdFrom(std::string_view value) {
  bool sane = !value.empty() && value.size() <= 128;
  for (std::size_t i = 0; sane && i < value.size(); ++i) {
    const char c = value[i];
    sane = c > 0x20 && c < 0x7f && c != '"' && c != '\\';
  }
  if (sane) return std::string(value);
  // Two draws of a per-thread generator seeded from the OS: cheap, and
  // unique enough to find one request in the logs.
  thread_local std::mt19937_64 random{(static_cast<std::uint64_t>(std::random_device{}()) << 32) ^
                                      std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    std::uint64_t bits = random();
    for (int i = 0; i < 16; ++i, bits >>= 4) id[half * 16 + i] = kHex[bits & 0xf];
  }
  return id;
}

std::string TraceIdFrom(std::string_view value) {
  // 00-<32>-<16>-<2>: 55 characters.
  if (value.size() != 55 || value[2] != '-' || value[35] != '-' || value[52] != '-') return {};
  if (value.substr(0, 2) != "00") return {};
  const std::string_view trace = value.substr(3, 32), parent = value.substr(36, 16), flags = value.substr(53, 2);
  if (!IsHex(trace) || !IsHex(parent) || !IsHex(flags)) return {};
  if (trace == std::string_view("00000000000000000000000000000000") || parent == "0000000000000000") return {};
  return std::string(trace);
}

SessionHost::Admission SessionHost::Admit() {
  if (served_.fetch_add(1) < options_.max_connections) return Admission::kServe;
  served_.fetch_sub(1);
  if (overflow_.fetch_add(1) < options_.overflow_connections) return Admission::kOverflow;
  overflow_.fetch_sub(1);
  NoteOverload(Overload::kTurnedAway);
  return Admission::kTurnAway;
}

void SessionHost::Left(bool overflow) { (overflow ? overflow_ : served_).fetch_sub(1); }

bool SessionHost::TryEnqueue() {
  if (queued_.fetch_add(1) < options_.max_queue) return true;
  queued_.fetch_sub(1);
  return false;
}

void SessionHost::Dequeued() { queued_.fetch_sub(1); }

void SessionHost::NoteOverload(Overload why) {
  std::lock_guard lock(overload_mu_);
  ++overload_unlogged_[why];
}

void SessionHost::LogOverload() {
  std::lock_guard lock(overload_mu_);
  if (overload_unlogged_.empty()) return;
  std::string reasons;
  for (const auto& [reason, count] : overload_unlogged_) {
    if (!reasons.empty()) reasons += ", ";
    reasons += std::to_string(count);
    switch (reason) {
      case Overload::kQueueFull:
        reasons += " with server.max_queue = " + std::to_string(options_.max_queue) + " requests already waiting";
        break;
      case Overload::kQueueTimeout:
        reasons += " that waited over server.queue_timeout_ms = " + std::to_string(options_.queue_timeout.count()) +
                   " ms for a worker (not run)";
        break;
      case Overload::kOverflowConnection:
        reasons += " on connections beyond server.max_connections = " + std::to_string(options_.max_connections);
        break;
      case Overload::kTurnedAway:
        reasons += " connections turned away beyond server.max_connections and " +
                   std::to_string(options_.overflow_connections) + " overflow connections";
        break;
    }
  }
  overload_unlogged_.clear();
  spdlog::warn(
      "overloaded: answered 503 overloaded in the last second: {}; add workers (server.workers) or "
      "instances, or raise these limits if the machine has room",
      reasons);
}

void SessionHost::Register(const std::shared_ptr<Session>& session) {
  std::lock_guard lock(mu_);
  open_[session.get()] = session;
}

void SessionHost::Unregister(const Session* session) {
  std::lock_guard lock(mu_);
  open_.erase(session);
  if (open_.empty()) idle_.notify_all();
}

void SessionHost::RequestStarted() {
  std::lock_guard lock(mu_);
  ++in_flight_;
}

void SessionHost::RequestFinished() {
  std::lock_guard lock(mu_);
  if (in_flight_ > 0) --in_flight_;
  if (in_flight_ == 0) idle_.notify_all();
}

std::vector<std::shared_ptr<Session>> SessionHost::BeginStopping() {
  stopping_.store(true);
  std::vector<std::shared_ptr<Session>> sessions;
  std::lock_guard lock(mu_);
  for (auto& [ptr, weak] : open_) {
    if (auto session = weak.lock()) sessions.push_back(std::move(session));
  }
  return sessions;
}

std::size_t SessionHost::WaitIdle(std::chrono::steady_clock::time_point until) {
  std::unique_lock lock(mu_);
  idle_.wait_until(lock, until, [this] { return in_flight_ == 0 && open_.empty(); });
  return in_flight_;
}

std::size_t SessionHost::open_connections() {
  std::lock_guard lock(mu_);
  return open_.size();
}

Session::Session(net::ip::tcp::socket socket, std::shared_ptr<SessionHost> host, bool overflow)
    : stream_(std::move(socket)), queue_timer_(stream_.get_executor()), host_(std::move(host)), overflow_(overflow) {}

Session::~Session() {
  if (owed_) host_->RequestFinished();
  host_->Unregister(this);
  host_->Left(overflow_);
}

void Session::Start() {
  host_->Register(shared_from_this());
  net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
}

void Session::Stop() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    self->stopping_ = true;
    if (!self->busy_) self->Close();
  });
}

void Session::ReadHeader() {
  if (stopping_ || host_->stopping()) return Close();
  busy_ = false;
  keep_alive_ = false;
  request_ = Request();
  parser_.emplace();
  parser_->body_limit(host_->options().body_limit);
  stream_.expires_after(overflow_ ? host_->options().overflow_timeout : host_->options().idle_timeout);
  bhttp::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnHeader(ec); });
}

void Session::OnHeader(beast::error_code ec) {
  if (ec) {
    if (ec == bhttp::error::body_limit) return Refuse(Refusal::kBodyTooLarge);
    if (ec == bhttp::error::header_limit) return Refuse(Refusal::kHeaderTooLarge);
    // A client that closes or goes quiet between requests is the normal end of keep-alive.
    if (IsParseError(ec) && ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
      return Refuse(Refusal::kMalformed);
    }
    return Close();
  }
  busy_ = true;
  start_ = Clock::now();
  const auto& head = parser_->get();
  request_.method = std::string(head.method_string());
  request_.target = std::string(head.target());
  request_.content_type = std::string(head[bhttp::field::content_type]);
  request_.headers.clear();
  for (const auto& field : head) request_.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  request_.request_id = RequestIdFrom(head["X-Request-Id"]);
  if (auto traceparent = head.find("traceparent"); traceparent != head.end())
    request_.trace_id = TraceIdFrom(traceparent->value());
  keep_alive_ = head.keep_alive() && !overflow_;

  if (parser_->is_done()) return Dispatch();
  if (beast::iequals(head[bhttp::field::expect], "100-continue")) {
    continue_ = bhttp::response<bhttp::empty_body>(bhttp::status::continue_, head.version());
    stream_.expires_after(host_->options().io_timeout);
    return bhttp::async_write(stream_, continue_,
                              [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                if (ec) return self->Close();
                                self->ReadBody();
                              });
  }
  ReadBody();
}

void Session::ReadBody() {
  stream_.expires_after(overflow_ ? host_->options().overflow_timeout : host_->options().io_timeout);
  bhttp::async_read(stream_, buffer_, *parser_,
                    [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnBody(ec); });
}

void Session::OnBody(beast::error_code ec) {
  if (ec) {
    if (ec == bhttp::error::body_limit) return Refuse(Refusal::kBodyTooLarge);
    if (IsParseError(ec) && ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
      return Refuse(Refusal::kMalformed);
    }
    return Close();
  }
  Dispatch();
}

void Session::Dispatch() {
  request_.body = parser_->release().body();
  host_->RequestStarted();
  owed_ = true;
  Handler& handler = host_->handler();
  if (handler.Immediate(request_)) return Respond(handler.Handle(request_), false);
  if (overflow_) {
    host_->NoteOverload(SessionHost::Overload::kOverflowConnection);
    return Respond(handler.Refuse(Refusal::kOverloaded, request_, host_->options().body_limit), true);
  }
  Enqueue();
}

void Session::Enqueue() {
  if (!host_->TryEnqueue()) {
    host_->NoteOverload(SessionHost::Overload::kQueueFull);
    return Respond(host_->handler().Refuse(Refusal::kOverloaded, request_, host_->options().body_limit), true);
  }
  // Whoever moves the ticket from kWaiting first owns the request: a worker
  // runs it, or the timer refuses it unrun after queue_timeout.
  auto ticket = std::make_shared<std::atomic<QueueTicket>>(QueueTicket::kWaiting);
  queue_timer_.expires_after(host_->options().queue_timeout);
  queue_timer_.async_wait([self = shared_from_this(), ticket](beast::error_code ec) {
    if (ec) return;  // cancelled: a worker answered the request
    auto waiting = QueueTicket::kWaiting;
    if (!ticket->compare_exchange_strong(waiting, QueueTicket::kExpired)) return;
    self->host_->NoteOverload(SessionHost::Overload::kQueueTimeout);
    self->Respond(self->host_->handler().Refuse(Refusal::kQueueTimeout, self->request_,
                                                self->host_->options().body_limit),
                  true);
  });
  net::post(host_->workers(), [self = shared_from_this(), ticket] {
    SessionHost& host = *self->host_;
    host.Dequeued();
    auto waiting = QueueTicket::kWaiting;
    if (!ticket->compare_exchange_strong(waiting, QueueTicket::kTaken)) return;  // refused already
    Response response = host.handler().Handle(self->request_);
    net::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
      // A timer that fired meanwhile found the ticket taken and did nothing.
      self->queue_timer_.cancel();
      self->Respond(std::move(response), false);
    });
  });
}

void Session::Refuse(Refusal why) {
  busy_ = true;
  start_ = Clock::now();
  if (request_.method.empty() && parser_ && parser_->got_some()) {
    // The header was read but failed a limit: its method and target are known.
    request_.method = std::string(parser_->get().method_string());
    request_.target = std::string(parser_->get().target());
  }
  if (request_.request_id.empty()) {
    // The header may be cut short (over the limit) or absent: a sane value is
    // still the client's, anything else gets a new id.
    request_.request_id = RequestIdFrom(parser_ && parser_->got_some()
                                            ? std::string_view(parser_->get()["X-Request-Id"])
                                            : std::string_view());
  }
  host_->RequestStarted();
  owed_ = true;
  Respond(host_->handler().Refuse(why, request_, host_->options().body_limit), true);
}

void Session::Respond(Response response, bool refused) {
  bool keep_alive = keep_alive_ && !refused && !stopping_ && !host_->stopping();
  response_ = bhttp::response<bhttp::string_body>();
  response_.version(11);
  response_.result(static_cast<unsigned>(response.status));
  response_.set(bhttp::field::server, "stowaged");
  if (!response.content_type.empty()) response_.set(bhttp::field::content_type, response.content_type);
  for (const auto& [name, value] : response.headers) response_.set(name, value);
  response_.set("X-Request-Id", request_.request_id);
  response_.body() = std::move(response.body);
  response_.keep_alive(keep_alive);
  response_.prepare_payload();
  // HEAD: Content-Length stays that of the body, which is not sent; a
  // refusal of a HEAD request (413, 431, 503 overloaded, ...) has no body either.
  if (response.head_only || request_.method == "HEAD") response_.body().clear();
  std::size_t bytes = response_.body().size();
  auto status = static_cast<std::size_t>(response.status);
  stream_.expires_after(host_->options().io_timeout);
  bhttp::async_write(stream_, response_,
                     [self = shared_from_this(), status, bytes, note = std::move(response.log_note)](
                         beast::error_code ec, std::size_t) mutable {
                       self->OnWritten(ec, status, bytes, std::move(note));
                     });
}

void Session::OnWritten(beast::error_code ec, std::size_t status, std::size_t bytes, std::string note) {
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
  const std::string& method = request_.method.empty() ? std::string("-") : request_.method;
  const std::string& target = request_.target.empty() ? std::string("-") : request_.target;
  const std::string_view trace_label = request_.trace_id.empty() ? "" : " trace_id=";
  if (ec) {
    spdlog::warn("http {} {} status={} not delivered: {} ms={:.2f} request_id={}{}{}", method, target, status,
                 ec.message(), ms, request_.request_id, trace_label, request_.trace_id);
  } else {
    spdlog::info("http {} {} status={} bytes={} ms={:.2f}{}{} request_id={}{}{}", method, target, status, bytes,
                 ms, note.empty() ? "" : " ", note, request_.request_id, trace_label, request_.trace_id);
  }
  owed_ = false;
  host_->RequestFinished();
  if (ec) return Close();
  if (!response_.keep_alive()) {
    // The client may still be sending a body we refused; read it away before closing.
    if (status == 413 || status == 431 || status == 400) return DrainAndClose();
    return Close();
  }
  ReadHeader();
}

void Session::DrainAndClose() {
  beast::error_code ignored;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
  drain_.resize(64 * 1024);
  stream_.expires_after(kDrainTimeout);
  Drain(0);
}

void Session::Drain(std::size_t drained) {
  if (drained >= kDrainLimit) return Close();
  stream_.async_read_some(net::buffer(drain_),
                          [self = shared_from_this(), drained](beast::error_code ec, std::size_t n) {
                            if (ec) return self->Close();
                            self->Drain(drained + n);
                          });
}

void Session::Close() {
  beast::error_code ignored;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
  stream_.close();
}

}  // namespace stowage::http
