#include "json_line.h"

#include <boost/json.hpp>

namespace archive {

std::string ToJsonLine(const stowage::Message& message) {
  boost::json::object object;
  object["role"] = message.role;
  object["content"] = message.content;
  object["timestamp"] = message.timestamp;
  return boost::json::serialize(object);
}

std::optional<stowage::Message> FromJsonLine(std::string_view line) {
  boost::system::error_code error;
  boost::json::value value = boost::json::parse(line, error);
  if (error || !value.is_object()) return std::nullopt;
  const auto& object = value.as_object();
  stowage::Message message;
  for (auto [key, field] : {std::pair{"role", &message.role}, std::pair{"content", &message.content},
                            std::pair{"timestamp", &message.timestamp}}) {
    const boost::json::value* found = object.if_contains(key);
    if (found == nullptr || !found->is_string()) return std::nullopt;
    *field = std::string(found->as_string());
  }
  return message;
}

}  // namespace archive
