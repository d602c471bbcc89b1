#include "api/admin_api.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <exception>

#include "api/api_error.h"

namespace stowage::api {
namespace {

namespace json = boost::json;

http::Response Json(int status, const json::value& value) {
  http::Response response;
  response.status = status;
  response.body = json::serialize(value);
  return response;
}

json::array Names(const std::vector<std::string>& names) {
  json::array out;
  for (const auto& name : names) out.emplace_back(name);
  return out;
}

http::Response Unauthorized(std::string message) {
  http::Response response = ErrorResponse(ApiError{401, "unauthorized", std::move(message)});
  response.headers.emplace_back("WWW-Authenticate", "Bearer");
  return response;
}

}  // namespace

bool ConstantTimeEquals(std::string_view a, std::string_view b) noexcept {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

std::string ReloadReportJson(const engine::ReloadReport& report) {
  json::object out;
  out["status"] = report.ok ? "reloaded" : "refused";
  out["generation"] = report.generation;
  if (report.ok) {
    out["added"] = Names(report.added);
    out["removed"] = Names(report.removed);
    out["enabled"] = Names(report.enabled);
    out["disabled"] = Names(report.disabled);
    out["reconfigured"] = Names(report.reconfigured);
    out["kept"] = Names(report.kept);
    out["needs_restart"] = Names(report.needs_restart);
    out["took_ms"] = report.took.count();
  } else {
    out["errors"] = Names(report.errors);
  }
  out["warnings"] = Names(report.warnings);
  return json::serialize(out);
}

AdminApi::AdminApi(engine::PipelineHolder& holder, std::filesystem::path config_file, std::string token,
                   observability::Registry& metrics)
    : holder_(holder), config_file_(std::move(config_file)), token_(std::move(token)), metrics_(metrics) {
  metrics_
      .gauge("stowage_pipeline_generation",
             "Generation of the pipeline in force (1 at start, +1 per reload).")
      .Set(static_cast<double>(holder_.generation()));
  for (const char* result : {"ok", "refused"})
    metrics_.counter("stowage_reloads_total", "Reloads of pipeline.toml by result.", {{"result", result}});
}

engine::ReloadReport AdminApi::Reload() noexcept {
  engine::ReloadReport report;
  try {
    report = holder_.Reload(config_file_);
  } catch (const std::exception& e) {
    report.ok = false;
    report.generation = holder_.generation();
    report.errors = {config_file_.string() + ": the reload failed unexpectedly: " + e.what() +
                     "; the running pipeline keeps serving, retry the reload"};
  }
  try {
    metrics_
        .counter("stowage_reloads_total", "Reloads of pipeline.toml by result.",
                 {{"result", report.ok ? "ok" : "refused"}})
        .Add();
    metrics_
        .gauge("stowage_pipeline_generation",
               "Generation of the pipeline in force (1 at start, +1 per reload).")
        .Set(static_cast<double>(holder_.generation()));
    for (const auto& warning : report.warnings) spdlog::warn("{}", warning);
    if (report.ok)
      spdlog::info("{}", report.Summary());
    else
      spdlog::error("{}", report.Summary());
    // A reload is rare and operators watch for its line: write it out now.
    spdlog::default_logger()->flush();
  } catch (...) {
  }
  return report;
}

http::Response AdminApi::Handle(const http::Request& request) noexcept {
  try {
    return Route(request);
  } catch (const std::exception& e) {
    try {
      return ErrorResponse(
          ApiError::Internal(std::string("internal error while answering the admin request: ") + e.what() +
                             "; see the stowaged log and retry"));
    } catch (...) {
    }
  } catch (...) {
  }
  http::Response response;
  response.status = 500;
  response.body =
      R"({"error":{"code":"internal","message":"internal error; see the stowaged log and retry"}})";
  return response;
}

http::Response AdminApi::Route(const http::Request& request) {
  const std::string path = request.target.substr(0, request.target.find('?'));
  if (token_.empty()) {
    return ErrorResponse(ApiError::NotFound(
        "no route for " + request.method + " " + path +
        "; the admin routes are off: set the environment variable named by [server] admin_token_env "
        "(default STOWAGE_ADMIN_TOKEN) to a token and restart stowaged"));
  }
  const std::string authorization = request.Header("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.empty())
    return Unauthorized("the admin routes need the header 'Authorization: Bearer <token>'");
  if (authorization.size() < kBearer.size() || authorization.compare(0, kBearer.size(), kBearer) != 0 ||
      !ConstantTimeEquals(std::string_view(authorization).substr(kBearer.size()), token_))
    return Unauthorized(
        "the admin token is wrong; send the token stowaged was started with as "
        "'Authorization: Bearer <token>'");

  if (path == "/v1/admin/reload") {
    if (request.method != "POST") {
      http::Response response = ErrorResponse(ApiError::MethodNotAllowed(
          "method " + request.method + " is not allowed on " + path + "; use POST"));
      response.headers.emplace_back("Allow", "POST");
      return response;
    }
    engine::ReloadReport report = Reload();
    http::Response response;
    response.status = report.ok ? 200 : 400;
    response.body = ReloadReportJson(report);
    response.log_note = report.ok ? "generation=" + std::to_string(report.generation) : "reload=refused";
    return response;
  }
  if (path == "/v1/admin/pipeline") {
    if (request.method != "GET") {
      http::Response response = ErrorResponse(ApiError::MethodNotAllowed(
          "method " + request.method + " is not allowed on " + path + "; use GET"));
      response.headers.emplace_back("Allow", "GET");
      return response;
    }
    return Pipeline();
  }
  return ErrorResponse(
      ApiError::NotFound("no route for " + request.method + " " + path +
                         "; the admin routes are POST /v1/admin/reload and GET /v1/admin/pipeline"));
}

http::Response AdminApi::Pipeline() {
  std::shared_ptr<engine::Pipeline> pipeline = holder_.current();
  std::vector<engine::StageHealth> health = pipeline->Health(kHealthTimeout);
  json::array stages;
  for (std::size_t i = 0; i < pipeline->stages().size(); ++i) {
    const engine::StageInstance& s = *pipeline->stages()[i];
    json::object stage;
    stage["name"] = s.name();
    stage["policy"] = config::PolicyName(s.settings.policy);
    stage["enabled"] = s.settings.enabled;
    stage["plugin"] = s.plugin ? s.plugin->path().string() : s.settings.plugin;
    if (s.plugin)
      stage["plugin_version"] = std::string(s.plugin->info().version);
    else
      stage["plugin_version"] = nullptr;
    stage["target"] = s.target;
    stage["timeout_ms"] = s.settings.timeout.count();
    if (!s.stage) {
      stage["health"] = "disabled";
    } else if (health[i].status.ok()) {
      stage["health"] = "healthy";
    } else {
      stage["health"] = "unhealthy";
      stage["health_error"] = health[i].status.ToString();
    }
    if (s.breaker)
      stage["circuit"] = engine::CircuitStateName(s.breaker->state());
    else
      stage["circuit"] = nullptr;
    stages.push_back(std::move(stage));
  }
  json::object out;
  out["generation"] = pipeline->generation();
  out["config"] = config_file_.string();
  out["stages"] = std::move(stages);
  return Json(200, out);
}

}  // namespace stowage::api
