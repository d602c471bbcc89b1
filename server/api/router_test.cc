#include "api/router.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace stowage::api {
namespace {

std::string Header(const http::Response& response, const std::string& name) {
  for (const auto& [key, value] : response.headers)
    if (key == name) return value;
  return "";
}

http::Request Request(std::string method, std::string target) {
  http::Request request;
  request.method = std::move(method);
  request.target = std::move(target);
  return request;
}

// The routes of stowaged's shape; each handler records what it was given
// and answers 200 with its pattern.
class RouterTest : public ::testing::Test {
 protected:
  Route Recording(std::string pattern, std::vector<std::string> methods) {
    const std::string label = pattern;
    return {.pattern = std::move(pattern),
            .methods = std::move(methods),
            .handler = [this, label](const http::Request& request, const PathParams& params) {
              std::string call = request.method + " " + label;
              for (const auto& [name, value] : params) call += " " + name + "=" + value;
              calls.push_back(call);
              http::Response response;
              response.body = label;
              return response;
            }};
  }

  std::vector<Route> Routes() {
    std::vector<Route> routes = {
        Recording("/healthz", {"GET"}), Recording("/v1/guest/chat/{guest_id}", {"GET", "POST", "DELETE"}),
        Recording("/v1/guest/chat/{guest_id}/search", {"GET"}), Recording("/v1/admin/reload", {"POST"})};
    routes[0].immediate = true;
    routes[3].admit = [this](const http::Request& request) -> std::optional<http::Response> {
      if (request.Header("Authorization") == "Bearer t") return std::nullopt;
      http::Response refused;
      refused.status = 401;
      refused.body = "refused " + request.method;
      return refused;
    };
    return routes;
  }

  std::vector<std::string> calls;
  Router router_{Routes(), [this](const http::Request& request) {
                   calls.push_back("no route " + request.method + " " + request.target);
                   http::Response response;
                   response.status = 404;
                   return response;
                 }};
};

TEST_F(RouterTest, LiteralPathsMatchExactly) {
  RouteMatch match = router_.Match("/healthz");
  ASSERT_NE(match.route, nullptr);
  EXPECT_EQ(match.route->pattern, "/healthz");
  EXPECT_TRUE(match.params.empty());
  for (const char* path : {"/healthz/", "//healthz", "healthz", "", "/", "/healthzz", "/Healthz",
                           "/healthz/x", "/v1/admin/reload/", "/v1/admin", "/v1/admin/"}) {
    EXPECT_EQ(router_.Match(path).route, nullptr) << path;
  }
}

TEST_F(RouterTest, AParameterIsOneNonEmptySegmentTakenAsSent) {
  struct Case {
    const char* path;
    const char* pattern;
    const char* guest_id;
  } cases[] = {
      {"/v1/guest/chat/g-1", "/v1/guest/chat/{guest_id}", "g-1"},
      {"/v1/guest/chat/bad%2Fid", "/v1/guest/chat/{guest_id}", "bad%2Fid"},  // not percent-decoded
      {"/v1/guest/chat/a%20b/search", "/v1/guest/chat/{guest_id}/search", "a%20b"},
      {"/v1/guest/chat/bad$id", "/v1/guest/chat/{guest_id}", "bad$id"},  // the handler checks it
      {"/v1/guest/chat/search", "/v1/guest/chat/{guest_id}", "search"},
      {"/v1/guest/chat/search/search", "/v1/guest/chat/{guest_id}/search", "search"},
  };
  for (const auto& c : cases) {
    RouteMatch match = router_.Match(c.path);
    ASSERT_NE(match.route, nullptr) << c.path;
    EXPECT_EQ(match.route->pattern, c.pattern) << c.path;
    EXPECT_EQ(match.params, (PathParams{{"guest_id", c.guest_id}})) << c.path;
  }
  for (const char* path : {"/v1/guest/chat", "/v1/guest/chat/", "/v1/guest/chat/g/", "/v1/guest/chat//search",
                           "/v1/guest/chat/a/b", "/v1/guest/chat/a/b/search", "/v1/guest/chat/g/search/",
                           "/v1/guest/chat/g/searc", "/v2/guest/chat/g"}) {
    EXPECT_EQ(router_.Match(path).route, nullptr) << path;
  }
}

TEST_F(RouterTest, FindIsMatchWithoutTheParameters) {
  for (const char* path : {"/healthz", "/v1/guest/chat/g", "/v1/guest/chat/g/search", "/v1/admin/reload",
                           "/healthz/", "/nope"}) {
    EXPECT_EQ(router_.Find(path), router_.Match(path).route) << path;
  }
}

TEST_F(RouterTest, TheFirstRouteListedMatchesWhenPatternsOverlap) {
  Router router({Recording("/a/{x}", {"GET"}), Recording("/a/b", {"GET"})}, nullptr);
  EXPECT_EQ(router.Match("/a/b").route->pattern, "/a/{x}");
  Router reversed({Recording("/a/b", {"GET"}), Recording("/a/{x}", {"GET"})}, nullptr);
  EXPECT_EQ(reversed.Match("/a/b").route->pattern, "/a/b");
  EXPECT_EQ(reversed.Match("/a/c").route->pattern, "/a/{x}");
}

TEST_F(RouterTest, TheLabelIsThePatternNeverThePath) {
  EXPECT_EQ(LabelOf(router_.Find("/v1/guest/chat/guest-7")), "/v1/guest/chat/{guest_id}");
  EXPECT_EQ(LabelOf(router_.Find("/v1/guest/chat/guest-7/search")), "/v1/guest/chat/{guest_id}/search");
  EXPECT_EQ(LabelOf(router_.Find("/healthz")), "/healthz");
  EXPECT_EQ(LabelOf(router_.Find("/v1/guest/chat/")), "other");
  EXPECT_EQ(LabelOf(nullptr), kNoRouteLabel);
}

TEST_F(RouterTest, TheHandlerGetsTheRequestAndTheParameters) {
  http::Response response = router_.Answer(Request("POST", "/v1/guest/chat/g:1?x=1"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "/v1/guest/chat/{guest_id}");
  EXPECT_FALSE(response.head_only);
  EXPECT_EQ(calls, std::vector<std::string>{"POST /v1/guest/chat/{guest_id} guest_id=g:1"});
}

TEST_F(RouterTest, AnUnknownPathGetsTheNoRouteAnswer) {
  http::Response response = router_.Answer(Request("GET", "/healthz/?x=1"));
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(calls, std::vector<std::string>{"no route GET /healthz/?x=1"});
  // An empty match is answered as no route, whatever the path.
  EXPECT_EQ(router_.Answer(Request("GET", "/healthz"), RouteMatch{}).status, 404);
}

TEST_F(RouterTest, AnotherMethodIs405NamingTheRouteAndItsMethods) {
  http::Response chat = router_.Answer(Request("PUT", "/v1/guest/chat/g1"));
  EXPECT_EQ(chat.status, 405);
  EXPECT_EQ(Header(chat, "Allow"), "GET, POST, DELETE");
  EXPECT_EQ(chat.body, R"({"error":{"code":"method_not_allowed","message":"method PUT is not allowed on )"
                       R"(/v1/guest/chat/{guest_id}; use GET, POST, DELETE"}})");
  http::Response health = router_.Answer(Request("DELETE", "/healthz"));
  EXPECT_EQ(health.status, 405);
  EXPECT_EQ(Header(health, "Allow"), "GET");
  EXPECT_TRUE(calls.empty());
}

TEST_F(RouterTest, OptionsSaysTheMethodsAndRunsNothing) {
  http::Response chat = router_.Answer(Request("OPTIONS", "/v1/guest/chat/g1"));
  EXPECT_EQ(chat.status, 204);
  EXPECT_EQ(Header(chat, "Allow"), "GET, POST, DELETE, HEAD, OPTIONS");
  EXPECT_TRUE(chat.body.empty());
  EXPECT_TRUE(chat.content_type.empty());
  EXPECT_EQ(Header(router_.Answer(Request("OPTIONS", "/v1/guest/chat/g1/search")), "Allow"),
            "GET, HEAD, OPTIONS");
  http::Request reload = Request("OPTIONS", "/v1/admin/reload");
  reload.headers.emplace_back("Authorization", "Bearer t");
  EXPECT_EQ(Header(router_.Answer(reload), "Allow"), "POST, OPTIONS");
  EXPECT_TRUE(calls.empty());
  EXPECT_EQ(router_.Answer(Request("OPTIONS", "/nope")).status, 404);
  EXPECT_EQ(calls, std::vector<std::string>{"no route OPTIONS /nope"});
}

TEST_F(RouterTest, HeadIsAnsweredAsGetWithoutTheBody) {
  http::Response head = router_.Answer(Request("HEAD", "/v1/guest/chat/g1"));
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.head_only);
  EXPECT_EQ(head.body, "/v1/guest/chat/{guest_id}");  // the HTTP layer sends its length only
  EXPECT_EQ(calls, std::vector<std::string>{"GET /v1/guest/chat/{guest_id} guest_id=g1"});
  // Refused as GET would be, and named so.
  http::Request reload = Request("HEAD", "/v1/admin/reload");
  reload.headers.emplace_back("Authorization", "Bearer t");
  http::Response refused = router_.Answer(reload);
  EXPECT_EQ(refused.status, 405);
  EXPECT_TRUE(refused.head_only);
  EXPECT_NE(refused.body.find("method GET is not allowed on /v1/admin/reload; use POST"), std::string::npos)
      << refused.body;
  http::Response missing = router_.Answer(Request("HEAD", "/nope"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_TRUE(missing.head_only);
  EXPECT_EQ(calls.back(), "no route GET /nope");
}

TEST_F(RouterTest, AdmitRefusesBeforeTheMethodIsLookedAt) {
  for (const char* method : {"POST", "PUT", "OPTIONS"}) {
    http::Response refused = router_.Answer(Request(method, "/v1/admin/reload"));
    EXPECT_EQ(refused.status, 401) << method;
    EXPECT_EQ(refused.body, std::string("refused ") + method);
  }
  EXPECT_TRUE(calls.empty());
  http::Request admitted = Request("POST", "/v1/admin/reload");
  admitted.headers.emplace_back("Authorization", "Bearer t");
  EXPECT_EQ(router_.Answer(admitted).status, 200);
  admitted.method = "PUT";
  EXPECT_EQ(router_.Answer(admitted).status, 405);
  EXPECT_EQ(calls, std::vector<std::string>{"POST /v1/admin/reload"});
}

TEST_F(RouterTest, AHandlerThatThrowsIsAnsweredInternalWithoutItsText) {
  Router router({{.pattern = "/boom",
                  .methods = {"GET"},
                  .handler = [](const http::Request&, const PathParams&) -> http::Response {
                    throw std::runtime_error("secret detail");
                  }}},
                nullptr);
  for (const char* method : {"GET", "HEAD"}) {
    http::Response response = router.Answer(Request(method, "/boom"));
    EXPECT_EQ(response.status, 500) << method;
    EXPECT_NE(response.body.find(R"("code":"internal")"), std::string::npos) << response.body;
    EXPECT_EQ(response.body.find("secret"), std::string::npos) << response.body;
    EXPECT_EQ(response.head_only, std::string(method) == "HEAD");
  }
}

TEST_F(RouterTest, APatternMustBeSegmentsAfterASlash) {
  for (const char* pattern : {"healthz", "", "/", "/a//b", "/a/"}) {
    EXPECT_THROW(Router({Recording(pattern, {"GET"})}, nullptr), std::invalid_argument) << pattern;
  }
}

TEST(TargetTest, PathIsBeforeTheFirstQuestionMarkAndTheQueryAfterIt) {
  struct Case {
    const char* target;
    const char* path;
    const char* query;
  } cases[] = {
      {"/v1/guest/chat/g?limit=2&x=?", "/v1/guest/chat/g", "limit=2&x=?"},
      {"/healthz", "/healthz", ""},
      {"/healthz?", "/healthz", ""},
      {"?q", "", "q"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(PathOf(c.target), c.path) << c.target;
    EXPECT_EQ(QueryOf(c.target), c.query) << c.target;
  }
}

}  // namespace
}  // namespace stowage::api
