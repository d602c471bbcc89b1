// One client connection, and the part of the server its connections share.
// Internal to the HTTP layer.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
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

  // Where a newly accepted connection goes: served, served as an overflow
  // connection (one request, /healthz answered, anything else refused), or
  // turned away. kServe and kOverflow are counted until Left().
  enum class Admission { kServe, kOverflow, kTurnAway };
  Admission Admit();
  void Left(bool overflow);

  // Takes a place in the queue for a worker; false when max_queue requests
  // wait already. Dequeued() gives it back when a worker takes the request.
  bool TryEnqueue();
  void Dequeued();
  // Why a request or connection was refused for overload.
  enum class Overload { kQueueFull, kQueueTimeout, kOverflowConnection, kTurnedAway };
  // Counts a refusal for overload, for the next LogOverload().
  void NoteOverload(Overload why);
  // Logs one line of the refusals counted since the last call, if any, and
  // why. The server calls it once a second.
  void LogOverload();

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
  std::atomic<std::size_t> served_{0};    // connections admitted kServe, not yet left
  std::atomic<std::size_t> overflow_{0};  // connections admitted kOverflow, not yet left
  std::atomic<std::size_t> queued_{0};    // requests waiting for a worker
  std::mutex overload_mu_;
  std::map<Overload, std::size_t> overload_unlogged_;        // guarded by overload_mu_
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
  // `overflow`: admitted beyond max_connections (SessionHost::Admit); serves
  // one request and closes, and the host's Left(true) is called when it ends.
  Session(boost::asio::ip::tcp::socket socket, std::shared_ptr<SessionHost> host, bool overflow);
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
  // Queues the request for a worker, or refuses it when the queue is full.
  void Enqueue();
  void Refuse(Refusal why);
  void Respond(Response response, bool refused);
  void OnWritten(boost::beast::error_code ec, std::size_t status, std::size_t bytes, std::string note);
  void DrainAndClose();
  void Drain(std::size_t drained);
  void Close();

  // Who owns a request queued for a worker (Enqueue).
  enum class QueueTicket { kWaiting, kTaken, kExpired };

  boost::beast::tcp_stream stream_;
  boost::asio::steady_timer queue_timer_;  // refuses the queued request after queue_timeout
  std::shared_ptr<SessionHost> host_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  boost::beast::http::response<boost::beast::http::empty_body> continue_;
  boost::beast::http::response<boost::beast::http::string_body> response_;
  std::vector<char> drain_;
  Request request_;          // the request being served (body moved out when dispatched)
  Clock::time_point start_;  // when its header was read
  const bool overflow_;
  bool keep_alive_ = false;
  bool busy_ = false;      // a request is being served: Stop() waits for its answer
  bool stopping_ = false;  // close after the current answer
  bool owed_ = false;      // RequestStarted() was counted and RequestFinished() is still owed
};

}  // namespace stowage::http
