// One client connection, and the part of the server its connections share.
// Internal to the HTTP layer.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "http/http_server.h"
#include "http/http_types.h"

namespace stowage::http {

class Session;

// What every connection of one server shares: the handler, the options, the
// worker pool, and the bookkeeping graceful shutdown needs. Thread-safe.
class SessionHost {
 public:
  SessionHost(ServerOptions options, Handler& handler)
      : options_(std::move(options)), handler_(handler), workers_(options_.workers) {}

  const ServerOptions& options() const noexcept { return options_; }
  Handler& handler() noexcept { return handler_; }
  boost::asio::thread_pool& workers() noexcept { return workers_; }
  bool stopping() const noexcept { return stopping_.load(); }

  void Register(const std::shared_ptr<Session>& session);
  void Unregister(const Session* session);
  // A request was read (its answer is owed) / its answer was written or dropped.
  void RequestStarted();
  void RequestFinished();

  // Marks the server stopping and returns the open connections.
  std::vector<std::shared_ptr<Session>> BeginStopping();
  // Waits until no request is in flight and no connection is open, or until
  // `until`. Returns the number of requests still in flight.
  std::size_t WaitIdle(std::chrono::steady_clock::time_point until);
  std::size_t open_connections();

 private:
  const ServerOptions options_;
  Handler& handler_;
  boost::asio::thread_pool workers_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable idle_;
  std::size_t in_flight_ = 0;                              // guarded by mu_
  std::map<const Session*, std::weak_ptr<Session>> open_;  // guarded by mu_
};

// Serves the requests of one connection in order, one at a time. All members
// are used on the connection's strand only, except Stop(), which any thread
// may call.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(boost::asio::ip::tcp::socket socket, std::shared_ptr<SessionHost> host);
  ~Session();

  void Start();
  // Closes the connection now if it is waiting for a request, else after the
  // answer to the current one.
  void Stop();

 private:
  using Clock = std::chrono::steady_clock;

  void ReadHeader();
  void OnHeader(boost::beast::error_code ec);
  void ReadBody();
  void OnBody(boost::beast::error_code ec);
  void Dispatch();
  void Refuse(Refusal why);
  void Respond(Response response, bool refused);
  void OnWritten(boost::beast::error_code ec, std::size_t status, std::size_t bytes, std::string note);
  void DrainAndClose();
  void Drain(std::size_t drained);
  void Close();

  boost::beast::tcp_stream stream_;
  std::shared_ptr<SessionHost> host_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  boost::beast::http::response<boost::beast::http::empty_body> continue_;
  boost::beast::http::response<boost::beast::http::string_body> response_;
  std::vector<char> drain_;
  Request request_;          // the request being served (body moved out when dispatched)
  Clock::time_point start_;  // when its header was read
  bool keep_alive_ = false;
  bool busy_ = false;      // a request is being served: Stop() waits for its answer
  bool stopping_ = false;  // close after the current answer
  bool owed_ = false;      // RequestStarted() was counted and RequestFinished() is still owed
};

}  // namespace stowage::http
