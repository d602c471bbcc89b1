// The chat part of the SDK (SDK 2.0; before, stowage/message_json.h in
// namespace stowage): messages as JSON text,
// [{"role":"...","content":"...","timestamp":"..."},...] oldest first. It is
// the body of the REST API's answer to a GET and the value the Redis stage
// keeps, so the host and stages write the same bytes for the same messages.
// stowage/sdk.h does not include it: a stage that writes this JSON includes
// it. Header-only; no Boost type crosses the SDK.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/message.h"

namespace stowage::chat {

namespace detail {

// The position of the first byte at or after `from` that a JSON string
// cannot hold as it is (`"`, `\` or a control character below 0x20), or
// text.size() when there is none. Checks 8 bytes at a time while none of
// them is one ("hasless" and "haszero" of Bit Twiddling Hacks, exact for
// whether any byte of the word matches).
inline std::size_t NextJsonSpecial(std::string_view text, std::size_t from) {
  constexpr auto kOnes = ~std::uint64_t{0} / 255;
  constexpr auto kHighBits = kOnes * 0x80;
  std::size_t i = from;
  for (std::uint64_t word; i + 8 <= text.size(); i += 8) {
    std::memcpy(&word, text.data() + i, 8);
    const std::uint64_t quote = word ^ (kOnes * '"');
    const std::uint64_t backslash = word ^ (kOnes * '\\');
    if ((((word - kOnes * 0x20) & ~word) | ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash)) &
        kHighBits)
      break;
  }
  for (; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == '"' || c == '\\') return i;
  }
  return i;
}

}  // namespace detail

// Appends `text` as a JSON string (RFC 8259): in quotes, with `"` and `\`
// escaped, control characters written as \b \f \n \r \t or \u00xx, and every
// other byte, UTF-8 included, copied as it is.
inline void AppendJsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  std::size_t plain = 0;  // start of the bytes not yet copied
  for (std::size_t i = detail::NextJsonSpecial(text, 0); i < text.size(); i = detail::NextJsonSpecial(text, plain)) {
    out.append(text.data() + plain, i - plain);
    plain = i + 1;
    const auto c = static_cast<unsigned char>(text[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
  }
  out.append(text.data() + plain, text.size() - plain);
  out += '"';
}

// Appends one message: {"role":...,"content":...,"timestamp":...}, exactly
// those keys in that order.
inline void AppendMessageJson(std::string& out, const Message& message) {
  out += "{\"role\":";
  AppendJsonString(out, message.role);
  out += ",\"content\":";
  AppendJsonString(out, message.content);
  out += ",\"timestamp\":";
  AppendJsonString(out, message.timestamp);
  out += '}';
}

// The whole array, "[]" for none.
inline std::string MessagesJson(const std::vector<Message>& messages) {
  std::size_t size = 2;
  for (const Message& message : messages)
    size += 40 + message.role.size() + message.content.size() + message.timestamp.size();
  std::string out;
  out.reserve(size + size / 8);
  out += '[';
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i > 0) out += ',';
    AppendMessageJson(out, messages[i]);
  }
  out += ']';
  return out;
}

}  // namespace stowage::chat
