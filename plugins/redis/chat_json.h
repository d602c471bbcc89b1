// The value format of a guest's Redis key: a JSON array of
// {"role","content","timestamp"} objects, oldest first, readable by any
// client with a plain GET.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "stowage/message.h"
#include "stowage/status.h"

namespace stowage::redis {

// One array entry: {"role":...,"content":...,"timestamp":...}, exactly those
// keys in that order, strings escaped as JSON requires (UTF-8 kept as is).
// The same message always encodes to the same bytes, so an entry can be found
// again in the stored array by its encoding.
std::string EncodeEntry(const Message& message);

// A whole array of entries, "[]" for none.
std::string EncodeArray(const std::vector<Message>& messages);

// Parses a stored value into `out`. Fails, naming `key`, unless the value is
// a JSON array whose elements are objects with exactly the string members
// role, content and timestamp.
Status DecodeArray(std::string_view value, const std::string& key, std::vector<Message>* out);

}  // namespace stowage::redis
