#include "api/server_handler.h"

#include <boost/json.hpp>
#include <chrono>
#include <exception>
#include <spdlog/spdlog.h>

#include "api/api_error.h"
#include "logging/logging.h"

namespace stowage::api {
namespace {

namespace json = boost::json;

constexpr std::string_view kChatPrefix = "/v1/guest/chat/";
constexpr std::string_view kSearchSuffix = "/search";

}  // namespace

std::string RouteOf(const std::string& path) {
  if (path == "/healthz" || path == "/readyz" || path == "/metrics" || path == "/v1/admin/reload" ||
      path == "/v1/admin/pipeline" || path == kJournalPath || path == kJournalReplayPath ||
      path == kJournalDropPath)
    return path;
  if (path.size() > kChatPrefix.size() && path.starts_with(kChatPrefix)) {
    const std::size_t slash = path.find('/', kChatPrefix.size());
    if (slash == std::string::npos) return "/v1/guest/chat/{guest_id}";
    if (path.substr(slash) == kSearchSuffix && slash > kChatPrefix.size())
      return "/v1/guest/chat/{guest_id}/search";
  }
  return "other";
}

ServerHandler::ServerHandler(Listener listener, GuestChatApi& api, AdminApi& admin, Readiness& readiness,
                             observability::Registry& metrics)
    : listener_(listener), api_(api), admin_(admin), readiness_(readiness), metrics_(metrics) {}

void ServerHandler::Count(const std::string& route, const std::string& method, int status,
                          double seconds) noexcept {
  try {
    metrics_
        .counter("stowage_http_requests_total",
                 "HTTP requests answered, by route pattern, method and status.",
                 {{"route", route}, {"method", method}, {"status", std::to_string(status)}})
        .Add();
    metrics_
        .histogram("stowage_http_request_duration_seconds", "Time to answer an HTTP request, in seconds.",
                   {{"route", route}})
        .Observe(seconds);
  } catch (...) {
  }
}

http::Response ServerHandler::Handle(const http::Request& request) noexcept {
  const auto started = std::chrono::steady_clock::now();
  const logging::RequestScope scope(logging::RequestTag(request.request_id, request.trace_id));
  http::Response response;
  std::string route = "other";
  try {
    const std::string path = request.target.substr(0, request.target.find('?'));
    route = RouteOf(path);
    if (request.method == "OPTIONS") {
      response = Options(request, path);
    } else if (request.method == "HEAD") {
      // GET's answer, headers only.
      http::Request get = request;
      get.method = "GET";
      response = Route(get, path);
      response.head_only = true;
    } else {
      response = Route(request, path);
    }
  } catch (const std::exception& e) {
    response = http::Response{};
    response.status = 500;
    try {
      spdlog::error("internal error while answering {} {}: {}", request.method, request.target, e.what());
      response = ErrorResponse(ApiError::Internal(
          "internal error while answering the request; retry, and give the request_id to the operator if it "
          "persists"));
    } catch (...) {
    }
  } catch (...) {
    response = http::Response{};
    response.status = 500;
  }
  // Methods are few and known; anything else is labelled "other" to bound the series.
  const std::string& m = request.method;
  const bool known =
      m == "GET" || m == "POST" || m == "DELETE" || m == "PUT" || m == "HEAD" || m == "PATCH" || m == "OPTIONS";
  Count(route, known ? m : "other", response.status,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return response;
}

bool ServerHandler::Immediate(const http::Request& request) const noexcept {
  if (request.method != "GET" && request.method != "HEAD") return false;
  const std::string_view target = request.target;
  return target.substr(0, target.find('?')) == "/healthz";
}

http::Response ServerHandler::Refuse(http::Refusal why, const http::Request& request,
                                     std::size_t body_limit) noexcept {
  const logging::RequestScope scope(logging::RequestTag(request.request_id, request.trace_id));
  http::Response response = api_.Refuse(why, request, body_limit);
  try {
    Count(RouteOf(request.target.substr(0, request.target.find('?'))), "other", response.status, 0);
  } catch (...) {
  }
  return response;
}

http::Response ServerHandler::Route(const http::Request& request, const std::string& path) {
  if (path.starts_with(kAdminPrefix) && listener_ != Listener::kPublic) return admin_.Handle(request);
  if (path == "/metrics") {
    if (request.method != "GET") {
      http::Response response = ErrorResponse(
          ApiError::MethodNotAllowed("method " + request.method + " is not allowed on /metrics; use GET"));
      response.headers.emplace_back("Allow", "GET");
      return response;
    }
    http::Response response;
    response.body = metrics_.RenderPrometheus();
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return response;
  }
  if (path == "/readyz") {
    if (request.method != "GET") {
      http::Response response = ErrorResponse(
          ApiError::MethodNotAllowed("method " + request.method + " is not allowed on /readyz; use GET"));
      response.headers.emplace_back("Allow", "GET");
      return response;
    }
    return readiness_.Check();
  }
  if (listener_ == Listener::kAdminOnly && path != "/healthz") {
    return ErrorResponse(ApiError::NotFound("no route for " + request.method + " " + path +
                                            "; this is the admin listener: it serves /v1/admin/reload, "
                                            "/v1/admin/pipeline, /v1/admin/journal (and its replay and "
                                            "drop), /healthz, /readyz and /metrics"));
  }
  return api_.Handle(request);
}

http::Response ServerHandler::Options(const http::Request& request, const std::string& path) {
  http::Request probe = request;
  probe.method = "OPTIONS";  // no route takes it: each answers 405 with its Allow
  http::Response refused = Route(probe, path);
  if (refused.status != 405) return refused;
  std::string allow;
  for (const auto& [name, value] : refused.headers)
    if (name == "Allow") allow = value;
  if (allow.find("GET") != std::string::npos) allow += ", HEAD";
  allow += allow.empty() ? "OPTIONS" : ", OPTIONS";
  http::Response response;
  response.status = 204;
  response.content_type.clear();
  response.headers.emplace_back("Allow", std::move(allow));
  return response;
}

}  // namespace stowage::api
