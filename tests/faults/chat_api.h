// The guest chat API as the fault suite's clients speak it: one POST
// attempt, one GET, each turned into the ledger's terms. A failure to
// connect or a timeout is an outcome here, not an exception.
#pragma once

#include <string>

#include "checker.h"
#include "http_client.h"
#include "ledger.h"

namespace stowage::faults {

// The POST body of a user message with `content`.
std::string MessageBody(const std::string& content);

// Sends one POST of `body` to `guest` with `Idempotency-Key: key` through
// `client` (connected to stowaged number `instance`), and records how it
// ended: status, error code or transport error, Idempotent-Replayed, and the
// message_id and sequence of a 200.
Attempt PostOnce(testing::HttpClient& client, int instance, const CaseClock& clock, const std::string& guest,
                 const std::string& key, const std::string& body);

// True when a POST that ended like `attempt` may succeed if sent again with
// the same key: no answer, 5xx, 408, 409 (the first request with the key is
// still running) or 429.
bool WorthRetrying(const Attempt& attempt);

// GETs `guest`'s history through `client`; `instance` labels the answer.
ShownHistory GetHistory(testing::HttpClient& client, const std::string& instance, const std::string& guest);

}  // namespace stowage::faults
