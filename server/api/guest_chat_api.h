// GuestChatApi: the routes of the REST API, as an http::Handler.
//
//   POST   /v1/guest/chat/{guest_id}   store a message
//   GET    /v1/guest/chat/{guest_id}?limit=N&before=SEQ
//                                      a page of the guest's messages, oldest
//                                      first (without limit: the newest
//                                      max_history); a Link header names the
//                                      page before it when there is one
//   DELETE /v1/guest/chat/{guest_id}   erase the guest's messages
//   GET    /v1/guest/chat/{guest_id}/search?q=TEXT&k=5
//                                      the guest's k messages most like TEXT
//   GET    /healthz                    {"status":"ok"}
//
// A POST with an `Idempotency-Key` header (1 to 255 visible ASCII
// characters) is stored once: a retry with the same key and body for the
// same guest replays the first 200 answer (header `Idempotent-Replayed:
// true`) and stores nothing; the same key with another body gets 409
// `idempotency_conflict`. The key is recorded with the message, in its
// transaction (engine::IdempotencyClaim), so this holds across restarts and
// instances; a POST that failed stored nothing and can be retried for real,
// and one answered 503 `outcome_unknown` is settled by its retry. An
// in-process front makes a retry that arrives while the first request runs
// wait for its answer.
//
// Paths match as a Router matches them (exactly; {guest_id} as sent); the
// query string is read by GET of the chat (limit, before) and the search (q,
// k), ignored elsewhere. Every request is validated before the ChatService is
// called, so a bad request stores nothing. Errors are answered as ApiError;
// no exception leaves Handle.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "api/chat_service.h"
#include "api/router.h"
#include "http/http_types.h"
#include "idempotency/idempotency_cache.h"

namespace stowage::api {

struct ApiOptions {
  std::size_t max_content_bytes = 32768;
  // The canonical timestamp given to a message sent without one.
  std::function<std::string()> now = nullptr;  // NowTimestamp when empty
  // How long the answer to a POST with an Idempotency-Key is replayed.
  std::chrono::seconds idempotency_ttl = std::chrono::hours(24);
  // The most messages a GET of the chat answers (server.max_history): the
  // page size when the client gives no `limit`, and the largest `limit`.
  std::size_t max_history = 10000;
  // Counts every POST answered with the answer recorded for its
  // Idempotency-Key, whether this server still held it or the store did;
  // may be null.
  observability::Counter* replayed = nullptr;
};

class GuestChatApi final : public http::Handler {
 public:
  // `service` must outlive this. Thread-safe.
  GuestChatApi(ChatService& service, ApiOptions options);

  GuestChatApi(const GuestChatApi&) = delete;
  GuestChatApi& operator=(const GuestChatApi&) = delete;

  // Its routes, for a Router (ServerHandler's): /healthz (for everyone,
  // immediate), the chat and the search (for guests). They refer to this.
  std::vector<Route> Routes();

  // Answers with these routes alone (HEAD and OPTIONS included), as a
  // listener that serves nothing else would.
  http::Response Handle(const http::Request& request) noexcept override;
  http::Response Refuse(http::Refusal why, const http::Request& request,
                        std::size_t body_limit) noexcept override;

  // 404 not_found for a path no route matches, naming every route.
  static http::Response NoRoute(const http::Request& request);

 private:
  // GET, POST and DELETE of /v1/guest/chat/{guest_id}.
  http::Response Chat(const std::string& guest_id, const http::Request& request);
  http::Response Post(const std::string& guest_id, const http::Request& request);
  // The page the query string of `target` asks for; the Link header names
  // `target`'s path.
  http::Response Get(const std::string& guest_id, std::string_view target);
  http::Response Delete(const std::string& guest_id);
  http::Response Search(const std::string& guest_id, std::string_view query_string);

  ChatService& service_;
  ApiOptions options_;
  idempotency::IdempotencyCache idempotency_;
  const Router router_;  // of Routes(), for Handle
};

}  // namespace stowage::api
