// Status: the outcome of an operation. Errors are values; a stage returns a
// Status and never lets an exception cross the plugin boundary.
#pragma once

#include <string>
#include <utility>

namespace stowage {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,   // the input cannot be stored as given (HTTP 400)
  kNotFound = 2,          // the thing asked for does not exist
  kRejected = 3,          // refused by policy, e.g. a request quota (HTTP 429)
  kConflict = 4,          // clashes with stored state (HTTP 409)
  kUnavailable = 5,       // the storage target cannot be reached (HTTP 503)
  kDeadlineExceeded = 6,  // the deadline passed before the work finished
  kInternal = 7,          // a bug, or an exception caught at the boundary
};

// Returns the lower-case name of `code`, e.g. "unavailable".
inline const char* StatusCodeName(StatusCode code) noexcept {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kRejected: return "rejected";
    case StatusCode::kConflict: return "conflict";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kDeadlineExceeded: return "deadline_exceeded";
    case StatusCode::kInternal: return "internal";
  }
  return "unknown";
}

class Status {
 public:
  // A default-constructed Status is ok.
  Status() = default;

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return {StatusCode::kInvalidArgument, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status Rejected(std::string msg) { return {StatusCode::kRejected, std::move(msg)}; }
  static Status Conflict(std::string msg) { return {StatusCode::kConflict, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {StatusCode::kUnavailable, std::move(msg)}; }
  static Status DeadlineExceeded(std::string msg) { return {StatusCode::kDeadlineExceeded, std::move(msg)}; }
  static Status Internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }

  bool ok() const noexcept { return code_ == StatusCode::kOk; }
  StatusCode code() const noexcept { return code_; }
  // What failed and, where the stage knows it, what to do about it.
  const std::string& message() const noexcept { return message_; }

  // The same status with "<context>: " before its message, e.g.
  //   return status.WithContext("could not store the embedding of message 42");
  // An ok status stays ok.
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

  // "ok", or "<code name>: <message>".
  std::string ToString() const {
    if (ok()) return "ok";
    return std::string(StatusCodeName(code_)) + ": " + message_;
  }

 private:
  Status(StatusCode code, std::string msg) : code_(code), message_(std::move(msg)) {}

  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

}  // namespace stowage
