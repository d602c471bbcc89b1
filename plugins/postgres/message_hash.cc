#include "message_hash.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace stowage::postgres {

std::string MessageHash(const stowage::Message& message) {
  const std::string text = message.role + '\n' + message.content + '\n' + message.timestamp;
  // Fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm up in its
  // provider store on every digest, which costs more than hashing 200 bytes.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (sha256 == nullptr || EVP_Digest(text.data(), text.size(), digest, &length, sha256, nullptr) != 1) {
    throw std::runtime_error("OpenSSL could not compute the SHA-256 of a message");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0xf];
  }
  return hex;
}

}  // namespace stowage::postgres
