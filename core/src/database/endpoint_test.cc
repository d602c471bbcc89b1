// ParseEndpoint: the [[database]] urls it takes and what libpq is told, and
// the refusals, which name what is wrong and never the password.
#include "database/endpoint.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace stowage::database {
namespace {

using std::chrono::milliseconds;

Endpoint Parse(const std::string& url) {
  return ParseEndpoint(url, "main", milliseconds(2000));
}

std::string RefusalOf(const std::string& url) {
  try {
    Parse(url);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// The conninfo without the keywords every endpoint has.
std::string Keywords(const Endpoint& endpoint) {
  const std::string tail = " connect_timeout='2' application_name='stowage'";
  std::string c = endpoint.conninfo;
  c = c.substr(0, c.find(" options="));
  if (auto at = c.find(tail); at != std::string::npos) c.erase(at, tail.size());
  return c;
}

TEST(EndpointTest, HostPortDatabaseUserAndPassword) {
  Endpoint endpoint = Parse("postgresql://reader:pw@db.internal:6432/analytics");
  EXPECT_EQ(endpoint.address, "db.internal:6432/analytics");
  EXPECT_EQ(
      endpoint.conninfo,
      "host='db.internal' port='6432' dbname='analytics' user='reader' password='pw' connect_timeout='2' "
      "application_name='stowage' options='-c client_min_messages=warning'");
  EXPECT_EQ(endpoint.password, "pw");
  EXPECT_EQ(endpoint.redacted_url, "postgresql://reader:***@db.internal:6432/analytics");
}

TEST(EndpointTest, DefaultsAndThePostgresScheme) {
  Endpoint endpoint = Parse("postgres://app@db");
  EXPECT_EQ(endpoint.address, "db:5432/app");
  EXPECT_EQ(Keywords(endpoint), "host='db' user='app'");
  EXPECT_EQ(endpoint.password, "");
  EXPECT_EQ(endpoint.redacted_url, "postgres://app@db");
  EXPECT_EQ(Parse("postgresql:///stowage").address, "localhost:5432/stowage");
  EXPECT_EQ(Parse("postgresql://h/").address, "h:5432/");
  // The path after its '/' is the database name, '/'s included.
  EXPECT_EQ(Keywords(Parse("postgresql://h/a/b%2Fc")), "host='h' dbname='a/b/c'");
}

TEST(EndpointTest, QueryParametersAreConnectionKeywords) {
  Endpoint endpoint = Parse(
      "postgresql://app@/stowage?host=/var/run/"
      "postgresql&port=5433&sslmode=require&&options=-c%20work_mem%3D64MB");
  EXPECT_EQ(endpoint.address, "/var/run/postgresql:5433/stowage");
  EXPECT_EQ(endpoint.conninfo,
            "host='/var/run/postgresql' port='5433' dbname='stowage' user='app' connect_timeout='2' "
            "application_name='stowage' host='/var/run/postgresql' port='5433' sslmode='require' "
            "options='-c work_mem=64MB -c client_min_messages=warning'");
  // The url's own host and port win over the query's.
  EXPECT_EQ(Parse("postgresql://h:1/d?host=other&port=2").address, "h:1/d");
  // A password given as a parameter is scrubbed from messages too.
  EXPECT_EQ(Parse("postgresql://h/d?password=s3cret").password, "s3cret");
  // '+' is not a space in a libpq url.
  EXPECT_NE(Parse("postgresql://h/d?application_name=a+b").conninfo.find("application_name='a+b'"),
            std::string::npos);
}

TEST(EndpointTest, PercentEncodedUserAndPassword) {
  Endpoint endpoint = Parse("postgresql://us%40er:p%40ss%2Fw%3Ford%25@h/d");
  EXPECT_NE(endpoint.conninfo.find("user='us@er' password='p@ss/w?ord%'"), std::string::npos)
      << endpoint.conninfo;
  EXPECT_EQ(endpoint.password, "p@ss/w?ord%");
  EXPECT_EQ(endpoint.address, "h:5432/d");
  EXPECT_EQ(endpoint.redacted_url, "postgresql://us%40er:***@h/d");
  // Quotes and backslashes are escaped for the connection string.
  EXPECT_NE(Parse("postgresql://u:it%27s%5C@h/d").conninfo.find("password='it\\'s\\\\'"), std::string::npos);
}

TEST(EndpointTest, PasswordsMayHoldUnescapedAtHashAndBrackets) {
  // The user info runs to the last '@' before the first '/' or '?'.
  Endpoint endpoint = Parse("postgresql://app:p@ss#1[x]@db/app");
  EXPECT_EQ(endpoint.password, "p@ss#1[x]");
  EXPECT_EQ(endpoint.address, "db:5432/app");
  EXPECT_EQ(endpoint.redacted_url, "postgresql://app:***@db/app");
  // '#' is an ordinary character everywhere.
  EXPECT_EQ(Parse("postgresql://h/db#1").address, "h:5432/db#1");
}

TEST(EndpointTest, Ipv6HostsInBrackets) {
  Endpoint endpoint = Parse("postgresql://u@[::1]:5433/d");
  EXPECT_EQ(endpoint.address, "::1:5433/d");
  EXPECT_EQ(Keywords(endpoint), "host='::1' port='5433' dbname='d' user='u'");
  EXPECT_EQ(Keywords(Parse("postgresql://[2001:db8::7]/d")), "host='2001:db8::7' dbname='d'");
  // An RFC 6874 zone is given to libpq as "%zone".
  EXPECT_EQ(Keywords(Parse("postgresql://[fe80::1%25eth0]/d")), "host='fe80::1%eth0' dbname='d'");
  EXPECT_EQ(Keywords(Parse("postgresql://[::1]:/d")), "host='::1' dbname='d'");
}

TEST(EndpointTest, PortsAreDigitsWhoseRangeLibpqChecks) {
  EXPECT_EQ(Parse("postgresql://h:99999/d").address, "h:99999/d");
  EXPECT_EQ(Parse("postgresql://h:/d").address, "h:5432/d");
  EXPECT_NE(RefusalOf("postgresql://h:-1/d").find("port that is not a number"), std::string::npos);
  EXPECT_NE(RefusalOf("postgresql://h:54x2/d").find("port that is not a number"), std::string::npos);
  EXPECT_NE(RefusalOf("postgresql://[::1]:x/d").find("port that is not a number"), std::string::npos);
}

TEST(EndpointTest, RefusalsNameWhatIsWrong) {
  struct Case {
    const char* url;
    const char* problem;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"mysql://root@db/app", "does not start with postgresql://"},
           {"POSTGRESQL://h/d", "does not start with postgresql://"},
           {"postgresql:/h/d", "does not start with postgresql://"},
           {"postgresql://", "has nothing after postgresql://"},
           {"postgresql://u%zz@h/d", "has a bad %-escape in its user name"},
           {"postgresql://u:p%4@h/d", "has a bad %-escape in its password"},
           {"postgresql://h%g1/d", "has a bad %-escape in its host"},
           {"postgresql://h/d%", "has a bad %-escape in its database name"},
           {"postgresql://h/d?sslmode=%zz", "has a bad %-escape in its query parameters"},
           {"postgresql://[::1/d", "has an unclosed '[' in its host"},
           {"postgresql://[::1]x/d", "has junk after its host"},
           {"postgresql://[nope]/d", "has a host in brackets that is not an IPv6 address"},
           {"postgresql://db host/d", "has a host that is not a host name or an address"},
           {"postgresql://h/d?sslmode", "has a query parameter without '='"},
       }) {
    std::string refusal = RefusalOf(c.url);
    EXPECT_NE(refusal.find(std::string("the PostgreSQL url ") + c.problem), std::string::npos)
        << c.url << ": " << refusal;
    EXPECT_NE(refusal.find("[[database]] main's url"), std::string::npos) << refusal;
  }
}

TEST(EndpointTest, RefusalsNeverShowThePassword) {
  for (const char* url : {"postgresql://u:hunter2@db:54x2/app", "postgresql://u:hunter2@[::1/app",
                          "postgresql://u:hunter2@h/d%zz", "postgresql://app:2024?hunter2@db/app",
                          "postgresql://u:hunter2%zz@h/d", "postgresql://u:hunter2@h/d?x",
                          "mysql://root:hunter2@db/app", "postgresql://u:hunt/hunter2@db/app"}) {
    std::string refusal = RefusalOf(url);
    ASSERT_NE(refusal, "") << url << " was accepted";
    EXPECT_EQ(refusal.find("hunter2"), std::string::npos) << refusal;
    EXPECT_EQ(refusal.find("hunt"), std::string::npos) << refusal;
  }
}

}  // namespace
}  // namespace stowage::database
