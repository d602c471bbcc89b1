// The HTTP layer's view of one exchange, free of socket and Beast types, so
// that request handlers can be written and tested without a network.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stowage::http {

// A request read whole from a connection.
struct Request {
  std::string method;        // as sent, e.g. "POST"
  std::string target;        // as sent, query string included, e.g. "/v1/guest/chat/g1?x=1"
  std::string content_type;  // the Content-Type header; empty when absent
  std::string body;          // raw bytes, not checked for any encoding
  // Every header as sent; names keep their case (compare with Header()).
  std::vector<std::pair<std::string, std::string>> headers;
  // Set by the HTTP layer for every request, refused ones included: its
  // X-Request-Id when that is sane (RequestIdFrom), else a generated one.
  // Sent back as X-Request-Id and written on the request's access-log line.
  std::string request_id;
  // The trace id of a well-formed W3C traceparent header; empty otherwise.
  std::string trace_id;

  // The value of the first header named `name` (case-insensitive); empty when absent.
  std::string Header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key.size() != name.size()) continue;
      bool same = true;
      for (std::size_t i = 0; i < key.size() && same; ++i)
        same = (key[i] | 0x20) == (name[i] | 0x20);
      if (same) return value;
    }
    return {};
  }
};

// The answer to a request. The HTTP layer adds Content-Length, Server and
// the Connection header.
struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, e.g. {"Allow", "GET"}
  // Appended to the request's access-log line, e.g. "degraded=metrics".
  std::string log_note;
  // An answer to HEAD: sent with the headers `body` would have
  // (Content-Length included), without the body.
  bool head_only = false;
};

// The client's X-Request-Id `value` when it is 1 to 128 visible ASCII
// characters (0x21-0x7E) without a quote or backslash, else a new id of 32
// random hex digits.
std::string RequestIdFrom(std::string_view value);

// The trace id (32 lowercase hex digits) of a W3C traceparent header
// "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>" (an all-zero id is
// invalid); empty when `value` is not one.
std::string TraceIdFrom(std::string_view value);

// Why the HTTP layer refused a request before reading it whole.
enum class Refusal {
  kBodyTooLarge,    // the declared or streamed body is over the body limit
  kHeaderTooLarge,  // the request line and headers are over the header limit
  kMalformed,       // not a valid HTTP/1.x request
  // Overload (answered 503 with Retry-After; the connection is then closed):
  kOverloaded,    // max_queue requests already wait for a worker, or the
                  // connection is beyond max_connections
  kQueueTimeout,  // the request waited longer than queue_timeout for a worker;
                  // it was not run
};

// Answers requests. One Handler serves every connection of a server and must
// outlive it.
class Handler {
 public:
  virtual ~Handler() = default;

  // Answers a complete request. Runs on a worker thread, may block, and is
  // called from several threads at once.
  virtual Response Handle(const Request& request) noexcept = 0;

  // True when Handle answers `request` at once without blocking (e.g.
  // /healthz): it is then called on the I/O thread, so the answer neither
  // waits behind busy workers nor counts against max_queue, and it is given
  // even on a connection beyond max_connections. Must not block.
  virtual bool Immediate(const Request& request) const noexcept {
    (void)request;
    return false;
  }

  // Answers a request the HTTP layer refused; `request` holds the method and
  // target when they were read, and no body (kQueueTimeout: the whole
  // request). Must not block: runs on an I/O thread, or for kQueueTimeout on
  // a worker. The connection is closed after the answer.
  virtual Response Refuse(Refusal why, const Request& request, std::size_t body_limit) noexcept = 0;
};

}  // namespace stowage::http
