#include "support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace stowage::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The file execve should run for `name`: itself if it holds a slash, else
// the first executable of that name in PATH. Empty if there is none.
std::string ResolveProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = ::getenv("PATH");
  std::stringstream folders(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string folder;
  while (std::getline(folders, folder, ':')) {
    std::string candidate = (folder.empty() ? "." : folder) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

// The test's environment with `overrides` applied, as NAME=value strings.
std::vector<std::string> BuildEnvironment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> result;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    std::string name(text.substr(0, text.find('=')));
    if (overrides.count(name) == 0) result.emplace_back(text);
  }
  for (const auto& [name, value] : overrides) result.push_back(name + "=" + value);
  return result;
}

std::vector<char*> PointersOf(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (auto& text : strings) pointers.push_back(text.data());
  pointers.push_back(nullptr);
  return pointers;
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

void AppendToFile(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::app);
  out << text << "\n";
}

}  // namespace

ChildProcess::ChildProcess(std::vector<std::string> argv, fs::path output_file,
                           std::map<std::string, std::string> env)
    : output_file_(std::move(output_file)) {
  auto fail = [this](std::string message) {
    error_ = std::move(message);
    exit_code_ = 127;
    if (!output_file_.empty()) AppendToFile(output_file_, error_);
  };
  if (argv.empty()) {
    fail("ChildProcess needs a program to run; argv is empty");
    return;
  }

  int output_fd = -1;
  if (output_file_.empty()) {
    std::string pattern = (fs::temp_directory_path() / "stowage-child-XXXXXX").string();
    output_fd = ::mkostemp(pattern.data(), O_CLOEXEC);
    if (output_fd >= 0) {
      output_file_ = pattern;
      remove_output_ = true;
    }
  } else {
    output_fd = ::open(output_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }
  if (output_fd < 0) {
    std::string reason = std::strerror(errno);
    fail("cannot open output file '" + output_file_.string() + "' for " + argv[0] + ": " + reason +
         "; check that its folder exists and is writable");
    return;
  }

  std::string program = ResolveProgram(argv[0]);
  if (program.empty()) {
    ::close(output_fd);
    fail("cannot run '" + argv[0] + "': not found in PATH; install it or give its full path");
    return;
  }
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int report[2];
  if (null_fd < 0 || ::pipe2(report, O_CLOEXEC) != 0) {
    std::string reason = std::strerror(errno);
    ::close(output_fd);
    if (null_fd >= 0) ::close(null_fd);
    fail("cannot prepare to run '" + argv[0] + "': " + reason);
    return;
  }

  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls.
  std::vector<std::string> environment = BuildEnvironment(env);
  std::vector<char*> envp = PointersOf(environment);
  std::vector<char*> args = PointersOf(argv);

  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int sig : {SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGCHLD})
      ::sigaction(sig, &default_action, nullptr);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(output_fd, STDOUT_FILENO);
    ::dup2(output_fd, STDERR_FILENO);
    ::execve(program.c_str(), args.data(), envp.data());
    int exec_errno = errno;
    (void)!::write(report[1], &exec_errno, sizeof exec_errno);
    ::_exit(127);
  }
  int fork_errno = errno;
  ::close(report[1]);
  ::close(output_fd);
  ::close(null_fd);
  if (pid < 0) {
    ::close(report[0]);
    fail("cannot fork to run '" + argv[0] + "': " + std::strerror(fork_errno));
    return;
  }
  pid_ = pid;

  // The report pipe closes on a successful execve; an errno arrives otherwise.
  int exec_errno = 0;
  ssize_t got;
  do {
    got = ::read(report[0], &exec_errno, sizeof exec_errno);
  } while (got < 0 && errno == EINTR);
  ::close(report[0]);
  if (got == sizeof exec_errno) {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    fail("cannot run '" + program + "': " + std::strerror(exec_errno));
  }
}

ChildProcess::~ChildProcess() {
  Kill();
  if (remove_output_) {
    std::error_code ignored;
    fs::remove(output_file_, ignored);
  }
}

std::optional<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  auto deadline = Clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  while (true) {
    int status = 0;
    pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      exit_code_ = DecodeWaitStatus(status);
      return exit_code_;
    }
    if (done < 0 && errno != EINTR) {
      // Reaped elsewhere: the exit code is lost.
      exit_code_ = -1;
      return exit_code_;
    }
    auto now = Clock::now();
    if (now >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::min<Clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

bool ChildProcess::Signal(int sig) {
  if (exit_code_ || pid_ <= 0) return false;
  return ::kill(pid_, sig) == 0;
}

void ChildProcess::Kill() {
  if (exit_code_ || pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  int status = 0;
  pid_t done;
  do {
    done = ::waitpid(pid_, &status, 0);
  } while (done < 0 && errno == EINTR);
  exit_code_ = done == pid_ ? DecodeWaitStatus(status) : -1;
}

std::string ChildProcess::ReadOutput() const {
  std::ifstream in(output_file_, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::uint16_t FreePort() {
  int low = 32768, high = 60999;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  range >> low >> high;
  int first = 15000, last = low - 1;
  if (low <= 16000) first = high + 1, last = 65535;

  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> pick(first, last);
  for (int attempt = 0; attempt < 200; ++attempt) {
    int port = pick(random);
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // No SO_REUSEADDR: a port still in TIME_WAIT counts as used.
    bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    if (bound) return static_cast<std::uint16_t>(port);
  }
  return 0;
}

bool WaitForTcp(std::uint16_t port, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    if (connected) return true;
    auto now = Clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(10), deadline - now));
  }
}

std::string ReadFile(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace stowage::testing
