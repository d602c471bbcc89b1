// ChatService: what the guest chat API needs from the storage pipeline. The
// server uses PipelineChatService; tests of the API may use a small fake.
#pragma once

#include <string>

#include "engine/pipeline.h"
#include "stowage/message.h"

namespace stowage::api {

// Every call blocks until the pipeline is done and may be made from several
// threads at once. Never throws for a storage failure: that is in the outcome.
class ChatService {
 public:
  virtual ~ChatService() = default;
  virtual engine::WriteOutcome Write(const std::string& guest_id, const stowage::Message& message) = 0;
  virtual engine::ReadOutcome Read(const std::string& guest_id) = 0;
  virtual engine::EraseOutcome Erase(const std::string& guest_id) = 0;
  virtual engine::SearchOutcome Search(const std::string& guest_id, const std::string& query, std::size_t k) = 0;
};

// The pipeline built from pipeline.toml. `pipeline` must outlive this.
class PipelineChatService final : public ChatService {
 public:
  explicit PipelineChatService(engine::Pipeline& pipeline) : pipeline_(pipeline) {}

  engine::WriteOutcome Write(const std::string& guest_id, const stowage::Message& message) override {
    return pipeline_.Write(guest_id, message);
  }
  engine::ReadOutcome Read(const std::string& guest_id) override { return pipeline_.Read(guest_id); }
  engine::EraseOutcome Erase(const std::string& guest_id) override { return pipeline_.Erase(guest_id); }
  engine::SearchOutcome Search(const std::string& guest_id, const std::string& query, std::size_t k) override {
    return pipeline_.Search(guest_id, query, k);
  }

 private:
  engine::Pipeline& pipeline_;
};

}  // namespace stowage::api
