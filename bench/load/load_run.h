// Runs the load: worker threads, each with one keep-alive connection, send
// POSTs and GETs of guest chats until the duration or the request cap ends.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "load_options.h"

namespace stowage::bench {

enum class RequestKind { kPost = 0, kGet = 1 };
inline constexpr std::size_t kRequestKinds = 2;
// The lower-case name of a kind ("post", "get").
const char* KindName(RequestKind kind);

// How the requests of one kind went.
struct KindOutcome {
  std::int64_t sent = 0;                       // requests started
  std::int64_t ok = 0;                         // answered 2xx
  std::int64_t failed = 0;                     // answered otherwise, or a transport error or timeout
  std::vector<std::uint32_t> ok_latencies_us;  // one per ok answer, from write to last byte read
};

struct LoadOutcome {
  double elapsed_s = 0;  // from the first request until every worker stopped
  std::array<KindOutcome, kRequestKinds> kinds;
  std::int64_t connections_opened = 0;
  // The first few failures, each naming the request and what went wrong.
  std::vector<std::string> first_failures;
};

inline constexpr std::size_t kFailuresKept = 5;

// The message body a POST sends: {"role":"user","content":<content_bytes
// ASCII bytes>}.
std::string PostBody(int content_bytes);

// Runs the load that `options` describes and returns what happened. Never
// throws for what the server or the network does: every such event is a
// failed request. New requests start until options.duration_s has passed
// (or options.max_requests have started); a request in flight then may take
// up to options.request_timeout_s more, so the call returns within
// duration + timeout (+ about 0.1 s). A transport failure closes the
// connection, the next request opens a new one, and the worker pauses
// 10 ms first so a server that is down is not flooded.
LoadOutcome RunLoad(const LoadOptions& options);

}  // namespace stowage::bench
