// One archived message as one line of JSON:
//   {"role":"user","content":"hello","timestamp":"2024-05-01T12:00:00.000000Z"}
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "stowage/message.h"

namespace archive {

// The message as one line of JSON, without the trailing newline. The content
// may hold newlines: they are escaped, so a line is always one message.
std::string ToJsonLine(const stowage::Message& message);

// The message a line holds, or nothing when the line is not one.
std::optional<stowage::Message> FromJsonLine(std::string_view line);

}  // namespace archive
