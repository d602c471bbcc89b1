// Cutting a message's content to the size the stage embeds and stores.
#pragma once

#include <cstddef>
#include <string_view>

namespace stowage::embeddings {

// The longest prefix of `text` (valid UTF-8) of at most `max_bytes` bytes
// that ends on a character boundary: a multi-byte character is never cut.
std::string_view TruncateUtf8(std::string_view text, std::size_t max_bytes);

}  // namespace stowage::embeddings
