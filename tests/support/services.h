// Test support: the Redis and PostgreSQL servers tests run against.
//
// The suite's shared servers are started by scripts/test, which passes their
// URLs in STOWAGE_TEST_REDIS_URL and STOWAGE_TEST_DATABASE_URL (read them
// with RequireEnv). A test that stops a server to see how stowage copes
// starts a private one with ServiceInstance instead.
#pragma once

#include <sys/types.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace stowage::testing {

// The value of environment variable `name`. When it is unset or empty, records
// a test failure saying to run the suite through scripts/test, and returns an
// empty string; the caller stops there, e.g.
//   std::string url = RequireEnv("STOWAGE_TEST_REDIS_URL");
//   if (url.empty()) return;
std::string RequireEnv(const char* name);

// The path of scripts/services: $STOWAGE_SERVICES if set, else the copy in
// the source tree this test was built from.
std::filesystem::path ServicesScript();

enum class Service { kRedis, kPostgres };

// A private Redis or PostgreSQL on 127.0.0.1, run through scripts/services,
// with its files in a temporary folder of its own. It keeps its port and
// folder for its whole life, so Stop() then Start() brings the same server
// back: PostgreSQL with its data, Redis empty (it keeps nothing on disk).
//
// Not thread-safe. The destructor stops the server and removes its folder.
class ServiceInstance {
 public:
  // Picks a free port and a folder, and starts the server. If that fails, a
  // test failure is recorded with the script's output and running() is false.
  explicit ServiceInstance(Service service);
  ~ServiceInstance();

  ServiceInstance(const ServiceInstance&) = delete;
  ServiceInstance& operator=(const ServiceInstance&) = delete;

  // Starts the server again (same port, same folder); a no-op if running.
  // On failure the result carries the script's output.
  ::testing::AssertionResult Start();
  // Stops the server (PostgreSQL: fast shutdown); a no-op if stopped.
  ::testing::AssertionResult Stop();

  // Freezes the server's processes (SIGSTOP): connections stay open and
  // nothing is answered, as with a server stalled or cut off by the network.
  // Resume() lets them run again (SIGCONT). The destructor resumes a paused
  // server before it stops it.
  ::testing::AssertionResult Pause();
  ::testing::AssertionResult Resume();

  bool running() const noexcept { return running_; }
  // redis://127.0.0.1:PORT/0 or postgresql://stowage@127.0.0.1:PORT/stowage;
  // empty until the server has started once.
  const std::string& url() const noexcept { return url_; }
  std::uint16_t port() const noexcept { return port_; }
  // The folder holding the server's data, pid file and log.
  std::filesystem::path data_dir() const { return folder_ / "data"; }

 private:
  ::testing::AssertionResult RunScript(const std::vector<std::string>& args, std::string* output);

  // The server's process (from its pid file) and its children.
  std::vector<pid_t> Processes() const;

  Service service_;
  bool paused_ = false;
  std::filesystem::path folder_;
  std::uint16_t port_ = 0;
  std::string url_;
  bool running_ = false;
};

}  // namespace stowage::testing
