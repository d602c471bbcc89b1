// A stowaged the fault suite runs on a fixed loopback port, so that it can
// be killed with SIGKILL and started again where clients expect it, as a
// crash and a supervisor's restart would do.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "support/process.h"

namespace stowage::faults {

class StowagedInstance {
 public:
  // Picks a free port (below the ephemeral range); does not start yet.
  // `env` is added to stowaged's environment (REDIS_URL, DATABASE_URL, ...).
  StowagedInstance(int index, std::filesystem::path binary, std::filesystem::path config,
                   std::filesystem::path work_dir, std::map<std::string, std::string> env);
  // Stops it (SIGTERM, then SIGKILL after 15 s) if it runs.
  ~StowagedInstance();

  StowagedInstance(const StowagedInstance&) = delete;
  StowagedInstance& operator=(const StowagedInstance&) = delete;

  // Starts it and waits until it accepts connections. Each start logs to a
  // file of its own, WORK_DIR/stowaged-<index>.<n>.log, and writes the pid to
  // WORK_DIR/stowaged-<index>.pid, from which tests/faults/run's cleanup kills
  // it should this program die first. Throws std::runtime_error with the end
  // of the log if it exits or does not listen within 30 s.
  void Start();
  // kill -9 (its whole process group), and reaps it.
  void Kill();
  // SIGTERM, and waits for the exit (SIGKILL after 15 s).
  void Stop();
  // Polls GET /readyz until it answers 200. False if it does not by `timeout`.
  bool WaitReady(std::chrono::milliseconds timeout) const;

  std::uint16_t port() const { return port_; }
  // "stowaged <index>", as the reports name it.
  std::string name() const { return "stowaged " + std::to_string(index_); }
  const std::filesystem::path& log_file() const { return log_file_; }

 private:
  int index_;
  std::uint16_t port_;
  std::filesystem::path binary_;
  std::filesystem::path config_;
  std::filesystem::path work_dir_;
  std::map<std::string, std::string> env_;
  int starts_ = 0;
  std::filesystem::path log_file_;
  std::unique_ptr<testing::ChildProcess> process_;
};

}  // namespace stowage::faults
