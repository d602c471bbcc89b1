// ApiError: a failed request as the guest chat API answers it, with status
// `{"error":{"code":"...","message":"..."}}`. The code is stable and meant
// for programs; the message says what was wrong and what to do, for people.
#pragma once

#include <string>
#include <string_view>

#include "http/http_types.h"
#include "stowage/status.h"

namespace stowage::api {

struct ApiError {
  int status = 500;
  std::string code;     // e.g. "invalid_field"
  std::string message;  // what was wrong and what to do

  static ApiError BadJson(std::string message) { return {400, "bad_json", std::move(message)}; }
  static ApiError InvalidField(std::string message) { return {400, "invalid_field", std::move(message)}; }
  static ApiError InvalidGuestId(std::string message) {
    return {400, "invalid_guest_id", std::move(message)};
  }
  static ApiError UnsupportedMediaType(std::string message) {
    return {415, "unsupported_media_type", std::move(message)};
  }
  static ApiError PayloadTooLarge(std::string message) {
    return {413, "payload_too_large", std::move(message)};
  }
  static ApiError ContentTooLarge(std::string message) {
    return {413, "content_too_large", std::move(message)};
  }
  static ApiError NotFound(std::string message) { return {404, "not_found", std::move(message)}; }
  static ApiError MethodNotAllowed(std::string message) {
    return {405, "method_not_allowed", std::move(message)};
  }
  static ApiError Internal(std::string message) { return {500, "internal", std::move(message)}; }
};

// `{"error":{"code":...,"message":...,"request_id":...}}`; request_id is the
// calling thread's logging::CurrentRequest() and is left out when it has none.
std::string ErrorBody(std::string_view code, std::string_view message);

// An answer of `status` whose body is the JSON text `body`.
http::Response JsonResponse(int status, std::string body);

// The HTTP answer for `error`.
http::Response ErrorResponse(const ApiError& error);

// 500 internal for a request whose answer failed unexpectedly (an
// exception): `what` is logged with the request's method and target, never
// answered; the client is told to retry and give its request_id. Never throws.
http::Response InternalError(const http::Request& request, std::string_view what) noexcept;

// The answer for a pipeline call that failed with `status` in `stage` (empty
// when no stage is to blame). `operation` says what the client asked for,
// e.g. "storing the message". The message names the stage and the kind of
// failure only: `status`'s text (which may name hosts, databases, users, SQL
// or stored data) is logged, never answered. Mapping: kRejected 429 rejected, kConflict 409
// conflict, kInvalidArgument 400 invalid_field, kNotFound 404 not_found,
// kUnavailable and kDeadlineExceeded 503 stage_failed, kInternal 500
// stage_failed; with no stage named, 500 internal.
ApiError PipelineError(const stowage::Status& status, const std::string& stage, std::string_view operation);

}  // namespace stowage::api
