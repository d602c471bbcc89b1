#include "http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cctype>
#include <stdexcept>

namespace stowage::testing {
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;

struct HttpClient::Impl {
  std::string host;
  std::uint16_t port;
  boost::asio::io_context ioc;
  tcp::socket socket{ioc};
  boost::beast::flat_buffer buffer;
};

HttpClient::HttpClient(std::uint16_t port, std::string host) : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
}

HttpClient::~HttpClient() {
  Close();
}

bool HttpClient::connected() const {
  return impl_->socket.is_open();
}

void HttpClient::Close() {
  boost::system::error_code ignored;
  impl_->socket.shutdown(tcp::socket::shutdown_both, ignored);
  impl_->socket.close(ignored);
  impl_->buffer.clear();
}

HttpResult HttpClient::Send(const std::string& method, const std::string& target, const std::string& body,
                            const std::string& content_type,
                            const std::vector<std::pair<std::string, std::string>>& headers) {
  boost::system::error_code ec;
  auto where = impl_->host + ":" + std::to_string(impl_->port);
  if (!impl_->socket.is_open()) {
    tcp::endpoint endpoint(boost::asio::ip::make_address(impl_->host), impl_->port);
    impl_->socket.connect(endpoint, ec);
    if (ec) {
      Close();
      throw std::runtime_error("connecting to " + where + " failed: " + ec.message());
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
  bhttp::write(impl_->socket, request, ec);
  if (ec) {
    Close();
    throw std::runtime_error(method + " " + target + ": writing the request failed: " + ec.message());
  }
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  bhttp::read(impl_->socket, impl_->buffer, parser, ec);
  if (ec) {
    Close();
    throw std::runtime_error(method + " " + target + ": reading the answer failed: " + ec.message());
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
