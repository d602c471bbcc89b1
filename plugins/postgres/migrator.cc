// ApplyMigrations (declared in migrations.h): the part every component shares.
#include <soci/soci.h>

#include <set>
#include <string>

#include "migrations.h"

namespace stowage::postgres {

std::vector<int> ApplyMigrations(soci::session& sql, std::string_view component,
                                 std::span<const Migration> migrations) {
  const std::string name(component);
  soci::transaction tx(sql);
  // Serialises migrating servers; released when the transaction ends.
  long long key = kMigrationLockKey;
  sql << "SELECT pg_advisory_xact_lock(:key)", soci::use(key, "key");
  sql << "CREATE TABLE IF NOT EXISTS stowage_schema_migrations ("
         " component text NOT NULL,"
         " version integer NOT NULL,"
         " applied_at timestamptz NOT NULL DEFAULT now(),"
         " PRIMARY KEY (component, version))";

  std::set<int> applied;
  soci::rowset<int> rows =
      (sql.prepare << "SELECT version FROM stowage_schema_migrations WHERE component = :component",
       soci::use(name, "component"));
  for (int version : rows) applied.insert(version);

  std::vector<int> now_applied;
  for (const Migration& migration : migrations) {
    if (applied.count(migration.version)) continue;
    sql << std::string(migration.sql);
    int version = migration.version;
    sql << "INSERT INTO stowage_schema_migrations (component, version) VALUES (:component, :version)",
        soci::use(name, "component"), soci::use(version, "version");
    now_applied.push_back(version);
  }
  tx.commit();
  return now_applied;
}

}  // namespace stowage::postgres
