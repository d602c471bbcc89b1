// The faults the suite injects, each undone before it returns: Redis killed
// and started again empty, PostgreSQL crashed and started again, stowaged
// killed and started again, PostgreSQL frozen for a while. The servers are
// the ones tests/faults/run started through scripts/services; they come
// back on the same port from the same folder.
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
  // kill -9 of `instance`, then started again on the same port.
  FaultEvent KillStowaged(StowagedInstance& instance);
  // SIGSTOP to the postmaster and all its children for `how_long`, then SIGCONT.
  FaultEvent FreezePostgres(std::chrono::milliseconds how_long);

 private:
  // Runs argv to its end; throws with its output if it fails.
  void Run(const std::vector<std::string>& argv, const std::string& step);
  // argv run as the postgres OS user when we are root (as scripts/services does).
  std::vector<std::string> AsPostgres(std::vector<std::string> argv) const;
  pid_t PostmasterPid() const;
  void Resume();

  ServerPlaces places_;
  const CaseClock& clock_;
  std::vector<pid_t> frozen_;
};

}  // namespace stowage::faults
