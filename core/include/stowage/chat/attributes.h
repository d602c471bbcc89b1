// The chat part of the SDK (SDK 2.0): the names of the attributes the chat
// store sets on a write. Before SDK 2.0 they were Attributes::kMessageId,
// Attributes::kConversationId and Attributes::kSequence (stowage/context.h).
//
// The store of the chat pipeline (the bundled PostgreSQL stage) sets them in
// WriteContext::attributes when it writes a message, as decimal integers in
// text; stages after it read them (e.g. to key what they store by the
// message, so that a replay stores nothing twice), the host journals them
// with a message a best-effort stage missed, and the REST API's answer to a
// POST shows them. stowage/sdk.h does not include this header: a stage that
// reads or sets them includes it.
#pragma once

#include <string_view>

namespace stowage::chat {

// The stored message's id (message_cache.id), unique in its database.
inline constexpr std::string_view kMessageId = "message_id";
// The id of the guest's conversation (conversation_cache.id).
inline constexpr std::string_view kConversationId = "conversation_id";
// The message's place in the guest's history: 0 for the guest's first
// message, then 1, 2, ... without gaps (the numbering ReadRange uses).
inline constexpr std::string_view kSequence = "sequence";

}  // namespace stowage::chat
