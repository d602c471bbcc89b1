// A small synchronous HTTP/1.1 client for testing stowaged over a real
// socket. One client holds at most one connection and never reconnects on
// its own, so a test can tell whether the server kept a connection open.
#pragma once

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
  // failed (connect, write, read). The connection is closed after an answer
  // without keep-alive.
  HttpResult Send(const std::string& method, const std::string& target, const std::string& body = "",
                  const std::string& content_type = "application/json",
                  const std::vector<std::pair<std::string, std::string>>& headers = {});

  bool connected() const;
  // Connections opened so far.
  int connections_opened() const { return connections_opened_; }
  void Close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int connections_opened_ = 0;
};

}  // namespace stowage::testing
