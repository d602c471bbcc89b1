#include "openapi/json_schema.h"

#include <boost/json.hpp>
#include <cmath>
#include <regex>
#include <set>

namespace stowage::testing {
namespace {

namespace json = boost::json;

const std::set<std::string_view> kAnnotations = {"description", "title",     "example",
                                                 "examples",    "default",   "deprecated",
                                                 "readOnly",    "writeOnly", "$comment"};
const std::set<std::string_view> kChecked = {
    "$ref",    "type",     "enum",     "const",     "properties", "required", "additionalProperties",
    "items",   "minItems", "maxItems", "minLength", "maxLength",  "pattern",  "minimum",
    "maximum", "oneOf",    "anyOf",    "allOf",     "format"};

// JSON's view of a value's type, as "type" names it.
bool HasType(const json::value& value, std::string_view type) {
  if (type == "null") return value.is_null();
  if (type == "boolean") return value.is_bool();
  if (type == "string") return value.is_string();
  if (type == "array") return value.is_array();
  if (type == "object") return value.is_object();
  if (type == "number") return value.is_number();
  if (type == "integer") {
    if (value.is_int64() || value.is_uint64()) return true;
    return value.is_double() && std::isfinite(value.get_double()) &&
           value.get_double() == std::floor(value.get_double());
  }
  return false;
}

std::string Shown(const json::value& value) {
  std::string text = json::serialize(value);
  return text.size() > 80 ? text.substr(0, 77) + "..." : text;
}

// JSON Schema equality: numbers by value, whatever their representation.
bool Equal(const json::value& a, const json::value& b) {
  if (a.is_number() && b.is_number()) return a.to_number<double>() == b.to_number<double>();
  return a == b;
}

std::size_t CodePoints(std::string_view text) {
  std::size_t count = 0;
  for (unsigned char c : text)
    if ((c & 0xC0) != 0x80) ++count;
  return count;
}

// "~1" and "~0" of a JSON pointer token.
std::string Unescape(std::string_view token) {
  std::string out;
  for (std::size_t i = 0; i < token.size(); ++i) {
    if (token[i] == '~' && i + 1 < token.size()) {
      out += token[i + 1] == '1' ? '/' : '~';
      ++i;
    } else {
      out += token[i];
    }
  }
  return out;
}

}  // namespace

bool LooksLikeDateTime(std::string_view text) {
  static const std::regex kDateTime(
      R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$)");
  return std::regex_match(text.begin(), text.end(), kDateTime);
}

const json::value* JsonSchemaValidator::Resolve(std::string_view ref) const {
  if (!ref.starts_with("#")) return nullptr;
  ref.remove_prefix(1);
  const json::value* at = &document_;
  while (!ref.empty()) {
    if (!ref.starts_with("/")) return nullptr;
    ref.remove_prefix(1);
    const std::size_t slash = std::min(ref.find('/'), ref.size());
    const std::string token = Unescape(ref.substr(0, slash));
    ref.remove_prefix(slash);
    if (at->is_object()) {
      at = at->as_object().if_contains(token);
    } else if (at->is_array()) {
      std::size_t index = 0;
      try {
        index = std::stoul(token);
      } catch (...) {
        return nullptr;
      }
      at = index < at->as_array().size() ? &at->as_array()[index] : nullptr;
    } else {
      return nullptr;
    }
    if (at == nullptr) return nullptr;
  }
  return at;
}

std::vector<std::string> JsonSchemaValidator::Validate(const json::value& instance,
                                                       const json::value& schema) const {
  std::vector<std::string> problems;
  Check(instance, schema, "", 0, problems);
  return problems;
}

void JsonSchemaValidator::Check(const json::value& instance, const json::value& schema,
                                const std::string& where, int depth,
                                std::vector<std::string>& problems) const {
  auto fail = [&](const std::string& what) { problems.push_back(where + ": " + what); };
  if (depth > 64) return fail("the schema nests more than 64 $refs deep (a $ref cycle?)");
  if (schema.is_bool()) {
    if (!schema.get_bool()) fail("no value is allowed here (schema false)");
    return;
  }
  if (!schema.is_object()) return fail("the schema is not an object but " + Shown(schema));
  const json::object& s = schema.get_object();

  for (const auto& [key, unused] : s) {
    if (!kChecked.contains(key) && !kAnnotations.contains(key))
      fail("the schema uses the keyword '" + std::string(key) + "', which this validator does not check");
  }

  if (const auto* ref = s.if_contains("$ref")) {
    const json::value* target = ref->is_string() ? Resolve(ref->get_string()) : nullptr;
    if (target == nullptr) return fail("the schema's $ref " + Shown(*ref) + " names nothing in the document");
    Check(instance, *target, where, depth + 1, problems);
  }

  if (const auto* type = s.if_contains("type")) {
    bool matches = false;
    if (type->is_string()) {
      matches = HasType(instance, type->get_string());
    } else if (type->is_array()) {
      for (const auto& one : type->get_array())
        matches = matches || (one.is_string() && HasType(instance, one.get_string()));
    }
    if (!matches) return fail("is " + Shown(instance) + ", not of type " + Shown(*type));
  }
  if (const auto* values = s.if_contains("enum")) {
    bool found = false;
    if (values->is_array())
      for (const auto& one : values->get_array()) found = found || Equal(instance, one);
    if (!found) fail("is " + Shown(instance) + ", not one of " + Shown(*values));
  }
  if (const auto* value = s.if_contains("const")) {
    if (!Equal(instance, *value)) fail("is " + Shown(instance) + ", not " + Shown(*value));
  }

  if (instance.is_string()) {
    const std::string_view text = instance.get_string();
    if (const auto* min = s.if_contains("minLength"); min && CodePoints(text) < min->to_number<std::size_t>())
      fail("is shorter than " + Shown(*min) + " characters");
    if (const auto* max = s.if_contains("maxLength"); max && CodePoints(text) > max->to_number<std::size_t>())
      fail("is longer than " + Shown(*max) + " characters");
    if (const auto* pattern = s.if_contains("pattern"); pattern && pattern->is_string()) {
      try {
        const std::regex regex(std::string(pattern->get_string()), std::regex::ECMAScript);
        if (!std::regex_search(text.begin(), text.end(), regex))
          fail("is " + Shown(instance) + ", which does not match the pattern " + Shown(*pattern));
      } catch (const std::regex_error& e) {
        fail("the schema's pattern " + Shown(*pattern) + " is not a regex: " + e.what());
      }
    }
    if (const auto* format = s.if_contains("format");
        format && *format == "date-time" && !LooksLikeDateTime(text))
      fail("is " + Shown(instance) + ", not a date-time");
  }

  if (instance.is_number()) {
    const double number = instance.to_number<double>();
    if (const auto* min = s.if_contains("minimum"); min && number < min->to_number<double>())
      fail("is " + Shown(instance) + ", below the minimum " + Shown(*min));
    if (const auto* max = s.if_contains("maximum"); max && number > max->to_number<double>())
      fail("is " + Shown(instance) + ", above the maximum " + Shown(*max));
    if (const auto* format = s.if_contains("format"); format && *format == "int64" && instance.is_uint64() &&
                                                      instance.get_uint64() > 9223372036854775807ULL)
      fail("is " + Shown(instance) + ", beyond int64");
  }

  if (instance.is_array()) {
    const json::array& items = instance.get_array();
    if (const auto* min = s.if_contains("minItems"); min && items.size() < min->to_number<std::size_t>())
      fail("has " + std::to_string(items.size()) + " items, fewer than " + Shown(*min));
    if (const auto* max = s.if_contains("maxItems"); max && items.size() > max->to_number<std::size_t>())
      fail("has " + std::to_string(items.size()) + " items, more than " + Shown(*max));
    if (const auto* item_schema = s.if_contains("items")) {
      for (std::size_t i = 0; i < items.size(); ++i)
        Check(items[i], *item_schema, where + "/" + std::to_string(i), depth, problems);
    }
  }

  if (instance.is_object()) {
    const json::object& object = instance.get_object();
    if (const auto* required = s.if_contains("required"); required && required->is_array()) {
      for (const auto& name : required->get_array()) {
        if (name.is_string() && !object.contains(name.get_string()))
          fail("lacks the required property '" + std::string(name.get_string()) + "'");
      }
    }
    const json::object* properties = nullptr;
    if (const auto* given = s.if_contains("properties"); given && given->is_object())
      properties = &given->get_object();
    const json::value* additional = s.if_contains("additionalProperties");
    for (const auto& [key, value] : object) {
      const std::string at = where + "/" + std::string(key);
      if (properties != nullptr) {
        if (const auto* property = properties->if_contains(key)) {
          Check(value, *property, at, depth, problems);
          continue;
        }
      }
      if (additional != nullptr) {
        if (additional->is_bool() && !additional->get_bool())
          problems.push_back(at + ": is a property the schema does not allow");
        else
          Check(value, *additional, at, depth, problems);
      }
    }
  }

  if (const auto* all = s.if_contains("allOf"); all && all->is_array()) {
    for (const auto& branch : all->get_array()) Check(instance, branch, where, depth + 1, problems);
  }
  for (const char* keyword : {"oneOf", "anyOf"}) {
    const auto* branches = s.if_contains(keyword);
    if (branches == nullptr || !branches->is_array()) continue;
    std::size_t matched = 0;
    std::string why;
    for (std::size_t i = 0; i < branches->get_array().size(); ++i) {
      std::vector<std::string> branch_problems;
      Check(instance, branches->get_array()[i], where, depth + 1, branch_problems);
      if (branch_problems.empty()) {
        ++matched;
      } else {
        why += "; branch " + std::to_string(i) + ": " + branch_problems.front();
      }
    }
    const bool one = std::string_view(keyword) == "oneOf";
    if (matched == 0) fail(std::string("matches none of the ") + keyword + " branches" + why);
    if (one && matched > 1)
      fail("matches " + std::to_string(matched) + " of the oneOf branches, not exactly one");
  }
}

}  // namespace stowage::testing
