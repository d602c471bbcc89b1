#include "api/guest_chat_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <string_view>

#include "api/api_error.h"
#include "api/chat_json.h"
#include "api/chat_request.h"
#include "api/query_string.h"
#include "api/timestamp.h"
#include "idempotency/fingerprint.h"

namespace stowage::api {
namespace {

constexpr const char* kRoutes =
    "the routes are POST, GET and DELETE /v1/guest/chat/{guest_id}, GET /v1/guest/chat/{guest_id}/search?q=TEXT, "
    "GET /healthz, GET /readyz, GET /metrics, GET /openapi.json (the API's description), and the admin routes "
    "under /v1/admin/ (docs/api.md)";

std::string Joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ",") + name;
  return out;
}

// Checks an Idempotency-Key header value.
std::optional<ApiError> CheckIdempotencyKey(const std::string& key) {
  bool visible = std::all_of(key.begin(), key.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (key.size() <= 255 && visible) return std::nullopt;
  return ApiError{400, "invalid_idempotency_key",
                  "the Idempotency-Key header must be 1 to 255 visible ASCII characters (e.g. a UUID)"};
}

// The largest `before` a GET takes: any sequence fits below it.
constexpr std::uint64_t kMaxBefore = 9223372036854775807ULL;

// The page a GET of the chat asks for with its query string: `limit` (1 to
// max_history, default max_history) and `before` (1 to kMaxBefore, default
// none). An error names the parameter that is wrong and what it takes.
std::optional<ApiError> ParsePage(std::string_view query, std::size_t max_history, stowage::ReadRange* range,
                                  bool* limit_given) {
  auto values = ParseQueryString(query);
  if (!values) {
    return ApiError::InvalidField(
        "the query string has a malformed %-escape; encode it as application/x-www-form-urlencoded, e.g. "
        "?limit=50&before=120");
  }
  *limit_given = false;
  range->limit = max_history;
  for (const auto& [name, value] : *values) {
    if (name == "limit") {
      std::uint64_t limit = 0;
      if (!ParseWholeNumber(value, &limit) || limit < 1 || limit > max_history) {
        return ApiError::InvalidField("parameter 'limit' must be a whole number from 1 to " +
                                      std::to_string(max_history) +
                                      " (server.max_history): how many messages the page holds at most; it is '" +
                                      ShownParameter(value) + "'");
      }
      range->limit = limit;
      *limit_given = true;
    } else if (name == "before") {
      std::uint64_t before = 0;
      if (!ParseWholeNumber(value, &before) || before < 1 || before > kMaxBefore) {
        return ApiError::InvalidField("parameter 'before' must be a whole number from 1 to " +
                                      std::to_string(kMaxBefore) +
                                      ": a message's sequence, the page holding the messages below it (take it "
                                      "from the Link header of the previous page); it is '" +
                                      ShownParameter(value) + "'");
      }
      range->before = before;
    } else {
      return ApiError::InvalidField("unknown parameter '" + ShownParameter(name) +
                                    "'; this route takes limit and before, e.g. ?limit=50&before=120");
    }
  }
  return std::nullopt;
}

}  // namespace

GuestChatApi::GuestChatApi(ChatService& service, ApiOptions options)
    : service_(service),
      options_(std::move(options)),
      idempotency_(options_.idempotency_ttl),
      router_(Routes(), &GuestChatApi::NoRoute) {
  if (!options_.now) options_.now = NowTimestamp;
}

std::vector<Route> GuestChatApi::Routes() {
  return {
      {.pattern = "/healthz",
       .methods = {"GET"},
       .handler = [](const http::Request&, const PathParams&) { return JsonResponse(200, R"({"status":"ok"})"); },
       .audience = Audience::kEveryone,
       .immediate = true},
      {.pattern = "/v1/guest/chat/{guest_id}",
       .methods = {"GET", "POST", "DELETE"},
       .handler = [this](const http::Request& request,
                         const PathParams& params) { return Chat(params.at("guest_id"), request); },
       .audience = Audience::kGuests},
      {.pattern = "/v1/guest/chat/{guest_id}/search",
       .methods = {"GET"},
       .handler =
           [this](const http::Request& request, const PathParams& params) {
             return Search(params.at("guest_id"), QueryOf(request.target));
           },
       .audience = Audience::kGuests},
  };
}

http::Response GuestChatApi::Handle(const http::Request& request) noexcept {
  return router_.Answer(request);
}

http::Response GuestChatApi::NoRoute(const http::Request& request) {
  return ErrorResponse(ApiError::NotFound("no route for " + request.method + " " +
                                          std::string(PathOf(request.target)) + "; " + kRoutes));
}

http::Response GuestChatApi::Refuse(http::Refusal why, const http::Request& request,
                                    std::size_t body_limit) noexcept {
  try {
    switch (why) {
      case http::Refusal::kBodyTooLarge:
        return ErrorResponse(ApiError::PayloadTooLarge("the request body is larger than the limit of " +
                                                       std::to_string(body_limit) +
                                                       " bytes (server.body_limit); send a smaller body"));
      case http::Refusal::kHeaderTooLarge:
        return ErrorResponse(
            {431, "header_too_large", "the request line and headers are too large; send shorter headers"});
      case http::Refusal::kMalformed:
        break;
      case http::Refusal::kOverloaded:
      case http::Refusal::kQueueTimeout: {
        http::Response response = ErrorResponse(
            {503, "overloaded",
             why == http::Refusal::kOverloaded
                 ? "stowaged is overloaded: every worker is busy and its queue is full; nothing was done; retry "
                   "after the Retry-After seconds"
                 : "stowaged is overloaded: the request waited longer than server.queue_timeout_ms for a "
                   "worker and was not run, so nothing was stored; retry after the Retry-After seconds"});
        response.headers.emplace_back("Retry-After", "1");
        return response;
      }
    }
    return ErrorResponse({400, "bad_request", "the request is not valid HTTP/1.1; check the client"});
  } catch (const std::exception& e) {
    return InternalError(request, e.what());
  }
}

http::Response GuestChatApi::Chat(const std::string& guest_id, const http::Request& request) {
  if (auto error = CheckGuestId(guest_id)) return ErrorResponse(*error);
  if (request.method == "POST") return Post(guest_id, request);
  if (request.method == "GET") return Get(guest_id, request.target);
  return Delete(guest_id);
}

http::Response GuestChatApi::Post(const std::string& guest_id, const http::Request& request) {
  if (auto error = CheckJsonContentType(request.content_type)) return ErrorResponse(*error);
  const std::string idempotency_key = request.Header("Idempotency-Key");
  const bool has_key = !idempotency_key.empty();
  if (has_key) {
    if (auto error = CheckIdempotencyKey(idempotency_key)) return ErrorResponse(*error);
  }
  ParsedMessage parsed = ParseChatMessage(request.body, options_.max_content_bytes, options_.now);
  if (parsed.error) return ErrorResponse(*parsed.error);

  const std::string scoped_key = guest_id + "\n" + idempotency_key;
  // Whatever happens below, a key taken here is either completed or released.
  struct ReleaseUnlessCompleted {
    idempotency::IdempotencyCache* cache;
    const std::string& key;
    bool completed = false;
    ~ReleaseUnlessCompleted() {
      if (cache && !completed) cache->Abandon(key);
    }
  } release{nullptr, scoped_key};
  if (has_key) {
    auto seen = idempotency_.Begin(scoped_key, request.body,
                                   idempotency::IdempotencyCache::Clock::now() + std::chrono::seconds(30));
    switch (seen.verdict) {
      case idempotency::IdempotencyCache::Verdict::kNew:
        release.cache = &idempotency_;
        break;
      case idempotency::IdempotencyCache::Verdict::kReplay: {
        http::Response replay = JsonResponse(seen.status, std::move(seen.body));
        replay.headers.emplace_back("Idempotent-Replayed", "true");
        replay.log_note = "idempotent_replay";
        if (options_.replayed) options_.replayed->Add();
        return replay;
      }
      case idempotency::IdempotencyCache::Verdict::kConflict:
        return ErrorResponse({409, "idempotency_conflict",
                              "Idempotency-Key '" + idempotency_key + "' was already used for guest " + guest_id +
                                  " with another body; send a new key for a new message"});
      case idempotency::IdempotencyCache::Verdict::kBusy:
        return ErrorResponse({409, "idempotency_conflict",
                              "a request with Idempotency-Key '" + idempotency_key +
                                  "' is still running; retry it when that one has been answered"});
    }
  }

  const std::string fingerprint = idempotency::Fingerprint(request.body);
  engine::IdempotencyClaim claim{idempotency_key, fingerprint, [&guest_id](const engine::WriteOutcome& expected) {
                                   return EncodeStored(guest_id, expected);
                                 }};
  engine::WriteOutcome outcome = service_.Write(guest_id, *parsed.message, has_key ? &claim : nullptr);
  http::Response response;
  if (outcome.claim == engine::WriteOutcome::Claim::kReplay) {
    response = JsonResponse(200, std::move(outcome.replay));
    response.headers.emplace_back("Idempotent-Replayed", "true");
    response.log_note = "idempotent_replay";
    if (options_.replayed) options_.replayed->Add();
  } else if (outcome.claim == engine::WriteOutcome::Claim::kConflict) {
    return ErrorResponse({409, "idempotency_conflict", outcome.status.message()});
  } else if (outcome.status.ok()) {
    response = JsonResponse(200, EncodeStored(guest_id, outcome));
  } else if (outcome.outcome_unknown) {
    spdlog::error("storing the message: stage '{}': {}", outcome.failed_stage, outcome.status.ToString());
    response = ErrorResponse({503, "outcome_unknown",
                              "storing the message: stage '" + outcome.failed_stage +
                                  "' sent the COMMIT but its answer never came, so the message may or may not be "
                                  "stored; retry with the same Idempotency-Key to store it once and learn its ids"});
  } else {
    response = ErrorResponse(PipelineError(outcome.status, outcome.failed_stage, "storing the message"));
  }
  if (has_key && response.status == 200) {
    idempotency_.Complete(scoped_key, response.status, response.body);
    release.completed = true;
  }
  if (!outcome.degraded.empty()) response.log_note = "degraded=" + Joined(outcome.degraded);
  if (!outcome.status.ok()) {
    response.log_note +=
        (response.log_note.empty() ? "" : " ") + std::string("failed_stage=") + outcome.failed_stage;
  }
  return response;
}

http::Response GuestChatApi::Get(const std::string& guest_id, std::string_view target) {
  stowage::ReadRange range;
  bool limit_given = false;
  if (auto error = ParsePage(QueryOf(target), options_.max_history, &range, &limit_given))
    return ErrorResponse(*error);
  engine::ReadOutcome outcome = service_.Read(guest_id, range);
  http::Response response =
      outcome.status.ok()
          ? JsonResponse(200, EncodeMessages(outcome.messages))
          : ErrorResponse(PipelineError(outcome.status, outcome.failed_stage, "reading the messages"));
  if (outcome.status.ok() && outcome.first_sequence > 0) {
    // Older messages exist: the page before this one, same size (RFC 8288).
    response.headers.emplace_back(
        "Link", "<" + std::string(PathOf(target)) + "?limit=" + std::to_string(*range.limit) +
                    "&before=" + std::to_string(outcome.first_sequence) + ">; rel=\"next\"");
    // A GET without `limit` asked for everything and got the newest part.
    if (!limit_given) response.headers.emplace_back("X-History-Truncated", "true");
  }
  if (!outcome.served_by.empty()) response.log_note = "served_by=" + outcome.served_by;
  if (!outcome.degraded.empty()) {
    response.log_note +=
        (response.log_note.empty() ? "" : " ") + std::string("degraded=") + Joined(outcome.degraded);
  }
  return response;
}

http::Response GuestChatApi::Delete(const std::string& guest_id) {
  engine::EraseOutcome outcome = service_.Erase(guest_id);
  http::Response response =
      outcome.status.ok()
          ? JsonResponse(200, EncodeDeleted(guest_id, outcome))
          : ErrorResponse(PipelineError(outcome.status, outcome.failed_stage, "deleting the messages"));
  if (!outcome.degraded.empty()) response.log_note = "degraded=" + Joined(outcome.degraded);
  return response;
}

http::Response GuestChatApi::Search(const std::string& guest_id, std::string_view query_string) {
  if (auto error = CheckGuestId(guest_id)) return ErrorResponse(*error);
  auto values = ParseQueryString(query_string);
  if (!values) {
    return ErrorResponse(ApiError::InvalidField("the query string has a malformed %-escape; encode it as "
                                                "application/x-www-form-urlencoded, e.g. ?q=hello+world&k=5"));
  }
  auto q = values->find("q");
  if (q == values->end() || q->second.empty()) {
    return ErrorResponse(ApiError::InvalidField("parameter 'q' is missing or empty; give the text to search for, "
                                                "e.g. ?q=opening+hours"));
  }
  if (q->second.size() > options_.max_content_bytes) {
    return ErrorResponse({413, "content_too_large",
                          "parameter 'q' is " + std::to_string(q->second.size()) + " bytes; the limit is " +
                              std::to_string(options_.max_content_bytes) + " bytes (server.max_content_bytes)"});
  }
  if (FindInvalidUtf8(q->second)) {
    return ErrorResponse(ApiError::InvalidField("parameter 'q' is not valid UTF-8 once decoded; encode the text as "
                                                "UTF-8 before percent-encoding it"));
  }
  std::size_t k = 5;
  if (auto given = values->find("k"); given != values->end()) {
    std::size_t parsed = 0;
    if (!ParseWholeNumber(given->second, &parsed) || parsed < 1 || parsed > 100) {
      return ErrorResponse(
          ApiError::InvalidField("parameter 'k' must be a whole number from 1 to 100; it is '" +
                                 ShownParameter(given->second) + "'"));
    }
    k = parsed;
  }
  engine::SearchOutcome outcome = service_.Search(guest_id, q->second, k);
  if (!outcome.supported) {
    return ErrorResponse(ApiError::NotFound("search is not enabled: no enabled stage searches messages; enable "
                                            "the embeddings stage in pipeline.toml"));
  }
  if (!outcome.status.ok()) {
    return ErrorResponse(PipelineError(outcome.status, outcome.failed_stage, "searching the messages"));
  }
  return JsonResponse(200, EncodeSearch(guest_id, q->second, outcome.hits));
}

}  // namespace stowage::api
