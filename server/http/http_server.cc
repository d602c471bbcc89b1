#include "http/http_server.h"

#include <spdlog/spdlog.h>

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

HttpServer::HttpServer(ServerOptions options, Handler& handler)
    : options_(options),
      host_(std::make_shared<SessionHost>(std::move(options), handler)),
      ioc_(options_.io_threads > 0 ? options_.io_threads : 1),
      acceptor_(net::make_strand(ioc_)) {}

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
  net::post(acceptor_.get_executor(), [this] { Accept(); });
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
    if (ec) {
      spdlog::warn("accepting a connection failed: {}; still accepting", ec.message());
    } else {
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(std::move(socket), host_)->Start();
    }
    Accept();
  });
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
