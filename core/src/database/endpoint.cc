#include "database/endpoint.h"

#include <optional>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "url_syntax.h"

namespace stowage::database {
namespace {

// libpq's URL: its authority ends at the first '/' or '?', so that a '?' in a
// password starts the query (written %3F, it is the password's).
constexpr std::string_view kAuthorityEndsAt = "/?";

// What is wrong with the url, for "the PostgreSQL url <this>". Quotes nothing
// of the url: in one that does not parse as meant, any part may hold the
// password.
std::string Problem(const url_syntax::UrlRefusal& refusal) {
  using Reason = url_syntax::UrlRefusal::Reason;
  switch (refusal.reason) {
    case Reason::kNotAUrl:
      return "does not start with postgresql://";
    case Reason::kMalformedEscape:
      if (refusal.part == url_syntax::UrlPart::kPath) return "has a bad %-escape in its database name";
      if (refusal.part == url_syntax::UrlPart::kQuery) return "has a bad %-escape in its query parameters";
      return "has a bad %-escape in its " + std::string(url_syntax::PartName(refusal.part));
    case Reason::kUnclosedBracket:
      return "has an unclosed '[' in its host";
    case Reason::kTextAfterIpAddress:
      return "has junk after its host";
    case Reason::kNotAnIpAddress:
      return "has a host in brackets that is not an IPv6 address";
    case Reason::kBadHost:
      return "has a host that is not a host name or an address (percent-encode a unix socket directory, "
             "or give it as ?host=...)";
    case Reason::kPortNotANumber:
      return "has a port that is not a number";
  }
  return "is not a URL";
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
  auto refuse = [&fix](const std::string& problem) {
    throw std::invalid_argument("the PostgreSQL url " + problem + fix);
  };
  if (url.rfind("postgresql://", 0) != 0 && url.rfind("postgres://", 0) != 0)
    refuse("does not start with postgresql://");
  if (url == "postgresql://" || url == "postgres://") refuse("has nothing after postgresql://");
  url_syntax::UrlRefusal refusal;
  std::optional<url_syntax::ParsedUrl> parsed = url_syntax::ParseUrl(url, kAuthorityEndsAt, &refusal);
  if (!parsed) refuse(Problem(refusal));
  const boost::urls::url_view parts = parsed->url;

  std::string host = parsed->host;
  // Digits, as many as written: libpq checks the range when it connects.
  std::string port = parts.has_port() ? std::string(parts.port()) : "";
  // The path after its '/', '/'s included: "/a/b" names database "a/b".
  const std::string path = parts.path();
  const std::string dbname = path.empty() ? "" : path.substr(1);
  const std::string user = parts.has_userinfo() ? parts.user() : "";
  const bool has_password = parts.has_password();
  const std::string password = has_password ? parts.password() : "";

  std::vector<std::pair<std::string, std::string>> params;
  std::string options, query_password;
  // '+' is itself in a libpq url, not a space.
  for (const auto& param : parts.params(boost::urls::encoding_opts(/*space_as_plus=*/false))) {
    if (param.key.empty() && !param.has_value) continue;  // "&&", or a '?' alone
    if (!param.has_value) {
      // The item is not shown: after a '?' left unescaped in a password, it
      // is the rest of the password.
      refuse(
          "has a query parameter without '=' (write ?key=value&...; a '?' in the password must be written "
          "%3F)");
    }
    if (param.key == "host" && host.empty()) host = param.value;  // e.g. ?host=/var/run/postgresql
    if (param.key == "port" && port.empty()) port = param.value;
    if (param.key == "password") query_password = param.value;
    if (param.key == "options") {
      options = param.value;
      continue;
    }
    params.emplace_back(param.key, param.value);
  }

  Endpoint endpoint;
  std::string shown_host = host.empty() ? "localhost" : host;
  std::string shown_port = port.empty() ? "5432" : port;
  endpoint.address = shown_host + ":" + shown_port + "/" + (dbname.empty() ? user : dbname);
  endpoint.redacted_url = url;
  if (has_password) {
    const url_syntax::UrlPieces pieces = *url_syntax::SplitUrl(url, kAuthorityEndsAt);
    const std::string_view user_info = *pieces.user_info;
    endpoint.redacted_url = std::string(pieces.scheme) + "://" +
                            std::string(user_info.substr(0, user_info.find(':'))) + ":***@" +
                            url.substr(pieces.host_and_port.data() - url.data());
  }

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
