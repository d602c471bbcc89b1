// The faults the suite injects, each undone before it returns: Redis killed
// and started again empty, PostgreSQL crashed and started again, stowaged
// killed and started again, PostgreSQL frozen for a while, a Redis Cluster
// master killed and started again as a replica. The servers are the ones
// tests/faults/run (or tests/scale/run) started through scripts/services;
// they come back on the same port from the same folder.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "checker.h"
#include "ledger.h"
#include "stowaged_instance.h"

namespace stowage::faults {

// Where the servers live, as scripts/services started them.
struct ServerPlaces {
  std::filesystem::path services_script;  // scripts/services
  std::filesystem::path pg_ctl;           // PostgreSQL's pg_ctl
  std::filesystem::path redis_dir;
  std::uint16_t redis_port = 0;
  std::filesystem::path postgres_dir;  // the PostgreSQL data folder
  std::uint16_t postgres_port = 0;
  // The scale case's Redis Cluster (scripts/services start redis-cluster):
  // its folder, with a folder per node named after its port, and its first
  // port; its 6 nodes listen on redis_cluster_port .. + 5.
  std::filesystem::path redis_cluster_dir;
  std::uint16_t redis_cluster_port = 0;
};

// Not thread-safe: one thread injects the faults. Each method throws
// std::runtime_error, naming the step and the script's output, when a
// server cannot be stopped or brought back.
class FaultInjector {
 public:
  FaultInjector(ServerPlaces places, const CaseClock& clock);
  // Resumes PostgreSQL if it is still frozen.
  ~FaultInjector();

  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;

  // kill -9 of redis-server, then started again, empty, on the same port.
  FaultEvent KillRedis();
  // pg_ctl stop -m immediate (a crash: no checkpoint, recovery at start),
  // then started again.
  FaultEvent CrashPostgres();
  // kill -9 of `instance`, then started again on the same port, after
  // `down_for` (long enough, in the scale case, for HAProxy's health checks
  // to take it out of the rotation).
  FaultEvent KillStowaged(StowagedInstance& instance,
                          std::chrono::milliseconds down_for = std::chrono::milliseconds(0));
  // SIGSTOP to the postmaster and all its children for `how_long`, then SIGCONT.
  FaultEvent FreezePostgres(std::chrono::milliseconds how_long);
  // kill -9 of a Redis Cluster master that serves slots (each call takes the
  // next one in port order, among the masters of the moment), then waits
  // until the cluster has promoted its replica (the killed node serves no
  // slot in a live node's view, and redis-cli --cluster check finds every
  // slot covered and no [ERR]), then starts the killed node again
  // (scripts/services start redis-node), empty; it rejoins as a replica.
  FaultEvent KillRedisMaster();
  // What the last KillRedisMaster saw: which node took over, and when.
  const std::string& last_detail() const { return last_detail_; }

 private:
  // Runs argv to its end; throws with its output if it fails.
  void Run(const std::vector<std::string>& argv, const std::string& step);
  // Runs argv to its end and returns its output (stdout and stderr); the exit
  // code, or -1 if it timed out, goes to `code`.
  std::string Capture(const std::vector<std::string>& argv, int& code);
  // `redis-cli -p PORT cluster nodes` of the first cluster node that answers,
  // other than `except`. Throws when none does.
  std::string ClusterNodes(std::uint16_t except, std::uint16_t& asked);
  // argv run as the postgres OS user when we are root (as scripts/services does).
  std::vector<std::string> AsPostgres(std::vector<std::string> argv) const;
  pid_t PostmasterPid() const;
  void Resume();

  ServerPlaces places_;
  const CaseClock& clock_;
  std::vector<pid_t> frozen_;
  int master_kills_ = 0;
  std::string last_detail_;
};

}  // namespace stowage::faults
