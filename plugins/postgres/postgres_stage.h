// PostgresStage: the PostgreSQL storage target. Keeps each guest's chat in
// conversation_cache (one row per guest) and message_cache (one row per
// message, sequence 0..n-1 without gaps).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "connection_pool.h"
#include "stowage/sdk.h"

namespace stowage::postgres {

class PostgresStage final : public stowage::Stage {
 public:
  // url (required), pool_size, connect_timeout_ms, statement_timeout_ms.
  static stowage::ConfigSchema config_schema();

  // Parses the config and brings the schema up to date. Throws
  // std::invalid_argument for a bad config and std::runtime_error when the
  // server is reachable but the schema cannot be created. When the server
  // cannot be reached, construction succeeds and the schema is brought up to
  // date by the first call that reaches it. `log` must outlive the stage.
  PostgresStage(const stowage::StageConfig& config, stowage::Logger& log);

  std::string target() const override { return "postgresql"; }
  stowage::Status write(stowage::WriteContext& ctx) override;
  stowage::Status compensate(stowage::WriteContext& ctx) override;
  stowage::ReadResult read(stowage::GuestContext& ctx) override;
  stowage::EraseResult erase(stowage::GuestContext& ctx) override;
  stowage::Status health(stowage::Deadline deadline) override;

  // Whether the schema is known to be current.
  bool schema_ready() const { return schema_ready_.load(); }

 private:
  // Runs `work` on a pooled connection after making sure the schema is
  // current. Turns every failure into a Status: kUnavailable when the server
  // cannot be reached (the connection is then replaced), kDeadlineExceeded
  // when statement_timeout_ms cancelled a statement, kInvalidArgument when
  // PostgreSQL refused a value (e.g. a timestamp it cannot parse), kInternal
  // otherwise. No message holds the statement's parameter values.
  // `what` completes "could not ..." in messages.
  stowage::Status Run(stowage::Deadline deadline, const std::string& what,
                      const std::function<void(Connection&)>& work);
  // Applies pending migrations once per stage. Throws soci::soci_error.
  void EnsureSchema(Connection& conn);

  stowage::Logger& log_;
  const std::chrono::milliseconds statement_timeout_;
  std::unique_ptr<ConnectionPool> pool_;
  std::mutex schema_mu_;
  std::atomic<bool> schema_ready_{false};
};

}  // namespace stowage::postgres
