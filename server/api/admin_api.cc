#include "api/admin_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <exception>
#include <functional>
#include <iterator>
#include <map>
#include <optional>

#include "api/api_error.h"
#include "api/query_string.h"
#include "journal/journal_store.h"

namespace stowage::api {
namespace {

namespace json = boost::json;

http::Response Json(int status, const json::value& value) {
  return JsonResponse(status, json::serialize(value));
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

// {"stage",...} or, for a stage of the pipeline, {"enabled",...}.
json::object BacklogJson(const journal::Backlog& backlog, std::optional<bool> enabled = std::nullopt) {
  json::object out;
  if (enabled)
    out["enabled"] = *enabled;
  else
    out["stage"] = backlog.stage;
  out["pending"] = backlog.pending;
  out["parked"] = backlog.parked;
  out["oldest_pending_age_s"] = backlog.oldest_pending_age_s;
  return out;
}

void ReplaceAll(std::string& text, const std::string& what, const std::string& by) {
  if (what.empty()) return;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + by.size()))
    text.replace(at, what.size(), by);
}

// `text` without the host and port of `address` ("host:port/db"): an admin
// answer names a database by its [[database]] name only (the stowaged log
// has the address).
std::string WithoutAddress(std::string text, const std::string& address) {
  // libpq's "connection to server at "h" (1.2.3.4), port 5432 failed: ...".
  constexpr std::string_view kServer = "connection to server ";
  for (auto at = text.find(kServer); at != std::string::npos; at = text.find(kServer, at + 1)) {
    const auto failed = text.find(" failed", at);
    if (failed == std::string::npos) break;
    text.replace(at, failed - at, "connection to the server");
  }
  ReplaceAll(text, " at " + address, "");
  ReplaceAll(text, address, "(address)");
  const auto slash = address.find('/');
  const auto colon = address.rfind(':', slash);
  if (colon != std::string::npos && colon > 0) {
    std::string host = address.substr(0, colon);
    const std::string port =
        address.substr(colon + 1, slash == std::string::npos ? slash : slash - colon - 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    ReplaceAll(text, "\"" + host + "\"", "(host)");
    // A bare name only when it cannot be an ordinary word (an address, a domain name).
    if (host.find_first_of(".:") != std::string::npos) ReplaceAll(text, host, "(host)");
    if (!port.empty()) {
      ReplaceAll(text, "port " + port, "port (port)");
      ReplaceAll(text, ":" + port, "");
    }
  }
  return text;
}

// A journal database that failed `doing`: 503, naming the database by its
// name, never by its address.
ApiError JournalFailure(const journal::JournalStore& store, const stowage::Status& status,
                        const std::string& doing) {
  const std::string& name = store.database().name();
  spdlog::warn("admin journal route: {} in database '{}' failed: {}", doing, name, status.ToString());
  return {503, "journal_unavailable",
          doing + " in the journal of database '" + name +
              "' failed: " + WithoutAddress(status.ToString(), store.database().address()) +
              "; retry once database '" + name + "' answers (the stowaged log has the details)"};
}

bool ValidStageName(const std::string& name) {
  return !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// The entries a journal route's query string selects; `with_limit` for the
// list, which takes `limit`. An error names the parameter that is wrong.
std::optional<ApiError> ParseSelection(std::string_view query, bool with_limit, journal::Selection* out) {
  const char* known = with_limit ? "stage, id, parked and limit" : "stage, id and parked";
  auto values = ParseQueryString(query);
  if (!values) {
    return ApiError::InvalidField(
        std::string("the query string has a malformed %-escape; encode it as "
                    "application/x-www-form-urlencoded, e.g. ?stage=embeddings&parked=true"));
  }
  for (const auto& [name, value] : *values) {
    if (name == "stage") {
      if (!ValidStageName(value)) {
        return ApiError::InvalidField(
            "parameter 'stage' must be a stage name (1 to 128 letters, digits, _ "
            "and -); it is '" +
            ShownParameter(value) + "'");
      }
      out->stage = value;
    } else if (name == "id") {
      std::int64_t id = 0;
      if (!ParseWholeNumber(value, &id) || id < 1) {
        return ApiError::InvalidField("parameter 'id' must be an entry's id, a whole number from 1; it is '" +
                                      ShownParameter(value) + "'");
      }
      out->id = id;
    } else if (name == "parked") {
      if (value != "true" && value != "false") {
        return ApiError::InvalidField(
            "parameter 'parked' must be true (only parked entries) or false; it is '" + ShownParameter(value) + "'");
      }
      out->parked_only = value == "true";
    } else if (name == "limit" && with_limit) {
      std::size_t limit = 0;
      if (!ParseWholeNumber(value, &limit) || limit < 1 || limit > 1000) {
        return ApiError::InvalidField("parameter 'limit' must be a whole number from 1 to 1000; it is '" +
                                      ShownParameter(value) + "'");
      }
      out->limit = limit;
    } else {
      return ApiError::InvalidField("unknown parameter '" + ShownParameter(name) + "'; this route takes " + known);
    }
  }
  return std::nullopt;
}

// What a selection names, for the access log: "stage=x id=3 parked".
std::string SelectionNote(const journal::Selection& selection) {
  std::string note;
  if (!selection.stage.empty()) note += " stage=" + selection.stage;
  if (selection.id) note += " id=" + std::to_string(*selection.id);
  if (selection.parked_only) note += " parked";
  return note;
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
    json::array changed;
    for (const auto& change : report.plugin_changed) {
      changed.push_back(json::object{{"stage", change.stage},
                                     {"plugin", change.plugin.string()},
                                     {"plugin_sha256_before", change.sha256_before},
                                     {"plugin_sha256", change.sha256}});
    }
    out["plugin_changed"] = std::move(changed);
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

std::vector<Route> AdminApi::Routes() {
  // An admin route: the token, then the method, then `answer` with the query
  // string. The operator reads the answer, so an exception is named in it.
  auto route = [this](std::string pattern, std::string method,
                      std::function<http::Response(std::string_view query)> answer) {
    return Route{.pattern = std::move(pattern),
                 .methods = {std::move(method)},
                 .handler =
                     [answer = std::move(answer)](const http::Request& request, const PathParams&) {
                       try {
                         return answer(QueryOf(request.target));
                       } catch (const std::exception& e) {
                         return ErrorResponse(ApiError::Internal(
                             std::string("internal error while answering the admin request: ") + e.what() +
                             "; see the stowaged log and retry"));
                       }
                     },
                 .audience = Audience::kOperators,
                 .admit = [this](const http::Request& request) { return Admit(request); }};
  };
  return {
      route("/v1/admin/reload", "POST", [this](std::string_view) { return ReloadAnswer(); }),
      route("/v1/admin/pipeline", "GET", [this](std::string_view) { return Pipeline(); }),
      route("/v1/admin/journal", "GET", [this](std::string_view query) { return Journal(query); }),
      route("/v1/admin/journal/replay", "POST",
            [this](std::string_view query) { return JournalAct(query, false); }),
      route("/v1/admin/journal/drop", "POST",
            [this](std::string_view query) { return JournalAct(query, true); }),
  };
}

std::optional<http::Response> AdminApi::Admit(const http::Request& request) const {
  if (token_.empty()) {
    return ErrorResponse(ApiError::NotFound(
        "no route for " + request.method + " " + std::string(PathOf(request.target)) +
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
  return std::nullopt;
}

http::Response AdminApi::NoRoute(const http::Request& request) const {
  if (std::optional<http::Response> refused = Admit(request)) return std::move(*refused);
  return ErrorResponse(ApiError::NotFound(
      "no route for " + request.method + " " + std::string(PathOf(request.target)) +
      "; the admin routes are POST /v1/admin/reload, GET /v1/admin/pipeline, GET /v1/admin/journal, "
      "POST /v1/admin/journal/replay and POST /v1/admin/journal/drop"));
}

http::Response AdminApi::ReloadAnswer() {
  engine::ReloadReport report = Reload();
  http::Response response;
  response.status = report.ok ? 200 : 400;
  response.body = ReloadReportJson(report);
  response.log_note = report.ok ? "generation=" + std::to_string(report.generation) : "reload=refused";
  return response;
}

http::Response AdminApi::Pipeline() {
  std::shared_ptr<engine::Pipeline> pipeline = holder_.current();
  std::vector<engine::StageHealth> health = pipeline->Health(kHealthTimeout);
  // The replayer's last count; a stage without entries has none.
  std::map<std::string, journal::Backlog> backlogs;
  for (auto& backlog : pipeline->JournalBacklogs()) backlogs[backlog.stage] = std::move(backlog);
  json::array stages;
  for (std::size_t i = 0; i < pipeline->stages().size(); ++i) {
    const engine::StageInstance& s = *pipeline->stages()[i];
    json::object stage;
    stage["name"] = s.name();
    stage["policy"] = config::PolicyName(s.settings.policy);
    stage["enabled"] = s.settings.enabled;
    stage["plugin"] = s.plugin ? s.plugin->path().string() : s.settings.plugin;
    if (s.plugin) {
      stage["plugin_version"] = std::string(s.plugin->info().version);
      stage["plugin_sha256"] = s.plugin->sha256();  // of the file's content when it was loaded
    } else {
      stage["plugin_version"] = nullptr;
      stage["plugin_sha256"] = nullptr;
    }
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
    journal::Backlog counted;
    if (auto it = backlogs.find(s.name()); it != backlogs.end()) {
      counted = it->second;
      backlogs.erase(it);
    }
    stage["journal"] = BacklogJson(counted, s.journal != nullptr);
    stages.push_back(std::move(stage));
  }
  // Entries of stages no longer in the pipeline stay until they are dropped.
  json::array others;
  for (const auto& [name, backlog] : backlogs) others.push_back(BacklogJson(backlog));
  json::object out;
  out["generation"] = pipeline->generation();
  out["config"] = config_file_.string();
  out["stages"] = std::move(stages);
  out["journal_other_stages"] = std::move(others);
  return Json(200, out);
}

http::Response AdminApi::Journal(std::string_view query) {
  journal::Selection selection;
  if (auto error = ParseSelection(query, true, &selection)) return ErrorResponse(*error);
  std::shared_ptr<engine::Pipeline> pipeline = holder_.current();
  std::vector<journal::Entry> entries;
  std::map<std::string, journal::Backlog> backlogs;
  for (const auto& store : pipeline->journals()) {
    std::vector<journal::Entry> listed;
    stowage::Status listing = store->List(selection, stowage::Deadline::After(kJournalTimeout), &listed);
    if (!listing.ok()) return ErrorResponse(JournalFailure(*store, listing, "listing the entries"));
    std::move(listed.begin(), listed.end(), std::back_inserter(entries));
    std::vector<journal::Backlog> counted;
    stowage::Status counting = store->Backlogs(stowage::Deadline::After(kJournalTimeout), &counted);
    if (!counting.ok()) return ErrorResponse(JournalFailure(*store, counting, "counting the entries"));
    for (const auto& backlog : counted) {
      if (!selection.stage.empty() && backlog.stage != selection.stage) continue;
      journal::Backlog& sum = backlogs[backlog.stage];
      sum.stage = backlog.stage;
      sum.pending += backlog.pending;
      sum.parked += backlog.parked;
      sum.oldest_pending_age_s = std::max(sum.oldest_pending_age_s, backlog.oldest_pending_age_s);
    }
  }
  std::sort(entries.begin(), entries.end(), [](const journal::Entry& a, const journal::Entry& b) {
    return a.created_at != b.created_at ? a.created_at < b.created_at : a.id < b.id;
  });
  if (entries.size() > selection.limit) entries.resize(selection.limit);

  json::array listed;
  for (const auto& entry : entries) {
    json::object item;
    item["id"] = entry.id;
    item["stage"] = entry.stage;
    item["guest_id"] = entry.guest_id;
    item["role"] = entry.message.role;
    item["timestamp"] = entry.message.timestamp;
    // The content stays in the database: a guest's words are not for the operator's screen.
    item["content_bytes"] = entry.message.content.size();
    item["reason"] = entry.reason;
    item["attempts"] = entry.attempts;
    item["last_error"] = entry.last_error;
    item["parked"] = entry.parked;
    item["created_at"] = entry.created_at;
    item["next_attempt_at"] = entry.next_attempt_at;
    json::object attributes;
    for (const auto& [key, value] : entry.attributes.all()) attributes[key] = value;
    item["attributes"] = std::move(attributes);
    listed.push_back(std::move(item));
  }
  json::array backlog;
  for (const auto& [name, counted] : backlogs) backlog.push_back(BacklogJson(counted));
  json::object out;
  out["entries"] = std::move(listed);
  out["backlog"] = std::move(backlog);
  http::Response response = Json(200, out);
  response.log_note = "entries=" + std::to_string(entries.size());
  return response;
}

http::Response AdminApi::JournalAct(std::string_view query, bool drop) {
  journal::Selection selection;
  if (auto error = ParseSelection(query, false, &selection)) return ErrorResponse(*error);
  if (drop && selection.stage.empty() && !selection.id) {
    return ErrorResponse(ApiError::InvalidField(
        "name a stage or an id: dropping every entry of every stage is not done by accident; "
        "e.g. POST /v1/admin/journal/drop?stage=embeddings&parked=true"));
  }
  std::shared_ptr<engine::Pipeline> pipeline = holder_.current();
  std::uint64_t total = 0;
  for (const auto& store : pipeline->journals()) {
    std::uint64_t count = 0;
    const stowage::Deadline deadline = stowage::Deadline::After(kJournalTimeout);
    stowage::Status done =
        drop ? store->Drop(selection, deadline, &count) : store->Requeue(selection, deadline, &count);
    total += count;
    if (!done.ok()) {
      ApiError error = JournalFailure(*store, done, drop ? "dropping the entries" : "requeueing the entries");
      if (total > 0) {
        error.message += "; " + std::to_string(total) + " entries of other databases were " +
                         (drop ? "dropped" : "requeued") + " already";
      }
      return ErrorResponse(error);
    }
  }
  const char* field = drop ? "dropped" : "requeued";
  json::object out;
  out[field] = total;
  spdlog::info("admin: {} {} journal entries{}", field, total, SelectionNote(selection));
  http::Response response = Json(200, out);
  response.log_note = std::string(field) + "=" + std::to_string(total) + SelectionNote(selection);
  return response;
}

}  // namespace stowage::api
