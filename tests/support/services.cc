#include "support/services.h"

#include <signal.h>
#include <stdlib.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "support/process.h"

namespace stowage::testing {
namespace {

namespace fs = std::filesystem;

// Long enough for initdb on a loaded machine; the script has its own,
// shorter, startup timeouts with clearer messages.
constexpr std::chrono::seconds kScriptTimeout{120};

const char* ServiceName(Service service) {
  return service == Service::kRedis ? "redis" : "postgres";
}

// The last line of `output` that starts with `prefix`, or empty.
std::string LastLineStartingWith(const std::string& output, const std::string& prefix) {
  std::istringstream lines(output);
  std::string line, found;
  while (std::getline(lines, line)) {
    if (line.rfind(prefix, 0) == 0) found = line;
  }
  return found;
}

}  // namespace

std::string RequireEnv(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    ADD_FAILURE() << name << " is not set: run the suite through scripts/test, which sets " << name
                  << " (it starts throwaway Redis and PostgreSQL servers for the tests)";
    return {};
  }
  return value;
}

fs::path ServicesScript() {
  const char* from_env = std::getenv("STOWAGE_SERVICES");
  if (from_env != nullptr && *from_env != '\0') return from_env;
  return STOWAGE_SOURCE_DIR "/scripts/services";
}

ServiceInstance::ServiceInstance(Service service) : service_(service) {
  std::string pattern =
      (fs::temp_directory_path() / (std::string("stowage-") + ServiceName(service) + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "cannot create a temporary folder for a private " << ServiceName(service)
                  << " server from " << pattern << ": " << std::strerror(errno) << "; check TMPDIR";
    return;
  }
  folder_ = pattern;
  port_ = FreePort();
  if (port_ == 0) {
    ADD_FAILURE() << "found no free TCP port on 127.0.0.1 for a private " << ServiceName(service)
                  << " server";
    return;
  }
  ::testing::AssertionResult started = Start();
  if (!started) ADD_FAILURE() << started.message();
}

ServiceInstance::~ServiceInstance() {
  if (folder_.empty()) return;
  if (paused_) Resume();
  if (port_ != 0) {
    std::string ignored;
    RunScript({"stop", ServiceName(service_), data_dir().string()}, &ignored);
  }
  std::error_code error;
  fs::remove_all(folder_, error);
}

::testing::AssertionResult ServiceInstance::Start() {
  if (folder_.empty() || port_ == 0) {
    return ::testing::AssertionFailure()
           << "this " << ServiceName(service_) << " instance has no folder or port; see the earlier failure";
  }
  std::string output;
  auto result =
      RunScript({"start", ServiceName(service_), data_dir().string(), std::to_string(port_)}, &output);
  if (!result) return result;
  std::string prefix = service_ == Service::kRedis ? "redis://" : "postgresql://";
  std::string url = LastLineStartingWith(output, prefix);
  if (url.empty()) {
    return ::testing::AssertionFailure() << ServicesScript().string() << " started " << ServiceName(service_)
                                         << " but printed no " << prefix << " URL; it printed:\n"
                                         << output;
  }
  url_ = url;
  running_ = true;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult ServiceInstance::Stop() {
  if (folder_.empty() || port_ == 0) return ::testing::AssertionSuccess();
  std::string output;
  auto result = RunScript({"stop", ServiceName(service_), data_dir().string()}, &output);
  if (result) running_ = false;
  return result;
}

std::vector<pid_t> ServiceInstance::Processes() const {
  std::ifstream pid_file(data_dir() / (service_ == Service::kRedis ? "redis.pid" : "postmaster.pid"));
  pid_t main = 0;
  pid_file >> main;
  std::vector<pid_t> pids;
  if (main <= 0) return pids;
  pids.push_back(main);
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
    const auto close = line.rfind(')');
    char state = 0;
    pid_t parent = 0;
    if (close != std::string::npos && std::sscanf(line.c_str() + close + 1, " %c %d", &state, &parent) == 2 &&
        parent == main)
      pids.push_back(std::stoi(name));
  }
  return pids;
}

::testing::AssertionResult ServiceInstance::Pause() {
  const std::vector<pid_t> pids = Processes();
  if (pids.empty()) return ::testing::AssertionFailure() << "no process of the server in " << data_dir();
  for (pid_t pid : pids) ::kill(pid, SIGSTOP);
  paused_ = true;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult ServiceInstance::Resume() {
  const std::vector<pid_t> pids = Processes();
  // Children first, the process that accepts connections last.
  for (auto it = pids.rbegin(); it != pids.rend(); ++it) ::kill(*it, SIGCONT);
  paused_ = false;
  if (pids.empty()) return ::testing::AssertionFailure() << "no process of the server in " << data_dir();
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult ServiceInstance::RunScript(const std::vector<std::string>& args,
                                                      std::string* output) {
  std::vector<std::string> argv{ServicesScript().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string command;
  for (const auto& arg : argv) command += (command.empty() ? "" : " ") + arg;

  ChildProcess script(argv, folder_ / "services.log");
  auto exit_code = script.Wait(kScriptTimeout);
  if (!exit_code) script.Kill();
  *output = script.ReadOutput();
  if (!exit_code) {
    return ::testing::AssertionFailure()
           << "`" << command << "` did not finish within " << kScriptTimeout.count() << " s; its output:\n"
           << *output;
  }
  if (*exit_code != 0) {
    return ::testing::AssertionFailure()
           << "`" << command << "` failed with exit code " << *exit_code << "; its output:\n"
           << *output;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace stowage::testing
