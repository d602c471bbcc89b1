#include "http_client.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cctype>
#include <stdexcept>

namespace stowage::testing {
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;

// Each step runs as an asynchronous operation driven to completion on this
// thread: that is how a step gets a deadline (tcp_stream's expiry closes the
// socket and the step fails with beast::error::timeout).
struct HttpClient::Impl {
  std::string host;
  std::uint16_t port;
  boost::asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;

  // Starts `start(handler)` under `timeout` (zero: none) and runs it to its end.
  template <typename Start>
  boost::system::error_code Run(std::chrono::milliseconds timeout, Start start) {
    if (timeout.count() > 0) {
      stream.expires_after(timeout);
    } else {
      stream.expires_never();
    }
    boost::system::error_code result;
    start([&result](boost::system::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    return result;
  }
};

HttpClient::HttpClient(std::uint16_t port, std::string host) : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
}

HttpClient::~HttpClient() {
  Close();
}

bool HttpClient::connected() const {
  return impl_->stream.socket().is_open();
}

void HttpClient::Close() {
  boost::system::error_code ignored;
  impl_->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  impl_->stream.socket().close(ignored);
  impl_->buffer.clear();
}

namespace {

std::string Describe(const boost::system::error_code& ec, std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout)
    return "no progress within " + std::to_string(timeout.count()) + " ms (timeout)";
  return ec.message();
}

}  // namespace

HttpResult HttpClient::Send(const std::string& method, const std::string& target, const std::string& body,
                            const std::string& content_type,
                            const std::vector<std::pair<std::string, std::string>>& headers) {
  auto where = impl_->host + ":" + std::to_string(impl_->port);
  if (!connected()) {
    tcp::endpoint endpoint(boost::asio::ip::make_address(impl_->host), impl_->port);
    auto ec = impl_->Run(timeout_, [&](auto handler) { impl_->stream.async_connect(endpoint, handler); });
    if (ec) {
      Close();
      throw std::runtime_error("connecting to " + where + " failed: " + Describe(ec, timeout_));
    }
    ++connections_opened_;
  }
  bhttp::request<bhttp::string_body> request;
  request.method_string(method);
  request.target(target);
  request.version(11);
  request.set(bhttp::field::host, where);
  if (!content_type.empty()) request.set(bhttp::field::content_type, content_type);
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = body;
  if (!body.empty() || method == "POST" || method == "PUT") request.prepare_payload();
  auto ec = impl_->Run(timeout_, [&](auto handler) { bhttp::async_write(impl_->stream, request, handler); });
  if (ec) {
    Close();
    throw std::runtime_error(method + " " + target +
                             ": writing the request failed: " + Describe(ec, timeout_));
  }
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  // An answer to HEAD has the body's Content-Length but no body.
  if (method == "HEAD") parser.skip(true);
  ec = impl_->Run(timeout_,
                  [&](auto handler) { bhttp::async_read(impl_->stream, impl_->buffer, parser, handler); });
  if (ec) {
    Close();
    throw std::runtime_error(method + " " + target +
                             ": reading the answer failed: " + Describe(ec, timeout_));
  }
  auto response = parser.release();
  HttpResult result;
  result.status = static_cast<int>(response.result_int());
  result.body = std::move(response.body());
  for (const auto& field : response) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    result.headers[name] = std::string(field.value());
  }
  result.keep_alive = response.keep_alive();
  if (!result.keep_alive) Close();
  return result;
}

}  // namespace stowage::testing
