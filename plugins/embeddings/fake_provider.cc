#include "fake_provider.h"

#include <gtest/gtest.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "builtin_provider.h"

namespace stowage::embeddings::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

std::string ErrorBody(const std::string& message) {
  json::object error;
  error["message"] = message;
  json::object body;
  body["error"] = error;
  return json::serialize(body);
}

json::array Numbers(const std::vector<float>& vector) {
  json::array out;
  for (float v : vector) out.push_back(static_cast<double>(v));
  return out;
}

}  // namespace

FakeProvider::FakeProvider(Options options) : options_(std::move(options)) {
  boost::system::error_code ec;
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  acceptor_socket_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_socket_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_socket_.bind(endpoint, ec);
  if (!ec) acceptor_socket_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    ADD_FAILURE() << "the fake provider cannot listen on 127.0.0.1: " << ec.message();
    return;
  }
  port_ = acceptor_socket_.local_endpoint().port();
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

FakeProvider::~FakeProvider() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (acceptor_.joinable()) {
    // Wake the blocking accept() with a connection of our own.
    boost::system::error_code ec;
    tcp::socket wake(ioc_);
    wake.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), ec);
    acceptor_.join();
  }
  std::vector<std::thread> connections;
  {
    std::lock_guard lock(mu_);
    connections.swap(connections_);
  }
  for (std::thread& t : connections) t.join();
}

std::string FakeProvider::base_url() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

void FakeProvider::set_mode(Mode mode, int status) {
  std::lock_guard lock(mu_);
  mode_ = mode;
  status_ = status;
}

int FakeProvider::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

std::vector<std::string> FakeProvider::problems() const {
  std::lock_guard lock(mu_);
  return problems_;
}

std::string FakeProvider::last_text() const {
  std::lock_guard lock(mu_);
  return last_text_;
}

void FakeProvider::AcceptLoop() {
  for (;;) {
    tcp::socket socket(ioc_);
    boost::system::error_code ec;
    acceptor_socket_.accept(socket, ec);
    std::lock_guard lock(mu_);
    if (stopping_) return;
    if (ec) continue;
    connections_.emplace_back([this, s = std::move(socket)]() mutable { Serve(std::move(s)); });
  }
}

void FakeProvider::Serve(tcp::socket socket) {
  beast::flat_buffer buffer;
  http::request<http::string_body> request;
  boost::system::error_code ec;
  http::read(socket, buffer, request, ec);
  if (ec) return;
  auto [status, body] = Answer(std::string(request.method_string()), std::string(request.target()),
                               std::string(request[http::field::authorization]),
                               std::string(request[http::field::content_type]), request.body());
  if (status == 0) {  // hang until the server stops
    std::unique_lock lock(mu_);
    stop_cv_.wait(lock, [&] { return stopping_; });
    return;
  }
  http::response<http::string_body> response{static_cast<http::status>(status), 11};
  response.set(http::field::content_type, "application/json");
  response.keep_alive(false);
  response.body() = std::move(body);
  response.prepare_payload();
  http::write(socket, response, ec);
  socket.shutdown(tcp::socket::shutdown_both, ec);
}

std::pair<int, std::string> FakeProvider::Answer(const std::string& method, const std::string& target,
                                                 const std::string& authorization,
                                                 const std::string& content_type, const std::string& body) {
  std::lock_guard lock(mu_);
  ++requests_;
  auto refuse = [&](const std::string& problem) {
    problems_.push_back(problem);
    return std::pair<int, std::string>(400, ErrorBody(problem));
  };
  if (method != "POST") return refuse("method " + method + ", expected POST");
  if (content_type != "application/json") return refuse("Content-Type '" + content_type + "'");
  const std::string expected_auth = options_.token.empty() ? "" : "Bearer " + options_.token;
  if (authorization != expected_auth) return refuse("Authorization '" + authorization + "'");
  boost::system::error_code ec;
  json::value document = json::parse(body, ec);
  if (ec || !document.is_object()) return refuse("the body is not a JSON object: " + body);
  const json::object& object = document.as_object();

  const std::string vertex_path = "/v1/projects/" + options_.project + "/locations/" + options_.location +
                                  "/publishers/google/models/" + options_.vertex_model + ":predict";
  bool vertex = false;
  std::string text;
  if (target == vertex_path) {
    vertex = true;
    const json::value* instances = object.if_contains("instances");
    if (object.size() != 1 || instances == nullptr || !instances->is_array() ||
        instances->as_array().size() != 1 || !instances->as_array()[0].is_object()) {
      return refuse("a Vertex body must be {\"instances\":[{\"text\":...}]}: " + body);
    }
    const json::object& instance = instances->as_array()[0].as_object();
    const json::value* value = instance.if_contains("text");
    if (instance.size() != 1 || value == nullptr || !value->is_string()) {
      return refuse("a Vertex instance must be {\"text\": string}: " + body);
    }
    text = std::string(value->as_string());
  } else if (target == "/v1/embeddings") {
    const json::value* model = object.if_contains("model");
    const json::value* input = object.if_contains("input");
    const json::value* dimensions = object.if_contains("dimensions");
    if (model == nullptr || !model->is_string() || model->as_string() != options_.openai_model) {
      return refuse("an OpenAI body must name model '" + options_.openai_model + "': " + body);
    }
    if (input == nullptr || !input->is_string())
      return refuse("an OpenAI body needs input as a string: " + body);
    if (options_.expect_dimensions_field) {
      if (dimensions == nullptr || !dimensions->is_int64() ||
          dimensions->as_int64() != static_cast<std::int64_t>(options_.dimensions)) {
        return refuse("the OpenAI body must carry dimensions " + std::to_string(options_.dimensions) + ": " +
                      body);
      }
    } else if (dimensions != nullptr) {
      return refuse("the OpenAI body carries dimensions though it was not asked to: " + body);
    }
    if (object.size() != (options_.expect_dimensions_field ? 3u : 2u)) {
      return refuse("the OpenAI body has unexpected keys: " + body);
    }
    text = std::string(input->as_string());
  } else {
    return refuse("unexpected path " + target);
  }
  last_text_ = text;

  std::size_t size = options_.dimensions;
  switch (mode_) {
    case Mode::kOk:
      break;
    case Mode::kErrorStatus:
      return {status_, ErrorBody("fake failure")};
    case Mode::kWrongSize:
      ++size;
      break;
    case Mode::kEmpty:
      size = 0;
      break;
    case Mode::kMalformed:
      return {200, "{\"predictions\": [ oops"};
    case Mode::kHang:
      return {0, ""};
  }
  std::vector<float> vector = size == 0 ? std::vector<float>() : HashEmbedding(text, size);
  json::object answer;
  if (vertex) {
    json::object prediction;
    prediction["textEmbedding"] = Numbers(vector);
    answer["predictions"] = json::array{prediction};
    answer["deployedModelId"] = "fake";
  } else {
    json::object item;
    item["object"] = "embedding";
    item["index"] = 0;
    item["embedding"] = Numbers(vector);
    answer["object"] = "list";
    answer["data"] = json::array{item};
    answer["model"] = options_.openai_model;
  }
  return {200, json::serialize(answer)};
}

}  // namespace stowage::embeddings::testing
