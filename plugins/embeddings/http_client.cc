#include "http_client.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "text_chunk.h"
#include "url_syntax.h"

namespace stowage::embeddings {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;

constexpr std::size_t kMaxAnswerBytes = 64 * 1024 * 1024;
constexpr std::size_t kQuotedBodyBytes = 200;

std::string Lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Ms(milliseconds ms) {
  return std::to_string(ms.count()) + " ms";
}

// The first bytes of an answer's body, on one line, for a message.
std::string Quote(std::string_view body) {
  std::string out(TruncateUtf8(body, kQuotedBodyBytes));
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (out.size() < body.size()) out += "...";
  return out.empty() ? "(empty body)" : "'" + out + "'";
}

// Resolves on a thread of its own, so that a slow system resolver cannot hold
// the call past `until`: when it does, the thread is left to finish alone.
Status Resolve(const Url& url, Clock::time_point until, tcp::resolver::results_type* results,
               const std::string& timeout_reason) {
  struct Shared {
    std::mutex mu;
    std::condition_variable done_cv;
    bool done = false;
    boost::system::error_code ec;
    tcp::resolver::results_type results;
  };
  auto shared = std::make_shared<Shared>();
  std::thread([shared, host = url.host, port = url.port] {
    asio::io_context ioc;
    tcp::resolver resolver(ioc);
    boost::system::error_code ec;
    auto results = resolver.resolve(host, port, ec);
    std::lock_guard lock(shared->mu);
    shared->ec = ec;
    shared->results = std::move(results);
    shared->done = true;
    shared->done_cv.notify_all();
  }).detach();
  std::unique_lock lock(shared->mu);
  if (!shared->done_cv.wait_until(lock, until, [&] { return shared->done; })) {
    return Status::DeadlineExceeded("timed out resolving host '" + url.host + "' of " + url.text + " (" +
                                    timeout_reason + ")");
  }
  if (shared->ec) {
    return Status::Unavailable("cannot resolve host '" + url.host + "' of " + url.text + ": " +
                               shared->ec.message() + "; check the host name in the URL and the DNS");
  }
  *results = shared->results;
  return Status::Ok();
}

// One exchange on an open-to-be stream; `Stream` is beast::tcp_stream or
// beast::ssl_stream<beast::tcp_stream>.
struct Exchange {
  const Url& url;
  const HttpHeaders& headers;
  std::string body;
  Clock::time_point connect_until;
  Clock::time_point request_until;
  std::string connect_reason;  // which limit connect_until is, for messages
  std::string request_reason;
  Status status = Status::Internal("the HTTP exchange did not finish");
  std::string answer;
};

bool IsTimeout(const boost::system::error_code& ec) {
  return ec == beast::error::timeout || ec == asio::error::timed_out;
}

template <typename Stream>
asio::awaitable<void> Run(Stream& stream, const tcp::resolver::results_type& endpoints, Exchange& x) {
  boost::system::error_code ec;
  auto& socket = beast::get_lowest_layer(stream);

  socket.expires_at(x.connect_until);
  co_await socket.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    if (IsTimeout(ec)) {
      x.status =
          Status::DeadlineExceeded("timed out connecting to " + x.url.text + " (" + x.connect_reason + ")");
    } else {
      x.status = Status::Unavailable("cannot connect to " + x.url.text + ": " + ec.message() +
                                     "; check that the provider runs and that the URL is right");
    }
    co_return;
  }
  if constexpr (!std::is_same_v<Stream, beast::tcp_stream>) {
    co_await stream.async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (IsTimeout(ec)) {
        x.status = Status::DeadlineExceeded("timed out in the TLS handshake with " + x.url.text + " (" +
                                            x.connect_reason + ")");
      } else {
        x.status = Status::Unavailable("TLS handshake with " + x.url.text + " failed: " + ec.message() +
                                       "; the server's certificate must be valid for '" + x.url.host +
                                       "' and trusted by the system's certificate store");
      }
      co_return;
    }
  }

  socket.expires_at(x.request_until);
  http::request<http::string_body> request{http::verb::post, x.url.target, 11};
  const bool default_port = x.url.port == (x.url.tls ? "443" : "80");
  const bool ipv6 = x.url.host.find(':') != std::string::npos;
  const std::string host = ipv6 ? "[" + x.url.host + "]" : x.url.host;
  request.set(http::field::host, default_port ? host : host + ":" + x.url.port);
  request.set(http::field::user_agent, "stowage-embeddings/1.0");
  request.set(http::field::content_type, "application/json");
  request.set(http::field::accept, "application/json");
  for (const auto& [name, value] : x.headers) request.set(name, value);
  request.keep_alive(false);
  request.body() = std::move(x.body);
  request.prepare_payload();

  co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    if (IsTimeout(ec)) {
      x.status = Status::DeadlineExceeded("timed out sending the request to " + x.url.text + " (" +
                                          x.request_reason + ")");
    } else {
      x.status = Status::Unavailable("lost the connection to " + x.url.text +
                                     " while sending the request: " + ec.message());
    }
    co_return;
  }

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxAnswerBytes);
  co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    if (IsTimeout(ec)) {
      x.status = Status::DeadlineExceeded("timed out waiting for the answer of " + x.url.text + " (" +
                                          x.request_reason + ")");
    } else {
      x.status = Status::Unavailable("lost the connection to " + x.url.text +
                                     " while reading the answer: " + ec.message());
    }
    co_return;
  }
  http::response<http::string_body> response = parser.release();
  const unsigned code = response.result_int();
  if (code < 200 || code > 299) {
    std::string reason(response.reason());
    x.status = Status::Unavailable(x.url.text + " answered HTTP " + std::to_string(code) +
                                   (reason.empty() ? "" : " " + reason) + ": " + Quote(response.body()));
    co_return;
  }
  x.answer = std::move(response.body());
  x.status = Status::Ok();
  // The answer is complete; closing without a TLS close_notify is harmless
  // for a client that sent Connection: close.
  beast::error_code ignored;
  socket.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace

std::optional<Url> ParseUrl(std::string_view text, std::string* error) {
  // The authority ends at the first '/', '?' or '#'. Its user info is never
  // sent. Messages mask everything up to the last '@' (url_syntax::
  // RedactUserInfo): in a url that does not parse, a password may hold a '/'.
  constexpr std::string_view kAuthorityEndsAt = "/?#";
  const std::optional<url_syntax::UrlPieces> pieces = url_syntax::SplitUrl(text, kAuthorityEndsAt);
  if (!pieces) {
    *error = "'" + url_syntax::RedactUserInfo(text) + "' is not a URL: it needs http:// or https://";
    return std::nullopt;
  }
  Url url;
  const std::string scheme = Lowercase(pieces->scheme);
  if (scheme == "https") {
    url.tls = true;
  } else if (scheme != "http") {
    *error = "URL scheme '" + scheme + "' is not supported: use http:// or https://";
    return std::nullopt;
  }
  const std::string rest(text.substr(pieces->host_and_port.data() - text.data()));
  const std::string shown = url_syntax::RedactUserInfo(text);
  // Read without the user info, and without the fragment, which is the
  // client's.
  const std::string without_user_info = scheme + "://" + rest.substr(0, rest.find('#'));
  url_syntax::UrlRefusal refusal;
  const std::optional<url_syntax::ParsedUrl> parsed = url_syntax::ParseUrl(without_user_info, "/?", &refusal);
  if (!parsed) {
    using Reason = url_syntax::UrlRefusal::Reason;
    switch (refusal.reason) {
      case Reason::kUnclosedBracket:
        *error = "URL '" + shown + "' has an unclosed '[' in its host";
        break;
      case Reason::kTextAfterIpAddress:
        *error = "URL '" + shown + "' has text after its IPv6 host";
        break;
      case Reason::kNotAnIpAddress:
        *error = "URL '" + shown + "' has a host in brackets that is not an IPv6 address";
        break;
      case Reason::kPortNotANumber:
        *error =
            "URL '" + shown + "' has port " + url_syntax::ShownPart(shown, refusal.text) + "; use 1 to 65535";
        break;
      case Reason::kMalformedEscape:
        *error = "URL '" + shown + "' has a malformed %-escape in its " +
                 std::string(url_syntax::PartName(refusal.part)) + "; write '%' as %25";
        break;
      default:
        *error = "URL '" + shown + "' has a host that is not a host name or an address";
        break;
    }
    return std::nullopt;
  }
  const boost::urls::url_view parts = parsed->url;
  url.host = parsed->host;
  if (url.host.empty()) {
    *error = "URL '" + shown + "' has no host";
    return std::nullopt;
  }
  const std::string_view port = parts.port();
  if (port.empty()) {
    url.port = url.tls ? "443" : "80";
  } else {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
      *error = "URL '" + shown + "' has port " + url_syntax::ShownPart(shown, port) + "; use 1 to 65535";
      return std::nullopt;
    }
    url.port = std::to_string(value);
  }
  // Sent as RFC 3986 has it: what it does not allow raw is percent-encoded.
  const std::string path = parts.encoded_path().empty() ? "/" : std::string(parts.encoded_path());
  url.target = parts.has_query() ? path + "?" + std::string(parts.encoded_query()) : path;
  const bool ipv6 = url.host.find(':') != std::string::npos;
  url.text = scheme + "://" + (ipv6 ? "[" + url.host + "]" : url.host) + ":" + url.port + path;
  return url;
}

struct HttpClient::Tls {
  ssl::context context{ssl::context::tls_client};
};

HttpClient::HttpClient(HttpTimeouts timeouts) : timeouts_(timeouts), tls_(std::make_unique<Tls>()) {
  boost::system::error_code ec;
  tls_->context.set_default_verify_paths(ec);
  if (ec) {
    throw std::runtime_error("cannot load the system's trusted certificates for https: " + ec.message() +
                             "; install the ca-certificates package");
  }
  tls_->context.set_verify_mode(ssl::verify_peer);
}

HttpClient::~HttpClient() = default;

Status HttpClient::PostJson(const Url& url, const HttpHeaders& headers, std::string body, Deadline deadline,
                            std::string* response) const {
  response->clear();
  const Clock::time_point now = Clock::now();
  // The earliest limit wins; the messages say which one it was.
  Exchange x{
      url, headers, std::move(body), {}, {}, {}, {}, Status::Internal("the HTTP exchange did not finish"),
      {}};
  x.request_until = now + timeouts_.request;
  x.request_reason = "request_timeout_ms " + Ms(timeouts_.request);
  if (deadline.at() < x.request_until) {
    x.request_until = deadline.at();
    x.request_reason = "the stage's deadline, " + Ms(deadline.remaining()) + " away when the call began";
  }
  x.connect_until = now + timeouts_.connect;
  x.connect_reason = "connect_timeout_ms " + Ms(timeouts_.connect);
  if (x.request_until < x.connect_until) {
    x.connect_until = x.request_until;
    x.connect_reason = x.request_reason;
  }

  tcp::resolver::results_type endpoints;
  Status status = Resolve(url, x.connect_until, &endpoints, x.connect_reason);
  if (!status.ok()) return status;

  asio::io_context ioc;
  if (url.tls) {
    beast::ssl_stream<beast::tcp_stream> stream(ioc, tls_->context);
    // SNI, and the certificate must name the host.
    if (!SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str())) {
      return Status::Unavailable("cannot set the TLS server name '" + url.host + "' for " + url.text);
    }
    stream.set_verify_callback(ssl::host_name_verification(url.host));
    asio::co_spawn(ioc, Run(stream, endpoints, x), asio::detached);
    ioc.run();
  } else {
    beast::tcp_stream stream(ioc);
    asio::co_spawn(ioc, Run(stream, endpoints, x), asio::detached);
    ioc.run();
  }
  if (x.status.ok()) *response = std::move(x.answer);
  return x.status;
}

}  // namespace stowage::embeddings
