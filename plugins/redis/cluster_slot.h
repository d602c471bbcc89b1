// Which Redis Cluster slot a key belongs to (the cluster specification's
// "keys distribution model").
#pragma once

#include <cstdint>
#include <string_view>

namespace stowage::redis {

inline constexpr int kClusterSlots = 16384;

// CRC16 (XMODEM) of the key's hash tag, modulo 16384. The hash tag is what
// lies between the first '{' and the first '}' after it, when that is not
// empty; otherwise the whole key is hashed.
std::uint16_t KeySlot(std::string_view key);

}  // namespace stowage::redis
