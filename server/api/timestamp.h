// Message timestamps: the client sends ISO-8601 / RFC 3339; the pipeline
// carries one canonical UTC form, "YYYY-MM-DDTHH:MM:SS.ffffffZ".
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace stowage::api {

// Converts a date-time to the canonical UTC form. Accepted:
//   2024-05-01T12:00:00Z, 2024-05-01T12:00:00.5Z, 2024-05-01T14:00:00+02:00,
//   2024-05-01T14:00:00+0200, 2024-05-01T12:00Z (no seconds),
//   2024-05-01T12:00:00 (no offset: taken as UTC); 't', 'z' and a space for
//   'T' are accepted too. Fractions beyond microseconds are truncated.
// Returns nullopt and sets `why` (what is wrong with the text) otherwise,
// including dates that do not exist (2023-02-29) and results outside years
// 0000-9999.
std::optional<std::string> CanonicalTimestamp(std::string_view text, std::string* why);

// `time` in the canonical form.
std::string FormatTimestamp(std::chrono::sys_time<std::chrono::microseconds> time);

// The current time in the canonical form.
std::string NowTimestamp();

}  // namespace stowage::api
