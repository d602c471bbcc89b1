// url_syntax: how stowage reads the URLs of its config ([[database]] url,
// the Redis stage's url, the embeddings providers' endpoints): Boost.URL
// (RFC 3986) parses and percent-decodes them, with the leniencies these URLs
// have always had, so that each caller keeps only its scheme's meaning
// (which schemes, default ports, what the path and the query mean).
//
// The library `stowage_url` depends on Boost.URL alone: the host and the
// bundled plugins link it statically. It is not part of the SDK and is not
// installed.
//
// The leniencies, the same for every caller:
// - the user info runs to the authority's LAST '@', and may hold any
//   character: what RFC 3986 does not allow there ('@', '/', '?', '#', '[',
//   ']', a space, ...) is read as itself ("redis://:p@ss#1@host" has the
//   password "p@ss#1");
// - '#' is an ordinary character: none of these URLs has a fragment (a
//   caller whose scheme has one cuts it off before);
// - a path or a query may hold any character: what RFC 3986 does not allow
//   there is read as itself;
// - an IPv6 address may carry a zone, RFC 6874 style ("[fe80::1%25eth0]",
//   which Boost.URL 1.81 does not read).
// A %-escape must be '%' and two hex digits everywhere, the host must be a
// name (%-escapes allowed), an IPv4 address or an IPv6 address (or IPvFuture)
// in brackets, and the port all digits (its range is the caller's concern).
//
// url_syntax.cc works around three misreadings of Boost.URL 1.81, fixed in
// later versions (boostorg/url#636, #709, #755); see there before upgrading.
#pragma once

#include <boost/url/url.hpp>
#include <boost/url/url_view.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace stowage::url_syntax {

// The text of a URL cut into the parts stowage reads, as written (nothing
// decoded): "scheme://[user_info@]host_and_port[path][?query]".
struct UrlPieces {
  std::string_view scheme;                    // before "://"
  std::optional<std::string_view> user_info;  // before the authority's last '@'
  std::string_view host_and_port;             // the rest of the authority
  std::string_view path;                      // from the authority's end to the first '?'
  std::optional<std::string_view> query;      // after that '?'
};

// Cuts `text`; the authority (after "://") ends at the first character of
// `authority_ends_at` ("/?" for most schemes; "/" where a '?' in the
// authority is an ordinary character) or at the end. nullopt when `text`
// has no "://". The views point into `text`.
std::optional<UrlPieces> SplitUrl(std::string_view text, std::string_view authority_ends_at);

enum class UrlPart { kScheme, kUser, kPassword, kHost, kPort, kPath, kQuery };

// The words a message uses for `part`: "scheme", "user name", "password",
// "host", "port", "path", "query".
std::string_view PartName(UrlPart part);

// Why ParseUrl refused a URL.
struct UrlRefusal {
  enum class Reason {
    kNotAUrl,             // no "scheme://", or a scheme RFC 3986 does not allow
    kMalformedEscape,     // `part` holds a '%' not followed by two hex digits
    kUnclosedBracket,     // the host starts with '[' and has no ']'
    kTextAfterIpAddress,  // something other than ":port" follows the ']'
    kNotAnIpAddress,      // what is in brackets is no IPv6 address (nor IPvFuture)
    kBadHost,             // the host holds a character a host name cannot
    kPortNotANumber,      // the port is not all digits
  };
  Reason reason = Reason::kNotAUrl;
  UrlPart part = UrlPart::kScheme;
  // The part as written, for a message (through ShownPart); empty for the
  // user name and the password.
  std::string text;
};

// A URL as ParseUrl read it.
struct ParsedUrl {
  // Every part percent-encoded as RFC 3986 requires: the characters the
  // leniencies let through are escaped, the escapes of the text are kept.
  // Read it through a boost::urls::url_view (url's params() is not const):
  // decoded parts with user(), password(), path(), params(); encoded ones
  // with encoded_path(), encoded_query(), encoded_params(). Mind that
  // params() reads '+' as a space; params(boost::urls::encoding_opts())
  // does not.
  boost::urls::url url;
  // The host decoded, an IPv6 address without its brackets ("::1", with
  // "%zone" when it has one); empty when the URL has none. Read the host
  // here, not from `url`: there an IPv4 address is written as a name (Boost.URL
  // 1.81 misreads names that start like one), and a zone is left out.
  std::string host;
};

// Reads `text` ("scheme://...", cut as SplitUrl cuts it) with Boost.URL and
// the leniencies above. On a refusal returns nullopt and fills `*refusal`.
std::optional<ParsedUrl> ParseUrl(std::string_view text, std::string_view authority_ends_at,
                                  UrlRefusal* refusal);

// `text`, a URL that may not parse, with its user info masked, for a
// message: "redis://user:***@host" ("***@" when the user info has no ':').
// The user info runs from "://" (or the start) to the LAST '@' of the whole
// text, so that a password holding an unescaped '/', '?' or '#' is masked
// too; a URL with an '@' in its path is masked up to that '@'.
std::string RedactUserInfo(std::string_view text);

// `part` of a URL as a message may quote it, given `redacted`, the URL as
// the message shows it (RedactUserInfo): "'part'" when `redacted` shows it,
// "'***'" otherwise, for it may be a piece of the password (the "port" of
// "redis://:pass/word@host" is "pass").
std::string ShownPart(std::string_view redacted, std::string_view part);

}  // namespace stowage::url_syntax
