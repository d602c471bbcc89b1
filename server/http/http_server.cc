#include "http/http_server.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <cerrno>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <charconv>
#include <future>

#include "http/session.h"

namespace stowage::http {
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;

bool ParseListenAddress(const std::string& text, std::string* host, std::uint16_t* port, std::string* error) {
  std::string host_part;
  std::string port_part;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      *error = "listen address '" + text + "' is not of the form [ipv6]:port";
      return false;
    }
    host_part = text.substr(1, close - 1);
    port_part = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      *error = "listen address '" + text + "' is not of the form host:port, e.g. 127.0.0.1:8000";
      return false;
    }
    host_part = text.substr(0, colon);
    port_part = text.substr(colon + 1);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port_part.data(), port_part.data() + port_part.size(), value);
  if (ec != std::errc() || end != port_part.data() + port_part.size() || port_part.empty() || value > 65535) {
    *error = "listen address '" + text + "' has port '" + port_part + "'; use a number from 0 to 65535";
    return false;
  }
  *host = host_part;
  *port = static_cast<std::uint16_t>(value);
  return true;
}

std::size_t FitConnectionsToFileLimit(std::size_t wanted, std::size_t reserve, std::string* warning) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return wanted;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  if (limit.rlim_cur == RLIM_INFINITY) return wanted;
  const auto files = static_cast<std::size_t>(limit.rlim_cur);
  const std::size_t room = files > reserve ? files - reserve : 1;
  if (wanted <= room) return wanted;
  *warning = "server.max_connections = " + std::to_string(wanted) + " is more than the open-files limit of " +
             std::to_string(files) + " leaves room for (" + std::to_string(reserve) +
             " are kept for databases, logs and plugins); serving at most " + std::to_string(room) +
             " connections. Raise the limit (LimitNOFILE= in the systemd unit, ulimit -n) or lower "
             "server.max_connections";
  return room;
}

HttpServer::HttpServer(ServerOptions options, Handler& handler)
    : options_(options),
      host_(std::make_shared<SessionHost>(std::move(options), handler)),
      ioc_(options_.io_threads > 0 ? options_.io_threads : 1),
      acceptor_(net::make_strand(ioc_)),
      accept_pause_(acceptor_.get_executor()),
      report_timer_(acceptor_.get_executor()) {}

HttpServer::~HttpServer() {
  if (started_ && !stopped_) {
    work_.reset();
    ioc_.stop();
    for (auto& thread : io_threads_) thread.join();
    host_->workers().stop();
    host_->workers().join();
  }
}

bool HttpServer::Listen(std::string* error) {
  boost::system::error_code ec;
  auto address = net::ip::make_address(options_.host, ec);
  if (ec) {
    // Not a literal address: resolve a host name such as "localhost".
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(options_.host, std::to_string(options_.port), ec);
    if (ec || results.empty()) {
      *error = "cannot resolve listen host '" + options_.host + "': " + ec.message() +
               "; set server.listen to an IP address and port, e.g. 127.0.0.1:8000";
      return false;
    }
    address = results.begin()->endpoint().address();
  }
  tcp::endpoint endpoint(address, options_.port);
  std::string where = endpoint.address().to_string() + ":" + std::to_string(options_.port);
  auto fail = [&](const char* step) {
    *error = std::string("cannot ") + step + " " + where + ": " + ec.message() +
             "; choose a free address in server.listen or stop the process that holds it";
    return false;
  };
  if (acceptor_.open(endpoint.protocol(), ec)) return fail("open a socket for");
  if (acceptor_.set_option(net::socket_base::reuse_address(true), ec)) return fail("set SO_REUSEADDR on");
  if (acceptor_.bind(endpoint, ec)) return fail("bind");
  if (acceptor_.listen(net::socket_base::max_listen_connections, ec)) return fail("listen on");
  endpoint_ = acceptor_.local_endpoint(ec);
  if (ec) return fail("read the bound address of");
  return true;
}

void HttpServer::Start() {
  started_ = true;
  work_.emplace(ioc_.get_executor());
  net::post(acceptor_.get_executor(), [this] {
    Accept();
    Report();
  });
  int threads = options_.io_threads > 0 ? options_.io_threads : 1;
  for (int i = 0; i < threads; ++i) {
    io_threads_.emplace_back([this] {
      // A handler that throws (e.g. out of memory) costs its connection, not the thread.
      for (;;) {
        try {
          ioc_.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("an I/O handler threw: {}; the connection it served is dropped", e.what());
        } catch (...) {
          spdlog::error("an I/O handler threw a non-standard exception; the connection it served is dropped");
        }
      }
    });
  }
}

void HttpServer::Accept() {
  acceptor_.async_accept(net::make_strand(ioc_), [this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) return AcceptFailed(ec);
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    switch (host_->Admit()) {
      case SessionHost::Admission::kServe:
        std::make_shared<Session>(std::move(socket), host_, false)->Start();
        break;
      case SessionHost::Admission::kOverflow:
        std::make_shared<Session>(std::move(socket), host_, true)->Start();
        break;
      case SessionHost::Admission::kTurnAway:
        TurnAway(std::move(socket));
        break;
    }
    Accept();
  });
}

void HttpServer::AcceptFailed(const boost::system::error_code& ec) {
  // Out of descriptors or memory: the pending connection stays in the
  // backlog, so accepting again at once would spin. Pause instead.
  const bool exhausted = ec == net::error::no_descriptors || ec == net::error::no_buffer_space ||
                         ec == net::error::no_memory || ec.value() == ENFILE;
  ++accept_errors_unlogged_;
  accept_error_ = ec.message();
  accept_exhausted_ = exhausted;
  if (!exhausted) return Accept();
  accept_pause_.expires_after(std::chrono::milliseconds(50));
  accept_pause_.async_wait([this](boost::system::error_code wait_ec) {
    if (wait_ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    Accept();
  });
}

void HttpServer::Report() {
  host_->LogOverload();
  if (accept_errors_unlogged_ > 0) {
    spdlog::warn("accepting a connection failed {} time(s) in the last second, last: {}; {}",
                 accept_errors_unlogged_, accept_error_,
                 accept_exhausted_ ? "accepting pauses 50 ms after each; lower server.max_connections or raise "
                                     "the open-files limit (LimitNOFILE=, ulimit -n)"
                                   : "still accepting");
    accept_errors_unlogged_ = 0;
  }
  report_timer_.expires_after(std::chrono::seconds(1));
  report_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    Report();
  });
}

void HttpServer::TurnAway(tcp::socket socket) {
  const std::string id = RequestIdFrom({});
  const std::string body =
      R"({"error":{"code":"overloaded","message":"stowaged is overloaded: too many connections; nothing was )"
      R"(done; retry after the Retry-After seconds","request_id":")" + id + R"("}})";
  const std::string answer = "HTTP/1.1 503 Service Unavailable\r\nServer: stowaged\r\n"
                             "Content-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
                             "X-Request-Id: " + id + "\r\nContent-Length: " + std::to_string(body.size()) +
                             "\r\n\r\n" + body;
  // One attempt that never blocks: a client that cannot take these few bytes
  // at once gets a closed connection.
  boost::system::error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(net::buffer(answer), ignored);
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  socket.close(ignored);
}

std::size_t HttpServer::Shutdown(std::chrono::milliseconds grace) {
  if (!started_ || stopped_) return 0;
  stopped_ = true;
  auto deadline = std::chrono::steady_clock::now() + grace;

  std::promise<void> closed;
  net::post(acceptor_.get_executor(), [this, &closed] {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    closed.set_value();
  });
  closed.get_future().wait();
  net::post(acceptor_.get_executor(), [this] {
    accept_pause_.cancel();
    report_timer_.cancel();
    host_->LogOverload();
  });
  spdlog::info("shutdown: stopped accepting connections");

  auto sessions = host_->BeginStopping();
  spdlog::info("shutdown: closing {} open connection(s) once their current request is answered",
               sessions.size());
  for (auto& session : sessions) session->Stop();
  sessions.clear();

  std::size_t unfinished = host_->WaitIdle(deadline);
  if (unfinished == 0) {
    spdlog::info("shutdown: every in-flight request was answered and every connection closed");
  } else {
    spdlog::warn("shutdown: {} request(s) still running after {} ms; giving up on them", unfinished,
                 grace.count());
  }

  work_.reset();
  if (unfinished > 0 || host_->open_connections() > 0) ioc_.stop();
  for (auto& thread : io_threads_) thread.join();
  io_threads_.clear();
  spdlog::info("shutdown: I/O threads stopped");
  if (unfinished == 0) {
    host_->workers().join();
    spdlog::info("shutdown: worker threads stopped");
  }
  return unfinished;
}

}  // namespace stowage::http
