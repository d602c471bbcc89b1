// Versioned schema migrations: how a stage that keeps tables in a SQL
// database creates and evolves them.
//
// A stage owns an ordered list of migrations under a component name (its
// plugin name). It applies them from its constructor, through the database
// the host gives it:
//
//   const std::vector<stowage::SqlMigration>& MyMigrations() {
//     static const std::vector<stowage::SqlMigration> migrations = {
//         {1, "create my_table", "CREATE TABLE my_table (id bigserial PRIMARY KEY, body text NOT NULL)"},
//         {2, "index my_table by body", "CREATE INDEX my_table_body ON my_table (body)"},
//     };
//     return migrations;
//   }
//
//   MyStage::MyStage(const stowage::StageConfig& config, stowage::StageEnvironment& env) {
//     stowage::Status status = env.database->with_session(
//         stowage::Deadline::After(std::chrono::seconds(30)),
//         [](stowage::SqlSession& sql) { return stowage::ApplyMigrations(sql, "my_stage", MyMigrations());
//         });
//     ...  // kUnavailable: the database is down; log a warning and apply them before the first use
//   }
//
// Applied versions are recorded in stowage_schema_migrations (component,
// version, applied_at), so applying the list again does nothing, and every
// server that starts at the same time may call it: they take one advisory
// lock in turn. A migration, once released, is never edited: a change is a
// new migration appended to the list with the next version.
#pragma once

#include <atomic>
#include <cctype>
#include <charconv>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "stowage/logger.h"
#include "stowage/sql.h"
#include "stowage/status.h"

namespace stowage {

struct SqlMigration {
  int version;              // 1, 2, 3, ... strictly increasing along the list
  std::string description;  // what it does, for messages
  // One or more SQL statements separated by ';', without parameters. They
  // run one by one in the migration's transaction. Quotes ('...', "...",
  // $tag$...$tag$) and comments (--, /* */) may hold ';'.
  std::string sql;
};

// The pg_advisory_xact_lock key every stowage component takes while it
// migrates ("stowage\0" as a 64-bit integer).
inline constexpr long long kSqlMigrationLockKey = 0x73746f7761676500LL;

namespace internal {

// Calls `visit(statement)` for each statement of `sql`, in order: the text
// between the ';' that end statements, leaving the ';' inside quotes
// ('...', E'...', "..."), dollar quotes ($tag$...$tag$) and comments (--,
// nested /* */). Pieces holding only blanks and comments are skipped; the
// others are passed as views of `sql`, without their ';'. Allocates nothing.
template <typename Visit>
void ForEachSqlStatement(std::string_view sql, Visit&& visit) {
  auto is_ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  std::size_t start = 0;    // where the current statement begins
  bool meaningful = false;  // it holds more than blanks and comments
  std::size_t i = 0;
  const std::size_t n = sql.size();
  while (i < n) {
    char c = sql[i];
    if (c == ';') {
      if (meaningful) visit(sql.substr(start, i - start));
      meaningful = false;
      start = ++i;
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      std::size_t end = sql.find('\n', i);
      i = end == std::string_view::npos ? n : end;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      // Block comments nest in PostgreSQL.
      int depth = 0;
      while (i < n) {
        if (sql[i] == '/' && i + 1 < n && sql[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (sql[i] == '*' && i + 1 < n && sql[i + 1] == '/') {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
    } else if (c == '\'' || c == '"') {
      // E'...' strings escape with a backslash; all quotes double themselves.
      bool backslash =
          c == '\'' && i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') && (i < 2 || !is_ident(sql[i - 2]));
      ++i;
      while (i < n) {
        if (backslash && sql[i] == '\\') {
          i += 2;
        } else if (sql[i] == c) {
          if (i + 1 < n && sql[i + 1] == c) {
            i += 2;
          } else {
            ++i;
            break;
          }
        } else {
          ++i;
        }
      }
      i = i > n ? n : i;
      meaningful = true;
    } else if (c == '$' && (i == 0 || !is_ident(sql[i - 1]))) {
      // $tag$ ... $tag$, where the tag is empty or an identifier not
      // starting with a digit ($1 is a parameter, not a quote).
      std::size_t j = i + 1;
      while (j < n && is_ident(sql[j]) && !(j == i + 1 && std::isdigit(static_cast<unsigned char>(sql[j]))))
        ++j;
      if (j < n && sql[j] == '$') {
        std::string_view tag = sql.substr(i, j - i + 1);
        std::size_t close = sql.find(tag, j + 1);
        i = close == std::string_view::npos ? n : close + tag.size();
      } else {
        ++i;
      }
      meaningful = true;
    } else {
      if (!std::isspace(static_cast<unsigned char>(c))) meaningful = true;
      ++i;
    }
  }
  if (meaningful) visit(sql.substr(start));
}

// Splits `sql` at the ';' that end its statements (ForEachSqlStatement).
// Pieces holding only blanks and comments are dropped; the others are
// returned without their ';'.
inline std::vector<std::string> SplitSqlStatements(std::string_view sql) {
  std::vector<std::string> statements;
  ForEachSqlStatement(sql, [&](std::string_view statement) { statements.emplace_back(statement); });
  return statements;
}

}  // namespace internal

// Applies the migrations of `component` that stowage_schema_migrations does
// not record yet, in list order, in one transaction: BEGIN, take
// pg_advisory_xact_lock(kSqlMigrationLockKey) (servers migrating at the same
// time go one after the other), create stowage_schema_migrations if absent,
// run each missing migration and record its version, COMMIT. Versions
// recorded but absent from the list (a newer release migrated this database)
// are left alone.
//
// `sql` must be in autocommit (as Database::with_session gives it). Appends
// the versions applied now to `applied` (nothing when the schema was
// current). On any failure the transaction is rolled back, so the database
// keeps the versions it had, and the Status keeps the code of the failure
// (kUnavailable when the database cannot be reached) with a message naming
// the component, the version and the reason. A list whose versions do not
// strictly increase from 1 or more is refused (kInternal) before anything
// runs.
inline Status ApplyMigrations(SqlSession& sql, std::string_view component,
                              const std::vector<SqlMigration>& migrations,
                              std::vector<int>* applied = nullptr) {
  const std::string name(component);
  const std::string what = "migrating the schema of '" + name + "' in database '" + sql.database() + "'";
  int previous = 0;
  for (const SqlMigration& migration : migrations) {
    if (migration.version <= previous) {
      return Status::Internal(what + ": migration versions must strictly increase from 1, but version " +
                              std::to_string(migration.version) + " (" + migration.description +
                              ") follows " + std::to_string(previous) +
                              "; fix the component's migration list");
    }
    previous = migration.version;
  }

  // Wraps a failure with where it happened, keeping its code.
  auto failed = [&](const Status& status, const std::string& step) {
    std::string message = what + ": " + step + " failed: " + status.message();
    switch (status.code()) {
      case StatusCode::kUnavailable:
        message += "; check that the database is reachable, then start again";
        break;
      case StatusCode::kDeadlineExceeded:
        message += "; another server may hold the migration lock, or the migration is slow: start again";
        break;
      default:
        message += "; nothing of this run was kept (its transaction was rolled back)";
        break;
    }
    switch (status.code()) {
      case StatusCode::kUnavailable:
        return Status::Unavailable(message);
      case StatusCode::kDeadlineExceeded:
        return Status::DeadlineExceeded(message);
      case StatusCode::kInvalidArgument:
        return Status::InvalidArgument(message);
      case StatusCode::kConflict:
        return Status::Conflict(message);
      case StatusCode::kRejected:
        return Status::Rejected(message);
      case StatusCode::kNotFound:
        return Status::NotFound(message);
      default:
        return Status::Internal(message);
    }
  };
  auto rollback = [&] { sql.execute("ROLLBACK", {}); };

  Status status = sql.execute("BEGIN", {});
  if (!status.ok()) return failed(status, "BEGIN");
  status = sql.execute("SELECT pg_advisory_xact_lock(" + std::to_string(kSqlMigrationLockKey) + ")", {});
  if (!status.ok()) {
    rollback();
    return failed(status, "taking the migration lock");
  }
  status = sql.execute(
      "CREATE TABLE IF NOT EXISTS stowage_schema_migrations ("
      " component text NOT NULL,"
      " version integer NOT NULL,"
      " applied_at timestamptz NOT NULL DEFAULT now(),"
      " PRIMARY KEY (component, version))",
      {});
  if (!status.ok()) {
    rollback();
    return failed(status, "creating stowage_schema_migrations");
  }
  SqlResult recorded;
  status =
      sql.execute("SELECT version FROM stowage_schema_migrations WHERE component = $1", {name}, &recorded);
  if (!status.ok()) {
    rollback();
    return failed(status, "reading stowage_schema_migrations");
  }
  std::set<int> done;
  for (std::size_t row = 0; row < recorded.rows.size(); ++row) {
    SqlValue value = recorded.value(row, 0);
    int version = 0;
    if (value && std::from_chars(value->data(), value->data() + value->size(), version).ec == std::errc()) {
      done.insert(version);
    }
  }

  std::vector<int> now_applied;
  for (const SqlMigration& migration : migrations) {
    if (done.count(migration.version)) continue;
    const std::string step =
        "migration " + std::to_string(migration.version) + " (" + migration.description + ")";
    for (const std::string& statement : internal::SplitSqlStatements(migration.sql)) {
      status = sql.execute(statement, {});
      if (!status.ok()) {
        rollback();
        return failed(status, step);
      }
    }
    status = sql.execute("INSERT INTO stowage_schema_migrations (component, version) VALUES ($1, $2)",
                         {name, std::to_string(migration.version)});
    if (!status.ok()) {
      rollback();
      return failed(status, "recording " + step);
    }
    now_applied.push_back(migration.version);
  }
  status = sql.execute("COMMIT", {});
  if (!status.ok()) {
    rollback();
    return failed(status, "COMMIT");
  }
  if (applied != nullptr) applied->insert(applied->end(), now_applied.begin(), now_applied.end());
  return Status::Ok();
}

// Brings a component's tables up to date once: at construction when the
// database answers, otherwise before the first use. A stage holds one:
//
//   schema_(*env.database, "embeddings", EmbeddingMigrations(), env.log)
//   ...
//   Status ready = schema_.ensure(ctx.deadline);  // at the start of admit(), say
//
// Thread-safe. `database`, `migrations` and `log` must outlive the gate.
class SchemaGate {
 public:
  SchemaGate(Database& database, std::string component, const std::vector<SqlMigration>& migrations, Logger& log)
      : database_(database), component_(std::move(component)), migrations_(migrations), log_(log) {}

  // Ok once the migrations are applied (on a session of its own, in
  // autocommit); afterwards returns at once. A failure is returned as is
  // (kUnavailable when the database cannot be reached), and the next call
  // tries again.
  Status ensure(Deadline deadline) {
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

  bool ready() const noexcept { return ready_.load(); }

 private:
  Database& database_;
  const std::string component_;
  const std::vector<SqlMigration>& migrations_;
  Logger& log_;
  std::mutex mu_;
  std::atomic<bool> ready_{false};
};

}  // namespace stowage
