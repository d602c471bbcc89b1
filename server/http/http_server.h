// HttpServer: an HTTP/1.1 server on Boost.Beast. Connections are served on a
// pool of I/O threads; every complete request is handed to the Handler on a
// separate pool of worker threads, so a handler may block without stalling
// other connections, and its answer is written back on the connection's
// strand. Keep-alive, a request body limit and graceful shutdown are handled
// here; what a request means is the Handler's business.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http/http_types.h"

namespace stowage::http {

class SessionHost;

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;  // 0 picks a free port; see local_endpoint()
  int io_threads = 1;
  int workers = 8;
  std::size_t body_limit = 65536;  // bytes of request body; more gets Handler::Refuse
  // How long a keep-alive connection may sit without sending a request.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  // How long reading the rest of a started request, or writing an answer, may take.
  std::chrono::milliseconds io_timeout{std::chrono::seconds(30)};

  // Overload. Connections served at once: one accepted beyond them becomes an
  // overflow connection (at most `overflow_connections` of them), which reads
  // one request within `overflow_timeout`, answers it if the handler answers
  // it immediately (/healthz), else 503 overloaded, and closes. Beyond the
  // overflow connections too, a connection gets a fixed 503 and is closed at
  // once.
  std::size_t max_connections = 10000;
  std::size_t overflow_connections = 64;
  std::chrono::milliseconds overflow_timeout{1000};
  // Requests read and waiting for a worker; one more is refused (kOverloaded).
  std::size_t max_queue = 256;
  // A request that waited longer for a worker is refused (kQueueTimeout), not run.
  std::chrono::milliseconds queue_timeout{1000};
};

// Raises this process' open-files limit (RLIMIT_NOFILE) to its hard limit and
// returns the most connections it leaves room for: `wanted`, or the limit
// minus `reserve` descriptors (databases, logs, plugins, overflow
// connections) when that is lower, in which case `warning` says so and how to
// raise the limit.
std::size_t FitConnectionsToFileLimit(std::size_t wanted, std::size_t reserve, std::string* warning);

// Splits "host:port" (or "[v6]:port"). Returns false and sets `error` when
// the text is not of that form.
bool ParseListenAddress(const std::string& text, std::string* host, std::uint16_t* port, std::string* error);

class HttpServer {
 public:
  // `handler` must outlive the server.
  HttpServer(ServerOptions options, Handler& handler);
  // Stops at once if Shutdown was not called: in-flight requests are dropped.
  ~HttpServer();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens. Returns false with `error` naming the address and the
  // reason when it cannot.
  bool Listen(std::string* error);
  // The bound address; valid after a successful Listen.
  boost::asio::ip::tcp::endpoint local_endpoint() const { return endpoint_; }

  // Starts the I/O and worker threads and accepting connections. Returns at once.
  void Start();

  // Graceful stop: stops accepting, closes idle connections, lets requests
  // already read finish and be answered (with Connection: close), and waits
  // for them at most `grace`. Then stops every thread. Returns the number of
  // requests still running when `grace` ran out (0 after a clean stop); their
  // worker threads are left to the caller, who should exit the process.
  // Call once, from a thread that is not one of the server's.
  std::size_t Shutdown(std::chrono::milliseconds grace);

 private:
  void Accept();
  // After an accept error: counts it for Report() and accepts again, after a
  // pause when the process is out of descriptors or memory.
  void AcceptFailed(const boost::system::error_code& ec);
  // Once a second, on the acceptor's strand: logs the overload refusals and
  // accept errors counted since the last time, if any.
  void Report();
  // Writes a fixed 503 to a connection beyond every limit and closes it.
  static void TurnAway(boost::asio::ip::tcp::socket socket);

  ServerOptions options_;
  std::shared_ptr<SessionHost> host_;
  boost::asio::io_context ioc_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::ip::tcp::endpoint endpoint_;
  // On the acceptor's strand:
  boost::asio::steady_timer accept_pause_;
  boost::asio::steady_timer report_timer_;
  std::size_t accept_errors_unlogged_ = 0;
  std::string accept_error_;      // the last accept error since the last report
  bool accept_exhausted_ = false;  // it was for lack of descriptors or memory
  std::vector<std::thread> io_threads_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace stowage::http
