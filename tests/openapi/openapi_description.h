// The API's OpenAPI description (docs/openapi.yaml, as the JSON stowaged
// serves), read by tests: its operations, the outcomes each lists, and
// whether a real answer conforms to it.
#pragma once

#include <boost/json/value.hpp>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "openapi/json_schema.h"

namespace stowage::testing {

// An answer as a test received it.
struct ReceivedAnswer {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;                            // empty for HEAD
};

// One outcome an operation's description lists: a status key of its
// responses ("200", "4XX") and the error code the answer then carries, or
// "-" for an answer that is not an Error (a success, a body-less answer).
using Outcome = std::pair<std::string, std::string>;

class OpenApiDescription {
 public:
  // Parses the JSON of the description; throws std::runtime_error saying
  // what is wrong when it is not JSON or not an OpenAPI 3.1 document.
  explicit OpenApiDescription(std::string_view json_text);

  OpenApiDescription(const OpenApiDescription&) = delete;
  OpenApiDescription& operator=(const OpenApiDescription&) = delete;

  const boost::json::value& document() const { return document_; }
  const JsonSchemaValidator& validator() const { return validator_; }

  // Every operation as {METHOD, path template}, e.g. {"GET", "/healthz"}, in
  // the document's order.
  std::vector<std::pair<std::string, std::string>> Operations() const;
  // The operation object of `method` (any case) on `path`; null when there is none.
  const boost::json::object* Operation(std::string_view method, std::string_view path) const;

  // The key of the responses of `method path` that `status` falls under:
  // "404" when listed, else "4XX" when listed; nullopt when neither is
  // ("default" is not taken: every status must be described).
  std::optional<std::string> StatusKey(std::string_view method, std::string_view path, int status) const;

  // Every outcome the description lists for `method path`.
  std::set<Outcome> Outcomes(std::string_view method, std::string_view path) const;

  // The error code of `answer` ("-" when its body is not an Error).
  static std::string CodeOf(const ReceivedAnswer& answer);

  // Each way `answer` breaks the description as the answer of `method path`:
  // the status must be listed; each header the response lists must be there
  // when required and match its schema when present; a response with
  // content must come with a Content-Type it lists and a body its schema
  // takes (JSON bodies are parsed), one without must have an empty body; an
  // Error body's request_id must equal X-Request-Id. Empty when it conforms.
  std::vector<std::string> Check(std::string_view method, std::string_view path,
                                 const ReceivedAnswer& answer) const;

  // The same for an answer no operation describes (an unknown path, a method
  // a route does not take): it must be JSON of schema `schema_name`
  // (components/schemas) with an X-Request-Id conforming to
  // components/headers/XRequestId.
  std::vector<std::string> CheckAgainstSchema(std::string_view schema_name,
                                              const ReceivedAnswer& answer) const;

  // The value of a local $ref, following $refs until a value without one;
  // throws std::runtime_error when it names nothing.
  const boost::json::value& Deref(const boost::json::value& value) const;

 private:
  // The codes a response schema lets an answer carry ("-": a branch that is not an Error).
  std::set<std::string> CodesOf(const boost::json::value& schema, int depth = 0) const;
  void CheckHeaders(const boost::json::object& response, const ReceivedAnswer& answer,
                    std::vector<std::string>& problems) const;
  void CheckBody(const boost::json::value& schema, std::string_view media, const ReceivedAnswer& answer,
                 std::vector<std::string>& problems) const;

  boost::json::value document_;
  JsonSchemaValidator validator_;
};

}  // namespace stowage::testing
