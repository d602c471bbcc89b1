#include "message_hash.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace stowage::postgres {

std::string MessageHash(const stowage::Message& message) {
  const std::string text = message.role + '\n' + message.content + '\n' + message.timestamp;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
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
