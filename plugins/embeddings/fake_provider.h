// FakeProvider: a small HTTP server on a free loopback port that speaks the
// wire formats of Vertex AI's predict API and the OpenAI embeddings API, for
// tests. It checks each request's path, headers and body against those
// formats and answers with the built-in hashing embedding of the text, or
// with the failure it is told to give.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace stowage::embeddings::testing {

class FakeProvider {
 public:
  enum class Mode {
    kOk,           // a vector of `dimensions` numbers
    kErrorStatus,  // the status set with set_mode(), body {"error":{"message":"fake failure"}}
    kWrongSize,    // a vector of dimensions + 1 numbers
    kEmpty,        // an empty vector
    kMalformed,    // a 200 whose body is not JSON
    kHang,         // reads the request and never answers (until destroyed)
  };

  struct Options {
    std::size_t dimensions = 16;
    // What a Vertex request must name in its path.
    std::string project = "test-project";
    std::string location = "us-central1";
    std::string vertex_model = "multimodalembedding@001";
    // What an OpenAI request must name in its body.
    std::string openai_model = "test-embed";
    // The bearer token every request must carry; empty: none may be sent.
    std::string token;
    // Whether an OpenAI request must carry "dimensions" (== dimensions).
    bool expect_dimensions_field = false;
  };

  // Listens on 127.0.0.1 at a free port. Records a test failure if it cannot.
  explicit FakeProvider(Options options);
  // Releases hanging requests and stops.
  ~FakeProvider();

  FakeProvider(const FakeProvider&) = delete;
  FakeProvider& operator=(const FakeProvider&) = delete;

  std::uint16_t port() const { return port_; }
  // "http://127.0.0.1:PORT"
  std::string base_url() const;

  void set_mode(Mode mode, int status = 503);

  // Requests received so far.
  int requests() const;
  // What was wrong with requests (wrong path, header, or body); each such
  // request was answered 400 with the problem as the error message.
  std::vector<std::string> problems() const;
  // The text of the last well-formed request.
  std::string last_text() const;

 private:
  void AcceptLoop();
  void Serve(boost::asio::ip::tcp::socket socket);
  // The answer to one request: status and body.
  std::pair<int, std::string> Answer(const std::string& method, const std::string& target,
                                     const std::string& authorization, const std::string& content_type,
                                     const std::string& body);

  const Options options_;
  std::uint16_t port_ = 0;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_socket_{ioc_};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  Mode mode_ = Mode::kOk;
  int status_ = 503;
  int requests_ = 0;
  std::vector<std::string> problems_;
  std::string last_text_;
  std::vector<std::thread> connections_;
};

}  // namespace stowage::embeddings::testing
