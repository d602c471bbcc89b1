#include "url_syntax.h"

#include <algorithm>
#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>

namespace stowage::url_syntax {
namespace {

using Reason = UrlRefusal::Reason;

bool HasValidEscapes(std::string_view text) {
  return boost::urls::make_pct_string_view(text).has_value();
}

bool AllDigits(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The user info `text` (its escapes well formed) with what RFC 3986 does
// not allow there percent-encoded.
std::string EscapedUserInfo(std::string_view text) {
  boost::urls::url scratch;
  scratch.set_encoded_userinfo(boost::urls::make_pct_string_view(text).value());
  return std::string(scratch.encoded_userinfo());
}

// The query `text` (its escapes well formed) with what RFC 3986 does not
// allow there percent-encoded.
std::string EscapedQuery(std::string_view text) {
  boost::urls::url scratch;
  scratch.set_encoded_query(boost::urls::make_pct_string_view(text).value());
  return std::string(scratch.encoded_query());
}

// The same for a path: it holds no '?' (that starts the query), and RFC 3986
// allows a path every other character it allows a query.
std::string EscapedPath(std::string_view text) {
  return EscapedQuery(text);
}

// What is wrong with the scheme or `host_and_port` (as written) once
// Boost.URL has refused them; the escapes are known to be well formed.
UrlRefusal Diagnose(std::string_view scheme, std::string_view host_and_port) {
  if (!boost::urls::parse_uri(std::string(scheme) + ":")) return {Reason::kNotAUrl, UrlPart::kScheme, ""};
  std::string_view host = host_and_port;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    const std::size_t close = host.find(']');
    if (close == std::string_view::npos) return {Reason::kUnclosedBracket, UrlPart::kHost, std::string(host)};
    const std::string_view after = host.substr(close + 1);
    if (!after.empty() && after.front() != ':')
      return {Reason::kTextAfterIpAddress, UrlPart::kHost, std::string(after)};
    if (!after.empty()) port = after.substr(1);
    host = host.substr(0, close + 1);
  } else if (const std::size_t colon = host.find(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (!AllDigits(port)) return {Reason::kPortNotANumber, UrlPart::kPort, std::string(port)};
  if (!host.empty() && host.front() == '[')
    return {Reason::kNotAnIpAddress, UrlPart::kHost, std::string(host.substr(1, host.size() - 2))};
  return {Reason::kBadHost, UrlPart::kHost, std::string(host)};
}

}  // namespace

std::optional<UrlPieces> SplitUrl(std::string_view text, std::string_view authority_ends_at) {
  const std::size_t scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  UrlPieces pieces;
  pieces.scheme = text.substr(0, scheme_end);
  const std::string_view rest = text.substr(scheme_end + 3);
  std::string_view authority = rest.substr(0, rest.find_first_of(authority_ends_at));
  const std::string_view tail = rest.substr(authority.size());
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    pieces.user_info = authority.substr(0, at);
    authority.remove_prefix(at + 1);
  }
  pieces.host_and_port = authority;
  const std::size_t question = tail.find('?');
  pieces.path = tail.substr(0, question);
  if (question != std::string_view::npos) pieces.query = tail.substr(question + 1);
  return pieces;
}

std::string_view PartName(UrlPart part) {
  switch (part) {
    case UrlPart::kScheme:
      return "scheme";
    case UrlPart::kUser:
      return "user name";
    case UrlPart::kPassword:
      return "password";
    case UrlPart::kHost:
      return "host";
    case UrlPart::kPort:
      return "port";
    case UrlPart::kPath:
      return "path";
    case UrlPart::kQuery:
      return "query";
  }
  return "url";
}

std::optional<ParsedUrl> ParseUrl(std::string_view text, std::string_view authority_ends_at,
                                  UrlRefusal* refusal) {
  auto refuse = [refusal](UrlRefusal why) -> std::optional<ParsedUrl> {
    *refusal = std::move(why);
    return std::nullopt;
  };
  const std::optional<UrlPieces> pieces = SplitUrl(text, authority_ends_at);
  if (!pieces) return refuse({Reason::kNotAUrl, UrlPart::kScheme, ""});

  // Escapes first, so that a malformed one is named by its part.
  if (pieces->user_info) {
    const std::size_t colon = pieces->user_info->find(':');
    if (!HasValidEscapes(pieces->user_info->substr(0, colon)))
      return refuse({Reason::kMalformedEscape, UrlPart::kUser, ""});
    if (colon != std::string_view::npos && !HasValidEscapes(pieces->user_info->substr(colon + 1)))
      return refuse({Reason::kMalformedEscape, UrlPart::kPassword, ""});
  }
  if (!HasValidEscapes(pieces->host_and_port))
    return refuse({Reason::kMalformedEscape, UrlPart::kHost, std::string(pieces->host_and_port)});
  if (!HasValidEscapes(pieces->path))
    return refuse({Reason::kMalformedEscape, UrlPart::kPath, std::string(pieces->path)});
  if (pieces->query && !HasValidEscapes(*pieces->query))
    return refuse({Reason::kMalformedEscape, UrlPart::kQuery, std::string(*pieces->query)});

  // An IPv6 zone ("[fe80::1%25eth0]") is set aside: Boost.URL 1.81 reads
  // none.
  std::string authority(pieces->host_and_port);
  std::optional<std::string> zone;
  if (const std::string_view host = pieces->host_and_port; !host.empty() && host.front() == '[') {
    const std::size_t close = host.find(']');
    const std::size_t zone_at = host.substr(0, close).find("%25");
    if (close != std::string_view::npos && zone_at != std::string_view::npos) {
      zone = boost::urls::make_pct_string_view(host.substr(zone_at + 3, close - zone_at - 3))->decode();
      authority = std::string(host.substr(0, zone_at)) + std::string(host.substr(close));
    }
  }

  // Boost.URL 1.81 reads a host name that starts with an IPv4 address
  // ("10.0.0.5.nip.io") as that address followed by a path
  // (boostorg/url#755). With its first digit percent-encoded ('0'-'9' are
  // 0x30-0x39), a host not in brackets always reads as a name; decoded, it is
  // the same string.
  if (!authority.empty() && authority.front() >= '0' && authority.front() <= '9') authority.insert(0, "%3");

  // Boost.URL reads the scheme and the authority. Version 1.81 takes what
  // follows a port or a ']' for a path that does not start with '/'
  // (boostorg/url#636: "host:54x2" reads as port 54 and path "x2"), and a '?'
  // or '#' in an authority that only '/' ends starts its query or fragment:
  // anything after the authority is a refusal here.
  const std::string head = std::string(pieces->scheme) + "://" + authority;
  const auto parsed = boost::urls::parse_uri(head);
  if (!parsed || !parsed->encoded_path().empty() || parsed->has_query() || parsed->has_fragment())
    return refuse(Diagnose(pieces->scheme, pieces->host_and_port));
  if (zone && (parsed->host_type() != boost::urls::host_type::ipv6 || zone->empty())) {
    const std::string_view host = pieces->host_and_port;
    return refuse({Reason::kNotAnIpAddress, UrlPart::kHost, std::string(host.substr(1, host.find(']') - 1))});
  }

  // Boost.URL's setters escape what RFC 3986 does not allow in the user info
  // and the query, and keep the escapes already there; the whole text is then
  // parsed. (Not url::set_encoded_path: in 1.81 it writes the path "/" as
  // "/./", boostorg/url#709.)
  std::string whole = std::string(pieces->scheme) + "://";
  if (pieces->user_info) whole += EscapedUserInfo(*pieces->user_info) + "@";
  whole += authority + EscapedPath(pieces->path);
  if (pieces->query) whole += "?" + EscapedQuery(*pieces->query);
  const auto parsed_whole = boost::urls::parse_uri(whole);
  if (!parsed_whole) return refuse(Diagnose(pieces->scheme, pieces->host_and_port));  // not expected
  ParsedUrl out{boost::urls::url(*parsed_whole), {}};
  out.host = out.url.host_address();
  if (zone) out.host += "%" + *zone;
  return out;
}

std::string RedactUserInfo(std::string_view text) {
  const std::size_t scheme_end = text.find("://");
  const std::size_t start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  const std::string_view rest = text.substr(start);
  const std::size_t at = rest.rfind('@');
  if (at == std::string_view::npos) return std::string(text);
  const std::string_view user_info = rest.substr(0, at);
  const std::size_t colon = user_info.find(':');
  const std::string masked =
      colon == std::string_view::npos ? "***" : std::string(user_info.substr(0, colon)) + ":***";
  return std::string(text.substr(0, start)) + masked + std::string(rest.substr(at));
}

std::string ShownPart(std::string_view redacted, std::string_view part) {
  const bool shown = redacted.find(part) != std::string_view::npos;
  return "'" + (shown ? std::string(part) : std::string("***")) + "'";
}

}  // namespace stowage::url_syntax
