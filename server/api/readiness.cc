#include "api/readiness.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "api/admin_api.h"

namespace stowage::api {

namespace json = boost::json;

const char* ReasonOf(const stowage::Status& status) {
  switch (status.code()) {
    case stowage::StatusCode::kUnavailable:
      return "unreachable";
    case stowage::StatusCode::kDeadlineExceeded:
      return "timeout";
    case stowage::StatusCode::kRejected:
      return "refused";
    default:
      return "error";
  }
}

Readiness::Readiness(engine::PipelineHolder& holder, std::chrono::milliseconds max_age)
    : holder_(holder), max_age_(max_age) {}

std::uint64_t Readiness::checks() const {
  std::lock_guard lock(mu_);
  return checks_;
}

http::Response Readiness::Check() {
  const std::uint64_t generation = holder_.current()->generation();
  std::shared_ptr<const Answer> answer;
  {
    std::unique_lock lock(mu_);
    while (true) {
      if (last_ && last_->generation == generation &&
          std::chrono::steady_clock::now() - last_->at < max_age_) {
        answer = last_;
        break;
      }
      if (!checking_) {
        checking_ = true;
        ++checks_;
        break;
      }
      // Another caller is checking: share its answer.
      checked_.wait(lock, [this] { return !checking_; });
      if (last_) {
        answer = last_;
        break;
      }
    }
  }
  if (!answer) {
    std::shared_ptr<const Answer> fresh;
    try {
      fresh = std::make_shared<const Answer>(Run());
    } catch (...) {
      std::lock_guard lock(mu_);
      checking_ = false;
      checked_.notify_all();
      throw;
    }
    std::lock_guard lock(mu_);
    last_ = fresh;
    checking_ = false;
    checked_.notify_all();
    answer = std::move(fresh);
  }
  http::Response response;
  response.status = answer->status;
  response.body = answer->body;
  response.log_note = answer->log_note;
  return response;
}

Readiness::Answer Readiness::Run() {
  std::shared_ptr<engine::Pipeline> pipeline = holder_.current();
  Answer answer;
  answer.generation = pipeline->generation();
  json::object stages;
  json::array unhealthy;
  std::string names;
  for (const auto& health : pipeline->Health(kHealthTimeout)) {
    if (!health.enabled) continue;
    json::object stage;
    const std::string state = health.status.ok() ? "ok" : ReasonOf(health.status);
    stage["status"] = health.status.ok() ? "ok" : "unhealthy";
    if (!health.status.ok()) stage["reason"] = state;
    stages[health.name] = std::move(stage);
    // The detail goes to the log, once per change of the stage's state.
    auto [at, added] = logged_.try_emplace(health.name, "ok");
    if (at->second != state) {
      if (health.status.ok()) {
        spdlog::info("readiness: stage '{}' is healthy again", health.name);
      } else {
        spdlog::warn("readiness: stage '{}' ({}) is unhealthy ({}): {}", health.name,
                     health.required ? "required" : "best_effort", state, health.status.ToString());
      }
      at->second = state;
    }
    if (!health.required || health.status.ok()) continue;
    json::object entry;
    entry["stage"] = health.name;
    entry["reason"] = state;
    unhealthy.push_back(std::move(entry));
    names += (names.empty() ? "" : ",") + health.name;
  }
  json::object out;
  out["status"] = unhealthy.empty() ? "ready" : "unready";
  if (!unhealthy.empty()) out["unhealthy"] = std::move(unhealthy);
  out["stages"] = std::move(stages);
  answer.status = names.empty() ? 200 : 503;
  answer.body = json::serialize(out);
  if (!names.empty()) answer.log_note = "unhealthy=" + names;
  answer.at = std::chrono::steady_clock::now();
  return answer;
}

}  // namespace stowage::api
