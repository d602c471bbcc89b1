#include "chat_json.h"

#include <boost/json.hpp>

namespace stowage::redis {
namespace {

Status Malformed(const std::string& key, std::string_view why) {
  return Status::Internal("the value of Redis key " + key +
                          " is not a JSON array of {role, content, timestamp} " + "objects (" +
                          std::string(why) + "); fix or delete the key (DEL " + key + ")");
}

}  // namespace

std::string EncodeEntry(const Message& message) {
  std::string out = "{\"role\":";
  out += boost::json::serialize(boost::json::string_view(message.role));
  out += ",\"content\":";
  out += boost::json::serialize(boost::json::string_view(message.content));
  out += ",\"timestamp\":";
  out += boost::json::serialize(boost::json::string_view(message.timestamp));
  out += '}';
  return out;
}

std::string EncodeArray(const std::vector<Message>& messages) {
  std::string out = "[";
  for (const Message& message : messages) {
    if (out.size() > 1) out += ',';
    out += EncodeEntry(message);
  }
  out += ']';
  return out;
}

Status DecodeArray(std::string_view value, const std::string& key, std::vector<Message>* out) {
  out->clear();
  boost::system::error_code ec;
  boost::json::value parsed = boost::json::parse(boost::json::string_view(value.data(), value.size()), ec);
  if (ec) return Malformed(key, "invalid JSON: " + ec.message());
  const boost::json::array* array = parsed.if_array();
  if (array == nullptr) return Malformed(key, "not an array");
  out->reserve(array->size());
  for (std::size_t i = 0; i < array->size(); ++i) {
    const boost::json::object* object = (*array)[i].if_object();
    const std::string where = "element " + std::to_string(i);
    if (object == nullptr) return Malformed(key, where + " is not an object");
    if (object->size() != 3) return Malformed(key, where + " does not have exactly 3 members");
    Message message;
    for (auto [name, field] : {std::pair{"role", &message.role}, std::pair{"content", &message.content},
                               std::pair{"timestamp", &message.timestamp}}) {
      const boost::json::value* member = object->if_contains(name);
      if (member == nullptr || !member->is_string())
        return Malformed(key, where + " has no string member \"" + name + "\"");
      *field = std::string(member->get_string());
    }
    out->push_back(std::move(message));
  }
  return Status::Ok();
}

}  // namespace stowage::redis
