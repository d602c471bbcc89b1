// GuestChatApi: the routes of the REST API, as an http::Handler.
//
//   POST   /v1/guest/chat/{guest_id}   store a message
//   GET    /v1/guest/chat/{guest_id}   the guest's messages, oldest first
//   DELETE /v1/guest/chat/{guest_id}   erase the guest's messages
//   GET    /healthz                    {"status":"ok"}
//
// Paths match exactly (a trailing slash is another path); the query string is
// ignored. Every request is validated before the ChatService is called, so a
// bad request stores nothing. Errors are answered as ApiError; no exception
// leaves Handle.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "api/chat_service.h"
#include "http/http_types.h"

namespace stowage::api {

struct ApiOptions {
  std::size_t max_content_bytes = 32768;
  // The canonical timestamp given to a message sent without one.
  std::function<std::string()> now;  // NowTimestamp when empty
};

class GuestChatApi final : public http::Handler {
 public:
  // `service` must outlive this. Thread-safe.
  GuestChatApi(ChatService& service, ApiOptions options);

  http::Response Handle(const http::Request& request) noexcept override;
  http::Response Refuse(http::Refusal why, const http::Request& request,
                        std::size_t body_limit) noexcept override;

 private:
  http::Response Route(const http::Request& request);
  http::Response Post(const std::string& guest_id, const http::Request& request);
  http::Response Get(const std::string& guest_id);
  http::Response Delete(const std::string& guest_id);

  ChatService& service_;
  ApiOptions options_;
};

}  // namespace stowage::api
