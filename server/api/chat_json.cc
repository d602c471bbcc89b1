#include "api/chat_json.h"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cstdint>

#include "stowage/chat/attributes.h"
#include "stowage/chat/message_json.h"

namespace stowage::api {
namespace {

boost::json::array Strings(const std::vector<std::string>& values) {
  boost::json::array array;
  for (const auto& value : values) array.emplace_back(value);
  return array;
}

bool IsCanonicalInteger(const std::string& text) {
  std::size_t start = (!text.empty() && text[0] == '-') ? 1 : 0;
  if (text.size() == start) return false;
  for (std::size_t i = start; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  if (text[start] == '0' && text.size() > start + 1) return false;  // leading zero: keep it a string
  return !(start == 1 && text == "-0");
}

}  // namespace

boost::json::value AttributeValue(const std::optional<std::string>& value) {
  if (!value) return nullptr;
  const std::string& text = *value;
  if (IsCanonicalInteger(text)) {
    if (text[0] == '-') {
      std::int64_t number = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
      if (ec == std::errc() && end == text.data() + text.size()) return number;
    } else {
      std::uint64_t number = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
      if (ec == std::errc() && end == text.data() + text.size()) {
        if (number <= static_cast<std::uint64_t>(INT64_MAX)) return static_cast<std::int64_t>(number);
        return number;
      }
    }
  }
  return boost::json::string(text);
}

std::string EncodeStored(const std::string& guest_id, const engine::WriteOutcome& outcome) {
  boost::json::object body;
  body["status"] = "stored";
  body["guest_id"] = guest_id;
  body["message_id"] = AttributeValue(outcome.attributes.get(chat::kMessageId));
  body["conversation_id"] = AttributeValue(outcome.attributes.get(chat::kConversationId));
  body["sequence"] = AttributeValue(outcome.attributes.get(chat::kSequence));
  body["stored_in"] = Strings(outcome.stored_in);
  body["degraded"] = Strings(outcome.degraded);
  return boost::json::serialize(body);
}

std::string EncodeMessages(const std::vector<stowage::Message>& messages) {
  return chat::MessagesJson(messages);
}

std::string EncodeSearch(const std::string& guest_id, const std::string& query,
                         const std::vector<stowage::SearchHit>& hits) {
  boost::json::array results;
  results.reserve(hits.size());
  for (const auto& hit : hits) {
    boost::json::object item;
    item["role"] = hit.message.role;
    item["content"] = hit.message.content;
    item["timestamp"] = hit.message.timestamp;
    item["score"] = hit.score;
    results.emplace_back(std::move(item));
  }
  boost::json::object body;
  body["guest_id"] = guest_id;
  body["query"] = query;
  body["results"] = std::move(results);
  return boost::json::serialize(body);
}

std::string EncodeDeleted(const std::string& guest_id, const engine::EraseOutcome& outcome) {
  boost::json::object body;
  body["status"] = "deleted";
  body["guest_id"] = guest_id;
  body["deleted_from"] = Strings(outcome.erased_from);
  body["degraded"] = Strings(outcome.degraded);
  return boost::json::serialize(body);
}

}  // namespace stowage::api
