#include "database/endpoint.h"

#include <cctype>
#include <stdexcept>
#include <utility>
#include <vector>

namespace stowage::database {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes; `what` names the part for the error message.
std::string PercentDecode(const std::string& text, const char* what, const std::string& fix) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    int hi = i + 2 < text.size() ? HexValue(text[i + 1]) : -1;
    int lo = i + 2 < text.size() ? HexValue(text[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      throw std::invalid_argument(std::string("the PostgreSQL url has a bad %-escape in its ") + what + fix);
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

// Quotes a value for a libpq keyword/value connection string.
std::string QuoteConninfo(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

}  // namespace

Endpoint ParseEndpoint(const std::string& url, const std::string& name,
                       std::chrono::milliseconds connect_timeout) {
  const std::string fix =
      "; write postgresql://user[:password]@host[:port]/db as [[database]] " + name + "'s url";
  std::string rest;
  for (const char* scheme : {"postgresql://", "postgres://"}) {
    if (url.rfind(scheme, 0) == 0) rest = url.substr(std::string(scheme).size());
  }
  if (rest.empty()) {
    throw std::invalid_argument("the PostgreSQL url does not start with postgresql://" + fix);
  }

  std::string query;
  if (auto q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest.resize(q);
  }
  std::string dbname;
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    dbname = PercentDecode(rest.substr(slash + 1), "database name", fix);
    rest.resize(slash);
  }
  std::string user, password;
  bool has_password = false;
  std::string redacted_userinfo;
  if (auto at = rest.rfind('@'); at != std::string::npos) {
    std::string userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (auto colon = userinfo.find(':'); colon != std::string::npos) {
      has_password = true;
      password = PercentDecode(userinfo.substr(colon + 1), "password", fix);
      userinfo.resize(colon);
      redacted_userinfo = userinfo + ":***@";
    } else {
      redacted_userinfo = userinfo + "@";
    }
    user = PercentDecode(userinfo, "user name", fix);
  }
  std::string host = rest, port;
  if (!host.empty() && host.front() == '[') {  // [ipv6]:port
    auto close = host.find(']');
    if (close == std::string::npos)
      throw std::invalid_argument("the PostgreSQL url has an unclosed '[' in its host" + fix);
    if (close + 1 < host.size()) {
      if (host[close + 1] != ':')
        throw std::invalid_argument("the PostgreSQL url has junk after its host" + fix);
      port = host.substr(close + 2);
    }
    host = host.substr(1, close - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string::npos) {
    port = host.substr(colon + 1);
    host.resize(colon);
  }
  for (char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c))) {
      throw std::invalid_argument("the PostgreSQL url has a port that is not a number" + fix);
    }
  }
  host = PercentDecode(host, "host", fix);

  std::vector<std::pair<std::string, std::string>> params;
  std::string options, query_password;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string item = query.substr(0, amp);
    query = amp == std::string::npos ? "" : query.substr(amp + 1);
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos) {
      // The item is not shown: after a '?' left unescaped in a password, it
      // is the rest of the password.
      throw std::invalid_argument(
          "the PostgreSQL url has a query parameter without '=' (write ?key=value&...; a '?' in the "
          "password must be written %3F)" +
          fix);
    }
    std::string key = PercentDecode(item.substr(0, eq), "query parameters", fix);
    std::string value = PercentDecode(item.substr(eq + 1), "query parameters", fix);
    if (key == "host" && host.empty()) host = value;  // e.g. ?host=/var/run/postgresql
    if (key == "port" && port.empty()) port = value;
    if (key == "password") query_password = value;
    if (key == "options") {
      options = value;
      continue;
    }
    params.emplace_back(std::move(key), std::move(value));
  }

  Endpoint endpoint;
  std::string shown_host = host.empty() ? "localhost" : host;
  std::string shown_port = port.empty() ? "5432" : port;
  endpoint.address = shown_host + ":" + shown_port + "/" + (dbname.empty() ? user : dbname);
  std::string redacted = url;
  if (has_password) {
    auto start = url.find("://") + 3;
    auto at = url.rfind('@', url.find_first_of("/?", start));
    redacted = url.substr(0, start) + redacted_userinfo + url.substr(at + 1);
  }
  endpoint.redacted_url = redacted;

  std::string& c = endpoint.conninfo;
  auto add = [&c](const std::string& key, const std::string& value) {
    if (!c.empty()) c += ' ';
    c += key + "=" + QuoteConninfo(value);
  };
  if (!host.empty()) add("host", host);
  if (!port.empty()) add("port", port);
  if (!dbname.empty()) add("dbname", dbname);
  if (!user.empty()) add("user", user);
  if (has_password) add("password", password);
  endpoint.password = has_password ? password : query_password;
  // libpq counts whole seconds; round up so that a short timeout stays non-zero.
  add("connect_timeout", std::to_string((connect_timeout.count() + 999) / 1000));
  add("application_name", "stowage");
  for (const auto& [key, value] : params) add(key, value);
  // Notices below warning level are not sent: they would only be logged.
  const std::string session_options = "-c client_min_messages=warning";
  add("options", options.empty() ? session_options : options + " " + session_options);
  return endpoint;
}

}  // namespace stowage::database
