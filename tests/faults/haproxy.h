// HAProxy (Debian's) in front of the scale case's stowaged: the clients
// send every request to it, and it sends each on to a live stowaged. The
// configuration is written next to its log; haproxy.cc explains each
// setting, and why resending a POST is safe here.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/process.h"

namespace stowage::faults {

class Haproxy {
 public:
  // Picks a free loopback port for HAProxy; does not start yet. `backends`
  // are the stowaged ports, `work_dir` gets haproxy.cfg, haproxy.log and
  // haproxy.pid (from which the run script's cleanup kills it should this
  // program die first).
  Haproxy(std::filesystem::path binary, std::vector<std::uint16_t> backends, std::filesystem::path work_dir);
  // Stops it if it runs.
  ~Haproxy();

  Haproxy(const Haproxy&) = delete;
  Haproxy& operator=(const Haproxy&) = delete;

  // Writes the configuration, has `haproxy -c` check it, starts HAProxy in
  // the foreground (-db) and waits until GET /readyz through it answers 200.
  // Throws std::runtime_error with the end of its log if it does not.
  void Start();
  // SIGTERM (HAProxy stops at once), and waits for the exit.
  void Stop();

  // HAProxy's own count of retries and of redispatches (a request sent on
  // to another stowaged than the one first chosen), from its stats page
  // ("wretr" and "wredis" of the backend). -1 when it did not answer.
  struct Retries {
    long retries = -1;
    long redispatches = -1;
  };
  Retries ReadRetries() const;

  std::uint16_t port() const { return port_; }
  const std::filesystem::path& log_file() const { return log_file_; }

 private:
  std::string Configuration() const;

  std::uint16_t port_;
  std::filesystem::path binary_;
  std::vector<std::uint16_t> backends_;
  std::filesystem::path work_dir_;
  std::filesystem::path log_file_;
  std::unique_ptr<testing::ChildProcess> process_;
};

}  // namespace stowage::faults
