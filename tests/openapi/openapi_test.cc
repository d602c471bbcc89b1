// The API's description against the server's code, without a network:
// - the JSON schema validator and the description reader the answer test
//   relies on, each shown to pass what conforms and to catch what does not;
// - the routes: every route of stowaged's route table (server/api, through
//   ServerHandler's Router) is in docs/openapi.yaml with exactly its methods
//   (HEAD beside GET, OPTIONS everywhere, as the router answers them), and
//   the description has no path or method the server lacks;
// - the description is whole: every response has X-Request-Id, every error
//   code of ErrorCode is listed by some operation or named as the answer to
//   requests no operation describes.
#include "api/openapi.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <map>
#include <memory>
#include <set>

#include "api/admin_api.h"
#include "api/guest_chat_api.h"
#include "api/readiness.h"
#include "api/server_handler.h"
#include "engine/pipeline_holder.h"
#include "observability/metrics.h"
#include "openapi/json_schema.h"
#include "openapi/openapi_description.h"

namespace stowage::testing {
namespace {

namespace json = boost::json;

// ---------------------------------------------------------------------------
// JsonSchemaValidator

class JsonSchemaTest : public ::testing::Test {
 protected:
  std::vector<std::string> Problems(std::string_view instance, std::string_view schema) {
    return validator_.Validate(json::parse(instance), json::parse(schema));
  }
  bool Conforms(std::string_view instance, std::string_view schema) {
    return Problems(instance, schema).empty();
  }

  json::value document_ = json::parse(R"({"components":{"schemas":{
      "Name":{"type":"string","minLength":1},
      "Pet":{"type":"object","required":["name"],"additionalProperties":false,
             "properties":{"name":{"$ref":"#/components/schemas/Name"},"age":{"type":"integer","minimum":0}}},
      "Loop":{"$ref":"#/components/schemas/Loop"}}}})");
  JsonSchemaValidator validator_{document_};
};

TEST_F(JsonSchemaTest, TypesIncludingListsAndIntegersWrittenAsDoubles) {
  EXPECT_TRUE(Conforms(R"("x")", R"({"type":"string"})"));
  EXPECT_FALSE(Conforms("1", R"({"type":"string"})"));
  EXPECT_TRUE(Conforms("null", R"({"type":["string","null"]})"));
  EXPECT_FALSE(Conforms("true", R"({"type":["string","null"]})"));
  EXPECT_TRUE(Conforms("3", R"({"type":"integer"})"));
  EXPECT_TRUE(Conforms("3.0", R"({"type":"integer"})"));
  EXPECT_FALSE(Conforms("3.5", R"({"type":"integer"})"));
  EXPECT_TRUE(Conforms("3.5", R"({"type":"number"})"));
  EXPECT_TRUE(Conforms("18446744073709551615", R"({"type":"integer"})"));
  EXPECT_TRUE(Conforms("{}", R"({"type":"object"})"));
  EXPECT_FALSE(Conforms("[]", R"({"type":"object"})"));
  EXPECT_TRUE(Conforms("false", R"({"type":"boolean"})"));
}

TEST_F(JsonSchemaTest, EnumAndConstCompareNumbersByValue) {
  EXPECT_TRUE(Conforms(R"("a")", R"({"enum":["a","b",null]})"));
  EXPECT_TRUE(Conforms("null", R"({"enum":["a","b",null]})"));
  EXPECT_FALSE(Conforms(R"("c")", R"({"enum":["a","b",null]})"));
  EXPECT_TRUE(Conforms("1.0", R"({"const":1})"));
  EXPECT_FALSE(Conforms(R"("ok ")", R"({"const":"ok"})"));
}

TEST_F(JsonSchemaTest, ObjectsRequiredPropertiesAndAdditionalProperties) {
  EXPECT_TRUE(Conforms(R"({"name":"rex","age":3})", R"({"$ref":"#/components/schemas/Pet"})"));
  auto missing = Problems(R"({"age":3})", R"({"$ref":"#/components/schemas/Pet"})");
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0], ": lacks the required property 'name'");
  auto extra = Problems(R"({"name":"rex","colour":"red"})", R"({"$ref":"#/components/schemas/Pet"})");
  ASSERT_EQ(extra.size(), 1u);
  EXPECT_EQ(extra[0], "/colour: is a property the schema does not allow");
  auto nested = Problems(R"({"name":"","age":-1})", R"({"$ref":"#/components/schemas/Pet"})");
  EXPECT_EQ(nested.size(), 2u);
  EXPECT_TRUE(
      Conforms(R"({"a":{"status":"ok"}})",
               R"({"type":"object","additionalProperties":{"type":"object","required":["status"]}})"));
  EXPECT_FALSE(Conforms(
      R"({"a":{}})", R"({"type":"object","additionalProperties":{"type":"object","required":["status"]}})"));
}

TEST_F(JsonSchemaTest, ArraysStringsAndNumbersBounds) {
  EXPECT_TRUE(
      Conforms(R"(["a","b"])", R"({"type":"array","items":{"type":"string"},"minItems":1,"maxItems":2})"));
  EXPECT_FALSE(Conforms("[]", R"({"type":"array","minItems":1})"));
  EXPECT_FALSE(Conforms("[1,2,3]", R"({"type":"array","maxItems":2})"));
  auto item = Problems(R"(["a",2])", R"({"type":"array","items":{"type":"string"}})");
  ASSERT_EQ(item.size(), 1u);
  EXPECT_EQ(item[0].substr(0, 3), "/1:");
  EXPECT_TRUE(Conforms(R"("é")", R"({"type":"string","maxLength":1})")) << "lengths count code points";
  EXPECT_FALSE(Conforms(R"("ab")", R"({"type":"string","maxLength":1})"));
  EXPECT_TRUE(Conforms(R"("ab12")", R"({"type":"string","pattern":"[0-9]+"})")) << "a pattern is a search";
  EXPECT_FALSE(Conforms(R"("ab12")", R"({"type":"string","pattern":"^[0-9]+$"})"));
  EXPECT_FALSE(Conforms("0", R"({"type":"integer","minimum":1})"));
  EXPECT_FALSE(Conforms("101", R"({"type":"integer","maximum":100})"));
}

TEST_F(JsonSchemaTest, OneOfNeedsExactlyOneAnyOfAtLeastOneAllOfEvery) {
  const char* one = R"({"oneOf":[{"type":"integer"},{"type":"number"}]})";
  EXPECT_TRUE(Conforms("1.5", one));
  EXPECT_FALSE(Conforms("1", one)) << "1 is an integer and a number: two branches match";
  EXPECT_FALSE(Conforms(R"("x")", one));
  EXPECT_TRUE(Conforms("1", R"({"anyOf":[{"type":"integer"},{"type":"number"}]})"));
  const char* all = R"({"allOf":[{"type":"string"},{"enum":["a","b"]}]})";
  EXPECT_TRUE(Conforms(R"("a")", all));
  EXPECT_FALSE(Conforms(R"("c")", all));
}

TEST_F(JsonSchemaTest, DateTimeIsCheckedLoosely) {
  const char* schema = R"({"type":"string","format":"date-time"})";
  EXPECT_TRUE(Conforms(R"("2024-05-01T12:00:00.000000Z")", schema));
  EXPECT_TRUE(Conforms(R"("2024-05-01T12:00:00.120Z")", schema));
  EXPECT_TRUE(Conforms(R"("2024-05-01T14:00:00+02:00")", schema));
  EXPECT_FALSE(Conforms(R"("2024-05-01")", schema));
  EXPECT_FALSE(Conforms(R"("yesterday")", schema));
}

TEST_F(JsonSchemaTest, UnknownKeywordsBadRefsAndCyclesAreReportedNotIgnored) {
  auto unknown = Problems(R"("x")", R"({"type":"string","unevaluatedProperties":false})");
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_NE(unknown[0].find("'unevaluatedProperties'"), std::string::npos) << unknown[0];
  EXPECT_TRUE(Conforms(R"("x")", R"({"type":"string","description":"d","example":"x","default":"y"})"));
  auto bad_ref = Problems("1", R"({"$ref":"#/components/schemas/Nothing"})");
  ASSERT_EQ(bad_ref.size(), 1u);
  EXPECT_NE(bad_ref[0].find("names nothing"), std::string::npos);
  EXPECT_FALSE(Conforms("1", R"({"$ref":"#/components/schemas/Loop"})"));
  EXPECT_FALSE(Conforms("1", "false"));
  EXPECT_TRUE(Conforms("1", "true"));
}

// ---------------------------------------------------------------------------
// OpenApiDescription, on a small description of its own

constexpr const char* kSmall = R"({"openapi":"3.1.0","paths":{"/pets/{id}":{
  "get":{"responses":{
    "200":{"description":"a pet",
           "headers":{"X-Request-Id":{"$ref":"#/components/headers/XRequestId"},
                      "Retry-After":{"required":false,"schema":{"type":"integer","minimum":1}}},
           "content":{"application/json":{"schema":{"type":"object","required":["name"]}}}},
    "404":{"$ref":"#/components/responses/Missing"},
    "5XX":{"description":"failed","headers":{"X-Request-Id":{"$ref":"#/components/headers/XRequestId"}}}}},
  "options":{"responses":{"204":{"description":"methods"}}}}},
 "components":{
  "headers":{"XRequestId":{"required":true,"schema":{"type":"string","pattern":"^[!-~]{1,128}$"}}},
  "responses":{"Missing":{"description":"no pet",
    "headers":{"X-Request-Id":{"$ref":"#/components/headers/XRequestId"}},
    "content":{"application/json":{"schema":{"$ref":"#/components/schemas/Missing"}}}}},
  "schemas":{
    "Error":{"type":"object","required":["error"],"properties":{"error":{"type":"object","required":["code"],
             "properties":{"code":{"$ref":"#/components/schemas/Code"},"request_id":{"type":"string"}}}}},
    "Code":{"type":"string","enum":["not_found","gone","internal"]},
    "Missing":{"allOf":[{"$ref":"#/components/schemas/Error"},
                        {"properties":{"error":{"properties":{"code":{"enum":["not_found","gone"]}}}}}]}}}})";

ReceivedAnswer Answer(int status, std::string body, std::map<std::string, std::string> headers = {}) {
  headers.emplace("x-request-id", "r1");
  if (!body.empty()) headers.emplace("content-type", "application/json");
  return {status, std::move(headers), std::move(body)};
}

TEST(OpenApiDescriptionTest, ListsOperationsStatusKeysAndOutcomes) {
  OpenApiDescription description(kSmall);
  EXPECT_EQ(description.Operations(), (std::vector<std::pair<std::string, std::string>>{
                                          {"GET", "/pets/{id}"}, {"OPTIONS", "/pets/{id}"}}));
  EXPECT_EQ(description.StatusKey("get", "/pets/{id}", 404), "404");
  EXPECT_EQ(description.StatusKey("GET", "/pets/{id}", 503), "5XX");
  EXPECT_EQ(description.StatusKey("GET", "/pets/{id}", 400), std::nullopt);
  EXPECT_EQ(description.Outcomes("GET", "/pets/{id}"),
            (std::set<Outcome>{{"200", "-"}, {"404", "not_found"}, {"404", "gone"}, {"5XX", "-"}}));
  EXPECT_THROW(OpenApiDescription("{}"), std::runtime_error);
  EXPECT_THROW(OpenApiDescription("not json"), std::runtime_error);
}

TEST(OpenApiDescriptionTest, AConformingAnswerPassesAndEachBreachIsNamed) {
  OpenApiDescription description(kSmall);
  EXPECT_EQ(description.Check("GET", "/pets/{id}", Answer(200, R"({"name":"rex"})")),
            std::vector<std::string>{});
  EXPECT_EQ(
      description.Check("GET", "/pets/{id}", Answer(404, R"({"error":{"code":"gone","request_id":"r1"}})")),
      std::vector<std::string>{});
  EXPECT_EQ(description.Check("OPTIONS", "/pets/{id}", Answer(204, "")), std::vector<std::string>{});

  auto expect_problem = [&](const std::string& method, const ReceivedAnswer& answer,
                            const std::string& part) {
    SCOPED_TRACE(part);
    auto problems = description.Check(method, "/pets/{id}", answer);
    ASSERT_EQ(problems.size(), 1u) << ::testing::PrintToString(problems);
    EXPECT_NE(problems[0].find(part), std::string::npos) << problems[0];
  };
  expect_problem("GET", Answer(400, R"({"error":{"code":"x"}})"), "lists no response for this status");
  expect_problem("PUT", Answer(200, "{}"), "no such operation");
  expect_problem("GET", Answer(200, "{}"), "lacks the required property 'name'");
  expect_problem("GET", Answer(200, "[1"), "not JSON");
  expect_problem("GET", Answer(200, R"({"name":"rex"})", {{"content-type", "text/plain"}}), "Content-Type");
  expect_problem("GET", Answer(200, R"({"name":"rex"})", {{"retry-after", "soon"}}), "Retry-After");
  expect_problem("GET", Answer(200, R"({"name":"rex"})", {{"retry-after", "0"}}), "minimum");
  expect_problem("GET", Answer(404, R"({"error":{"code":"internal"}})"), "not one of");
  expect_problem("GET", Answer(404, R"({"error":{"code":"gone","request_id":"r2"}})"),
                 "not the X-Request-Id");
  expect_problem("GET", Answer(503, "oops"), "lists no content");
  ReceivedAnswer no_id = Answer(503, "");
  no_id.headers.erase("x-request-id");
  expect_problem("GET", no_id, "X-Request-Id is missing");
  EXPECT_EQ(OpenApiDescription::CodeOf(Answer(404, R"({"error":{"code":"gone"}})")), "gone");
  EXPECT_EQ(OpenApiDescription::CodeOf(Answer(200, R"({"name":"rex"})")), "-");
  EXPECT_EQ(description.CheckAgainstSchema("Error", Answer(405, R"({"error":{"code":"internal"}})")),
            std::vector<std::string>{});
  EXPECT_EQ(description.CheckAgainstSchema("Error", Answer(405, R"({"error":{"code":"nope"}})")).size(), 1u);
}

// ---------------------------------------------------------------------------
// The description built into stowaged (GET /openapi.json), against its routes

// stowaged's request handling on an empty pipeline: enough to list its routes.
class ServedRoutes {
 public:
  ServedRoutes() {
    config::PipelineConfig config;
    auto built = engine::Pipeline::Build(config, nullptr, &metrics_);
    if (!built.pipeline) throw std::runtime_error("an empty pipeline could not be built");
    holder_ = std::make_unique<engine::PipelineHolder>(built.pipeline);
    service_ = std::make_unique<api::PipelineChatService>(*holder_);
    api_ = std::make_unique<api::GuestChatApi>(*service_, api::ApiOptions{});
    admin_ = std::make_unique<api::AdminApi>(*holder_, "pipeline.toml", "token", metrics_);
    readiness_ = std::make_unique<api::Readiness>(*holder_);
    handler_ =
        std::make_unique<api::ServerHandler>(api::Listener::kAll, *api_, *admin_, *readiness_, metrics_);
  }

  const api::Router& router() const { return handler_->router(); }

 private:
  observability::Registry metrics_;
  std::unique_ptr<engine::PipelineHolder> holder_;
  std::unique_ptr<api::PipelineChatService> service_;
  std::unique_ptr<api::GuestChatApi> api_;
  std::unique_ptr<api::AdminApi> admin_;
  std::unique_ptr<api::Readiness> readiness_;
  std::unique_ptr<api::ServerHandler> handler_;
};

// The methods a route answers, as the router answers them: its own, HEAD
// beside GET, and OPTIONS.
std::set<std::string> AnsweredMethods(const api::Route& route) {
  std::set<std::string> methods(route.methods.begin(), route.methods.end());
  if (methods.contains("GET")) methods.insert("HEAD");
  methods.insert("OPTIONS");
  return methods;
}

TEST(OpenApiRoutesTest, TheDescriptionHasEveryRouteWithItsMethodsAndNothingElse) {
  OpenApiDescription description(api::OpenApiJson());
  ServedRoutes served;
  std::map<std::string, std::set<std::string>> described;
  for (const auto& [method, path] : description.Operations()) described[path].insert(method);
  std::map<std::string, std::set<std::string>> routed;
  for (const api::Route* route : served.router().Routes()) routed[route->pattern] = AnsweredMethods(*route);

  for (const auto& [pattern, methods] : routed) {
    auto it = described.find(pattern);
    if (it == described.end()) {
      ADD_FAILURE() << "the route " << pattern << " (" << ::testing::PrintToString(methods)
                    << ") is not in docs/openapi.yaml: describe it there (and in docs/api.md)";
      continue;
    }
    for (const auto& method : methods)
      EXPECT_TRUE(it->second.contains(method))
          << method << " " << pattern << " is served but docs/openapi.yaml does not describe it";
    for (const auto& method : it->second)
      EXPECT_TRUE(methods.contains(method)) << "docs/openapi.yaml describes " << method << " " << pattern
                                            << ", which the server does not answer";
  }
  for (const auto& [path, methods] : described) {
    EXPECT_TRUE(routed.contains(path)) << "docs/openapi.yaml describes " << path
                                       << ", which no route of the server has: remove it, or add the route";
  }
  EXPECT_EQ(routed.size(), 11u) << "the route table changed: check this test's route count";
}

// The description's version is stowage's (the CMake project's, the SDK's):
// a client reading it knows which server it describes.
TEST(OpenApiRoutesTest, TheDescriptionsVersionIsTheServers) {
  const boost::json::value description = boost::json::parse(api::OpenApiJson());
  EXPECT_EQ(description.at("info").at("version").as_string(), STOWAGE_VERSION)
      << "set info.version in docs/openapi.yaml to the project version";
}

TEST(OpenApiRoutesTest, AdminRoutesAndOnlyThemNeedTheTokenInTheDescription) {
  OpenApiDescription description(api::OpenApiJson());
  ServedRoutes served;
  for (const api::Route* route : served.router().Routes()) {
    const bool operators = route->audience == api::Audience::kOperators;
    for (const auto& method : AnsweredMethods(*route)) {
      const json::object* operation = description.Operation(method, route->pattern);
      if (operation == nullptr) continue;  // the test above says so
      const auto* security = operation->if_contains("security");
      const bool token = security != nullptr && !security->as_array().empty();
      EXPECT_EQ(token, operators) << method << " " << route->pattern
                                  << (operators ? " needs the admin token: give it security adminToken"
                                                : " needs no token: give it no security");
    }
  }
}

TEST(OpenApiRoutesTest, EveryResponseHasXRequestIdAndEveryErrorCodeIsListed) {
  OpenApiDescription description(api::OpenApiJson());
  std::set<std::string> listed;
  for (const auto& [method, path] : description.Operations()) {
    for (const auto& [key, response] : description.Operation(method, path)->at("responses").as_object()) {
      const json::value& resolved = description.Deref(response);
      const auto* headers = resolved.as_object().if_contains("headers");
      EXPECT_TRUE(headers != nullptr && headers->as_object().contains("X-Request-Id"))
          << method << " " << path << " " << key << " does not list the X-Request-Id header";
    }
    for (const auto& [key, code] : description.Outcomes(method, path)) listed.insert(code);
  }
  // Answers to requests that no operation describes: an unknown path, a method a route does not take.
  listed.insert("method_not_allowed");
  const json::value& codes = description.Deref(json::object{{"$ref", "#/components/schemas/ErrorCode"}});
  for (const auto& code : codes.at("enum").as_array())
    EXPECT_TRUE(listed.contains(code.as_string().c_str()))
        << "the error code " << code << " of ErrorCode is listed by no operation of docs/openapi.yaml";
  listed.erase("-");
  for (const auto& code : listed)
    EXPECT_NE(
        std::find(codes.at("enum").as_array().begin(), codes.at("enum").as_array().end(), json::value(code)),
        codes.at("enum").as_array().end())
        << "docs/openapi.yaml lists the error code " << code << ", which ErrorCode lacks";
}

}  // namespace
}  // namespace stowage::testing
