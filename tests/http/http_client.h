// A small synchronous HTTP/1.1 client for testing stowaged over a real
// socket. One client holds at most one connection and never reconnects on
// its own, so a test can tell whether the server kept a connection open.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace stowage::testing {

struct HttpResult {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  bool keep_alive = false;                     // the server keeps the connection open

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

class HttpClient {
 public:
  explicit HttpClient(std::uint16_t port, std::string host = "127.0.0.1");
  ~HttpClient();

  // Sends one request and reads its answer, connecting first when no
  // connection is open. Throws std::runtime_error naming the step that
  // failed (connect, write, read), or that it ran past the timeout. The
  // connection is closed after an answer without keep-alive, and after any
  // failure.
  HttpResult Send(const std::string& method, const std::string& target, const std::string& body = "",
                  const std::string& content_type = "application/json",
                  const std::vector<std::pair<std::string, std::string>>& headers = {});

  // Limits each step of Send (connect, write, read) to `timeout`; zero (the
  // default) waits as long as the server takes. A server that stalls (a
  // frozen database behind it) then makes Send throw instead of hang.
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

  bool connected() const;
  // Connections opened so far.
  int connections_opened() const { return connections_opened_; }
  void Close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int connections_opened_ = 0;
  std::chrono::milliseconds timeout_{0};
};

}  // namespace stowage::testing
