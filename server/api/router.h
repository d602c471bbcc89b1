// Router: the routes of stowaged in one table, matched once per request.
//
// A route is a path pattern, the methods it takes and its handler. A pattern
// is segments between slashes: literal ones, matched byte for byte, and
// `{name}` ones, each matched by one non-empty segment of the path taken as
// sent: not percent-decoded ("/v1/guest/chat/a%2Fb" gives guest_id "a%2Fb"),
// and never holding a '/'. Paths match exactly: "/healthz/" (a trailing
// slash) and "//healthz" are other paths. The path is the request target up
// to its '?' (PathOf); the query string is the handler's (QueryOf). A route's
// pattern is also the label of its requests in metrics, never the raw path.
//
// Answer gives a request, by the route its path matched:
//   HEAD           GET's answer (everything below as for GET; errors name
//                  GET), headers only
//   no route       the router's no_route answer
//   any method     the route's admit refusal, if it refuses, before its
//                  method is looked at (a client without access learns
//                  nothing of the route)
//   OPTIONS        204 with Allow: the route's methods, HEAD beside GET,
//                  and OPTIONS
//   another method 405 method_not_allowed with Allow: the route's methods
//   its methods    the route's handler, given the path's parameters
// and 500 internal (InternalError) when any of these throws.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/http_types.h"

namespace stowage::api {

// Whom a route is for, which decides the listeners that serve it
// (ServerHandler).
enum class Audience {
  kGuests,     // the guest chat API: every listener but the admin one
  kOperators,  // the admin routes: every listener but the public one
  kEveryone,   // probes and metrics: every listener
};

// The values a path gave the `{name}` segments of its route's pattern, by
// name, as sent.
using PathParams = std::map<std::string, std::string, std::less<>>;

struct Route {
  using Handler = std::function<http::Response(const http::Request& request, const PathParams& params)>;
  using Admit = std::function<std::optional<http::Response>(const http::Request& request)>;

  std::string pattern;               // e.g. "/v1/guest/chat/{guest_id}/search"
  std::vector<std::string> methods;  // as Allow lists them, e.g. {"GET", "POST", "DELETE"};
                                     // never HEAD or OPTIONS (the router answers them)
  Handler handler;                   // called for one of `methods` only
  Audience audience = Audience::kGuests;
  // Null, or the check every request of the route passes first: nullopt
  // admits it, an answer refuses it with that answer (the admin token).
  Admit admit = nullptr;
  // Its GET is answered at once without blocking, so the HTTP layer may run
  // it on an I/O thread (http::Handler::Immediate): /healthz.
  bool immediate = false;
};

struct RouteMatch {
  const Route* route = nullptr;  // null when no route matches the path
  PathParams params;             // one value per `{name}` of its pattern
};

// The label in metrics of a request no route matches.
inline constexpr std::string_view kNoRouteLabel = "other";

// The label in metrics of a request for `route` (null: none): its pattern.
inline std::string_view LabelOf(const Route* route) {
  return route != nullptr ? std::string_view(route->pattern) : kNoRouteLabel;
}

class Router {
 public:
  using NoRoute = std::function<http::Response(const http::Request& request)>;

  // Every pattern starts with '/' and has no empty segment, else
  // std::invalid_argument. When patterns overlap, the first route listed
  // matches. `no_route` answers a request whose path matches no route.
  Router(std::vector<Route> routes, NoRoute no_route);

  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // The first route whose pattern `path` matches, with its parameters.
  RouteMatch Match(std::string_view path) const;
  // The same route without its parameters; allocates nothing.
  const Route* Find(std::string_view path) const noexcept;
  // Every route, in the order they are matched: the route table, e.g. to
  // compare with the API's description (docs/openapi.yaml).
  std::vector<const Route*> Routes() const;

  // Answers `request` by `match` (see the top of this file). `match` comes
  // from Match, or is empty to answer as if no route matched.
  http::Response Answer(const http::Request& request, const RouteMatch& match) const noexcept;
  // Answer(request, Match(PathOf(request.target))).
  http::Response Answer(const http::Request& request) const noexcept;

 private:
  struct Segment {
    std::string text;  // the literal, or the parameter's name
    bool parameter = false;
  };
  struct Entry {
    Route route;
    std::vector<Segment> segments;
  };

  // Whether `path` matches `segments`; adds each parameter's value to
  // `params` unless it is null.
  static bool Matches(const std::vector<Segment>& segments, std::string_view path, PathParams* params);
  // Answer for a request that is not HEAD. May throw.
  http::Response Dispatch(const http::Request& request, const RouteMatch& match) const;

  std::vector<Entry> entries_;
  NoRoute no_route_;
};

// The path of a request target: all before its first '?'.
std::string_view PathOf(std::string_view target);
// The query string of a request target: all after its first '?'; empty when
// it has none.
std::string_view QueryOf(std::string_view target);

}  // namespace stowage::api
