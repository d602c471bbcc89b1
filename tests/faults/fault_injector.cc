#include "fault_injector.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
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

// One line of `redis-cli cluster nodes`:
// <id> <ip:port@bus> <flags> <master id or -> <ping> <pong> <epoch> <link> <slot>...
struct ClusterNode {
  std::string id;
  std::uint16_t port = 0;
  std::string flags;  // e.g. "myself,master", "slave", "master,fail"
  std::string master;  // of a replica: its master's id; else "-"
  bool serves_slots = false;

  bool Has(const std::string& flag) const {
    std::istringstream in(flags);
    for (std::string one; std::getline(in, one, ',');) {
      if (one == flag) return true;
    }
    return false;
  }
};

std::vector<ClusterNode> ParseClusterNodes(const std::string& text) {
  std::vector<ClusterNode> nodes;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream in(line);
    std::vector<std::string> fields;
    for (std::string field; in >> field;) fields.push_back(field);
    if (fields.size() < 8) continue;
    ClusterNode node;
    node.id = fields[0];
    auto colon = fields[1].rfind(':', fields[1].find('@'));
    if (colon == std::string::npos) continue;
    node.port = static_cast<std::uint16_t>(std::atoi(fields[1].c_str() + colon + 1));
    node.flags = fields[2];
    node.master = fields[3];
    node.serves_slots = fields.size() > 8;
    nodes.push_back(node);
  }
  return nodes;
}

const ClusterNode* FindNode(const std::vector<ClusterNode>& nodes, const std::string& id) {
  for (const auto& node : nodes) {
    if (node.id == id) return &node;
  }
  return nullptr;
}

std::string Hundredths(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", seconds);
  return text;
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

std::string FaultInjector::Capture(const std::vector<std::string>& argv, int& code) {
  testing::ChildProcess process(argv);
  auto exit_code = process.Wait(kScriptTimeout);
  if (!exit_code) process.Kill();
  code = exit_code ? *exit_code : -1;
  return process.ReadOutput();
}

std::string FaultInjector::ClusterNodes(std::uint16_t except, std::uint16_t& asked) {
  std::string answers;
  for (int i = 0; i < 6; ++i) {
    const auto port = static_cast<std::uint16_t>(places_.redis_cluster_port + i);
    if (port == except) continue;
    int code = 0;
    std::string text =
        Capture({"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port), "cluster", "nodes"}, code);
    if (code == 0 && !ParseClusterNodes(text).empty()) {
      asked = port;
      return text;
    }
    answers += "127.0.0.1:" + std::to_string(port) + ": " + text + "\n";
  }
  throw std::runtime_error("no Redis Cluster node answered CLUSTER NODES:\n" + answers);
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

FaultEvent FaultInjector::KillStowaged(StowagedInstance& instance, milliseconds down_for) {
  std::string name = instance.name() + ": kill -9, started again";
  if (down_for.count() > 0) {
    char later[32];
    std::snprintf(later, sizeof later, " %g s later", down_for.count() / 1000.0);
    name += later;
  }
  FaultEvent event{name, clock_.Now(), 0};
  instance.Kill();
  std::this_thread::sleep_for(down_for);
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

FaultEvent FaultInjector::KillRedisMaster() {
  FaultEvent event{"", clock_.Now(), 0};
  // The next master in port order that serves slots and has a live replica
  // (a node just started again may take a moment to show as a replica).
  std::uint16_t asked = 0;
  ClusterNode victim;
  std::string replica_id;
  std::uint16_t replica_port = 0;
  for (const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);;) {
    const auto nodes = ParseClusterNodes(ClusterNodes(0, asked));
    std::vector<ClusterNode> masters;
    for (const auto& node : nodes) {
      if (node.Has("master") && !node.Has("fail") && !node.Has("fail?") && node.serves_slots)
        masters.push_back(node);
    }
    std::sort(masters.begin(), masters.end(), [](const auto& a, const auto& b) { return a.port < b.port; });
    if (!masters.empty()) {
      victim = masters[master_kills_ % masters.size()];
      for (const auto& node : nodes) {
        if (node.master == victim.id && !node.Has("fail") && !node.Has("fail?")) {
          replica_id = node.id;
          replica_port = node.port;
        }
      }
      if (!replica_id.empty()) break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error("no Redis Cluster master that serves slots has a live replica to take over, as "
                               "127.0.0.1:" + std::to_string(asked) + " sees it; see the nodes' redis.log");
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  ++master_kills_;
  const std::string victim_name = "127.0.0.1:" + std::to_string(victim.port);

  pid_t pid = ReadPid(places_.redis_cluster_dir / std::to_string(victim.port) / "redis.pid",
                      "the Redis Cluster node " + victim_name);
  if (::kill(pid, SIGKILL) != 0) {
    throw std::runtime_error("kill -9 of the Redis Cluster master " + victim_name + " (pid " +
                             std::to_string(pid) + ") failed");
  }
  for (int i = 0; i < 200 && Alive(pid); ++i) std::this_thread::sleep_for(milliseconds(10));

  // Promoted: a live node sees the killed one serve no slot and its replica
  // as a master, and redis-cli --cluster check finds every slot covered.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::string last;
  while (true) {
    try {
      const auto now = ParseClusterNodes(ClusterNodes(victim.port, asked));
      const ClusterNode* killed = FindNode(now, victim.id);
      const ClusterNode* successor = FindNode(now, replica_id);
      if (killed != nullptr && !killed->serves_slots && successor != nullptr && successor->Has("master")) {
        int code = 0;
        last = Capture({"redis-cli", "--cluster", "check", "127.0.0.1:" + std::to_string(asked)}, code);
        if (code == 0 && last.find("[ERR]") == std::string::npos &&
            last.find("[OK] All 16384 slots covered") != std::string::npos) {
          break;
        }
      } else {
        last = "127.0.0.1:" + std::to_string(asked) + " sees " + victim_name + " as " +
               (killed ? killed->flags + (killed->serves_slots ? " serving slots" : " serving no slot")
                       : std::string("unknown")) +
               ", and 127.0.0.1:" + std::to_string(replica_port) + " as " +
               (successor ? successor->flags : std::string("unknown"));
      }
    } catch (const std::runtime_error& error) {
      last = error.what();
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error("the Redis Cluster did not promote the replica 127.0.0.1:" +
                               std::to_string(replica_port) + " of the killed master " + victim_name +
                               " within 30 s; last seen:\n" + last);
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  const Seconds promoted = clock_.Now();

  Run({places_.services_script.string(), "start", "redis-node", places_.redis_cluster_dir.string(),
       std::to_string(victim.port)},
      "starting the Redis Cluster node " + victim_name + " again (scripts/services start redis-node)");
  event.cleared = clock_.Now();
  event.name = "redis master :" + std::to_string(victim.port) + ": kill -9, started again";
  last_detail_ = "redis master " + victim_name + " killed; its replica 127.0.0.1:" +
                 std::to_string(replica_port) + " was promoted " + Hundredths(promoted - event.started) +
                 " s after the kill; the killed node rejoined, empty, as a replica";
  return event;
}

void FaultInjector::Resume() {
  for (auto it = frozen_.rbegin(); it != frozen_.rend(); ++it) ::kill(*it, SIGCONT);
  frozen_.clear();
}

}  // namespace stowage::faults
