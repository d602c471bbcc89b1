// Test support: the PostgreSQL servers the stage's tests run against.
#pragma once

#include <string>

namespace stowage::postgres::testing {

// The server named by STOWAGE_TEST_DATABASE_URL. Fails the calling test
// (and returns "") when the variable is unset.
std::string DatabaseUrlFromEnv();

// `url` with its database name replaced by `dbname`.
std::string WithDatabase(const std::string& url, const std::string& dbname);

// A private PostgreSQL instance on a free port of 127.0.0.1, with a database
// "stowage" owned by the superuser "stowage" (trust auth), which a test can
// stop and start again. Runs the server as the user "postgres" when the
// tests run as root. Removes its data when destroyed.
class PrivateServer {
 public:
  PrivateServer();
  ~PrivateServer();
  PrivateServer(const PrivateServer&) = delete;
  PrivateServer& operator=(const PrivateServer&) = delete;

  // initdb and the first start; false (with `error()` saying why) on failure.
  bool Init();
  bool Start();
  // pg_ctl stop -m fast: open connections are terminated.
  bool Stop();

  int port() const { return port_; }
  // postgresql://stowage@127.0.0.1:<port>/stowage
  std::string url() const;
  const std::string& error() const { return error_; }

 private:
  bool Run(const std::string& command);

  std::string bin_dir_, dir_, error_;
  int port_ = 0;
  bool running_ = false;
};

}  // namespace stowage::postgres::testing
