#include "load_options.h"

#include <gtest/gtest.h>

namespace stowage::bench {
namespace {

TEST(LoadOptionsTest, DefaultsWithoutArguments) {
  auto parsed = ParseLoadOptions({});
  ASSERT_TRUE(std::holds_alternative<LoadOptions>(parsed));
  const auto& options = std::get<LoadOptions>(parsed);
  EXPECT_EQ(options.host, "127.0.0.1");
  EXPECT_EQ(options.port, 8000);
  EXPECT_EQ(options.connections, 32);
  EXPECT_EQ(options.duration_s, 10);
  EXPECT_EQ(options.guests, 1000);
  EXPECT_EQ(options.post_weight, 1);
  EXPECT_EQ(options.get_weight, 1);
  EXPECT_EQ(options.content_bytes, 200);
  EXPECT_FALSE(options.fail_on_error);
}

TEST(LoadOptionsTest, ReadsEveryOptionInBothSpellings) {
  auto parsed =
      ParseLoadOptions({"--url", "http://localhost:9001/", "--connections=4", "--duration", "2.5", "--guests",
                        "10", "--mix", "post=3,get=0", "--content-bytes", "50", "--json", "out.json",
                        "--fail-on-error", "--max-requests", "100", "--timeout", "3"});
  ASSERT_TRUE(std::holds_alternative<LoadOptions>(parsed));
  const auto& options = std::get<LoadOptions>(parsed);
  EXPECT_EQ(options.host, "127.0.0.1");
  EXPECT_EQ(options.port, 9001);
  EXPECT_EQ(options.connections, 4);
  EXPECT_DOUBLE_EQ(options.duration_s, 2.5);
  EXPECT_EQ(options.guests, 10);
  EXPECT_EQ(options.post_weight, 3);
  EXPECT_EQ(options.get_weight, 0);
  EXPECT_EQ(options.content_bytes, 50);
  EXPECT_EQ(options.json_path, "out.json");
  EXPECT_TRUE(options.fail_on_error);
  EXPECT_EQ(options.max_requests, 100);
  EXPECT_DOUBLE_EQ(options.request_timeout_s, 3);
}

TEST(LoadOptionsTest, RefusesANonLoopbackHost) {
  std::string host;
  std::uint16_t port = 0;
  EXPECT_NE(ParseLoopbackUrl("http://10.0.0.1:8000", &host, &port), "");
  EXPECT_NE(ParseLoopbackUrl("http://example.com:8000", &host, &port), "");
  EXPECT_EQ(ParseLoopbackUrl("http://[::1]:8000", &host, &port), "");
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(ParseLoopbackUrl("http://127.0.0.2", &host, &port), "");
  EXPECT_EQ(port, 80);
}

TEST(LoadOptionsTest, ReportsEveryErrorNamingTheOption) {
  auto parsed = ParseLoadOptions({"--connections", "0", "--duration", "-1", "--mix", "put=1", "--bogus"});
  ASSERT_TRUE(std::holds_alternative<std::vector<std::string>>(parsed));
  const auto& errors = std::get<std::vector<std::string>>(parsed);
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_NE(errors[0].find("--connections"), std::string::npos);
  EXPECT_NE(errors[1].find("--duration"), std::string::npos);
  EXPECT_NE(errors[2].find("--mix"), std::string::npos);
  EXPECT_NE(errors[3].find("--bogus"), std::string::npos);
}

TEST(LoadOptionsTest, RefusesAMixWithoutWeight) {
  int post = 0;
  int get = 0;
  EXPECT_NE(ParseMix("post=0,get=0", &post, &get), "");
  EXPECT_NE(ParseMix("post", &post, &get), "");
  EXPECT_EQ(ParseMix("get=2", &post, &get), "");
  EXPECT_EQ(post, 0);
  EXPECT_EQ(get, 2);
}

}  // namespace
}  // namespace stowage::bench
