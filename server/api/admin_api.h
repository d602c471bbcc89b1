// AdminApi: the operator's routes, behind a bearer token.
//
//   POST /v1/admin/reload     reload pipeline.toml; 200 with what changed, or
//                             400 with why it was refused (nothing changed)
//   GET  /v1/admin/pipeline   the stages in force, in order: policy, enabled,
//                             plugin file, version and content hash, health,
//                             circuit state, journal backlog
//   GET  /v1/admin/journal    the journaled entries (never their content) and
//                             the backlog per stage, from every database that
//                             keeps a journal; ?stage= &id= &parked= &limit=
//   POST /v1/admin/journal/replay
//                             the selected entries due now (parked ones
//                             pending again); ?stage= &id= &parked=
//   POST /v1/admin/journal/drop
//                             deletes the selected entries; needs stage or id
//
// Access: with no token configured (the variable named by [server]
// admin_token_env unset or empty) every admin route answers 404; otherwise a
// request needs `Authorization: Bearer <token>` or gets 401, whatever its
// method. Thread-safe; an exception of a route is answered 500 naming it.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/router.h"
#include "engine/pipeline_holder.h"
#include "http/http_types.h"
#include "observability/metrics.h"

namespace stowage::api {

// Every admin route's path starts with it.
inline constexpr std::string_view kAdminPrefix = "/v1/admin/";

// How long /v1/admin/pipeline and /readyz wait for a stage's health().
inline constexpr std::chrono::milliseconds kHealthTimeout{1000};
// How long the journal routes wait for each database.
inline constexpr std::chrono::milliseconds kJournalTimeout{5000};

class AdminApi {
 public:
  // `holder` and `metrics` must outlive this. `config_file` is reloaded.
  AdminApi(engine::PipelineHolder& holder, std::filesystem::path config_file, std::string token,
           observability::Registry& metrics);

  // The admin routes, for a Router (for operators; each admits a request
  // by its token first). They refer to this.
  std::vector<Route> Routes();

  // The answer for a path under kAdminPrefix that no admin route matches:
  // 404 or 401 as for a route without the token, else 404 naming the routes.
  http::Response NoRoute(const http::Request& request) const;

  // Reloads the configuration file, logs the report and counts it
  // (stowage_reloads_total, stowage_pipeline_generation). Used by the route
  // and by SIGHUP.
  engine::ReloadReport Reload() noexcept;

  bool enabled() const noexcept { return !token_.empty(); }

 private:
  // nullopt when `request` may use the admin routes, else its refusal: 404
  // when they are off, 401 when the token is missing or wrong.
  std::optional<http::Response> Admit(const http::Request& request) const;
  http::Response ReloadAnswer();
  http::Response Pipeline();
  http::Response Journal(std::string_view query);
  // Replay (JournalStore::Requeue) or, with `drop`, JournalStore::Drop.
  http::Response JournalAct(std::string_view query, bool drop);

  engine::PipelineHolder& holder_;
  const std::filesystem::path config_file_;
  const std::string token_;
  observability::Registry& metrics_;
};

// The report as the JSON the reload route answers.
std::string ReloadReportJson(const engine::ReloadReport& report);

// Compares two strings in a time that depends on their lengths only.
bool ConstantTimeEquals(std::string_view a, std::string_view b) noexcept;

}  // namespace stowage::api
