// The fault suite's driver. tests/faults/run starts a private Redis and
// PostgreSQL and calls it; it runs stowaged itself (so that it can kill and
// restart it), runs each case (clients writing and reading while faults
// are injected), checks the ledger against PostgreSQL and GET, and prints a
// table per case.
//
//   fault_suite --work DIR --services FILE --pg-ctl FILE --stowaged FILE --config FILE
//               --redis-dir DIR --redis-port N --redis-url URL
//               --postgres-dir DIR --postgres-port N --database-url URL [--minutes N]
//
// runs cases 1 and 2. tests/scale/run starts a Redis Cluster, PostgreSQL and
// pgbouncer and calls
//
//   fault_suite --scale --work DIR --services FILE --stowaged FILE --config FILE
//               --haproxy FILE --redis-url URL --redis-cluster-dir DIR --redis-cluster-port N
//               --database-url URL [--stowaged-database-url URL] [--minutes N]
//
// which runs the scale case alone: three stowaged behind HAProxy (started
// here), the clients sending everything to HAProxy, one stowaged and one
// Redis master killed in turn. stowaged gets --stowaged-database-url
// (pgbouncer's) as DATABASE_URL, or else --database-url; the final read of
// PostgreSQL always uses --database-url (PostgreSQL itself). The final GETs
// go to each stowaged directly. In that case's examples, an attempt's
// "stowaged 0" is HAProxy (the clients' one port), which does not say which
// stowaged answered.
//
// Exit codes: 0 every case passed; 1 a check failed (the tables say which);
// 2 usage error; 3 a server could not be started, restarted or read (the
// message says which); 130 interrupted (SIGINT, SIGTERM or SIGHUP).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "chat_api.h"
#include "chat_client.h"
#include "checker.h"
#include "fault_injector.h"
#include "haproxy.h"
#include "ledger.h"
#include "postgres_truth.h"
#include "stowaged_instance.h"

namespace stowage::faults {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr int kClients = 8;
constexpr int kOwnGuestsPerClient = 4;  // per minute: 32 guests, each written by one client
constexpr int kSharedGuests = 8;        // per minute, written by every client, concurrently
constexpr Seconds kWarmUp = 5;          // quiet time before the first fault
constexpr Seconds kCoolDown = 8;        // quiet time after the last fault's slot
constexpr Seconds kShortestSlot = 10;   // a fault and the quiet time after it
constexpr milliseconds kFreeze(3000);
// In the scale case a killed stowaged stays down this long, so that
// HAProxy's health checks (every 200 ms, two failures) take it out first.
constexpr milliseconds kStowagedDownBehindHaproxy(2000);
constexpr milliseconds kReadyTimeout(30000);

// Set by the signal thread: every wait gives up and the driver exits 130.
std::atomic<bool> g_interrupted{false};

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  bool scale = false;  // the scale case instead of cases 1 and 2
  fs::path work;
  fs::path stowaged;
  fs::path config;
  fs::path haproxy;  // the scale case's
  std::string redis_url;
  std::string database_url;           // PostgreSQL itself: the truth
  std::string stowaged_database_url;  // what stowaged connects to
  ServerPlaces places;
  double minutes = 1;
};

Options ParseOptions(int argc, char** argv) {
  Options options;
  std::map<std::string, std::string> values;
  for (int i = 1; i < argc; ++i) {
    std::string name = argv[i];
    if (name == "--scale") {
      options.scale = true;
      continue;
    }
    if (name.rfind("--", 0) != 0 || i + 1 >= argc) {
      throw UsageError("expected '--option value' pairs; got '" + name + "'");
    }
    values[name.substr(2)] = argv[++i];
  }
  auto take = [&values](const std::string& name, bool required = true) {
    auto it = values.find(name);
    if (it == values.end()) {
      if (required) throw UsageError("--" + name + " is required");
      return std::string();
    }
    std::string value = it->second;
    values.erase(it);
    return value;
  };
  auto port = [&take](const std::string& name) {
    std::string text = take(name);
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || std::stol(text) < 1 ||
        std::stol(text) > 65535) {
      throw UsageError("--" + name + " must be a TCP port (1-65535); it is '" + text + "'");
    }
    return static_cast<std::uint16_t>(std::stol(text));
  };
  options.work = take("work");
  options.stowaged = take("stowaged");
  options.config = take("config");
  options.redis_url = take("redis-url");
  options.database_url = take("database-url");
  options.stowaged_database_url = take("stowaged-database-url", false);
  if (options.stowaged_database_url.empty()) options.stowaged_database_url = options.database_url;
  options.places.services_script = take("services");
  if (options.scale) {
    options.haproxy = take("haproxy");
    options.places.redis_cluster_dir = take("redis-cluster-dir");
    options.places.redis_cluster_port = port("redis-cluster-port");
  } else {
    options.places.pg_ctl = take("pg-ctl");
    options.places.redis_dir = take("redis-dir");
    options.places.redis_port = port("redis-port");
    options.places.postgres_dir = take("postgres-dir");
    options.places.postgres_port = port("postgres-port");
  }
  if (std::string minutes = take("minutes", false); !minutes.empty()) {
    char* end = nullptr;
    options.minutes = std::strtod(minutes.c_str(), &end);
    if (*end != '\0' || !(options.minutes >= 0.5 && options.minutes <= 600)) {
      throw UsageError("--minutes must be a number from 0.5 to 600; it is '" + minutes + "'");
    }
  }
  if (!values.empty()) throw UsageError("unknown option --" + values.begin()->first);
  return options;
}

std::string At(Seconds t) {
  char text[32];
  std::snprintf(text, sizeof text, "[+%6.2f s]", t);
  return text;
}

void SleepUntil(const CaseClock& clock, Seconds t) {
  while (clock.Now() < t) {
    if (g_interrupted) throw Interrupted();
    std::this_thread::sleep_for(milliseconds(50));
  }
}

enum class Fault { kRedisKill, kPostgresCrash, kStowagedKill, kPostgresFreeze, kRedisMasterKill };

struct CaseDefinition {
  std::string title;
  std::string folder;  // under --work: the case's stowaged logs and pid files
  std::string tag;     // in every guest id, key and content of the case
  int instances = 1;
  std::vector<Fault> faults;  // injected in this order, cycling when time allows
  // The clients send every request to HAProxy in front of the instances,
  // instead of to the instances in turn.
  bool through_haproxy = false;
};

// The client threads of a case. Stopping lets each finish the message it
// is storing (up to its give-up time); the destructor stops them too.
class ClientThreads {
 public:
  ClientThreads(const std::vector<ClientSettings>& settings, Ledger& ledger, const CaseClock& clock) {
    for (const auto& one : settings) clients_.push_back(std::make_unique<ChatClient>(one, ledger, clock));
    for (auto& client : clients_) {
      threads_.emplace_back([this, raw = client.get()] { raw->Run(stop_, g_interrupted); });
    }
  }
  ~ClientThreads() { StopAndJoin(); }

  void StopAndJoin() {
    stop_ = true;
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::unique_ptr<ChatClient>> clients_;
  std::vector<std::thread> threads_;
};

// Waits for every stowaged to answer GET /readyz 200. One that does not is
// reported and the case goes on: its failed GETs will show in the counts.
void WaitReady(const std::vector<std::unique_ptr<StowagedInstance>>& instances, const CaseClock& clock) {
  bool all_ready = true;
  for (const auto& instance : instances) {
    if (instance->WaitReady(kReadyTimeout)) continue;
    all_ready = false;
    std::cout << At(clock.Now()) << " WARNING: " << instance->name() << " is not ready (GET /readyz) after "
              << kReadyTimeout.count() / 1000 << " s; see " << instance->log_file().string() << std::endl;
  }
  if (all_ready) std::cout << At(clock.Now()) << " every stowaged is ready" << std::endl;
}

CaseReport RunCase(const CaseDefinition& definition, const Options& options) {
  std::cout << "\n== " << definition.title << " ==" << std::endl;
  // The case's stowaged logs and pid files (tests/faults/run looks there).
  const fs::path folder = options.work / definition.folder;
  fs::create_directories(folder);
  std::vector<std::unique_ptr<StowagedInstance>> instances;
  std::vector<std::uint16_t> ports;
  for (int i = 0; i < definition.instances; ++i) {
    instances.push_back(std::make_unique<StowagedInstance>(
        i, options.stowaged, options.config, folder,
        std::map<std::string, std::string>{{"REDIS_URL", options.redis_url},
                                           {"DATABASE_URL", options.stowaged_database_url}}));
    instances.back()->Start();
    if (!instances.back()->WaitReady(kReadyTimeout)) {
      throw std::runtime_error(instances.back()->name() + " did not become ready (GET /readyz) within " +
                               std::to_string(kReadyTimeout.count() / 1000) + " s; see " +
                               instances.back()->log_file().string());
    }
    ports.push_back(instances.back()->port());
    std::cout << instances.back()->name() << " listens on 127.0.0.1:" << ports.back() << std::endl;
  }

  // HAProxy, started last so that its first health checks find every
  // instance ready; the clients then know only its port.
  std::unique_ptr<Haproxy> haproxy;
  std::vector<std::uint16_t> client_ports = ports;
  std::vector<std::string> client_names;
  if (definition.through_haproxy) {
    haproxy = std::make_unique<Haproxy>(options.haproxy, ports, folder);
    haproxy->Start();
    client_ports = {haproxy->port()};
    client_names = {"haproxy"};
    std::cout << "haproxy listens on 127.0.0.1:" << haproxy->port() << " (log " << haproxy->log_file().string()
              << "); the clients send every request there" << std::endl;
  }

  GuestPlan plan;
  plan.tag = definition.tag;
  plan.own_per_client = kOwnGuestsPerClient;
  plan.shared = kSharedGuests;
  std::vector<ClientSettings> settings;
  for (int c = 0; c < kClients; ++c) {
    ClientSettings one;
    one.index = c;
    one.guests = plan;
    one.ports = client_ports;
    one.names = client_names;
    settings.push_back(std::move(one));
  }

  Ledger ledger;
  CaseClock clock;
  CaseEvidence evidence;
  {
    ClientThreads clients(settings, ledger, clock);
    // Destroyed first: a PostgreSQL frozen when something throws resumes
    // before the clients are joined.
    FaultInjector injector(options.places, clock);
    std::cout << At(clock.Now()) << " " << kClients << " clients started on "
              << kClients * kOwnGuestsPerClient + kSharedGuests << " guests (new ones each minute)"
              << std::endl;

    // The faults, one per slot, each followed by quiet time.
    const Seconds length = options.minutes * 60;
    const Seconds room = std::max<Seconds>(length - kWarmUp - kCoolDown, 0);
    const int slots = std::max<int>(static_cast<int>(definition.faults.size()),
                                    static_cast<int>(std::floor(room / kShortestSlot)));
    const Seconds slot = std::max(room / slots, kShortestSlot);
    int stowaged_kills = 0;
    for (int i = 0; i < slots; ++i) {
      SleepUntil(clock, kWarmUp + i * slot);
      std::cout << At(clock.Now()) << " " << ledger.acknowledged() << " messages acknowledged so far"
                << std::endl;
      FaultEvent event;
      switch (definition.faults[i % definition.faults.size()]) {
        case Fault::kRedisKill:
          event = injector.KillRedis();
          break;
        case Fault::kPostgresCrash:
          event = injector.CrashPostgres();
          break;
        case Fault::kStowagedKill:
          event = injector.KillStowaged(*instances[stowaged_kills++ % instances.size()],
                                        definition.through_haproxy ? kStowagedDownBehindHaproxy
                                                                   : milliseconds(0));
          break;
        case Fault::kPostgresFreeze:
          event = injector.FreezePostgres(kFreeze);
          break;
        case Fault::kRedisMasterKill:
          event = injector.KillRedisMaster();
          break;
      }
      evidence.faults.push_back(event);
      std::cout << At(event.started) << " fault: " << event.name << "; cleared at " << At(event.cleared)
                << std::endl;
      if (definition.faults[i % definition.faults.size()] == Fault::kRedisMasterKill)
        std::cout << "            " << injector.last_detail() << std::endl;
      WaitReady(instances, clock);
    }
    SleepUntil(clock, std::max(length, kWarmUp + slots * slot));
    std::cout << At(clock.Now()) << " stopping the clients (each finishes the message it is storing)"
              << std::endl;
    clients.StopAndJoin();
    if (g_interrupted) throw Interrupted();
  }
  if (haproxy) {
    const auto retries = haproxy->ReadRetries();
    std::cout << At(clock.Now()) << " haproxy's stats: " << retries.retries << " retries, "
              << retries.redispatches << " redispatches to another stowaged (-1: could not be read)"
              << std::endl;
  }

  // The first GET of each guest after the faults cleared, on every stowaged,
  // then what PostgreSQL holds.
  const auto guests = plan.All(plan.GenerationAt(clock.Now()) + 1, kClients);
  WaitReady(instances, clock);
  std::cout << At(clock.Now()) << " faults cleared; reading every guest on every stowaged and in PostgreSQL"
            << std::endl;
  for (const auto& instance : instances) {
    testing::HttpClient client(instance->port());
    client.set_timeout(milliseconds(10000));
    for (const auto& guest : guests)
      evidence.shown[guest].push_back(GetHistory(client, instance->name(), guest));
  }
  evidence.stored = ReadStoredMessages(options.database_url, guests);
  evidence.messages = ledger.records();
  evidence.online_checks = ledger.online_checks();
  evidence.online_violations = ledger.online_violations();
  evidence.online_examples = ledger.online_examples();
  if (haproxy) haproxy->Stop();
  for (auto& instance : instances) instance->Stop();
  return CheckCase(evidence);
}

// Turns SIGINT, SIGTERM and SIGHUP into g_interrupted, on a thread of its
// own; every other thread has them blocked (children get them unblocked).
void HandleSignalsOnOneThread() {
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&signals, sig);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  std::thread([signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::cerr << "\nfault_suite: signal " << sig << " received; stopping the clients and stowaged"
              << std::endl;
    g_interrupted = true;
  }).detach();
}

int Main(int argc, char** argv) {
  HandleSignalsOnOneThread();
  Options options;
  try {
    options = ParseOptions(argc, argv);
  } catch (const UsageError& error) {
    std::cerr << "fault_suite: " << error.what()
              << "; tests/faults/run and tests/scale/run pass every option (see their headers)" << std::endl;
    return 2;
  }
  const std::string run = std::to_string(::getpid());
  std::vector<CaseDefinition> cases = {
      {"case 1: one stowaged; Redis killed, PostgreSQL crashed, stowaged killed, PostgreSQL frozen",
       "case1",
       "f" + run + "a",
       1,
       {Fault::kRedisKill, Fault::kPostgresCrash, Fault::kStowagedKill, Fault::kPostgresFreeze}},
      {"case 2: two stowaged, retries to the other one; stowaged killed, Redis killed",
       "case2",
       "f" + run + "b",
       2,
       {Fault::kStowagedKill, Fault::kRedisKill}},
  };
  if (options.scale) {
    cases = {{"scale case: three stowaged behind HAProxy, Redis Cluster (3 masters, 3 replicas), PostgreSQL "
              "behind pgbouncer; stowaged killed, Redis master killed",
              "scale",
              "f" + run + "s",
              3,
              {Fault::kStowagedKill, Fault::kRedisMasterKill},
              true}};
  }
  std::vector<std::pair<std::string, CaseReport>> reports;
  try {
    for (const auto& definition : cases) {
      reports.emplace_back(definition.title, RunCase(definition, options));
      PrintReport(definition.title, reports.back().second, std::cout);
    }
  } catch (const Interrupted&) {
    std::cerr << "fault_suite: interrupted; no verdict" << std::endl;
    return 130;
  } catch (const std::exception& error) {
    std::cerr << "fault_suite: error: " << error.what() << std::endl;
    return 3;
  }
  bool passed = true;
  std::cout << "\n== summary ==\n";
  for (const auto& [title, report] : reports) {
    std::cout << "  " << (report.passed() ? "PASSED  " : "FAILED  ") << title << "\n";
    passed = passed && report.passed();
  }
  std::cout << std::flush;
  return passed ? 0 : 1;
}

}  // namespace
}  // namespace stowage::faults

int main(int argc, char** argv) {
  return stowage::faults::Main(argc, argv);
}
