// Endpoint: where a [[database]] is, parsed from its `url`, and how libpq is
// told to connect to it.
#pragma once

#include <chrono>
#include <string>

namespace stowage::database {

struct Endpoint {
  // "host:port/db", for messages and logs; never holds the password.
  std::string address;
  // The url with any password replaced by "***", for logs.
  std::string redacted_url;
  // A libpq keyword/value connection string with the connect timeout
  // applied. Holds the password: never log it.
  std::string conninfo;
  // The password as written (decoded), so that messages can be scrubbed of
  // it; empty when the url has none.
  std::string password;
};

// Parses a libpq URL "postgresql://user[:password]@host[:port][/db][?key=value&...]"
// ("postgres://" is accepted too) of the [[database]] named `name`, read as
// core/src/url/url_syntax.h reads URLs (Boost.URL): every part is
// percent-decoded; the authority ends at the first '/' or '?' and its user
// info at its last '@', so that a password may hold '@', '#' or ':'
// unescaped (a '/' or '?' must be written %2F, %3F). Query parameters are
// passed to libpq as connection keywords ('+' is a '+'). The port is digits,
// whose range libpq checks. Throws std::invalid_argument naming what is
// wrong with the URL; the message never contains the password.
Endpoint ParseEndpoint(const std::string& url, const std::string& name,
                       std::chrono::milliseconds connect_timeout);

}  // namespace stowage::database
