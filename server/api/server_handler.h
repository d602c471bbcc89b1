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
//   GET /openapi.json
//                    the API's OpenAPI 3.1 description (docs/openapi.yaml), a
//                    static string built in
//   /v1/admin/...    AdminApi, on the listener that serves the admin routes
//
// Every request is counted in stowage_http_requests_total{route,method,status}
// and stowage_http_request_duration_seconds{route}, labelled with its route
// pattern (e.g. /v1/guest/chat/{guest_id}), never the raw path; a route of
// another listener keeps its label. All of it goes through one Router:
// matching, HEAD, OPTIONS, 405 and the labels.
#pragma once

#include <string_view>
#include <vector>

#include "api/admin_api.h"
#include "api/guest_chat_api.h"
#include "api/readiness.h"
#include "api/router.h"
#include "engine/pipeline_holder.h"
#include "http/http_types.h"
#include "observability/metrics.h"

namespace stowage::api {

// Which routes a listener serves (by their Audience). A route it does not
// serve is answered as an unknown path.
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
  // GET and HEAD of an immediate route this listener serves (/healthz):
  // answered on the I/O thread, whatever the workers do.
  bool Immediate(const http::Request& request) const noexcept override;
  http::Response Refuse(http::Refusal why, const http::Request& request,
                        std::size_t body_limit) noexcept override;

  // Every route of stowaged, those of other listeners included (they are
  // answered as unknown paths here).
  const Router& router() const noexcept { return router_; }

 private:
  // Every route of stowaged: the guest API's, /readyz, /metrics,
  // /openapi.json, the admin routes.
  std::vector<Route> Routes();
  bool Serves(Audience audience) const;
  // 404 for a path no route of this listener matches, in the words of the
  // admin routes (under kAdminPrefix, when it serves them), of the admin
  // listener, or of the guest API.
  http::Response NoRoute(const http::Request& request) const;
  void Count(std::string_view route, std::string_view method, int status, double seconds) noexcept;

  const Listener listener_;
  GuestChatApi& api_;
  AdminApi& admin_;
  Readiness& readiness_;
  observability::Registry& metrics_;
  const Router router_;  // of Routes(); last, for its routes refer to the members above
};

}  // namespace stowage::api
