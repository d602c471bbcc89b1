#include "redis_url.h"

#include <charconv>
#include <stdexcept>
#include <string>

namespace stowage::redis {
namespace {

constexpr std::string_view kExpectedForms =
    "expected redis://[[user]:password@]host[:port][/db], rediss://... (TLS) or "
    "unix:///path/to/socket[?db=N]";

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

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes; false on a malformed escape.
bool PercentDecode(std::string_view text, std::string* out) {
  out->clear();
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out->push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return false;
    int high = HexValue(text[i + 1]), low = HexValue(text[i + 2]);
    if (high < 0 || low < 0) return false;
    out->push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return true;
}

RedisUrl ParseUnix(std::string_view url, std::string_view rest) {
  RedisUrl parsed;
  parsed.kind = RedisUrl::Kind::kUnix;
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (rest.empty() || rest.front() != '/')
    Fail(url, "the socket path must be absolute (unix:///path/to/socket)");
  parsed.socket_path = std::string(rest);
  while (!query.empty()) {
    std::string_view param = query.substr(0, query.find('&'));
    query = param.size() < query.size() ? query.substr(param.size() + 1) : std::string_view();
    if (param.substr(0, 3) != "db=")
      Fail(url, "unknown query parameter '" + std::string(param) + "' (only db=N)");
    if (!ParseNumber(param.substr(3), 0, 1 << 20, &parsed.db))
      Fail(url, "db must be a non-negative integer, not '" + std::string(param.substr(3)) + "'");
  }
  return parsed;
}

RedisUrl ParseTcp(std::string_view url, std::string_view rest, bool tls) {
  RedisUrl parsed;
  parsed.tls = tls;
  std::string_view authority = rest.substr(0, rest.find('/'));
  std::string_view path = rest.substr(authority.size());
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    auto colon = userinfo.find(':');
    if (colon == std::string_view::npos)
      Fail(url, "the part before '@' must be ':password' or 'user:password'");
    if (!PercentDecode(userinfo.substr(0, colon), &parsed.user) ||
        !PercentDecode(userinfo.substr(colon + 1), &parsed.password))
      Fail(url, "the user or password holds a malformed %-escape");
    if (!parsed.user.empty() && parsed.password.empty())
      Fail(url, "a user needs a password (user:password@)");
  }
  if (authority.find(',') != std::string_view::npos)
    Fail(url, "it names several hosts, which only a Redis Cluster takes; set stage[redis].config.cluster = true, "
              "or name one host");
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {  // [IPv6]:port
    auto close = authority.find(']');
    if (close == std::string_view::npos) Fail(url, "an IPv6 address misses its closing ']'");
    parsed.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') Fail(url, "expected ':port' after the IPv6 address");
      port_text = after.substr(1);
      if (port_text.empty()) Fail(url, "the port after ':' is empty");
    }
  } else {
    auto colon = authority.find(':');
    parsed.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) Fail(url, "the port after ':' is empty");
    }
  }
  if (parsed.host.empty()) Fail(url, "the host is missing");
  if (!port_text.empty() && !ParseNumber(port_text, 1, 65535, &parsed.port))
    Fail(url, "the port must be a number from 1 to 65535, not '" + std::string(port_text) + "'");
  if (!path.empty()) {
    std::string_view db_text = path.substr(1);
    if (db_text.find('?') != std::string_view::npos)
      Fail(url, "query parameters are not supported for redis:// and rediss://");
    if (!db_text.empty() && !ParseNumber(db_text, 0, 1 << 20, &parsed.db))
      Fail(url, "the database after '/' must be a non-negative integer, not '" + std::string(db_text) + "'");
  }
  return parsed;
}

}  // namespace

std::string RedisUrl::Address() const {
  if (kind == Kind::kUnix) return "unix:" + socket_path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

RedisUrl ParseRedisUrl(std::string_view url) {
  constexpr std::string_view kRedis = "redis://", kUnix = "unix://", kTls = "rediss://";
  if (url.substr(0, kRedis.size()) == kRedis) return ParseTcp(url, url.substr(kRedis.size()), false);
  if (url.substr(0, kTls.size()) == kTls) return ParseTcp(url, url.substr(kTls.size()), true);
  if (url.substr(0, kUnix.size()) == kUnix) return ParseUnix(url, url.substr(kUnix.size()));
  Fail(url, "it must start with redis://, rediss:// or unix://");
}

std::vector<RedisUrl> ParseRedisUrls(std::string_view url) {
  constexpr std::string_view kRedis = "redis://", kTls = "rediss://";
  const bool tls = url.substr(0, kTls.size()) == kTls;
  if (!tls && url.substr(0, kRedis.size()) != kRedis) return {ParseRedisUrl(url)};
  const std::string_view rest = url.substr(tls ? kTls.size() : kRedis.size());
  const std::string_view authority = rest.substr(0, rest.find('/'));
  const std::string_view path = rest.substr(authority.size());
  const std::size_t at = authority.rfind('@');
  const std::string_view userinfo = at == std::string_view::npos ? std::string_view() : authority.substr(0, at + 1);
  std::string_view hosts = at == std::string_view::npos ? authority : authority.substr(at + 1);
  std::vector<RedisUrl> urls;
  while (true) {
    const std::string_view host = hosts.substr(0, hosts.find(','));
    if (host.empty()) Fail(url, "an entry of its comma-separated host list is empty");
    urls.push_back(ParseTcp(url, std::string(userinfo) + std::string(host) + std::string(path), tls));
    if (host.size() == hosts.size()) break;
    hosts = hosts.substr(host.size() + 1);
  }
  return urls;
}

std::string RedactRedisUrl(std::string_view url) {
  auto scheme_end = url.find("://");
  std::size_t start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  std::string_view rest = url.substr(start);
  // The last '@' anywhere: a password with an unescaped '/' is masked too.
  auto at = rest.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  std::string_view userinfo = rest.substr(0, at);
  auto colon = userinfo.find(':');
  std::string masked =
      colon == std::string_view::npos ? "***" : std::string(userinfo.substr(0, colon)) + ":***";
  return std::string(url.substr(0, start)) + masked + std::string(rest.substr(at));
}

}  // namespace stowage::redis
