// A JSON Schema (2020-12) validator over Boost.JSON for the subset that
// docs/openapi.yaml uses, to check the server's answers against it.
//
// Keywords checked: $ref (a local "#/..." pointer into the document, with
// sibling keywords checked too), type (a name or a list; "integer" takes a
// number without a fraction), enum, const, properties, required,
// additionalProperties (false or a schema), items, minItems, maxItems,
// minLength and maxLength (in code points), pattern (ECMAScript regex, a
// search as JSON Schema says), minimum, maximum, oneOf (exactly one), anyOf,
// allOf, and format "date-time" (loosely: YYYY-MM-DDTHH:MM[:SS[.f]] and Z or
// an offset) and "int64". Annotations are skipped: description, title,
// example(s), default, deprecated, readOnly, writeOnly, $comment. Any other
// keyword is reported as unsupported, so that a schema never passes by
// using what this validator does not check.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace stowage::testing {

class JsonSchemaValidator {
 public:
  // `document` holds every schema a $ref may name (e.g. the whole OpenAPI
  // description); it must outlive this.
  explicit JsonSchemaValidator(const boost::json::value& document) : document_(document) {}

  // Each way `instance` breaks `schema`, as "<where in the instance>: <what>"
  // (where is a JSON pointer, "" for the whole value); empty when it conforms.
  std::vector<std::string> Validate(const boost::json::value& instance,
                                    const boost::json::value& schema) const;

  // The value a local $ref names ("#/components/schemas/Error"); null when
  // it names nothing.
  const boost::json::value* Resolve(std::string_view ref) const;

 private:
  void Check(const boost::json::value& instance, const boost::json::value& schema, const std::string& where,
             int depth, std::vector<std::string>& problems) const;

  const boost::json::value& document_;
};

// Whether `text` is a date-time as format "date-time" is checked above.
bool LooksLikeDateTime(std::string_view text);

}  // namespace stowage::testing
