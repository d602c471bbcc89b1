// stowaged started by a test on a free loopback port, stopped with SIGTERM
// when the test is done.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "support/process.h"

namespace stowage::testing {

class StowagedProcess {
 public:
  // Starts `stowaged --config <config>` with `env` added to the environment
  // (STOWAGE_LISTEN is set to the port chosen), and waits until it listens.
  // Records a test failure with the server's log if it does not.
  StowagedProcess(const std::filesystem::path& config, std::map<std::string, std::string> env = {});
  // Writes `pipeline_toml` to a file of its own first. Its listen address
  // is written listen = "${STOWAGE_LISTEN}", the address chosen.
  static std::unique_ptr<StowagedProcess> FromText(const std::string& pipeline_toml,
                                                   std::map<std::string, std::string> env = {});
  // SIGTERM, then waits for the exit.
  ~StowagedProcess();

  std::uint16_t port() const { return port_; }
  const std::filesystem::path& config() const { return config_; }
  // Sends `sig` (e.g. SIGHUP) to stowaged.
  bool Signal(int sig);
  // Everything stowaged logged so far.
  std::string log() const;
  // Waits until `holds(log())`: info lines reach the log within a second
  // (warnings and errors at once). False if it does not hold by `timeout`.
  bool WaitForLog(const std::function<bool(const std::string& log)>& holds,
                  std::chrono::milliseconds timeout = std::chrono::seconds(3)) const;
  // Waits until the log holds `text`.
  bool WaitForLog(std::string_view text, std::chrono::milliseconds timeout = std::chrono::seconds(3)) const;
  bool running() const { return running_; }
  pid_t pid() const { return process_->pid(); }

 private:
  std::uint16_t port_;
  std::filesystem::path config_;
  std::filesystem::path folder_;
  std::unique_ptr<ChildProcess> process_;
  bool running_ = false;
};

}  // namespace stowage::testing
