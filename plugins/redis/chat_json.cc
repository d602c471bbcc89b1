#include "chat_json.h"

#include <boost/json.hpp>

#include "stowage/chat/message_json.h"

namespace stowage::redis {
namespace {

Status Malformed(const std::string& key, std::string_view why) {
  return Status::Internal("the value of Redis key " + key +
                          " is not a JSON array of {role, content, timestamp} " + "objects (" +
                          std::string(why) + "); fix or delete the key (DEL " + key + ")");
}

}  // namespace

std::string EncodeEntry(const Message& message) {
  std::string out;
  out.reserve(48 + message.role.size() + message.content.size() + message.timestamp.size());
  chat::AppendMessageJson(out, message);
  return out;
}

std::string EncodeArray(const std::vector<Message>& messages) {
  return chat::MessagesJson(messages);
}

Status DecodeArray(std::string_view value, const std::string& key, std::vector<Message>* out) {
  out->clear();
  // The parsed tree lives in one arena, freed at once: a long chat is
  // thousands of small strings and objects.
  unsigned char first_block[16384];
  boost::json::monotonic_resource arena(first_block, sizeof(first_block));
  boost::system::error_code ec;
  boost::json::value parsed =
      boost::json::parse(boost::json::string_view(value.data(), value.size()), ec, &arena);
  if (ec) return Malformed(key, "invalid JSON: " + ec.message());
  const boost::json::array* array = parsed.if_array();
  if (array == nullptr) return Malformed(key, "not an array");
  out->reserve(array->size());
  for (std::size_t i = 0; i < array->size(); ++i) {
    const boost::json::object* object = (*array)[i].if_object();
    auto where = [i] { return "element " + std::to_string(i); };
    if (object == nullptr) return Malformed(key, where() + " is not an object");
    if (object->size() != 3) return Malformed(key, where() + " does not have exactly 3 members");
    Message& message = out->emplace_back();
    for (auto [name, field] : {std::pair{"role", &message.role}, std::pair{"content", &message.content},
                               std::pair{"timestamp", &message.timestamp}}) {
      const boost::json::value* member = object->if_contains(name);
      if (member == nullptr || !member->is_string())
        return Malformed(key, where() + " has no string member \"" + name + "\"");
      const boost::json::string& text = member->get_string();
      field->assign(text.data(), text.size());
    }
  }
  return Status::Ok();
}

}  // namespace stowage::redis
