#include "api/server_handler.h"

#include <chrono>
#include <exception>
#include <iterator>

#include "api/api_error.h"
#include "api/openapi.h"
#include "logging/logging.h"

namespace stowage::api {

ServerHandler::ServerHandler(Listener listener, GuestChatApi& api, AdminApi& admin, Readiness& readiness,
                             observability::Registry& metrics)
    : listener_(listener),
      api_(api),
      admin_(admin),
      readiness_(readiness),
      metrics_(metrics),
      router_(Routes(), [this](const http::Request& request) { return NoRoute(request); }) {}

std::vector<Route> ServerHandler::Routes() {
  std::vector<Route> routes = api_.Routes();
  routes.push_back({.pattern = "/readyz",
                    .methods = {"GET"},
                    .handler = [this](const http::Request&, const PathParams&) { return readiness_.Check(); },
                    .audience = Audience::kEveryone});
  routes.push_back({.pattern = "/metrics",
                    .methods = {"GET"},
                    .handler =
                        [this](const http::Request&, const PathParams&) {
                          http::Response response;
                          response.body = metrics_.RenderPrometheus();
                          response.content_type = "text/plain; version=0.0.4; charset=utf-8";
                          return response;
                        },
                    .audience = Audience::kEveryone});
  routes.push_back({.pattern = "/openapi.json",
                    .methods = {"GET"},
                    .handler =
                        [](const http::Request&, const PathParams&) {
                          http::Response response;
                          response.body = std::string(OpenApiJson());
                          return response;
                        },
                    .audience = Audience::kEveryone});
  std::vector<Route> admin = admin_.Routes();
  std::move(admin.begin(), admin.end(), std::back_inserter(routes));
  return routes;
}

bool ServerHandler::Serves(Audience audience) const {
  switch (audience) {
    case Audience::kGuests:
      return listener_ != Listener::kAdminOnly;
    case Audience::kOperators:
      return listener_ != Listener::kPublic;
    case Audience::kEveryone:
      return true;
  }
  return false;
}

http::Response ServerHandler::NoRoute(const http::Request& request) const {
  const std::string_view path = PathOf(request.target);
  if (path.starts_with(kAdminPrefix) && Serves(Audience::kOperators)) return admin_.NoRoute(request);
  if (!Serves(Audience::kGuests)) {
    return ErrorResponse(ApiError::NotFound("no route for " + request.method + " " + std::string(path) +
                                            "; this is the admin listener: it serves /v1/admin/reload, "
                                            "/v1/admin/pipeline, /v1/admin/journal (and its replay and "
                                            "drop), /healthz, /readyz, /metrics and /openapi.json"));
  }
  return GuestChatApi::NoRoute(request);
}

void ServerHandler::Count(std::string_view route, std::string_view method, int status,
                          double seconds) noexcept {
  try {
    metrics_
        .counter("stowage_http_requests_total",
                 "HTTP requests answered, by route pattern, method and status.",
                 {{"route", std::string(route)},
                  {"method", std::string(method)},
                  {"status", std::to_string(status)}})
        .Add();
    metrics_
        .histogram("stowage_http_request_duration_seconds", "Time to answer an HTTP request, in seconds.",
                   {{"route", std::string(route)}})
        .Observe(seconds);
  } catch (...) {
  }
}

http::Response ServerHandler::Handle(const http::Request& request) noexcept {
  const auto started = std::chrono::steady_clock::now();
  const logging::RequestScope scope(logging::RequestTag(request.request_id, request.trace_id));
  http::Response response;
  std::string_view route = kNoRouteLabel;
  try {
    RouteMatch match = router_.Match(PathOf(request.target));
    route = LabelOf(match.route);
    // A route of another listener is answered as an unknown path, and keeps its label.
    if (match.route != nullptr && !Serves(match.route->audience)) match.route = nullptr;
    response = router_.Answer(request, match);
  } catch (const std::exception& e) {
    response = InternalError(request, e.what());
  }
  // Methods are few and known; anything else is labelled "other" to bound the series.
  const std::string& m = request.method;
  const bool known =
      m == "GET" || m == "POST" || m == "DELETE" || m == "PUT" || m == "HEAD" || m == "PATCH" || m == "OPTIONS";
  Count(route, known ? std::string_view(m) : "other", response.status,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return response;
}

bool ServerHandler::Immediate(const http::Request& request) const noexcept {
  if (request.method != "GET" && request.method != "HEAD") return false;
  const Route* route = router_.Find(PathOf(request.target));
  return route != nullptr && route->immediate && Serves(route->audience);
}

http::Response ServerHandler::Refuse(http::Refusal why, const http::Request& request,
                                     std::size_t body_limit) noexcept {
  const logging::RequestScope scope(logging::RequestTag(request.request_id, request.trace_id));
  http::Response response = api_.Refuse(why, request, body_limit);
  Count(LabelOf(router_.Find(PathOf(request.target))), "other", response.status, 0);
  return response;
}

}  // namespace stowage::api
