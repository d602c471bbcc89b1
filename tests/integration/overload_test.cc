// Overload (docs/operations.md, "Overload"): stowaged answers 503 overloaded
// at once instead of letting requests pile up, never runs a request that
// waited past server.queue_timeout_ms, answers /healthz on its I/O thread
// whatever the workers do, and holds 20,000 connections, half of them
// sending a partial request, while /healthz still answers in milliseconds.
// Last, a flood of POSTs while PostgreSQL is frozen (SIGSTOP): every answer
// comes quickly, and nothing refused is stored after PostgreSQL resumes.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http_client.h"
#include "stores.h"
#include "stowaged_process.h"
#include "support/process.h"
#include "support/services.h"

namespace stowage::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string ErrorCode(const HttpResult& result) {
  auto at = result.body.find("\"code\":\"");
  if (at == std::string::npos) return "";
  at += 8;
  return result.body.substr(at, result.body.find('"', at) - at);
}

std::size_t CountOf(const std::string& text, const std::string& what) {
  std::size_t count = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

// A folder of its own for one test, removed afterwards.
class TempFolder {
 public:
  TempFolder() : path_(fs::temp_directory_path() / ("stowage_overload_test." + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempFolder() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A pipeline of one test stage whose write sleeps `hang_ms`, with `server`
// lines added to [server].
std::string SlowStagePipeline(const std::string& server, int hang_ms, const fs::path& journal) {
  return "[server]\nlisten = \"${STOWAGE_LISTEN}\"\n" + server +
         "\n[[stage]]\nname = \"slow\"\nplugin = \"" TEST_STAGE_PATH
         "\"\npolicy = \"required\"\ntimeout_ms = 20000\n"
         "config = { write = \"hang\", hang_ms = " +
         std::to_string(hang_ms) + ", journal = \"" + journal.string() + "\" }\n";
}

constexpr const char* kMessage = R"({"role":"user","content":"hello"})";

// A plain TCP connection to 127.0.0.1:`port`, or -1. Blocking, with `timeout`
// on connect, send and receive.
int Connect(std::uint16_t port, milliseconds timeout = milliseconds(5000)) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Everything the server sends on `fd` until it closes the connection (or the
// receive timeout passes).
std::string ReadUntilClosed(int fd) {
  std::string answer;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    answer.append(buffer, static_cast<std::size_t>(n));
  }
  return answer;
}

// Sends a POST of kMessage for `guest` on a new connection (Connection:
// close) and returns the connection, whose answer ReadUntilClosed reads; -1
// if it could not connect. Sent from the calling thread, so requests sent one
// after another reach the server in that order.
int SendPost(std::uint16_t port, const std::string& guest) {
  int fd = Connect(port, milliseconds(10000));
  if (fd < 0) return -1;
  const std::string body = kMessage;
  const std::string request = "POST /v1/guest/chat/" + guest +
                              " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The status of an answer read whole ("HTTP/1.1 200 OK..."), 0 if none.
int StatusOf(const std::string& answer) {
  return answer.rfind("HTTP/1.1 ", 0) == 0 && answer.size() >= 12 ? std::atoi(answer.c_str() + 9) : 0;
}

// ---------------------------------------------------------------------------
// The queue for a worker

TEST(OverloadTest, AFullQueueIsAnsweredAtOnceAndHealthzStillAnswers) {
  TempFolder folder;
  const fs::path journal = folder.path() / "journal";
  // Two workers, two places in the queue, every write takes 1.5 s.
  auto server = StowagedProcess::FromText(
      SlowStagePipeline("workers = 2\nmax_queue = 2\nqueue_timeout_ms = 10000\n", 1500, journal));
  ASSERT_TRUE(server->running()) << server->log();

  std::vector<int> busy;
  for (int i = 0; i < 4; ++i) {
    busy.push_back(SendPost(server->port(), "busy-" + std::to_string(i)));
    ASSERT_GE(busy.back(), 0);
    std::this_thread::sleep_for(milliseconds(50));
  }
  // Two requests run, two wait: the fifth finds the queue full.
  std::this_thread::sleep_for(milliseconds(500));

  HttpClient client(server->port());
  client.set_timeout(milliseconds(5000));
  auto started = Clock::now();
  HttpResult refused = client.Send("POST", "/v1/guest/chat/refused", kMessage);
  const double refused_ms = MillisecondsSince(started);
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(ErrorCode(refused), "overloaded") << refused.body;
  EXPECT_EQ(refused.header("retry-after"), "1");
  EXPECT_FALSE(refused.header("x-request-id").empty());
  EXPECT_NE(refused.body.find("\"request_id\""), std::string::npos) << refused.body;
  EXPECT_LT(refused_ms, 250) << "the refusal should not wait for a worker";

  HttpClient probe(server->port());
  probe.set_timeout(milliseconds(5000));
  started = Clock::now();
  HttpResult health = probe.Send("GET", "/healthz", "", "");
  const double health_ms = MillisecondsSince(started);
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_LT(health_ms, 250) << "/healthz should not wait for a worker";
  std::printf("[ figures  ] queue full: refused in %.2f ms, /healthz in %.2f ms while every worker is busy\n",
              refused_ms, health_ms);

  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(StatusOf(ReadUntilClosed(busy[i])), 200) << "busy-" << i;
    ::close(busy[i]);
  }
  const std::string written = ReadFile(journal);
  for (int i = 0; i < 4; ++i) EXPECT_NE(written.find("write busy-" + std::to_string(i)), std::string::npos);
  EXPECT_EQ(written.find("write refused"), std::string::npos) << "a refused request ran:\n" << written;
  EXPECT_TRUE(server->WaitForLog("with server.max_queue = 2 requests already waiting")) << server->log();
}

TEST(OverloadTest, ARequestThatWaitedLongerThanQueueTimeoutIsRefusedAndNeverRun) {
  TempFolder folder;
  const fs::path journal = folder.path() / "journal";
  auto server = StowagedProcess::FromText(
      SlowStagePipeline("workers = 1\nmax_queue = 8\nqueue_timeout_ms = 300\n", 1500, journal));
  ASSERT_TRUE(server->running()) << server->log();

  const int first = SendPost(server->port(), "first");
  ASSERT_GE(first, 0);
  std::this_thread::sleep_for(milliseconds(300));

  HttpClient client(server->port());
  client.set_timeout(milliseconds(5000));
  const auto started = Clock::now();
  HttpResult late = client.Send("POST", "/v1/guest/chat/late", kMessage);
  const double late_ms = MillisecondsSince(started);
  EXPECT_EQ(late.status, 503) << late.body;
  EXPECT_EQ(ErrorCode(late), "overloaded") << late.body;
  EXPECT_NE(late.body.find("queue_timeout_ms"), std::string::npos) << late.body;
  EXPECT_EQ(late.header("retry-after"), "1");
  // Answered when its wait ran out, not when the worker came free (1.2 s later).
  EXPECT_GE(late_ms, 290);
  EXPECT_LT(late_ms, 900);
  std::printf("[ figures  ] queue_timeout_ms = 300: refused after %.2f ms\n", late_ms);

  EXPECT_EQ(StatusOf(ReadUntilClosed(first)), 200);
  ::close(first);
  // The worker came free with the late request still in its queue: it must
  // not run it now that its client was told nothing was stored.
  std::this_thread::sleep_for(milliseconds(300));
  const std::string written = ReadFile(journal);
  EXPECT_NE(written.find("write first"), std::string::npos) << written;
  EXPECT_EQ(written.find("write late"), std::string::npos) << "a request refused as too late ran:\n" << written;
  EXPECT_TRUE(server->WaitForLog("ms for a worker (not run)")) << server->log();
}

// ---------------------------------------------------------------------------
// Connections

TEST(OverloadTest, ConnectionsBeyondMaxConnectionsAreRefusedButHealthzAnswers) {
  TempFolder folder;
  auto server = StowagedProcess::FromText(
      SlowStagePipeline("max_connections = 16\n", 0, folder.path() / "journal"));
  ASSERT_TRUE(server->running()) << server->log();

  std::vector<int> held;
  for (int i = 0; i < 16; ++i) held.push_back(Connect(server->port()));
  ASSERT_EQ(std::count(held.begin(), held.end(), -1), 0);
  std::this_thread::sleep_for(milliseconds(200));  // accepted and admitted

  // The 17th connection is an overflow one: /healthz answered, the rest refused.
  HttpClient probe(server->port());
  probe.set_timeout(milliseconds(5000));
  HttpResult health = probe.Send("GET", "/healthz", "", "");
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_FALSE(health.keep_alive) << "an overflow connection serves one request";
  HttpClient poster(server->port());
  poster.set_timeout(milliseconds(5000));
  HttpResult refused = poster.Send("POST", "/v1/guest/chat/g1", kMessage);
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(ErrorCode(refused), "overloaded");
  EXPECT_EQ(refused.header("retry-after"), "1");

  // 64 overflow connections that send nothing; the next one is turned away
  // with a fixed 503 before it sends anything.
  std::vector<int> overflow;
  for (int i = 0; i < 64; ++i) overflow.push_back(Connect(server->port()));
  std::this_thread::sleep_for(milliseconds(200));
  int turned_away = Connect(server->port());
  ASSERT_GE(turned_away, 0);
  const auto started = Clock::now();
  const std::string answer = ReadUntilClosed(turned_away);
  const double turned_away_ms = MillisecondsSince(started);
  ::close(turned_away);
  EXPECT_EQ(answer.rfind("HTTP/1.1 503 ", 0), 0u) << answer;
  EXPECT_NE(answer.find("Retry-After: 1"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\"code\":\"overloaded\""), std::string::npos) << answer;
  EXPECT_LT(turned_away_ms, 500);

  // An overflow connection that sends nothing is closed after about a second.
  const auto waited = Clock::now();
  EXPECT_EQ(ReadUntilClosed(overflow.front()), "");
  EXPECT_LT(MillisecondsSince(waited), 2500);
  for (int fd : overflow) ::close(fd);
  std::this_thread::sleep_for(milliseconds(200));
  HttpClient again(server->port());
  again.set_timeout(milliseconds(5000));
  EXPECT_EQ(again.Send("GET", "/healthz", "", "").status, 200);

  // Once the held connections close, requests are served again.
  for (int fd : held) ::close(fd);
  std::this_thread::sleep_for(milliseconds(200));
  HttpClient served(server->port());
  served.set_timeout(milliseconds(5000));
  EXPECT_EQ(served.Send("POST", "/v1/guest/chat/g1", kMessage).status, 200);
  EXPECT_TRUE(server->WaitForLog("connections turned away beyond server.max_connections")) << server->log();
}

// CPU time (user + system) `pid` has used so far, in seconds.
double CpuSeconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(line.substr(close + 2));
  std::string skip;
  for (int i = 0; i < 11; ++i) fields >> skip;  // state .. cmajflt (fields 3 to 13)
  double user = 0, system = 0;
  fields >> user >> system;
  return (user + system) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

TEST(OverloadTest, OutOfDescriptorsAcceptingPausesAndLogsOnceASecond) {
  TempFolder folder;
  auto server = StowagedProcess::FromText(SlowStagePipeline("", 0, folder.path() / "journal"));
  ASSERT_TRUE(server->running()) << server->log();
  HttpClient kept(server->port());
  kept.set_timeout(milliseconds(5000));
  ASSERT_EQ(kept.Send("GET", "/healthz", "", "").status, 200);

  // Leave stowaged no descriptor to accept with.
  rlimit before{};
  ASSERT_EQ(::prlimit(server->pid(), RLIMIT_NOFILE, nullptr, &before), 0);
  std::size_t open_files = 0;
  for ([[maybe_unused]] const auto& entry :
       fs::directory_iterator("/proc/" + std::to_string(server->pid()) + "/fd"))
    ++open_files;
  rlimit starved = before;
  starved.rlim_cur = open_files;
  ASSERT_EQ(::prlimit(server->pid(), RLIMIT_NOFILE, &starved, nullptr), 0);

  std::vector<int> waiting;
  for (int i = 0; i < 20; ++i) waiting.push_back(Connect(server->port()));  // queued in the backlog
  const double cpu_before = CpuSeconds(server->pid());
  std::this_thread::sleep_for(milliseconds(3000));
  const double cpu_used = CpuSeconds(server->pid()) - cpu_before;
  // A connection already open is still served.
  EXPECT_EQ(kept.Send("GET", "/healthz", "", "").status, 200);
  std::printf("[ figures  ] out of descriptors for 3 s: %.3f s of CPU used, %zu accept-failure lines\n", cpu_used,
              CountOf(server->log(), "accepting a connection failed"));
  std::fflush(stdout);
  EXPECT_LT(cpu_used, 0.5) << "accepting must pause, not spin, when out of descriptors";
  const std::size_t lines = CountOf(server->log(), "accepting a connection failed");
  EXPECT_GE(lines, 1u) << server->log();
  EXPECT_LE(lines, 4u) << server->log();
  EXPECT_TRUE(server->WaitForLog("Too many open files")) << server->log();

  // Descriptors back: the connections that waited are served.
  ASSERT_EQ(::prlimit(server->pid(), RLIMIT_NOFILE, &before, nullptr), 0);
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  for (int fd : waiting) {
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
    EXPECT_EQ(ReadUntilClosed(fd).rfind("HTTP/1.1 200 ", 0), 0u);
    ::close(fd);
  }
}

// Opens `count` connections to `port` in a child process (so that the test
// itself keeps its descriptors), every second one sending the start of a
// request and never the rest. The child holds them until Release().
class ConnectionHolder {
 public:
  ConnectionHolder(std::uint16_t port, int count) {
    int to_parent[2], from_parent[2];
    if (::pipe(to_parent) != 0 || ::pipe(from_parent) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      // Keep only the two pipe ends of this holder: another holder's release
      // end kept open here would never let that holder see it closed.
      std::vector<int> inherited;
      for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
        const int fd = std::atoi(entry.path().filename().c_str());
        if (fd > 2 && fd != to_parent[1] && fd != from_parent[0]) inherited.push_back(fd);
      }
      for (int fd : inherited) ::close(fd);
      _exit(Hold(port, count, to_parent[1], from_parent[0]));
    }
    ::close(to_parent[1]);
    ::close(from_parent[0]);
    report_ = to_parent[0];
    release_ = from_parent[1];
  }
  ~ConnectionHolder() { Release(); }

  // Waits until every connection was tried; returns how many were opened.
  int Opened() {
    int opened = -1;
    if (report_ >= 0 && ::read(report_, &opened, sizeof opened) != sizeof opened) opened = -1;
    return opened;
  }

  // Closes every connection, and waits for the child.
  void Release() {
    if (release_ >= 0) ::close(release_);
    if (report_ >= 0) ::close(report_);
    release_ = report_ = -1;
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  static int Hold(std::uint16_t port, int count, int report, int release) {
    static constexpr std::string_view kPartialHeader = "POST /v1/guest/chat/partial HTTP/1.1\r\nHost: x\r\n";
    static constexpr std::string_view kPartialBody =
        "POST /v1/guest/chat/partial HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n{\"role\":";
    int opened = 0;
    for (int i = 0; i < count; ++i) {
      int fd = Connect(port);
      if (fd < 0) continue;
      ++opened;
      if (i % 2 == 1) {
        const std::string_view partial = i % 4 == 1 ? kPartialHeader : kPartialBody;
        (void)::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL);
      }
    }
    if (::write(report, &opened, sizeof opened) != sizeof opened) return 1;
    char ignored;
    while (::read(release, &ignored, 1) > 0) {
    }
    return 0;  // exiting closes every connection
  }

  pid_t pid_ = -1;
  int report_ = -1;
  int release_ = -1;
};

TEST(OverloadTest, TwentyThousandHeldConnectionsLeaveHealthzAnsweringInMilliseconds) {
  constexpr int kConnections = 20000;
  TempFolder folder;
  // More than the open-files limit leaves room for: stowaged lowers it.
  auto server = StowagedProcess::FromText(
      SlowStagePipeline("max_connections = 1000000\n", 0, folder.path() / "journal"));
  ASSERT_TRUE(server->running()) << server->log();
  rlimit files{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &files), 0);
  if (files.rlim_max != RLIM_INFINITY && files.rlim_max < 1000000 + 1024) {
    EXPECT_TRUE(server->WaitForLog("is more than the open-files limit")) << server->log();
  }

  // Each child holds what its open-files limit allows.
  const int per_holder = static_cast<int>(
      std::min<rlim_t>(10000, files.rlim_max == RLIM_INFINITY ? 10000 : files.rlim_max - 64));
  ASSERT_GT(per_holder, 0);
  std::vector<std::unique_ptr<ConnectionHolder>> holders;
  for (int left = kConnections; left > 0; left -= per_holder) {
    holders.push_back(std::make_unique<ConnectionHolder>(server->port(), std::min(left, per_holder)));
  }
  int opened = 0;
  for (auto& holder : holders) opened += std::max(0, holder->Opened());
  EXPECT_EQ(opened, kConnections);
  // Connections beyond max_connections that hold overflow places are closed
  // after server's overflow timeout (1 s).
  std::this_thread::sleep_for(milliseconds(1500));

  std::vector<double> health_ms;
  for (int i = 0; i < 21; ++i) {
    HttpClient probe(server->port());
    probe.set_timeout(milliseconds(10000));
    const auto started = Clock::now();
    HttpResult health = probe.Send("GET", "/healthz", "", "");
    health_ms.push_back(MillisecondsSince(started));
    EXPECT_EQ(health.status, 200) << health.body;
  }
  HttpClient poster(server->port());
  poster.set_timeout(milliseconds(10000));
  const auto started = Clock::now();
  HttpResult post = poster.Send("POST", "/v1/guest/chat/under-load", kMessage);
  const double post_ms = MillisecondsSince(started);
  EXPECT_TRUE(post.status == 200 || (post.status == 503 && ErrorCode(post) == "overloaded"))
      << post.status << " " << post.body;
  EXPECT_LT(post_ms, 500);

  std::sort(health_ms.begin(), health_ms.end());
  const double median = health_ms[health_ms.size() / 2];
  EXPECT_LT(median, 50) << "/healthz took a median of " << median << " ms with " << opened
                        << " connections held";
  EXPECT_LT(health_ms.back(), 1000);
  std::printf(
      "[ figures  ] %d connections held (half with a partial request): /healthz median %.2f ms, max %.2f ms "
      "over %zu tries; POST answered %d in %.2f ms\n",
      opened, median, health_ms.back(), health_ms.size(), post.status, post_ms);
  std::fflush(stdout);

  for (auto& holder : holders) holder->Release();
  // Served again once the connections are gone.
  HttpResult after;
  for (int i = 0; i < 50 && after.status != 200; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    HttpClient client(server->port());
    client.set_timeout(milliseconds(5000));
    after = client.Send("POST", "/v1/guest/chat/after-load", kMessage);
  }
  EXPECT_EQ(after.status, 200) << after.body;
  // At most one overload line a second.
  const std::string log = server->log();
  EXPECT_LE(CountOf(log, "overloaded: answered 503 overloaded"), 30u);
  EXPECT_LE(CountOf(log, "accepting a connection failed"), 30u);
}

// ---------------------------------------------------------------------------
// PostgreSQL frozen under a flood of POSTs

TEST(OverloadTest, PostgresFrozenUnderAFloodAnswersQuicklyAndStoresNothingItRefused) {
  ServiceInstance postgres(Service::kPostgres);
  ASSERT_TRUE(postgres.running());
  auto server = StowagedProcess::FromText(
      "[server]\nlisten = \"${STOWAGE_LISTEN}\"\nworkers = 4\nmax_queue = 8\nqueue_timeout_ms = 500\n"
      "plugin_path = [\"" STOWAGE_PLUGIN_DIR "\"]\n"
      "[[database]]\nname = \"main\"\nurl = \"${DATABASE_URL}\"\npool_size = 4\nconnect_timeout_ms = 1000\n"
      "[[stage]]\nname = \"postgres\"\nplugin = \"postgres\"\ndatabase = \"main\"\ntimeout_ms = 1000\n",
      {{"DATABASE_URL", postgres.url()}});
  ASSERT_TRUE(server->running()) << server->log();

  // The ledger: every POST's content (unique) and what it was answered.
  struct Entry {
    std::string content;
    int status = 0;  // 0: no answer within the client's timeout
    std::string code;
    double ms = 0;
    bool during_freeze = false;
  };
  constexpr int kClients = 24;
  constexpr auto kClientTimeout = milliseconds(5000);
  std::mutex ledger_mu;
  std::vector<Entry> ledger;
  std::atomic<bool> frozen{false};
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      HttpClient client(server->port());
      client.set_timeout(kClientTimeout);
      for (int n = 0; !stop.load(); ++n) {
        Entry entry;
        entry.content = "flood-" + std::to_string(c) + "-" + std::to_string(n);
        entry.during_freeze = frozen.load();
        const auto started = Clock::now();
        try {
          HttpResult answer = client.Send("POST", "/v1/guest/chat/flood-" + std::to_string(c),
                                          R"({"role":"user","content":")" + entry.content + R"("})");
          entry.status = answer.status;
          entry.code = ErrorCode(answer);
        } catch (const std::exception&) {
          client.Close();  // no answer: the client gives up on this one
        }
        entry.ms = MillisecondsSince(started);
        if (entry.status == 503) std::this_thread::sleep_for(milliseconds(20));
        std::lock_guard lock(ledger_mu);
        ledger.push_back(std::move(entry));
      }
    });
  }
  std::this_thread::sleep_for(milliseconds(1500));
  ASSERT_TRUE(postgres.Pause());
  frozen = true;
  std::this_thread::sleep_for(milliseconds(3000));
  ASSERT_TRUE(postgres.Resume());
  frozen = false;
  std::this_thread::sleep_for(milliseconds(1500));
  stop = true;
  for (auto& thread : clients) thread.join();
  // Whatever PostgreSQL still had to do when it resumed is done by now.
  std::this_thread::sleep_for(milliseconds(1000));

  PostgresProbe probe(postgres.url());
  std::map<std::string, int> stored;
  for (const auto& row : probe.Query("SELECT content, count(*) FROM message_cache WHERE content LIKE $1 GROUP BY 1",
                                     "flood-%")) {
    stored[row[0]] = std::stoi(row[1]);
  }

  std::map<std::string, int> answers;  // "200", "503 overloaded", ...
  std::vector<double> freeze_ms;
  int acknowledged = 0, lost = 0, twice = 0, refused_but_stored = 0, unanswered = 0;
  for (const Entry& entry : ledger) {
    const std::string kind =
        entry.status == 0 ? "no answer" : std::to_string(entry.status) + (entry.code.empty() ? "" : " " + entry.code);
    ++answers[kind];
    if (entry.during_freeze) freeze_ms.push_back(entry.ms);
    const int rows = stored.count(entry.content) ? stored[entry.content] : 0;
    if (entry.status == 0) ++unanswered;
    if (entry.status == 200) {
      ++acknowledged;
      if (rows == 0) ++lost;
    }
    if (rows > 1) ++twice;
    // Only a COMMIT whose answer was lost may have stored what was not acknowledged.
    if (entry.status == 503 && entry.code != "outcome_unknown" && rows > 0) {
      ++refused_but_stored;
      ADD_FAILURE() << entry.content << " was answered 503 " << entry.code << " but is stored";
    }
  }
  std::sort(freeze_ms.begin(), freeze_ms.end());
  ASSERT_FALSE(freeze_ms.empty());
  const double p50 = freeze_ms[freeze_ms.size() / 2];
  const double p99 = freeze_ms[freeze_ms.size() * 99 / 100];
  std::string summary;
  for (const auto& [kind, count] : answers) summary += " " + kind + ": " + std::to_string(count) + ";";
  std::printf(
      "[ figures  ] %zu POSTs, PostgreSQL frozen 3 s:%s sent during the freeze: %zu, answered in p50 %.1f ms, "
      "p99 %.1f ms, max %.1f ms\n",
      ledger.size(), summary.c_str(), freeze_ms.size(), p50, p99, freeze_ms.back());
  std::fflush(stdout);

  EXPECT_GT(acknowledged, 0);
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(twice, 0);
  EXPECT_EQ(refused_but_stored, 0);
  EXPECT_EQ(unanswered, 0) << "every POST gets an answer before its client gives up";
  EXPECT_GT(answers["503 overloaded"], 0) << "a frozen database under a flood is answered overloaded";
  // The stage times out after 1 s, the queue after 0.5 s: no answer waits for PostgreSQL to come back.
  EXPECT_LT(freeze_ms.back(), 2000);
}

}  // namespace
}  // namespace stowage::testing
