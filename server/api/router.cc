#include "api/router.h"

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <utility>

#include "api/api_error.h"

namespace stowage::api {
namespace {

// "GET, POST, DELETE".
std::string Joined(const std::vector<std::string>& methods) {
  std::string out;
  for (const auto& method : methods) out += (out.empty() ? "" : ", ") + method;
  return out;
}

http::Response MethodNotAllowed(const std::string& method, const Route& route) {
  const std::string allow = Joined(route.methods);
  http::Response response = ErrorResponse(ApiError::MethodNotAllowed(
      "method " + method + " is not allowed on " + route.pattern + "; use " + allow));
  response.headers.emplace_back("Allow", allow);
  return response;
}

http::Response Options(const Route& route) {
  std::string allow = Joined(route.methods);
  if (std::find(route.methods.begin(), route.methods.end(), "GET") != route.methods.end()) allow += ", HEAD";
  allow += ", OPTIONS";
  http::Response response;
  response.status = 204;
  response.content_type.clear();
  response.headers.emplace_back("Allow", std::move(allow));
  return response;
}

}  // namespace

Router::Router(std::vector<Route> routes, NoRoute no_route) : no_route_(std::move(no_route)) {
  for (Route& route : routes) {
    const std::string& pattern = route.pattern;
    if (!pattern.starts_with('/'))
      throw std::invalid_argument("route pattern '" + pattern + "' must start with '/'");
    Entry entry;
    for (std::size_t at = 1;;) {
      const std::size_t slash = std::min(pattern.find('/', at), pattern.size());
      std::string text = pattern.substr(at, slash - at);
      if (text.empty()) throw std::invalid_argument("route pattern '" + pattern + "' has an empty segment");
      const bool parameter = text.size() > 2 && text.front() == '{' && text.back() == '}';
      entry.segments.push_back({parameter ? text.substr(1, text.size() - 2) : std::move(text), parameter});
      if (slash == pattern.size()) break;
      at = slash + 1;
    }
    entry.route = std::move(route);
    entries_.push_back(std::move(entry));
  }
}

bool Router::Matches(const std::vector<Segment>& segments, std::string_view path, PathParams* params) {
  if (!path.starts_with('/')) return false;
  std::size_t at = 1;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::size_t slash = std::min(path.find('/', at), path.size());
    const std::string_view part = path.substr(at, slash - at);
    if (segments[i].parameter) {
      if (part.empty()) return false;
      if (params != nullptr) params->emplace(segments[i].text, part);
    } else if (part != segments[i].text) {
      return false;
    }
    const bool last = i + 1 == segments.size();
    if (last != (slash == path.size())) return false;  // the path is longer, or shorter
    at = slash + 1;
  }
  return true;
}

const Route* Router::Find(std::string_view path) const noexcept {
  for (const Entry& entry : entries_)
    if (Matches(entry.segments, path, nullptr)) return &entry.route;
  return nullptr;
}

std::vector<const Route*> Router::Routes() const {
  std::vector<const Route*> routes;
  routes.reserve(entries_.size());
  for (const Entry& entry : entries_) routes.push_back(&entry.route);
  return routes;
}

RouteMatch Router::Match(std::string_view path) const {
  RouteMatch match;
  for (const Entry& entry : entries_) {
    if (Matches(entry.segments, path, nullptr)) {
      match.route = &entry.route;
      Matches(entry.segments, path, &match.params);
      break;
    }
  }
  return match;
}

http::Response Router::Answer(const http::Request& request, const RouteMatch& match) const noexcept {
  const bool head = request.method == "HEAD";
  http::Response response;
  try {
    if (head) {
      http::Request get = request;
      get.method = "GET";
      response = Dispatch(get, match);
    } else {
      response = Dispatch(request, match);
    }
  } catch (const std::exception& e) {
    response = InternalError(request, e.what());
  } catch (...) {
    response = InternalError(request, "an exception of unknown type");
  }
  response.head_only = head;
  return response;
}

http::Response Router::Answer(const http::Request& request) const noexcept {
  try {
    return Answer(request, Match(PathOf(request.target)));
  } catch (const std::exception& e) {
    return InternalError(request, e.what());
  }
}

http::Response Router::Dispatch(const http::Request& request, const RouteMatch& match) const {
  if (match.route == nullptr) return no_route_(request);
  const Route& route = *match.route;
  if (route.admit) {
    if (std::optional<http::Response> refused = route.admit(request)) return std::move(*refused);
  }
  if (request.method == "OPTIONS") return Options(route);
  if (std::find(route.methods.begin(), route.methods.end(), request.method) == route.methods.end())
    return MethodNotAllowed(request.method, route);
  return route.handler(request, match.params);
}

std::string_view PathOf(std::string_view target) {
  return target.substr(0, target.find('?'));
}

std::string_view QueryOf(std::string_view target) {
  const std::size_t question = target.find('?');
  return question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
}

}  // namespace stowage::api
