// ChatService: what the guest chat API needs from the storage pipeline. The
// server uses PipelineChatService; tests of the API may use a small fake.
#pragma once

#include <string>
#include <vector>

#include "engine/pipeline.h"
#include "engine/pipeline_holder.h"
#include "observability/metrics.h"
#include "stowage/message.h"

namespace stowage::api {

// Every call blocks until the pipeline is done and may be made from several
// threads at once. Never throws for a storage failure: that is in the outcome.
class ChatService {
 public:
  virtual ~ChatService() = default;
  // With `claim`, the Idempotency-Key is recorded with the message, or the
  // outcome carries the answer recorded for it (engine::WriteOutcome::claim).
  virtual engine::WriteOutcome Write(const std::string& guest_id, const stowage::Message& message,
                                     const engine::IdempotencyClaim* claim) = 0;
  // The page of the guest's history `range` asks for (engine::Pipeline::Read).
  virtual engine::ReadOutcome Read(const std::string& guest_id, const stowage::ReadRange& range) = 0;
  virtual engine::EraseOutcome Erase(const std::string& guest_id) = 0;
  virtual engine::SearchOutcome Search(const std::string& guest_id, const std::string& query,
                                       std::size_t k) = 0;
};

// The counters PipelineChatService keeps; each may be null.
struct ChatServiceCounters {
  // Answers in which some stage failed or was skipped without failing them.
  observability::Counter* degraded = nullptr;
  // POSTs whose COMMIT's answer was lost (503 outcome_unknown).
  observability::Counter* outcome_unknown = nullptr;
};

// The pipeline in force in a PipelineHolder. Each call takes the current
// generation once and finishes on it, so a reload never changes the pipeline
// under a request. `holder` and the counters must outlive this.
class PipelineChatService final : public ChatService {
 public:
  explicit PipelineChatService(engine::PipelineHolder& holder, ChatServiceCounters counters = {})
      : holder_(holder), counters_(counters) {}

  engine::WriteOutcome Write(const std::string& guest_id, const stowage::Message& message,
                             const engine::IdempotencyClaim* claim) override {
    auto outcome = holder_.current()->Write(guest_id, message, claim);
    CountDegraded(outcome.degraded);
    if (counters_.outcome_unknown && outcome.outcome_unknown) counters_.outcome_unknown->Add();
    return outcome;
  }
  engine::ReadOutcome Read(const std::string& guest_id, const stowage::ReadRange& range) override {
    auto outcome = holder_.current()->Read(guest_id, range);
    CountDegraded(outcome.degraded);
    return outcome;
  }
  engine::EraseOutcome Erase(const std::string& guest_id) override {
    auto outcome = holder_.current()->Erase(guest_id);
    CountDegraded(outcome.degraded);
    return outcome;
  }
  engine::SearchOutcome Search(const std::string& guest_id, const std::string& query,
                               std::size_t k) override {
    return holder_.current()->Search(guest_id, query, k);
  }

 private:
  void CountDegraded(const std::vector<std::string>& degraded) {
    if (counters_.degraded && !degraded.empty()) counters_.degraded->Add();
  }

  engine::PipelineHolder& holder_;
  ChatServiceCounters counters_;
};

}  // namespace stowage::api
