// Direct looks into Redis and PostgreSQL, as an operator would with
// redis-cli and psql: what stowage stored, read without stowage.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

struct redisContext;
struct pg_conn;

namespace stowage::testing {

// A plain hiredis connection to `url` (redis://host:port/db). Not thread-safe.
class RedisProbe {
 public:
  explicit RedisProbe(const std::string& url);
  ~RedisProbe();
  // GET key; nullopt when the key does not exist.
  std::optional<std::string> Get(const std::string& key);
  // TTL key in seconds (-2: no key, -1: no expiry).
  long long Ttl(const std::string& key);
  void Expire(const std::string& key, int seconds);
  void Del(const std::string& key);

 private:
  redisContext* context_ = nullptr;
};

// A plain libpq connection to `url`. Not thread-safe.
class PostgresProbe {
 public:
  explicit PostgresProbe(const std::string& url);
  ~PostgresProbe();
  // The rows of `sql` with `$1` bound to `param`, each a vector of text
  // values ("" for NULL). Fails the test on an error.
  std::vector<std::vector<std::string>> Query(const std::string& sql, const std::string& param);
  std::string Scalar(const std::string& sql, const std::string& param);
  // Runs a statement without parameters (DDL, ...). Fails the test on an error.
  void Exec(const std::string& sql);

 private:
  pg_conn* conn_ = nullptr;
};

}  // namespace stowage::testing
