// ParseRedisUrl: the url forms the stage accepts, and the refusals, which
// must name the url without its password.
#include "redis_url.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

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

TEST(RedisUrlTest, Ipv6HostsInBrackets) {
  RedisUrl url = ParseRedisUrl("rediss://:pw@[2001:db8::7]/1");
  EXPECT_EQ(url.host, "2001:db8::7");
  EXPECT_EQ(url.port, 6379);
  EXPECT_EQ(url.Address(), "[2001:db8::7]:6379");
  // An RFC 6874 zone.
  EXPECT_EQ(ParseRedisUrl("redis://[fe80::1%25eth0]:7000").host, "fe80::1%eth0");
  EXPECT_NE(RefusalOf("redis://[::1]x").find("expected ':port' after the IPv6 address"), std::string::npos);
  EXPECT_NE(RefusalOf("redis://[cache]:1").find("the host in brackets is not an IPv6 address"),
            std::string::npos);
}

TEST(RedisUrlTest, PercentEncodedUserAndPassword) {
  RedisUrl url = ParseRedisUrl("redis://us%40er:p%3Aw%25d@h");
  EXPECT_EQ(url.user, "us@er");
  EXPECT_EQ(url.password, "p:w%d");
  // Unescaped, '@', '?', '#' and ':' are the password's: the user info runs
  // to the last '@' before the first '/'.
  url = ParseRedisUrl("redis://app:p@ss?w#r:d@cache:6380/2");
  EXPECT_EQ(url.user, "app");
  EXPECT_EQ(url.password, "p@ss?w#r:d");
  EXPECT_EQ(url.host, "cache");
  EXPECT_EQ(url.port, 6380);
  EXPECT_EQ(url.db, 2);
}

TEST(RedisUrlTest, RefusesBadPercentEscapes) {
  for (const char* bad : {"redis://u%zz:pw@h", "redis://:pw%4@h", "redis://:pw%@h"}) {
    std::string refusal = RefusalOf(bad);
    EXPECT_NE(refusal.find("the user or password holds a malformed %-escape"), std::string::npos) << refusal;
  }
  EXPECT_NE(RefusalOf("redis://h%zz").find("the host holds a malformed %-escape"), std::string::npos);
  EXPECT_NE(
      RefusalOf("redis://h/%zz").find("the database after '/' must be a non-negative integer, not '%zz'"),
      std::string::npos);
  EXPECT_NE(RefusalOf("unix:///tmp/r%zz.sock").find("the socket path holds a malformed %-escape"),
            std::string::npos);
}

TEST(RedisUrlTest, PortsOutOfRange) {
  EXPECT_EQ(ParseRedisUrl("redis://h:65535").port, 65535);
  EXPECT_EQ(ParseRedisUrl("redis://h:1").port, 1);
  EXPECT_EQ(ParseRedisUrl("redis://h:06380").port, 6380);
  for (const char* bad : {"redis://h:65536", "redis://h:0", "redis://h:99999999999", "redis://[::1]:70000"}) {
    std::string refusal = RefusalOf(bad);
    EXPECT_NE(refusal.find("the port must be a number from 1 to 65535"), std::string::npos) << refusal;
  }
}

TEST(RedisUrlTest, HostNamesThatStartLikeAnAddress) {
  RedisUrl url = ParseRedisUrl("redis://10.0.0.5.nip.io:6380/1");
  EXPECT_EQ(url.host, "10.0.0.5.nip.io");
  EXPECT_EQ(url.port, 6380);
  EXPECT_EQ(url.db, 1);
  EXPECT_EQ(ParseRedisUrl("redis://10.0.0.5").host, "10.0.0.5");
  EXPECT_NE(RefusalOf("redis://cache host").find("the host 'cache host' is not a host name or an address"),
            std::string::npos);
}

TEST(RedisUrlTest, ClusterHostList) {
  std::vector<RedisUrl> urls = ParseRedisUrls("rediss://app:p@ss@10.0.0.11:7000,[::1]:7001,node-3/0");
  ASSERT_EQ(urls.size(), 3u);
  EXPECT_EQ(urls[0].Address(), "10.0.0.11:7000");
  EXPECT_EQ(urls[1].Address(), "[::1]:7001");
  EXPECT_EQ(urls[2].Address(), "node-3:6379");
  for (const RedisUrl& url : urls) {
    EXPECT_TRUE(url.tls);
    EXPECT_EQ(url.user, "app");
    EXPECT_EQ(url.password, "p@ss");
  }
  EXPECT_EQ(ParseRedisUrls("unix:///tmp/r.sock").size(), 1u);
  try {
    ParseRedisUrls("redis://:hunter2@h1:7000,,h2:7000");
    ADD_FAILURE() << "an empty entry was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("an entry of its comma-separated host list is empty"),
              std::string::npos);
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
  }
  EXPECT_NE(RefusalOf("redis://h1:7000,h2:7000").find("it names several hosts"), std::string::npos);
}

TEST(RedisUrlTest, UnixSocket) {
  EXPECT_EQ(ParseRedisUrl("unix:///tmp/my%20redis.sock?db=1&").socket_path, "/tmp/my redis.sock");
  EXPECT_NE(RefusalOf("unix:///tmp/r.sock?&db=1").find("unknown query parameter ''"), std::string::npos);
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
                          "redis://:hunt/er2@host:1", "rediss://:hunter2@host:x", "redis://:hunter2/x@host",
                          "redis://:hunter2%zz@host", "redis://u:hunter2@host:1 x"}) {
    std::string refusal = RefusalOf(bad);
    ASSERT_NE(refusal, "") << bad << " was accepted";
    EXPECT_EQ(refusal.find("hunter2"), std::string::npos) << refusal;
    EXPECT_EQ(refusal.find("hunt"), std::string::npos) << refusal;
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
