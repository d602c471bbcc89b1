// JSON encoding of the guest chat API's success answers.
#pragma once

#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/pipeline.h"
#include "stowage/message.h"

namespace stowage::api {

// An attribute as the API shows it: a JSON number when `value` is a decimal
// integer that fits in 64 bits (no sign other than '-', no leading zeros),
// else the string itself; null when absent.
boost::json::value AttributeValue(const std::optional<std::string>& value);

// {"status":"stored","guest_id","message_id","conversation_id","sequence","stored_in","degraded"}
std::string EncodeStored(const std::string& guest_id, const engine::WriteOutcome& outcome);

// [{"role","content","timestamp"}, ...] in the given order.
std::string EncodeMessages(const std::vector<stowage::Message>& messages);

// {"status":"deleted","guest_id","deleted_from","degraded"}
std::string EncodeDeleted(const std::string& guest_id, const engine::EraseOutcome& outcome);

// {"guest_id","query","results":[{"role","content","timestamp","score"}, ...]}, best first.
std::string EncodeSearch(const std::string& guest_id, const std::string& query,
                         const std::vector<stowage::SearchHit>& hits);

}  // namespace stowage::api
