// HttpClient: one JSON POST over http:// or https://, bounded in time.
//
// Every failure is a Status whose message names the URL (scheme, host, port
// and path; never a header, so never a token) and what went wrong:
// - kUnavailable: the host cannot be resolved or reached, the TLS handshake
//   or certificate check failed, the connection broke, or the answer's
//   status is not 2xx (the message then quotes the first 200 bytes of its
//   body);
// - kDeadlineExceeded: a timeout passed; the message says which one.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stowage/context.h"
#include "stowage/status.h"

namespace stowage::embeddings {

// A parsed http:// or https:// URL (read by core/src/url/url_syntax.h, on
// Boost.URL). Its user info and fragment are dropped; the host is
// percent-decoded; path and query are kept as RFC 3986 writes them (a
// character it does not allow raw is percent-encoded).
struct Url {
  bool tls = false;    // https
  std::string host;    // without brackets for an IPv6 literal
  std::string port;    // "80" / "443" when the URL gives none
  std::string target;  // path and query, "/" at least
  std::string text;    // scheme://host[:port]/path, for messages: no user info, no query
};

// Parses `text`; on failure returns nullopt with `*error` saying what is
// wrong with it, quoting the URL with its user info masked.
std::optional<Url> ParseUrl(std::string_view text, std::string* error);

struct HttpTimeouts {
  // Resolving the host, connecting and the TLS handshake.
  std::chrono::milliseconds connect{2000};
  // The whole call, connecting included.
  std::chrono::milliseconds request{10000};
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// Thread-safe: one client serves concurrent calls, each on its own
// connection. TLS verifies the server's certificate against the system's
// trusted certificates and its name against the URL's host, and sends the
// host name (SNI).
class HttpClient {
 public:
  // Throws std::runtime_error when OpenSSL cannot be set up.
  explicit HttpClient(HttpTimeouts timeouts);
  ~HttpClient();

  // POSTs `body` (JSON) to `url` with `headers` added to the request, and
  // puts the body of a 2xx answer in `*response`. Finishes by the earliest
  // of the connect/request timeouts and `deadline`.
  Status PostJson(const Url& url, const HttpHeaders& headers, std::string body, Deadline deadline,
                  std::string* response) const;

 private:
  struct Tls;
  HttpTimeouts timeouts_;
  std::unique_ptr<Tls> tls_;
};

}  // namespace stowage::embeddings
