#include "api/chat_request.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cctype>
#include <cstdio>

#include "api/timestamp.h"

namespace stowage::api {
namespace {

bool IsGuestIdChar(unsigned char c) {
  return std::isalnum(c) || c == '.' || c == '_' || c == ':' || c == '-';
}

// `text` shortened and made printable, for quoting client input in a message.
std::string Quote(std::string_view text, std::size_t max = 64) {
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (text.size() > max) out += "...";
  return out + "'";
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

const char* KindName(const boost::json::value& value) {
  switch (value.kind()) {
    case boost::json::kind::null:
      return "null";
    case boost::json::kind::bool_:
      return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_:
      return "a number";
    case boost::json::kind::string:
      return "a string";
    case boost::json::kind::array:
      return "an array";
    case boost::json::kind::object:
      return "an object";
  }
  return "a value";
}

constexpr const char* kExample = R"({"role":"user","content":"hello"})";

}  // namespace

std::optional<ApiError> CheckGuestId(std::string_view guest_id) {
  const std::string rule = "use 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-' (a UUID works)";
  if (guest_id.empty()) return ApiError::InvalidGuestId("the guest id is empty; " + rule);
  if (guest_id.size() > kMaxGuestIdLength) {
    return ApiError::InvalidGuestId("guest id " + Quote(guest_id, 32) + " is " +
                                    std::to_string(guest_id.size()) + " characters long; " + rule);
  }
  for (std::size_t i = 0; i < guest_id.size(); ++i) {
    if (!IsGuestIdChar(static_cast<unsigned char>(guest_id[i]))) {
      return ApiError::InvalidGuestId("guest id " + Quote(guest_id) + " has the character " +
                                      Quote(guest_id.substr(i, 1)) + " at position " + std::to_string(i + 1) +
                                      "; " + rule);
    }
  }
  return std::nullopt;
}

std::optional<ApiError> CheckJsonContentType(std::string_view content_type) {
  const std::string fix = "; send the body as JSON with the header 'Content-Type: application/json'";
  if (Trim(content_type).empty())
    return ApiError::UnsupportedMediaType("the request has no Content-Type" + fix);
  std::string_view rest = content_type;
  auto semi = rest.find(';');
  std::string_view media = Trim(rest.substr(0, semi));
  if (!IEquals(media, "application/json")) {
    return ApiError::UnsupportedMediaType("Content-Type " + Quote(content_type) + " is not application/json" +
                                          fix);
  }
  while (semi != std::string_view::npos) {
    rest = rest.substr(semi + 1);
    semi = rest.find(';');
    std::string_view param = Trim(rest.substr(0, semi));
    auto eq = param.find('=');
    if (eq == std::string_view::npos) continue;
    if (!IEquals(Trim(param.substr(0, eq)), "charset")) continue;
    std::string_view value = Trim(param.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    if (!IEquals(value, "utf-8") && !IEquals(value, "utf8")) {
      return ApiError::UnsupportedMediaType("Content-Type " + Quote(content_type) +
                                            " names a charset other than utf-8; encode the body as UTF-8 and "
                                            "send 'Content-Type: application/json'");
    }
  }
  return std::nullopt;
}

std::optional<std::size_t> FindInvalidUtf8(std::string_view text) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  auto cont = [&](std::size_t at) { return at < n && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80; };
  while (i < n) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned code;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      code = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      code = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      code = c & 0x07;
    } else {
      return i;
    }
    for (std::size_t k = 1; k < len; ++k) {
      if (!cont(i + k)) return i;
      code = (code << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    }
    if ((len == 3 && code < 0x800) || (len == 4 && (code < 0x10000 || code > 0x10FFFF)) ||
        (code >= 0xD800 && code <= 0xDFFF)) {
      return i;
    }
    i += len;
  }
  return std::nullopt;
}

ParsedMessage ParseChatMessage(std::string_view body, std::size_t max_content_bytes,
                               const std::function<std::string()>& now) {
  auto error = [](ApiError e) { return ParsedMessage{std::nullopt, std::move(e)}; };

  boost::json::parse_options options;
  options.allow_invalid_utf8 = false;  // the default, stated: content must be valid UTF-8
  boost::system::error_code ec;
  boost::json::value value = boost::json::parse(body, ec, {}, options);
  if (ec) {
    if (auto bad = FindInvalidUtf8(body)) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(body[*bad]));
      return error(ApiError::BadJson("the request body is not valid UTF-8 (byte " + std::string(hex) +
                                     " at offset " + std::to_string(*bad) + "); encode the text as UTF-8"));
    }
    if (body.empty()) {
      return error(ApiError::BadJson(std::string("the request body is empty; send a JSON object such as ") +
                                     kExample));
    }
    return error(ApiError::BadJson("the request body is not valid JSON (" + ec.message() +
                                   "); send a JSON object such as " + kExample));
  }
  if (!value.is_object()) {
    return error(ApiError::BadJson(std::string("the request body is ") + KindName(value) +
                                   ", not a JSON object; send an object such as " + kExample));
  }
  const boost::json::object& object = value.get_object();

  std::string unknown;
  for (const auto& field : object) {
    if (field.key() == "role" || field.key() == "content" || field.key() == "timestamp") continue;
    if (!unknown.empty()) unknown += ", ";
    unknown += Quote(field.key());
  }
  if (!unknown.empty()) {
    return error(ApiError::InvalidField("unknown field(s) " + unknown +
                                        "; the fields of a message are role, content and timestamp"));
  }

  stowage::Message message;
  const auto* role = object.if_contains("role");
  const std::string role_rule = "field 'role' must be one of \"user\", \"assistant\", \"system\"";
  if (role == nullptr) return error(ApiError::InvalidField(role_rule + "; it is missing"));
  if (!role->is_string()) return error(ApiError::InvalidField(role_rule + "; it is " + KindName(*role)));
  message.role = std::string(role->get_string());
  if (message.role != "user" && message.role != "assistant" && message.role != "system") {
    return error(ApiError::InvalidField(role_rule + "; it is " + Quote(message.role)));
  }

  const auto* content = object.if_contains("content");
  const std::string content_rule = "field 'content' must be a non-empty string";
  if (content == nullptr) return error(ApiError::InvalidField(content_rule + "; it is missing"));
  if (!content->is_string())
    return error(ApiError::InvalidField(content_rule + "; it is " + KindName(*content)));
  message.content = std::string(content->get_string());
  if (message.content.empty()) return error(ApiError::InvalidField(content_rule + "; it is empty"));
  if (message.content.size() > max_content_bytes) {
    return error(ApiError::ContentTooLarge("field 'content' is " + std::to_string(message.content.size()) +
                                           " bytes; the limit is " + std::to_string(max_content_bytes) +
                                           " bytes (server.max_content_bytes); split the message"));
  }
  // PostgreSQL's text cannot hold U+0000: refused here, before any stage
  // (Redis would take it) stores anything.
  if (const std::size_t nul = message.content.find('\0'); nul != std::string::npos) {
    return error(ApiError::InvalidField("field 'content' holds the character U+0000 (\\u0000) at byte " +
                                        std::to_string(nul) + ", which cannot be stored; remove it"));
  }

  const auto* timestamp = object.if_contains("timestamp");
  const std::string timestamp_rule =
      "field 'timestamp' must be an ISO-8601 date-time such as \"2024-05-01T12:00:00Z\" or "
      "\"2024-05-01T14:00:00.250+02:00\", or be left out";
  if (timestamp == nullptr || timestamp->is_null()) {
    message.timestamp = now();
  } else if (!timestamp->is_string()) {
    return error(ApiError::InvalidField(timestamp_rule + "; it is " + KindName(*timestamp)));
  } else {
    std::string why;
    auto canonical = CanonicalTimestamp(timestamp->get_string(), &why);
    if (!canonical) {
      return error(
          ApiError::InvalidField(timestamp_rule + "; " + Quote(timestamp->get_string()) + " is not: " + why));
    }
    message.timestamp = *canonical;
  }
  return ParsedMessage{std::move(message), std::nullopt};
}

}  // namespace stowage::api
