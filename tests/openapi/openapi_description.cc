#include "openapi/openapi_description.h"

#include <boost/json.hpp>
#include <cctype>
#include <stdexcept>

namespace stowage::testing {
namespace {

namespace json = boost::json;

constexpr const char* kMethods[] = {"get", "put", "post", "delete", "options", "head", "patch", "trace"};

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// The media type of a Content-Type value: "text/plain" of "text/plain; charset=utf-8".
std::string MediaOf(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  while (!media.empty() && media.front() == ' ') media.remove_prefix(1);
  return Lower(media);
}

json::value ParseOrNull(std::string_view text) {
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  return ec ? json::value() : value;
}

}  // namespace

OpenApiDescription::OpenApiDescription(std::string_view json_text) : validator_(document_) {
  boost::system::error_code ec;
  document_ = json::parse(json_text, ec);
  if (ec) throw std::runtime_error("the description is not JSON: " + ec.message());
  const auto* version = document_.is_object() ? document_.as_object().if_contains("openapi") : nullptr;
  if (version == nullptr || !version->is_string() || !version->get_string().starts_with("3.1."))
    throw std::runtime_error("the description is not an OpenAPI 3.1 document (its 'openapi' is not 3.1.x)");
  if (!document_.as_object().contains("paths") || !document_.at("paths").is_object())
    throw std::runtime_error("the description has no 'paths' object");
}

const json::value& OpenApiDescription::Deref(const json::value& value) const {
  const json::value* at = &value;
  for (int i = 0; i < 32; ++i) {
    const json::value* ref = at->is_object() ? at->as_object().if_contains("$ref") : nullptr;
    if (ref == nullptr) return *at;
    const json::value* target = ref->is_string() ? validator_.Resolve(ref->get_string()) : nullptr;
    if (target == nullptr) throw std::runtime_error("the $ref " + json::serialize(*ref) + " names nothing");
    at = target;
  }
  throw std::runtime_error("$refs nest more than 32 deep");
}

std::vector<std::pair<std::string, std::string>> OpenApiDescription::Operations() const {
  std::vector<std::pair<std::string, std::string>> operations;
  for (const auto& [path, item] : document_.at("paths").as_object()) {
    const json::value& resolved = Deref(item);
    if (!resolved.is_object()) continue;
    for (const char* method : kMethods)
      if (resolved.as_object().contains(method)) operations.emplace_back(Upper(method), std::string(path));
  }
  return operations;
}

const json::object* OpenApiDescription::Operation(std::string_view method, std::string_view path) const {
  const auto* item = document_.at("paths").as_object().if_contains(path);
  if (item == nullptr) return nullptr;
  const json::value& resolved = Deref(*item);
  const auto* operation = resolved.is_object() ? resolved.as_object().if_contains(Lower(method)) : nullptr;
  return operation != nullptr && operation->is_object() ? &operation->as_object() : nullptr;
}

std::optional<std::string> OpenApiDescription::StatusKey(std::string_view method, std::string_view path,
                                                         int status) const {
  const json::object* operation = Operation(method, path);
  if (operation == nullptr || !operation->contains("responses")) return std::nullopt;
  const json::object& responses = operation->at("responses").as_object();
  const std::string exact = std::to_string(status);
  if (responses.contains(exact)) return exact;
  const std::string range = std::to_string(status / 100) + "XX";
  if (responses.contains(range)) return range;
  return std::nullopt;
}

std::set<std::string> OpenApiDescription::CodesOf(const json::value& schema_in, int depth) const {
  if (depth > 32) throw std::runtime_error("schemas nest more than 32 deep");
  const json::value& schema = Deref(schema_in);
  if (!schema.is_object()) return {"-"};
  const json::object& s = schema.as_object();
  for (const char* keyword : {"oneOf", "anyOf"}) {
    if (const auto* branches = s.if_contains(keyword)) {
      std::set<std::string> codes;
      for (const auto& branch : branches->as_array()) codes.merge(CodesOf(branch, depth + 1));
      return codes;
    }
  }
  if (const auto* all = s.if_contains("allOf")) {
    std::optional<std::set<std::string>> codes;
    for (const auto& branch : all->as_array()) {
      std::set<std::string> some = CodesOf(branch, depth + 1);
      if (some == std::set<std::string>{"-"}) continue;  // says nothing of the code
      if (!codes) {
        codes = std::move(some);
      } else {
        std::set<std::string> both;
        for (const auto& code : *codes)
          if (some.contains(code)) both.insert(code);
        codes = std::move(both);
      }
    }
    return codes ? *codes : std::set<std::string>{"-"};
  }
  const json::value* code = nullptr;
  if (const auto* properties = s.if_contains("properties"); properties && properties->is_object()) {
    if (const auto* error = properties->as_object().if_contains("error")) {
      const json::value& error_schema = Deref(*error);
      if (const auto* inner =
              error_schema.is_object() ? error_schema.as_object().if_contains("properties") : nullptr)
        code = inner->as_object().if_contains("code");
    }
  }
  if (code == nullptr) return {"-"};
  const json::value& code_schema = Deref(*code);
  std::set<std::string> codes;
  if (const auto* value = code_schema.as_object().if_contains("const"))
    codes.insert(std::string(value->as_string()));
  if (const auto* values = code_schema.as_object().if_contains("enum"))
    for (const auto& value : values->as_array()) codes.insert(std::string(value.as_string()));
  if (codes.empty()) throw std::runtime_error("an error schema's code has neither const nor enum");
  return codes;
}

std::set<Outcome> OpenApiDescription::Outcomes(std::string_view method, std::string_view path) const {
  std::set<Outcome> outcomes;
  const json::object* operation = Operation(method, path);
  if (operation == nullptr) return outcomes;
  for (const auto& [key, response_in] : operation->at("responses").as_object()) {
    const json::value& response = Deref(response_in);
    const auto* content = response.as_object().if_contains("content");
    if (content == nullptr || content->as_object().empty()) {
      outcomes.emplace(std::string(key), "-");
      continue;
    }
    for (const auto& [media, entry] : content->as_object()) {
      const auto* schema = entry.as_object().if_contains("schema");
      for (const auto& code : schema ? CodesOf(*schema) : std::set<std::string>{"-"})
        outcomes.emplace(std::string(key), code);
    }
  }
  return outcomes;
}

std::string OpenApiDescription::CodeOf(const ReceivedAnswer& answer) {
  const json::value body = ParseOrNull(answer.body);
  if (!body.is_object()) return "-";
  const auto* error = body.as_object().if_contains("error");
  if (error == nullptr || !error->is_object()) return "-";
  const auto* code = error->as_object().if_contains("code");
  return code != nullptr && code->is_string() ? std::string(code->get_string()) : "-";
}

void OpenApiDescription::CheckHeaders(const json::object& response, const ReceivedAnswer& answer,
                                      std::vector<std::string>& problems) const {
  const auto* headers = response.if_contains("headers");
  if (headers == nullptr) return;
  for (const auto& [name, header_in] : headers->as_object()) {
    const json::object& header = Deref(header_in).as_object();
    auto sent = answer.headers.find(Lower(name));
    const auto* required = header.if_contains("required");
    if (sent == answer.headers.end()) {
      if (required != nullptr && required->as_bool())
        problems.push_back("the header " + std::string(name) + " is missing");
      continue;
    }
    const auto* schema = header.if_contains("schema");
    if (schema == nullptr) continue;
    // A header's text as its schema's type reads it (style "simple").
    const json::value& resolved = Deref(*schema);
    const auto* type = resolved.as_object().if_contains("type");
    json::value value = json::string(sent->second);
    if (type != nullptr && (*type == "integer" || *type == "number")) {
      value = ParseOrNull(sent->second);
      if (!value.is_number()) {
        problems.push_back("the header " + std::string(name) + " is '" + sent->second + "', not a number");
        continue;
      }
    } else if (type != nullptr && *type == "boolean") {
      value = ParseOrNull(sent->second);
    }
    for (const auto& problem : validator_.Validate(value, *schema))
      problems.push_back("the header " + std::string(name) + problem);
  }
}

void OpenApiDescription::CheckBody(const json::value& schema, std::string_view media,
                                   const ReceivedAnswer& answer, std::vector<std::string>& problems) const {
  json::value body;
  if (media == "application/json") {
    boost::system::error_code ec;
    body = json::parse(answer.body, ec);
    if (ec) {
      problems.push_back("the body is not JSON (" + ec.message() + "): " + answer.body.substr(0, 200));
      return;
    }
    // An Error's request_id is the answer's X-Request-Id.
    if (body.is_object() && body.as_object().contains("error") && body.at("error").is_object()) {
      const auto* id = body.at("error").as_object().if_contains("request_id");
      auto header = answer.headers.find("x-request-id");
      if (id != nullptr && id->is_string() && header != answer.headers.end() &&
          id->get_string() != header->second)
        problems.push_back("the body's request_id " + json::serialize(*id) + " is not the X-Request-Id " +
                           header->second);
    }
  } else {
    body = json::string(answer.body);
  }
  for (const auto& problem : validator_.Validate(body, schema)) problems.push_back("the body" + problem);
}

std::vector<std::string> OpenApiDescription::Check(std::string_view method, std::string_view path,
                                                   const ReceivedAnswer& answer) const {
  std::vector<std::string> problems;
  const std::string what =
      Upper(method) + " " + std::string(path) + " " + std::to_string(answer.status) + ": ";
  try {
    const std::optional<std::string> key = StatusKey(method, path, answer.status);
    if (!key) {
      if (Operation(method, path) == nullptr) return {what + "the description has no such operation"};
      return {what + "the description lists no response for this status"};
    }
    const json::object& response = Deref(Operation(method, path)->at("responses").at(*key)).as_object();
    CheckHeaders(response, answer, problems);
    const auto* content = response.if_contains("content");
    if (content == nullptr || content->as_object().empty()) {
      if (!answer.body.empty())
        problems.push_back("the description lists no content, yet the body is '" +
                           answer.body.substr(0, 200) + "'");
    } else {
      auto type = answer.headers.find("content-type");
      const std::string media = type == answer.headers.end() ? "" : MediaOf(type->second);
      const auto* entry = content->as_object().if_contains(media);
      if (entry == nullptr) {
        problems.push_back("the Content-Type '" + (type == answer.headers.end() ? "" : type->second) +
                           "' is not one the description lists");
      } else if (Upper(method) != "HEAD" && entry->as_object().contains("schema")) {
        CheckBody(entry->at("schema"), media, answer, problems);
      }
    }
  } catch (const std::exception& e) {
    problems.push_back(std::string("the description could not be read: ") + e.what());
  }
  for (auto& problem : problems)
    if (!problem.starts_with(what)) problem = what + problem;
  return problems;
}

std::vector<std::string> OpenApiDescription::CheckAgainstSchema(std::string_view schema_name,
                                                                const ReceivedAnswer& answer) const {
  std::vector<std::string> problems;
  try {
    const json::value* schema = validator_.Resolve("#/components/schemas/" + std::string(schema_name));
    if (schema == nullptr) return {"the description has no schema " + std::string(schema_name)};
    json::object response;
    response["headers"] =
        json::object{{"X-Request-Id", json::object{{"$ref", "#/components/headers/XRequestId"}}}};
    CheckHeaders(response, answer, problems);
    auto type = answer.headers.find("content-type");
    if (type == answer.headers.end() || MediaOf(type->second) != "application/json")
      problems.push_back("the Content-Type is not application/json");
    CheckBody(*schema, "application/json", answer, problems);
  } catch (const std::exception& e) {
    problems.push_back(std::string("the description could not be read: ") + e.what());
  }
  return problems;
}

}  // namespace stowage::testing
