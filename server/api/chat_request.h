// Validation of guest chat requests. Everything a request must satisfy
// before the pipeline sees it; a request that fails any check stores nothing.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "api/api_error.h"
#include "stowage/message.h"

namespace stowage::api {

inline constexpr std::size_t kMaxGuestIdLength = 128;

// A guest id is 1 to 128 characters of [A-Za-z0-9._:-]; nullopt when it is.
std::optional<ApiError> CheckGuestId(std::string_view guest_id);

// A POST body must be sent as application/json (parameters allowed; a
// charset, if given, must be utf-8); nullopt when it is.
std::optional<ApiError> CheckJsonContentType(std::string_view content_type);

// The position of the first byte of `text` that is not part of valid UTF-8
// (overlong forms, surrogates and code points above U+10FFFF are invalid),
// or nullopt when all of it is valid.
std::optional<std::size_t> FindInvalidUtf8(std::string_view text);

struct ParsedMessage {
  std::optional<stowage::Message> message;  // set on success
  std::optional<ApiError> error;            // set on failure
};

// Parses and checks a POST body `{"role","content","timestamp"?}`: a JSON
// object of valid UTF-8; role one of user/assistant/system; content a
// non-empty string of at most `max_content_bytes` bytes; timestamp, when
// present and not null, an ISO-8601 date-time, converted to the canonical
// UTC form, else `now()`; no other fields.
ParsedMessage ParseChatMessage(std::string_view body, std::size_t max_content_bytes,
                               const std::function<std::string()>& now);

}  // namespace stowage::api
