// The message_hash column: what identifies a message's content.
#pragma once

#include <string>

#include "stowage/message.h"

namespace stowage::postgres {

// Lower-case hex SHA-256 of role + '\n' + content + '\n' + timestamp
// (64 characters). Throws std::runtime_error if OpenSSL fails.
std::string MessageHash(const stowage::Message& message);

}  // namespace stowage::postgres
