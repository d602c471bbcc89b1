#include "stores.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

namespace stowage::testing {

RedisProbe::RedisProbe(const std::string& url) {
  // redis://host:port/db
  std::string rest = url.substr(url.find("://") + 3);
  std::string host = rest.substr(0, rest.find(':'));
  int port = std::stoi(rest.substr(rest.find(':') + 1));
  int db = rest.find('/') == std::string::npos ? 0 : std::stoi(rest.substr(rest.find('/') + 1));
  context_ = redisConnect(host.c_str(), port);
  if (context_ == nullptr || context_->err) {
    ADD_FAILURE() << "cannot connect to Redis at " << url;
    return;
  }
  redisReply* reply = static_cast<redisReply*>(redisCommand(context_, "SELECT %d", db));
  if (reply) freeReplyObject(reply);
}

RedisProbe::~RedisProbe() {
  if (context_) redisFree(context_);
}

std::optional<std::string> RedisProbe::Get(const std::string& key) {
  auto* reply = static_cast<redisReply*>(redisCommand(context_, "GET %b", key.data(), key.size()));
  std::optional<std::string> value;
  if (reply == nullptr) {
    ADD_FAILURE() << "Redis GET " << key << " failed";
    return value;
  }
  if (reply->type == REDIS_REPLY_STRING) value = std::string(reply->str, reply->len);
  freeReplyObject(reply);
  return value;
}

long long RedisProbe::Ttl(const std::string& key) {
  auto* reply = static_cast<redisReply*>(redisCommand(context_, "TTL %b", key.data(), key.size()));
  long long ttl = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -3;
  if (reply) freeReplyObject(reply);
  return ttl;
}

void RedisProbe::Expire(const std::string& key, int seconds) {
  auto* reply = static_cast<redisReply*>(redisCommand(context_, "EXPIRE %b %d", key.data(), key.size(), seconds));
  if (reply) freeReplyObject(reply);
}

void RedisProbe::Del(const std::string& key) {
  auto* reply = static_cast<redisReply*>(redisCommand(context_, "DEL %b", key.data(), key.size()));
  if (reply) freeReplyObject(reply);
}

PostgresProbe::PostgresProbe(const std::string& url) {
  conn_ = PQconnectdb(url.c_str());
  if (PQstatus(conn_) != CONNECTION_OK) ADD_FAILURE() << "cannot connect to PostgreSQL: " << PQerrorMessage(conn_);
}

PostgresProbe::~PostgresProbe() { PQfinish(conn_); }

std::vector<std::vector<std::string>> PostgresProbe::Query(const std::string& sql, const std::string& param) {
  const char* values[] = {param.c_str()};
  PGresult* result = PQexecParams(conn_, sql.c_str(), 1, nullptr, values, nullptr, nullptr, 0);
  std::vector<std::vector<std::string>> rows;
  if (PQresultStatus(result) != PGRES_TUPLES_OK) {
    ADD_FAILURE() << "query failed: " << sql << ": " << PQerrorMessage(conn_);
  } else {
    for (int r = 0; r < PQntuples(result); ++r) {
      std::vector<std::string> row;
      for (int c = 0; c < PQnfields(result); ++c) row.emplace_back(PQgetvalue(result, r, c));
      rows.push_back(std::move(row));
    }
  }
  PQclear(result);
  return rows;
}

void PostgresProbe::Exec(const std::string& sql) {
  PGresult* result = PQexec(conn_, sql.c_str());
  if (PQresultStatus(result) != PGRES_COMMAND_OK && PQresultStatus(result) != PGRES_TUPLES_OK)
    ADD_FAILURE() << "statement failed: " << sql << ": " << PQerrorMessage(conn_);
  PQclear(result);
}

std::string PostgresProbe::Scalar(const std::string& sql, const std::string& param) {
  auto rows = Query(sql, param);
  return rows.empty() || rows[0].empty() ? std::string() : rows[0][0];
}

}  // namespace stowage::testing
