// Endpoint: where the stage's PostgreSQL server is, parsed from the `url`
// config key, and how libpq is told to connect to it.
#pragma once

#include <chrono>
#include <string>

namespace stowage::postgres {

struct Endpoint {
  // "host:port/db", for messages and logs; never holds the password.
  std::string address;
  // The url with any password replaced by "***", for logs.
  std::string redacted_url;
  // A libpq keyword/value connection string, with the connect timeout and
  // the per-session statement timeout applied. Holds the password: never log it.
  std::string conninfo;
};

// Parses a libpq URL "postgresql://user[:password]@host[:port][/db][?key=value&...]"
// ("postgres://" is accepted too). Query parameters are passed to libpq as
// connection keywords. Throws std::invalid_argument naming what is wrong with
// the URL; the message never contains the password.
Endpoint ParseEndpoint(const std::string& url, std::chrono::milliseconds connect_timeout,
                       std::chrono::milliseconds statement_timeout);

}  // namespace stowage::postgres
