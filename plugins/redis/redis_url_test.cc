// ParseRedisUrl: the url forms the stage accepts, and the refusals, which
// must name the url without its password.
#include "redis_url.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace stowage::redis {
namespace {

std::string RefusalOf(const std::string& url) {
  try {
    ParseRedisUrl(url);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(RedisUrlTest, HostPortAndDb) {
  RedisUrl url = ParseRedisUrl("redis://cache.internal:6380/3");
  EXPECT_EQ(url.kind, RedisUrl::Kind::kTcp);
  EXPECT_EQ(url.host, "cache.internal");
  EXPECT_EQ(url.port, 6380);
  EXPECT_EQ(url.db, 3);
  EXPECT_EQ(url.user, "");
  EXPECT_EQ(url.password, "");
  EXPECT_EQ(url.Address(), "cache.internal:6380");
}

TEST(RedisUrlTest, DefaultsPortAndDb) {
  RedisUrl url = ParseRedisUrl("redis://localhost");
  EXPECT_EQ(url.port, 6379);
  EXPECT_EQ(url.db, 0);
  EXPECT_EQ(ParseRedisUrl("redis://localhost/").db, 0);
}

TEST(RedisUrlTest, PasswordOnly) {
  RedisUrl url = ParseRedisUrl("redis://:s3cret@10.0.0.5:6379/1");
  EXPECT_EQ(url.user, "");
  EXPECT_EQ(url.password, "s3cret");
  EXPECT_EQ(url.host, "10.0.0.5");
  EXPECT_EQ(url.db, 1);
}

TEST(RedisUrlTest, UserAndPercentEncodedPassword) {
  RedisUrl url = ParseRedisUrl("redis://app:p%40ss%2Fword@redis:6379");
  EXPECT_EQ(url.user, "app");
  EXPECT_EQ(url.password, "p@ss/word");
  EXPECT_EQ(url.host, "redis");
}

TEST(RedisUrlTest, Ipv6Host) {
  RedisUrl url = ParseRedisUrl("redis://[::1]:7000/2");
  EXPECT_EQ(url.host, "::1");
  EXPECT_EQ(url.port, 7000);
  EXPECT_EQ(url.Address(), "[::1]:7000");
}

TEST(RedisUrlTest, UnixSocket) {
  RedisUrl url = ParseRedisUrl("unix:///run/redis/redis.sock?db=4");
  EXPECT_EQ(url.kind, RedisUrl::Kind::kUnix);
  EXPECT_EQ(url.socket_path, "/run/redis/redis.sock");
  EXPECT_EQ(url.db, 4);
  EXPECT_EQ(url.Address(), "unix:/run/redis/redis.sock");
  EXPECT_EQ(ParseRedisUrl("unix:///tmp/r.sock").db, 0);
}

TEST(RedisUrlTest, Tls) {
  RedisUrl url = ParseRedisUrl("rediss://default:s%40cret@eu1-x.upstash.io:6379/2");
  EXPECT_EQ(url.kind, RedisUrl::Kind::kTcp);
  EXPECT_TRUE(url.tls);
  EXPECT_EQ(url.host, "eu1-x.upstash.io");
  EXPECT_EQ(url.port, 6379);
  EXPECT_EQ(url.user, "default");
  EXPECT_EQ(url.password, "s@cret");
  EXPECT_EQ(url.db, 2);
  EXPECT_EQ(url.Address(), "eu1-x.upstash.io:6379");
  EXPECT_EQ(ParseRedisUrl("rediss://h").port, 6379);
  EXPECT_FALSE(ParseRedisUrl("redis://h").tls);
  EXPECT_EQ(RedactRedisUrl("rediss://default:pw@h:1/0"), "rediss://default:***@h:1/0");
}

TEST(RedisUrlTest, RefusesBadForms) {
  for (const char* bad : {"", "localhost:6379", "http://localhost", "redis://",
                          "redis://host:", "redis://host:0", "redis://host:70000", "redis://host:port",
                          "redis://host/x", "redis://host/-1", "redis://[::1", "unix://relative.sock",
                          "unix:///tmp/r.sock?db=x", "unix:///tmp/r.sock?timeout=3", "rediss://",
                          "rediss://host:0", "rediss://host/x"}) {
    std::string refusal = RefusalOf(bad);
    EXPECT_NE(refusal, "") << bad << " was accepted";
    EXPECT_NE(refusal.find("'" + std::string(bad) + "'"), std::string::npos) << refusal;
    EXPECT_NE(refusal.find("expected redis://"), std::string::npos) << refusal;
  }
}

TEST(RedisUrlTest, RefusesUserInfoWithoutAColon) {
  // Some clients read "redis://word@host" as a user, others as a password.
  std::string refusal = RefusalOf("redis://word@host");
  EXPECT_NE(refusal.find("'redis://***@host'"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("':password' or 'user:password'"), std::string::npos) << refusal;
}

TEST(RedisUrlTest, RefusalNeverShowsThePassword) {
  for (const char* bad : {"redis://:hunter2@host:notaport", "redis://admin:hunter2@host/x",
                          "redis://:hunt/er2@host:1", "rediss://:hunter2@host:x"}) {
    std::string refusal = RefusalOf(bad);
    ASSERT_NE(refusal, "") << bad << " was accepted";
    EXPECT_EQ(refusal.find("hunter2"), std::string::npos) << refusal;
    EXPECT_EQ(refusal.find("hunt/er2"), std::string::npos) << refusal;
    EXPECT_NE(refusal.find("***@host"), std::string::npos) << refusal;
  }
}

TEST(RedisUrlTest, RedactKeepsTheUserAndMasksThePassword) {
  EXPECT_EQ(RedactRedisUrl("redis://app:pw@h:1/0"), "redis://app:***@h:1/0");
  EXPECT_EQ(RedactRedisUrl("redis://:pw@h:1"), "redis://:***@h:1");
  EXPECT_EQ(RedactRedisUrl("redis://h:1/0"), "redis://h:1/0");
}

}  // namespace
}  // namespace stowage::redis
