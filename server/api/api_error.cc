#include "api/api_error.h"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace stowage::api {

std::string ErrorBody(std::string_view code, std::string_view message) {
  boost::json::object error;
  error["code"] = code;
  error["message"] = message;
  boost::json::object body;
  body["error"] = std::move(error);
  return boost::json::serialize(body);
}

http::Response ErrorResponse(const ApiError& error) {
  http::Response response;
  response.status = error.status;
  response.body = ErrorBody(error.code, error.message);
  return response;
}

ApiError PipelineError(const stowage::Status& status, const std::string& stage, std::string_view operation) {
  using stowage::StatusCode;
  const std::string op(operation);
  if (stage.empty()) {
    return ApiError::Internal(op + " failed: " + status.ToString() +
                              "; this is a server error, see the stowaged log and retry later");
  }
  const std::string what = "stage '" + stage + "'";
  switch (status.code()) {
    case StatusCode::kRejected:
      return {429, "rejected", what + " refused " + op + ": " + status.message() + "; retry later"};
    case StatusCode::kConflict:
      return {409, "conflict",
              what + " refused " + op + " as conflicting with stored data: " + status.message() +
                  "; read the current state and retry"};
    case StatusCode::kInvalidArgument:
      return ApiError::InvalidField(what + " cannot accept the request: " + status.message() +
                                    "; correct the request and retry");
    case StatusCode::kNotFound:
      return ApiError::NotFound(what + " found nothing for " + op + ": " + status.message());
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
      return {503, "stage_failed",
              what + " failed: " + status.ToString() + "; " + op +
                  " was not done; retry once the stage's storage target is reachable"};
    case StatusCode::kInternal:
    case StatusCode::kOk:
      break;
  }
  return {500, "stage_failed",
          what + " failed: " + status.ToString() + "; " + op + " was not done; see the stowaged log"};
}

}  // namespace stowage::api
