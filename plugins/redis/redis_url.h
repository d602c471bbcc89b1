// RedisUrl: where the Redis stage connects, parsed from its `url` setting.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace stowage::redis {

// A parsed `url` value. Accepted forms:
//   redis://[[user]:password@]host[:port][/db]   (port 6379 and db 0 by default)
//   rediss://[[user]:password@]host[:port][/db]  (the same over TLS)
//   unix:///path/to/socket[?db=N]
// Read as core/src/url/url_syntax.h reads URLs (Boost.URL): user, password,
// host and socket path are percent-decoded ("%40" is '@'); the user info runs
// to the last '@' before the first '/', so that a password may hold '@', '?',
// '#' or ':' unescaped (a '/' must be written %2F). The database is the path's
// digits as written.
struct RedisUrl {
  enum class Kind { kTcp, kUnix };

  Kind kind = Kind::kTcp;
  bool tls = false;         // kTcp: rediss://
  std::string host;         // kTcp: a name or an address, without IPv6 brackets
  int port = 6379;          // kTcp
  std::string socket_path;  // kUnix
  std::string user;         // empty: AUTH with the password alone (or no AUTH)
  std::string password;     // empty: no AUTH
  int db = 0;

  // "host:port" or "unix:/path/to/socket": for messages, never holds the
  // password.
  std::string Address() const;
};

// Parses `url`, which names one host. Throws std::invalid_argument when it is
// not one of the accepted forms (or lists several hosts); the message quotes the url with any password masked, says
// what is wrong and lists the accepted forms.
RedisUrl ParseRedisUrl(std::string_view url);

// Parses a `url` that may name several nodes of one Redis Cluster, its host
// part a comma-separated list (redis://[[user]:password@]h1:7000,h2:7000[/db]):
// one RedisUrl per host, each with the url's scheme, user, password and db.
// A url of one host (or a unix:// one) gives one. Throws as ParseRedisUrl.
std::vector<RedisUrl> ParseRedisUrls(std::string_view url);

// `url` with the user-info part masked ("redis://user:***@host"), safe to
// print whether or not the url parses.
std::string RedactRedisUrl(std::string_view url);

}  // namespace stowage::redis
