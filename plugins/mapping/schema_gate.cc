#include "schema_gate.h"

#include <utility>

namespace stowage::mapping {

SchemaGate::SchemaGate(Database& database, std::string component, const std::vector<SqlMigration>& migrations,
                       Logger& log)
    : database_(database), component_(std::move(component)), migrations_(migrations), log_(log) {}

Status SchemaGate::ensure(Deadline deadline) {
  if (ready_.load()) return Status::Ok();
  std::lock_guard lock(mu_);
  if (ready_.load()) return Status::Ok();
  std::vector<int> applied;
  Status status = database_.with_session(
      deadline, [&](SqlSession& sql) { return ApplyMigrations(sql, component_, migrations_, &applied); });
  if (!status.ok()) return status;
  std::string versions;
  for (int v : applied) versions += (versions.empty() ? "" : ", ") + std::to_string(v);
  log_.info("schema of '" + component_ + "' in database '" + database_.name() + "' is current" +
            (versions.empty() ? "" : " (applied migration(s) " + versions + ")"));
  ready_.store(true);
  return Status::Ok();
}

}  // namespace stowage::mapping
