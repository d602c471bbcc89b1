// Test support: child processes and loopback ports, for tests that run a
// real program (stowaged, stowage, redis-cli, psql) and talk to it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace stowage::testing {

// A program running as a child of the test. Its stdout and stderr both go to
// one file; stdin is /dev/null. The child runs in a process group of its own,
// so a terminal's Ctrl-C reaches it only through the test.
//
// Not thread-safe: one thread owns a ChildProcess. The destructor kills the
// child's process group if the child is still running, and reaps it.
class ChildProcess {
 public:
  // Starts argv[0] (a path, or a name looked up in PATH) with argv[1..], the
  // test's environment plus `env` (which overrides variables of the same
  // name). Output goes to `output_file`, truncated first; when it is empty, to
  // a temporary file removed by the destructor.
  //
  // Never throws. If the program cannot be started, ok() is false, error()
  // says why, the same text is written to the output file, and Wait() reports
  // exit code 127, as a shell would.
  explicit ChildProcess(std::vector<std::string> argv, std::filesystem::path output_file = {},
                        std::map<std::string, std::string> env = {});
  ~ChildProcess();

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool ok() const noexcept { return error_.empty(); }
  const std::string& error() const noexcept { return error_; }
  pid_t pid() const noexcept { return pid_; }
  const std::filesystem::path& output_file() const noexcept { return output_file_; }

  // Waits up to `timeout` for the child to exit. Returns its exit code, or
  // 128 + the signal number if a signal ended it; nullopt if it is still
  // running. Once the child has exited, every call returns the same value.
  std::optional<int> Wait(std::chrono::milliseconds timeout);

  // Sends `sig` to the child alone. Returns false if it has already exited.
  bool Signal(int sig);

  // Kills the child's whole process group with SIGKILL and reaps the child.
  void Kill();

  // Everything the child wrote so far to stdout and stderr.
  std::string ReadOutput() const;

 private:
  std::string error_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::filesystem::path output_file_;
  bool remove_output_ = false;
};

// A TCP port on 127.0.0.1 that nothing uses right now, picked below the
// kernel's ephemeral range so that no outgoing connection takes it while a
// test has its server stopped. Returns 0 if none is found.
std::uint16_t FreePort();

// Tries to connect to 127.0.0.1:`port` until it succeeds or `timeout` has
// passed; always tries at least once. True if a connection was accepted.
bool WaitForTcp(std::uint16_t port, std::chrono::milliseconds timeout);

// The whole content of `file` (a log, a journal a program wrote), or "" when
// it cannot be read.
std::string ReadFile(const std::filesystem::path& file);

}  // namespace stowage::testing
