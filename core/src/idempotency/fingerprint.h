// The fingerprint of a request that carries an Idempotency-Key: what a
// retry must match to be answered with the first request's answer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace stowage::idempotency {

// FNV-1a 64 over the bytes, mixed with the length. Stable across processes,
// hosts and releases: fingerprints are stored in the database.
inline std::uint64_t RequestHash(std::string_view request) noexcept {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : request) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h ^ (static_cast<std::uint64_t>(request.size()) * 0x9e3779b97f4a7c15ull);
}

// RequestHash as 16 lower-case hex digits.
inline std::string Fingerprint(std::string_view request) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::uint64_t h = RequestHash(request);
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[static_cast<std::size_t>(i)] = kDigits[h & 0xf];
  return out;
}

}  // namespace stowage::idempotency
