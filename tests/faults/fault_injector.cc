#include "fault_injector.h"

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/process.h"

namespace stowage::faults {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kScriptTimeout(60000);

// True while `pid` exists and is not a zombie.
bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  auto after_name = line.rfind(')');
  return after_name != std::string::npos && after_name + 2 < line.size() && line[after_name + 2] != 'Z';
}

// The processes whose parent is `parent`.
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> children;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    auto after_name = line.rfind(')');
    if (after_name == std::string::npos) continue;
    std::istringstream fields(line.substr(after_name + 2));
    std::string state;
    pid_t ppid = 0;
    fields >> state >> ppid;
    if (ppid == parent) children.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return children;
}

pid_t ReadPid(const fs::path& file, const std::string& what) {
  std::ifstream in(file);
  long pid = 0;
  if (!(in >> pid) || pid <= 0) {
    throw std::runtime_error("cannot read the pid of " + what + " from " + file.string() +
                             "; is it running from that folder?");
  }
  return static_cast<pid_t>(pid);
}

}  // namespace

FaultInjector::FaultInjector(ServerPlaces places, const CaseClock& clock)
    : places_(std::move(places)), clock_(clock) {}

FaultInjector::~FaultInjector() {
  Resume();
}

void FaultInjector::Run(const std::vector<std::string>& argv, const std::string& step) {
  testing::ChildProcess process(argv);
  auto code = process.Wait(kScriptTimeout);
  if (!code) process.Kill();
  if (code && *code == 0) return;
  throw std::runtime_error(step + " failed (" + (code ? "exit code " + std::to_string(*code) : "timed out") +
                           "):\n" + process.ReadOutput());
}

std::vector<std::string> FaultInjector::AsPostgres(std::vector<std::string> argv) const {
  if (::geteuid() == 0) argv.insert(argv.begin(), {"runuser", "-u", "postgres", "--"});
  return argv;
}

pid_t FaultInjector::PostmasterPid() const {
  return ReadPid(places_.postgres_dir / "postmaster.pid", "PostgreSQL");
}

FaultEvent FaultInjector::KillRedis() {
  FaultEvent event{"redis: kill -9, started again empty", clock_.Now(), 0};
  pid_t pid = ReadPid(places_.redis_dir / "redis.pid", "Redis");
  if (::kill(pid, SIGKILL) != 0)
    throw std::runtime_error("kill -9 of Redis (pid " + std::to_string(pid) + ") failed");
  for (int i = 0; i < 200 && Alive(pid); ++i) std::this_thread::sleep_for(milliseconds(10));
  Run({places_.services_script.string(), "start", "redis", places_.redis_dir.string(),
       std::to_string(places_.redis_port)},
      "starting Redis again (scripts/services start redis)");
  event.cleared = clock_.Now();
  return event;
}

FaultEvent FaultInjector::CrashPostgres() {
  FaultEvent event{"postgresql: pg_ctl stop -m immediate, started again", clock_.Now(), 0};
  Run(AsPostgres(
          {places_.pg_ctl.string(), "-D", places_.postgres_dir.string(), "-m", "immediate", "-w", "stop"}),
      "stopping PostgreSQL (pg_ctl -m immediate)");
  Run({places_.services_script.string(), "start", "postgres", places_.postgres_dir.string(),
       std::to_string(places_.postgres_port)},
      "starting PostgreSQL again (scripts/services start postgres)");
  event.cleared = clock_.Now();
  return event;
}

FaultEvent FaultInjector::KillStowaged(StowagedInstance& instance) {
  FaultEvent event{instance.name() + ": kill -9, started again", clock_.Now(), 0};
  instance.Kill();
  instance.Start();
  event.cleared = clock_.Now();
  return event;
}

FaultEvent FaultInjector::FreezePostgres(milliseconds how_long) {
  FaultEvent event{"postgresql: SIGSTOP for " + std::to_string(how_long.count()) + " ms, then SIGCONT",
                   clock_.Now(), 0};
  pid_t postmaster = PostmasterPid();
  // The postmaster first, so that it starts no new child meanwhile.
  if (::kill(postmaster, SIGSTOP) != 0) {
    throw std::runtime_error("SIGSTOP to the postmaster (pid " + std::to_string(postmaster) + ") failed");
  }
  frozen_.push_back(postmaster);
  for (pid_t child : ChildrenOf(postmaster)) {
    if (::kill(child, SIGSTOP) == 0) frozen_.push_back(child);
  }
  std::this_thread::sleep_for(how_long);
  Resume();
  event.cleared = clock_.Now();
  return event;
}

void FaultInjector::Resume() {
  for (auto it = frozen_.rbegin(); it != frozen_.rend(); ++it) ::kill(*it, SIGCONT);
  frozen_.clear();
}

}  // namespace stowage::faults
