#include "redis_url.h"

#include <charconv>
#include <optional>
#include <stdexcept>
#include <string>

#include "url_syntax.h"

namespace stowage::redis {
namespace {

namespace us = url_syntax;

constexpr std::string_view kExpectedForms =
    "expected redis://[[user]:password@]host[:port][/db], rediss://... (TLS) or "
    "unix:///path/to/socket[?db=N]";

// redis:// and rediss://: the authority ends at the first '/' only, so that a
// password may hold an unescaped '?'.
constexpr std::string_view kTcpAuthorityEndsAt = "/";
// unix://: the socket path follows "unix://" at once.
constexpr std::string_view kUnixAuthorityEndsAt = "/?";

[[noreturn]] void Fail(std::string_view url, std::string_view why) {
  throw std::invalid_argument("stage[redis].config.url '" + RedactRedisUrl(url) +
                              "' is not a valid Redis URL: " + std::string(why) + "; " +
                              std::string(kExpectedForms));
}

// Parses a whole decimal number in [min, max]; false otherwise.
bool ParseNumber(std::string_view text, int min, int max, int* out) {
  if (text.empty()) return false;
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) return false;
  *out = value;
  return true;
}

// `part` of `url` as a message may quote it (url_syntax::ShownPart).
std::string Shown(std::string_view url, std::string_view part) {
  return us::ShownPart(RedactRedisUrl(url), part);
}

// Why the redis:// or rediss:// url `url` was refused by the generic reading.
std::string TcpProblem(std::string_view url, const us::UrlRefusal& refusal) {
  using Reason = us::UrlRefusal::Reason;
  switch (refusal.reason) {
    case Reason::kNotAUrl:
      return "it must start with redis://, rediss:// or unix://";
    case Reason::kMalformedEscape:
      if (refusal.part == us::UrlPart::kUser || refusal.part == us::UrlPart::kPassword)
        return "the user or password holds a malformed %-escape";
      if (refusal.part == us::UrlPart::kPath)
        return "the database after '/' must be a non-negative integer, not " +
               Shown(url, std::string_view(refusal.text).substr(1));
      if (refusal.part == us::UrlPart::kQuery)
        return "query parameters are not supported for redis:// and rediss://";
      return "the host holds a malformed %-escape";
    case Reason::kUnclosedBracket:
      return "an IPv6 address misses its closing ']'";
    case Reason::kTextAfterIpAddress:
      return "expected ':port' after the IPv6 address";
    case Reason::kNotAnIpAddress:
      return "the host in brackets is not an IPv6 address";
    case Reason::kBadHost:
      return "the host " + Shown(url, refusal.text) + " is not a host name or an address";
    case Reason::kPortNotANumber:
      return "the port must be a number from 1 to 65535, not " + Shown(url, refusal.text);
  }
  return "it must start with redis://, rediss:// or unix://";
}

RedisUrl ParseUnix(std::string_view url) {
  constexpr std::string_view kRelative = "the socket path must be absolute (unix:///path/to/socket)";
  us::UrlRefusal refusal;
  const std::optional<us::ParsedUrl> parsed = us::ParseUrl(url, kUnixAuthorityEndsAt, &refusal);
  if (!parsed) {
    if (refusal.part == us::UrlPart::kPath) Fail(url, "the socket path holds a malformed %-escape");
    if (refusal.part == us::UrlPart::kQuery) Fail(url, "the query holds a malformed %-escape (only db=N)");
    Fail(url, kRelative);  // something between "unix://" and the path
  }
  const boost::urls::url_view parts = parsed->url;
  if (parts.has_userinfo() || !parsed->host.empty() || parts.has_port() || parts.encoded_path().empty())
    Fail(url, kRelative);
  RedisUrl out;
  out.kind = RedisUrl::Kind::kUnix;
  out.socket_path = parts.path();
  if (!parts.has_query()) return out;
  const auto params = parts.encoded_params();
  std::size_t seen = 0;
  for (const auto& param : params) {
    // "?" alone, or a trailing '&', adds nothing.
    if (++seen == params.size() && param.key.empty() && !param.has_value) break;
    const std::string value = param.value.decode();
    if (param.key != "db" || !param.has_value) {
      Fail(url, "unknown query parameter '" + param.key.decode() + (param.has_value ? "=" + value : "") +
                    "' (only db=N)");
    }
    if (!ParseNumber(param.value, 0, 1 << 20, &out.db))
      Fail(url, "db must be a non-negative integer, not '" + value + "'");
  }
  return out;
}

// Parses `text`, the url of one host; `url`, the url as configured (which
// may list several hosts), is the one messages quote.
RedisUrl ParseTcp(std::string_view url, std::string_view text, bool tls) {
  const us::UrlPieces pieces = *us::SplitUrl(text, kTcpAuthorityEndsAt);
  if (pieces.host_and_port.find(',') != std::string_view::npos)
    Fail(url, "it names several hosts, which only a Redis Cluster takes; set stage[redis].config.cluster = true, "
              "or name one host");
  us::UrlRefusal refusal;
  const std::optional<us::ParsedUrl> parsed = us::ParseUrl(text, kTcpAuthorityEndsAt, &refusal);
  if (!parsed) Fail(url, TcpProblem(url, refusal));
  const boost::urls::url_view parts = parsed->url;

  RedisUrl out;
  out.tls = tls;
  if (parts.has_userinfo()) {
    if (!parts.has_password()) Fail(url, "the part before '@' must be ':password' or 'user:password'");
    out.user = parts.user();
    out.password = parts.password();
    if (!out.user.empty() && out.password.empty()) Fail(url, "a user needs a password (user:password@)");
  }
  out.host = parsed->host;
  if (out.host.empty()) Fail(url, "the host is missing");
  if (parts.has_port()) {
    if (parts.port().empty()) Fail(url, "the port after ':' is empty");
    if (!ParseNumber(parts.port(), 1, 65535, &out.port))
      Fail(url, "the port must be a number from 1 to 65535, not " + Shown(url, parts.port()));
  }
  if (parts.has_query()) Fail(url, "query parameters are not supported for redis:// and rediss://");
  // The database is the path's digits as written: "/%31" is not database 1.
  if (!pieces.path.empty()) {
    const std::string_view db_text = pieces.path.substr(1);
    if (!db_text.empty() && !ParseNumber(db_text, 0, 1 << 20, &out.db))
      Fail(url, "the database after '/' must be a non-negative integer, not " + Shown(url, db_text));
  }
  return out;
}

}  // namespace

std::string RedisUrl::Address() const {
  if (kind == Kind::kUnix) return "unix:" + socket_path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

RedisUrl ParseRedisUrl(std::string_view url) {
  constexpr std::string_view kRedis = "redis://", kUnix = "unix://", kTls = "rediss://";
  if (url.substr(0, kRedis.size()) == kRedis) return ParseTcp(url, url, false);
  if (url.substr(0, kTls.size()) == kTls) return ParseTcp(url, url, true);
  if (url.substr(0, kUnix.size()) == kUnix) return ParseUnix(url);
  Fail(url, "it must start with redis://, rediss:// or unix://");
}

std::vector<RedisUrl> ParseRedisUrls(std::string_view url) {
  constexpr std::string_view kRedis = "redis://", kTls = "rediss://";
  const bool tls = url.substr(0, kTls.size()) == kTls;
  if (!tls && url.substr(0, kRedis.size()) != kRedis) return {ParseRedisUrl(url)};
  // Each host of the list, with the url's scheme, user info and path.
  const std::string_view hosts_text = us::SplitUrl(url, kTcpAuthorityEndsAt)->host_and_port;
  const std::size_t hosts_at = hosts_text.data() - url.data();
  const std::string before(url.substr(0, hosts_at));
  const std::string after(url.substr(hosts_at + hosts_text.size()));
  std::vector<RedisUrl> urls;
  std::string_view hosts = hosts_text;
  while (true) {
    const std::string_view host = hosts.substr(0, hosts.find(','));
    if (host.empty()) Fail(url, "an entry of its comma-separated host list is empty");
    urls.push_back(ParseTcp(url, before + std::string(host) + after, tls));
    if (host.size() == hosts.size()) break;
    hosts = hosts.substr(host.size() + 1);
  }
  return urls;
}

std::string RedactRedisUrl(std::string_view url) {
  return us::RedactUserInfo(url);
}

}  // namespace stowage::redis
