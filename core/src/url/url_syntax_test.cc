// url_syntax: the leniencies every stowage URL has, and the refusals, each
// naming its part.
#include "url_syntax.h"

#include <gtest/gtest.h>

#include <string>

namespace stowage::url_syntax {
namespace {

using Reason = UrlRefusal::Reason;

ParsedUrl Parsed(std::string_view text, std::string_view authority_ends_at = "/?") {
  UrlRefusal refusal;
  std::optional<ParsedUrl> parsed = ParseUrl(text, authority_ends_at, &refusal);
  EXPECT_TRUE(parsed) << text << " refused: " << PartName(refusal.part) << " '" << refusal.text << "'";
  return parsed ? *parsed : ParsedUrl{};
}

UrlRefusal RefusalOf(std::string_view text, std::string_view authority_ends_at = "/?") {
  UrlRefusal refusal;
  EXPECT_FALSE(ParseUrl(text, authority_ends_at, &refusal)) << text << " was accepted";
  return refusal;
}

TEST(UrlSyntaxTest, SplitsWhereTheCallerSaysTheAuthorityEnds) {
  std::optional<UrlPieces> pieces = SplitUrl("redis://u:p?w@h:1/0?x=1", "/");
  ASSERT_TRUE(pieces);
  EXPECT_EQ(pieces->scheme, "redis");
  EXPECT_EQ(pieces->user_info, "u:p?w");
  EXPECT_EQ(pieces->host_and_port, "h:1");
  EXPECT_EQ(pieces->path, "/0");
  EXPECT_EQ(pieces->query, "x=1");

  pieces = SplitUrl("postgresql://u:p?w@h:1/0", "/?");
  ASSERT_TRUE(pieces);
  EXPECT_FALSE(pieces->user_info);
  EXPECT_EQ(pieces->host_and_port, "u:p");
  EXPECT_EQ(pieces->path, "");
  EXPECT_EQ(pieces->query, "w@h:1/0");
  EXPECT_FALSE(SplitUrl("localhost:6379", "/?"));
}

TEST(UrlSyntaxTest, ReadsTheGenericParts) {
  ParsedUrl parsed = Parsed("postgresql://app:s3cret@db.internal:6432/analytics?sslmode=require&x=a%26b");
  EXPECT_EQ(parsed.url.scheme(), "postgresql");
  EXPECT_EQ(parsed.url.user(), "app");
  EXPECT_TRUE(parsed.url.has_password());
  EXPECT_EQ(parsed.url.password(), "s3cret");
  EXPECT_EQ(parsed.host, "db.internal");
  EXPECT_EQ(parsed.url.port(), "6432");
  EXPECT_EQ(parsed.url.path(), "/analytics");
  ASSERT_EQ(parsed.url.params().size(), 2u);
  EXPECT_EQ((*std::next(parsed.url.params().begin())).value, "a&b");

  parsed = Parsed("redis://h");
  EXPECT_FALSE(parsed.url.has_userinfo());
  EXPECT_FALSE(parsed.url.has_port());
  EXPECT_EQ(parsed.url.encoded_path(), "");
  EXPECT_FALSE(parsed.url.has_query());
  EXPECT_EQ(Parsed("x://").host, "");
}

TEST(UrlSyntaxTest, UserInfoRunsToTheLastAtAndHoldsAnyCharacter) {
  ParsedUrl parsed = Parsed("redis://app:p@ss#w[r]d?x y@host:1", "/");
  EXPECT_EQ(parsed.url.user(), "app");
  EXPECT_EQ(parsed.url.password(), "p@ss#w[r]d?x y");
  EXPECT_EQ(parsed.host, "host");
  // The first ':' ends the user name; later ones are the password's.
  parsed = Parsed("redis://a%3Ab:c:d@h");
  EXPECT_EQ(parsed.url.user(), "a:b");
  EXPECT_EQ(parsed.url.password(), "c:d");
  parsed = Parsed("redis://app:p%40ss%2Fw%25rd@h");
  EXPECT_EQ(parsed.url.password(), "p@ss/w%rd");
  parsed = Parsed("redis://word@h");
  EXPECT_EQ(parsed.url.user(), "word");
  EXPECT_FALSE(parsed.url.has_password());
  parsed = Parsed("redis://:@h");
  EXPECT_TRUE(parsed.url.has_password());
  EXPECT_EQ(parsed.url.password(), "");
}

TEST(UrlSyntaxTest, HashIsAnOrdinaryCharacterAndPathsAndQueriesHoldAnyCharacter) {
  ParsedUrl parsed = Parsed("postgresql://h/db#1 x?options=-c a=b#c|d&q=\xC3\xA9");
  EXPECT_EQ(parsed.url.path(), "/db#1 x");
  EXPECT_FALSE(parsed.url.has_fragment());
  auto param = parsed.url.params().begin();
  EXPECT_EQ((*param).value, "-c a=b#c|d");
  EXPECT_EQ((*++param).value, "\xC3\xA9");
  // Escapes stay as written in the encoded parts.
  EXPECT_EQ(Parsed("http://h/a%2Fb?x=%41").url.encoded_path(), "/a%2Fb");
}

TEST(UrlSyntaxTest, Ipv6HostsInBrackets) {
  ParsedUrl parsed = Parsed("redis://[::1]:7000/2");
  EXPECT_EQ(parsed.host, "::1");
  EXPECT_EQ(parsed.url.port(), "7000");
  EXPECT_EQ(Parsed("http://[2001:db8::7]").host, "2001:db8::7");
  EXPECT_EQ(Parsed("http://[::ffff:10.0.0.1]:80").host, "::ffff:10.0.0.1");
  EXPECT_EQ(Parsed("postgresql://[fe80::1%25eth0]:5432/d").host, "fe80::1%eth0");
  EXPECT_EQ(Parsed("postgresql://[fe80::1%25eth0]:5432/d").url.port(), "5432");
  EXPECT_EQ(Parsed("x://[v1.anything]").host, "v1.anything");
}

TEST(UrlSyntaxTest, NamesThatStartLikeAnIpv4AddressAreNames) {
  // Boost.URL 1.81 alone reads "10.0.0.5.nip.io" as 10.0.0.5 and a path.
  ParsedUrl parsed = Parsed("redis://10.0.0.5.nip.io:6380/0", "/");
  EXPECT_EQ(parsed.host, "10.0.0.5.nip.io");
  EXPECT_EQ(parsed.url.port(), "6380");
  EXPECT_EQ(parsed.url.encoded_path(), "/0");
  EXPECT_EQ(Parsed("http://127.0.0.1.sslip.io/v1").host, "127.0.0.1.sslip.io");
  EXPECT_EQ(Parsed("http://1.2.3.4-a").host, "1.2.3.4-a");
  EXPECT_EQ(Parsed("http://127.0.0.1:8080").host, "127.0.0.1");
}

TEST(UrlSyntaxTest, HostsAreDecoded) {
  EXPECT_EQ(Parsed("postgresql://%2Fvar%2Frun%2Fpostgresql/db").host, "/var/run/postgresql");
  EXPECT_EQ(Parsed("redis://10.0.0.5:1").host, "10.0.0.5");
  EXPECT_EQ(Parsed("redis://my_host-1.internal").host, "my_host-1.internal");
}

TEST(UrlSyntaxTest, RefusalsNameTheirPart) {
  struct Case {
    const char* url;
    Reason reason;
    UrlPart part;
    const char* text;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"h:1", Reason::kNotAUrl, UrlPart::kScheme, ""},
           {"1x://h", Reason::kNotAUrl, UrlPart::kScheme, ""},
           {"://h", Reason::kNotAUrl, UrlPart::kScheme, ""},
           {"x://u%zz:p@h", Reason::kMalformedEscape, UrlPart::kUser, ""},
           {"x://u:p%4@h", Reason::kMalformedEscape, UrlPart::kPassword, ""},
           {"x://u:p%@h", Reason::kMalformedEscape, UrlPart::kPassword, ""},
           {"x://h%zz", Reason::kMalformedEscape, UrlPart::kHost, "h%zz"},
           {"x://h/d%g0", Reason::kMalformedEscape, UrlPart::kPath, "/d%g0"},
           {"x://h/d?a=%", Reason::kMalformedEscape, UrlPart::kQuery, "a=%"},
           {"x://[::1", Reason::kUnclosedBracket, UrlPart::kHost, "[::1"},
           {"x://[::1]x", Reason::kTextAfterIpAddress, UrlPart::kHost, "x"},
           {"x://[::1]x:1", Reason::kTextAfterIpAddress, UrlPart::kHost, "x:1"},
           {"x://[zz]:1", Reason::kNotAnIpAddress, UrlPart::kHost, "zz"},
           {"x://[]", Reason::kNotAnIpAddress, UrlPart::kHost, ""},
           {"x://[::1%25]", Reason::kNotAnIpAddress, UrlPart::kHost, "::1%25"},
           {"x://[1.2.3.4%25eth0]", Reason::kNotAnIpAddress, UrlPart::kHost, "1.2.3.4%25eth0"},
           {"x://[fe80::1%eth0]", Reason::kMalformedEscape, UrlPart::kHost, "[fe80::1%eth0]"},
           {"x://h:54x2/app", Reason::kPortNotANumber, UrlPart::kPort, "54x2"},
           {"x://h:port", Reason::kPortNotANumber, UrlPart::kPort, "port"},
           {"x://a:b:5432", Reason::kPortNotANumber, UrlPart::kPort, "b:5432"},
           {"x://[::1]:8x", Reason::kPortNotANumber, UrlPart::kPort, "8x"},
           {"x://h st", Reason::kBadHost, UrlPart::kHost, "h st"},
           {"x://a]b", Reason::kBadHost, UrlPart::kHost, "a]b"},
       }) {
    UrlRefusal refusal = RefusalOf(c.url);
    EXPECT_EQ(refusal.reason, c.reason) << c.url;
    EXPECT_EQ(refusal.part, c.part) << c.url;
    EXPECT_EQ(refusal.text, c.text) << c.url;
  }
  // With an authority that only '/' ends, a '?' or '#' in the host is the
  // host's, and no host holds one.
  EXPECT_EQ(RefusalOf("redis://h?x", "/").reason, Reason::kBadHost);
  EXPECT_EQ(RefusalOf("redis://h#x/0", "/").reason, Reason::kBadHost);
}

TEST(UrlSyntaxTest, PortsAreDigitsOfAnyRange) {
  // The range is the caller's: PostgreSQL leaves it to libpq.
  EXPECT_EQ(Parsed("x://h:99999").url.port(), "99999");
  EXPECT_EQ(Parsed("x://h:0").url.port(), "0");
  ParsedUrl empty = Parsed("x://h:");
  EXPECT_TRUE(empty.url.has_port());
  EXPECT_EQ(empty.url.port(), "");
}

TEST(UrlSyntaxTest, RedactMasksTheUserInfoUpToTheLastAt) {
  EXPECT_EQ(RedactUserInfo("redis://app:pw@h:1/0"), "redis://app:***@h:1/0");
  EXPECT_EQ(RedactUserInfo("redis://:pw@h:1"), "redis://:***@h:1");
  EXPECT_EQ(RedactUserInfo("redis://word@h"), "redis://***@h");
  EXPECT_EQ(RedactUserInfo("https://u:pa/ss?#@h/x"), "https://u:***@h/x");
  EXPECT_EQ(RedactUserInfo("user:pw@host"), "user:***@host");
  EXPECT_EQ(RedactUserInfo("redis://h:1/0"), "redis://h:1/0");
}

TEST(UrlSyntaxTest, APartIsShownOnlyWhenTheRedactedUrlShowsIt) {
  EXPECT_EQ(ShownPart("redis://h:port", "port"), "'port'");
  // The "port" of "redis://:hunt/er2@host:1" is the start of the password.
  EXPECT_EQ(ShownPart("redis://:***@host:1", "hunt"), "'***'");
  EXPECT_EQ(ShownPart("redis://h/", ""), "''");
}

}  // namespace
}  // namespace stowage::url_syntax
