// Readiness: the answer of GET /readyz, checked at most once per max_age
// whatever the request rate.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine/pipeline_holder.h"
#include "http/http_types.h"

namespace stowage::api {

class Readiness {
 public:
  // `holder` must outlive this.
  explicit Readiness(engine::PipelineHolder& holder,
                     std::chrono::milliseconds max_age = std::chrono::milliseconds(1000));

  // 200 {"status":"ready","stages":{...}} when every enabled required stage
  // is healthy, else 503 {"status":"unready","unhealthy":[{"stage","reason"}],
  // "stages":{...}}; "stages" gives each enabled stage's "status" (ok or
  // unhealthy) and, when unhealthy, a "reason" (ReasonOf). No address,
  // database or error text: a change of a stage's state is logged with the
  // detail, once. The pipeline's stages are asked (Pipeline::Health) at most
  // once per max_age and once per reload: callers meanwhile get the last
  // answer, and callers during a check wait for it and share it. Thread-safe.
  http::Response Check();

  // Health checks run so far (for tests and metrics).
  std::uint64_t checks() const;

 private:
  struct Answer {
    int status = 200;
    std::string body;
    std::string log_note;
    std::uint64_t generation = 0;
    std::chrono::steady_clock::time_point at;
  };

  Answer Run();

  engine::PipelineHolder& holder_;
  const std::chrono::milliseconds max_age_;
  mutable std::mutex mu_;
  std::condition_variable checked_;
  std::shared_ptr<const Answer> last_;  // guarded by mu_
  bool checking_ = false;               // guarded by mu_
  std::uint64_t checks_ = 0;            // guarded by mu_
  // What was last logged per stage: "ok" or its reason. Used by the checking thread only.
  std::map<std::string, std::string> logged_;
};

// The product-level class of a failed health check, for /readyz:
// "unreachable" (kUnavailable), "timeout" (kDeadlineExceeded), "refused"
// (kRejected), else "error".
const char* ReasonOf(const stowage::Status& status);

}  // namespace stowage::api
