#include "api/api_error.h"

#include <spdlog/spdlog.h>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "logging/logging.h"

namespace stowage::api {

std::string ErrorBody(std::string_view code, std::string_view message) {
  boost::json::object error;
  error["code"] = code;
  error["message"] = message;
  const std::string_view request_id = logging::CurrentRequest().request_id();
  if (!request_id.empty()) error["request_id"] = request_id;
  boost::json::object body;
  body["error"] = std::move(error);
  return boost::json::serialize(body);
}

http::Response JsonResponse(int status, std::string body) {
  http::Response response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

http::Response ErrorResponse(const ApiError& error) {
  return JsonResponse(error.status, ErrorBody(error.code, error.message));
}

http::Response InternalError(const http::Request& request, std::string_view what) noexcept {
  try {
    spdlog::error("internal error while answering {} {}: {}", request.method, request.target, what);
    return ErrorResponse(ApiError::Internal(
        "internal error while answering the request; retry, and give the request_id to the operator if it "
        "persists"));
  } catch (...) {
  }
  http::Response response;
  response.status = 500;
  response.body = R"({"error":{"code":"internal","message":"internal error while answering the request; )"
                  R"(see the stowaged log and retry"}})";
  return response;
}

ApiError PipelineError(const stowage::Status& status, const std::string& stage, std::string_view operation) {
  using stowage::StatusCode;
  // The status text can name hosts, ports, databases, users, SQL or another
  // guest's data: it goes to the log (with the request's id), never to the client.
  const std::string op(operation);
  if (stage.empty()) {
    spdlog::error("{} failed: {}", op, status.ToString());
    return ApiError::Internal(op +
                              " failed with an internal error of the server; retry later, and give the "
                              "request_id to the operator if it persists");
  }
  spdlog::warn("{} failed in stage '{}': {}", op, stage, status.ToString());
  const std::string what = "stage '" + stage + "'";
  switch (status.code()) {
    case StatusCode::kRejected:
      return {429, "rejected",
              what + " refused " + op + " by policy (e.g. the guest's monthly request limit); retry later"};
    case StatusCode::kConflict:
      return {409, "conflict",
              what + " refused " + op + " as conflicting with stored data; read the current state and retry"};
    case StatusCode::kInvalidArgument:
      return ApiError::InvalidField(what + " cannot accept the request as sent; " + op +
                                    " was not done; correct the request and retry");
    case StatusCode::kNotFound:
      return ApiError::NotFound(what + " found nothing for " + op);
    case StatusCode::kUnavailable:
      return {503, "stage_failed",
              what + " could not reach its storage target; " + op + " was not done; retry later"};
    case StatusCode::kDeadlineExceeded:
      return {503, "stage_failed", what + " did not answer in time; " + op + " was not done; retry later"};
    case StatusCode::kInternal:
    case StatusCode::kOk:
      break;
  }
  return {500, "stage_failed",
          what + " failed with an internal error; " + op +
              " was not done; retry later, and give the request_id to the operator if it persists"};
}

}  // namespace stowage::api
