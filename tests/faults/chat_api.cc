#include "chat_api.h"

#include <boost/json.hpp>
#include <exception>

namespace stowage::faults {

namespace json = boost::json;

namespace {

std::int64_t IntegerField(const json::object& object, const char* name) {
  const json::value* value = object.if_contains(name);
  if (value == nullptr) return -1;
  if (value->is_int64()) return value->as_int64();
  if (value->is_uint64()) return static_cast<std::int64_t>(value->as_uint64());
  return -1;
}

// The `error.code` of an error answer, else the start of its body.
std::string ErrorCode(const std::string& body) {
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (!ec && parsed.is_object()) {
    if (const auto* error = parsed.as_object().if_contains("error"); error && error->is_object()) {
      if (const auto* code = error->as_object().if_contains("code"); code && code->is_string()) {
        return std::string(code->as_string());
      }
    }
  }
  return body.substr(0, 120);
}

}  // namespace

std::string MessageBody(const std::string& content) {
  return json::serialize(json::object{{"role", "user"}, {"content", content}});
}

Attempt PostOnce(testing::HttpClient& client, int instance, const CaseClock& clock, const std::string& guest,
                 const std::string& key, const std::string& body) {
  Attempt attempt;
  attempt.instance = instance;
  attempt.sent = clock.Now();
  try {
    auto answer =
        client.Send("POST", "/v1/guest/chat/" + guest, body, "application/json", {{"Idempotency-Key", key}});
    attempt.status = answer.status;
    attempt.replayed = answer.header("idempotent-replayed") == "true";
    if (answer.status == 200) {
      boost::system::error_code ec;
      json::value parsed = json::parse(answer.body, ec);
      if (!ec && parsed.is_object()) {
        attempt.message_id = IntegerField(parsed.as_object(), "message_id");
        attempt.sequence = IntegerField(parsed.as_object(), "sequence");
      }
    } else {
      attempt.error = ErrorCode(answer.body);
    }
  } catch (const std::exception& error) {
    attempt.error = error.what();
  }
  attempt.answered = clock.Now();
  return attempt;
}

bool WorthRetrying(const Attempt& attempt) {
  int status = attempt.status;
  return status == 0 || status >= 500 || status == 408 || status == 409 || status == 429;
}

ShownHistory GetHistory(testing::HttpClient& client, const std::string& instance, const std::string& guest) {
  ShownHistory shown;
  shown.instance = instance;
  try {
    auto answer = client.Send("GET", "/v1/guest/chat/" + guest, "", "");
    if (answer.status != 200) {
      shown.failure = "status " + std::to_string(answer.status) + " " + ErrorCode(answer.body);
      return shown;
    }
    boost::system::error_code ec;
    json::value parsed = json::parse(answer.body, ec);
    if (ec || !parsed.is_array()) {
      shown.failure = "the answer is not a JSON array: " + answer.body.substr(0, 120);
      return shown;
    }
    for (const auto& message : parsed.as_array()) {
      const json::value* content = message.is_object() ? message.as_object().if_contains("content") : nullptr;
      shown.contents.emplace_back(content && content->is_string() ? std::string(content->as_string()) : "");
    }
    shown.answered = true;
  } catch (const std::exception& error) {
    shown.failure = error.what();
  }
  return shown;
}

}  // namespace stowage::faults
