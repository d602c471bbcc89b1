// What PostgreSQL, the truth, holds for the suite's guests, read with libpq
// (PostgresProbe) and not through stowaged.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "checker.h"

namespace stowage::faults {

// For each of `guests`: the message_cache rows of its conversation
// (conversation_cache.platform = 'guest', user_id = the guest), in
// (sequence, id) order; no rows for a guest PostgreSQL does not know.
// Throws std::runtime_error saying what failed.
std::map<std::string, std::vector<StoredMessage>> ReadStoredMessages(const std::string& database_url,
                                                                     const std::vector<std::string>& guests);

}  // namespace stowage::faults
