// ServerHandler: what one listener of stowaged answers, and the HTTP metrics.
//
//   GET /healthz, the guest chat API   (GuestChatApi)
//   GET /readyz      Readiness::Check(): 200 when every enabled required stage
//                    is healthy, else 503 naming each unhealthy one and a
//                    reason class (never an address); checked at most once a
//                    second
//
// Every request runs under a logging::RequestScope of its request_id and
// trace_id, so every line logged while answering it (stage calls on the
// CallRunner's threads included) and every error body carries its id.
//   GET /metrics     the Prometheus text format (no authentication)
//   /v1/admin/...    AdminApi, on the listener that serves the admin routes
//
// Every request is counted in stowage_http_requests_total{route,method,status}
// and stowage_http_request_duration_seconds{route}, labelled with its route
// pattern (e.g. /v1/guest/chat/{guest_id}), never the raw path.
#pragma once

#include "api/admin_api.h"
#include "api/guest_chat_api.h"
#include "api/readiness.h"
#include "engine/pipeline_holder.h"
#include "http/http_types.h"
#include "observability/metrics.h"

namespace stowage::api {

// Which routes a listener serves.
enum class Listener {
  kAll,        // the guest API, probes, metrics and the admin routes
  kPublic,     // everything but the admin routes (they have a listener of their own)
  kAdminOnly,  // the admin routes, probes and metrics
};

class ServerHandler final : public http::Handler {
 public:
  // Every argument must outlive this.
  ServerHandler(Listener listener, GuestChatApi& api, AdminApi& admin, Readiness& readiness,
                observability::Registry& metrics);

  http::Response Handle(const http::Request& request) noexcept override;
  // GET and HEAD /healthz: answered on the I/O thread, whatever the workers do.
  bool Immediate(const http::Request& request) const noexcept override;
  http::Response Refuse(http::Refusal why, const http::Request& request,
                        std::size_t body_limit) noexcept override;

 private:
  http::Response Route(const http::Request& request, const std::string& path);
  // OPTIONS: 204 with the route's Allow (its methods, HEAD with GET, and
  // OPTIONS), learned by asking the route with a method it refuses; any
  // other answer (404, 401) as the route gives it.
  http::Response Options(const http::Request& request, const std::string& path);
  void Count(const std::string& route, const std::string& method, int status, double seconds) noexcept;

  const Listener listener_;
  GuestChatApi& api_;
  AdminApi& admin_;
  Readiness& readiness_;
  observability::Registry& metrics_;
};

// The route pattern of a path, for metric labels: "/v1/guest/chat/{guest_id}",
// "/v1/guest/chat/{guest_id}/search", "/healthz", "/readyz", "/metrics",
// "/v1/admin/reload", "/v1/admin/pipeline", "/v1/admin/journal",
// "/v1/admin/journal/replay", "/v1/admin/journal/drop", or "other".
std::string RouteOf(const std::string& path);

}  // namespace stowage::api
