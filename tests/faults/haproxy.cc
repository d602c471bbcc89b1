#include "haproxy.h"

#include <signal.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "http_client.h"

namespace stowage::faults {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kStartTimeout(30000);
constexpr const char* kStatsPath = "/haproxy-stats";

std::string Tail(const std::string& text, std::size_t lines) {
  std::size_t start = text.size();
  for (std::size_t count = 0; start > 0 && count <= lines;) {
    if (text[--start] == '\n') ++count;
  }
  return text.substr(start == 0 ? 0 : start + 1);
}

std::vector<std::string> SplitCsvLine(const std::string& line) {
  std::vector<std::string> fields;
  std::istringstream in(line);
  for (std::string field; std::getline(in, field, ',');) fields.push_back(field);
  return fields;
}

}  // namespace

Haproxy::Haproxy(fs::path binary, std::vector<std::uint16_t> backends, fs::path work_dir)
    : port_(testing::FreePort()),
      binary_(std::move(binary)),
      backends_(std::move(backends)),
      work_dir_(std::move(work_dir)),
      log_file_(work_dir_ / "haproxy.log") {
  if (port_ == 0) throw std::runtime_error("found no free loopback port for HAProxy; free some ports");
}

Haproxy::~Haproxy() {
  Stop();
}

// The bench/scale configuration (HTTP, round robin, keep-alive on both
// sides), plus what the scale case needs: requests go only to a stowaged
// that is alive and ready, and a request that a dying stowaged did not
// answer is sent to another one.
std::string Haproxy::Configuration() const {
  std::ostringstream cfg;
  cfg << R"(# Written by fault_suite --scale (tests/faults/haproxy.cc).
global
    maxconn 4096
    # Server state changes (DOWN, UP) and the requests logged below go to
    # stderr, that is haproxy.log.
    log stderr format short local0 info

defaults
    mode http
    log global
    # Only the requests that did not end normally are logged: failed,
    # retried or redispatched ones.
    option httplog
    option dontlog-normal
    option http-keep-alive
    timeout connect 1s
    timeout client 30s
    # Longer than the clients' 5 s: the client gives up first and retries.
    timeout server 10s
    timeout http-keep-alive 30s
    timeout check 1s

frontend stowage
    bind 127.0.0.1:)"
      << port_ << R"(
    # Retries and redispatches, read by fault_suite at the end (CSV at ;csv).
    stats enable
    stats uri )"
      << kStatsPath << R"(
    default_backend stowaged

backend stowaged
    balance roundrobin
    # Only live, ready stowaged get requests: a health check every 200 ms;
    # two failed checks take a server out, two passed ones bring it back.
    option httpchk GET /readyz
    http-check expect status 200
    default-server check inter 200ms fastinter 100ms downinter 200ms fall 2 rise 2
    # Until the checks notice that a stowaged died, requests still reach it.
    # HAProxy then resends them itself, up to 3 times, each time to another
    # server (redispatch 1):
    #  - conn-failure: the connection could not be made, so the request never
    #    reached a stowaged; resending is always safe;
    #  - empty-response: the connection closed before any byte of an answer,
    #    as when a stowaged is killed with the request in hand. That request
    #    may have been stored before the kill, so for a POST this is safe only
    #    because every client POST carries an Idempotency-Key: the resent POST
    #    is answered with the stored message (Idempotent-Replayed) instead of
    #    being stored again. Without keys this would need
    #    `http-request disable-l7-retry if METH_POST`.
    # Not response-timeout: a slow stowaged still holds the request, and a
    # resend would only race it (409 idempotency_conflict); the client retries.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
)";
  for (std::size_t i = 0; i < backends_.size(); ++i) {
    cfg << "    server s" << i << " 127.0.0.1:" << backends_[i] << " maxconn 1000\n";
  }
  return cfg.str();
}

void Haproxy::Start() {
  const fs::path config = work_dir_ / "haproxy.cfg";
  std::ofstream(config) << Configuration();
  {
    testing::ChildProcess check({binary_.string(), "-c", "-q", "-f", config.string()});
    auto code = check.Wait(milliseconds(10000));
    if (!code || *code != 0) {
      if (!code) check.Kill();
      throw std::runtime_error("haproxy -c rejected " + config.string() + ":\n" + Tail(check.ReadOutput(), 10));
    }
  }
  process_ = std::make_unique<testing::ChildProcess>(
      std::vector<std::string>{binary_.string(), "-db", "-f", config.string()}, log_file_);
  if (!process_->ok()) throw std::runtime_error("cannot start HAProxy: " + process_->error());
  std::ofstream(work_dir_ / "haproxy.pid") << process_->pid() << "\n";

  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  testing::HttpClient client(port_);
  client.set_timeout(milliseconds(2000));
  while (true) {
    if (auto code = process_->Wait(milliseconds(0))) {
      throw std::runtime_error("HAProxy exited with code " + std::to_string(*code) + " at start; the end of " +
                               log_file_.string() + ":\n" + Tail(process_->ReadOutput(), 20));
    }
    try {
      if (client.Send("GET", "/readyz", "", "").status == 200) return;
    } catch (const std::exception&) {
      // not listening yet
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error("GET /readyz through HAProxy on 127.0.0.1:" + std::to_string(port_) +
                               " did not answer 200 within 30 s; the end of " + log_file_.string() + ":\n" +
                               Tail(process_->ReadOutput(), 20));
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
}

void Haproxy::Stop() {
  if (!process_) return;
  process_->Signal(SIGTERM);
  if (!process_->Wait(milliseconds(10000))) process_->Kill();
  process_.reset();
}

Haproxy::Retries Haproxy::ReadRetries() const {
  Retries retries;
  try {
    testing::HttpClient client(port_);
    client.set_timeout(milliseconds(5000));
    auto answer = client.Send("GET", std::string(kStatsPath) + ";csv", "", "");
    if (answer.status != 200) return retries;
    std::istringstream lines(answer.body);
    std::string line;
    if (!std::getline(lines, line) || line.rfind("# ", 0) != 0) return retries;
    const auto header = SplitCsvLine(line.substr(2));
    int retr = -1, redis = -1;
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (header[i] == "wretr") retr = static_cast<int>(i);
      if (header[i] == "wredis") redis = static_cast<int>(i);
    }
    if (retr < 0 || redis < 0) return retries;
    while (std::getline(lines, line)) {
      const auto fields = SplitCsvLine(line);
      if (fields.size() <= static_cast<std::size_t>(std::max(retr, redis))) continue;
      if (fields[0] != "stowaged" || fields[1] != "BACKEND") continue;
      retries.retries = std::stol(fields[retr]);
      retries.redispatches = std::stol(fields[redis]);
    }
  } catch (const std::exception&) {
    // no answer or not a number: unknown
  }
  return retries;
}

}  // namespace stowage::faults
