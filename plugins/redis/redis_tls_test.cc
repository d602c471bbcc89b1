// The Redis stage over rediss:// against Debian's redis-server --tls-port:
// certificates are made with the openssl command at test time in a
// temporary folder, and each server is a private redis-server process on a
// free port. Skipped when redis-server or openssl is missing.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "redis_connection.h"
#include "redis_stage.h"
#include "redis_test_config.h"
#include "redis_tls.h"
#include "redis_url.h"
#include "stowage/testkit/loggers.h"

extern char** environ;

namespace stowage::redis {
namespace {

using testkit::CapturingLogger;

using std::chrono::milliseconds;
namespace fs = std::filesystem;

bool HaveCommand(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

// A free TCP port: scripts/services free-port when STOWAGE_SERVICES names it
// (a port below the kernel's ephemeral range), else one the kernel picks.
int FreePort() {
  if (const char* services = std::getenv("STOWAGE_SERVICES"); services != nullptr && *services != '\0') {
    std::string command = std::string("'") + services + "' free-port 2>/dev/null";
    if (FILE* pipe = popen(command.c_str(), "r")) {
      int port = 0;
      const bool read = std::fscanf(pipe, "%d", &port) == 1;
      if (pclose(pipe) == 0 && read && port > 0) return port;
    }
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

bool Listening(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// The certificates of all the tests, made once in a temporary folder.
struct Certificates {
  fs::path dir;
  std::string ca, other_ca, server_cert, server_key, other_host_cert, other_host_key, client_cert, client_key;
  std::string error;  // why they could not be made

  static const Certificates& Get() {
    static const std::unique_ptr<Certificates> certificates(Make());
    return *certificates;
  }
  ~Certificates() {
    std::error_code ignored;
    if (!dir.empty()) fs::remove_all(dir, ignored);
  }

 private:
  static bool Run(const std::string& command, std::string* error) {
    if (std::system((command + " >>openssl.log 2>&1").c_str()) == 0) return true;
    *error = "failed: " + command + " (see openssl.log)";
    return false;
  }
  static void Write(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

  static Certificates* Make() {
    auto* c = new Certificates;
    char pattern[] = "/tmp/stowage-redis-tls-XXXXXX";
    if (mkdtemp(pattern) == nullptr) {
      c->error = "cannot create a temporary folder";
      return c;
    }
    c->dir = pattern;
    const fs::path old = fs::current_path();
    fs::current_path(c->dir);
    Write("ca.ext", "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                    "subjectKeyIdentifier=hash\n");
    auto leaf = [](const std::string& san, const std::string& usage) {
      return "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
             "extendedKeyUsage=" + usage + "\n" + (san.empty() ? "" : "subjectAltName=" + san + "\n") +
             "authorityKeyIdentifier=keyid\n";
    };
    Write("server.ext", leaf("DNS:localhost,IP:127.0.0.1", "serverAuth"));
    Write("other.ext", leaf("DNS:other.example,IP:10.9.9.9", "serverAuth"));
    Write("client.ext", leaf("", "clientAuth"));
    const std::string key = "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ";
    auto make_ca = [&](const std::string& name) {
      return Run(key + name + ".key", &c->error) &&
             Run("openssl req -new -key " + name + ".key -subj /CN=" + name + " -out " + name + ".csr",
                 &c->error) &&
             Run("openssl x509 -req -days 2 -in " + name + ".csr -signkey " + name + ".key -extfile ca.ext -out " +
                     name + ".crt",
                 &c->error);
    };
    auto make_leaf = [&](const std::string& name, const std::string& cn) {
      return Run(key + name + ".key", &c->error) &&
             Run("openssl req -new -key " + name + ".key -subj /CN=" + cn + " -out " + name + ".csr", &c->error) &&
             Run("openssl x509 -req -days 2 -in " + name + ".csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                 "-extfile " + name + ".ext -out " + name + ".crt",
                 &c->error);
    };
    const bool ok = make_ca("ca") && make_ca("other-ca") && make_leaf("server", "localhost") &&
                    make_leaf("other", "other.example") && make_leaf("client", "stowage-client");
    fs::current_path(old);
    if (!ok) return c;
    auto at = [&](const std::string& name) { return (c->dir / name).string(); };
    c->ca = at("ca.crt");
    c->other_ca = at("other-ca.crt");
    c->server_cert = at("server.crt");
    c->server_key = at("server.key");
    c->other_host_cert = at("other.crt");
    c->other_host_key = at("other.key");
    c->client_cert = at("client.crt");
    c->client_key = at("client.key");
    return c;
  }
};

// redis-server with TLS only (--port 0), a child of this process.
class TlsRedis {
 public:
  struct Options {
    std::string cert, key;
    bool auth_clients = false;
    std::vector<std::string> extra;  // e.g. --requirepass, --user
  };

  ~TlsRedis() { Stop(); }

  // Starts it and waits until it listens; "" or why not.
  std::string Start(const Options& options) {
    const Certificates& c = Certificates::Get();
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = FreePort();
      std::vector<std::string> args = {"redis-server",      "--port",           "0",
                                       "--tls-port",        std::to_string(port_),
                                       "--bind",            "127.0.0.1",        "--tls-cert-file",
                                       options.cert,        "--tls-key-file",   options.key,
                                       "--tls-ca-cert-file", c.ca,              "--tls-auth-clients",
                                       options.auth_clients ? "yes" : "no",     "--save",
                                       "",                  "--appendonly",     "no",
                                       "--dir",             c.dir.string(),     "--logfile",
                                       (c.dir / ("redis-" + std::to_string(port_) + ".log")).string()};
      args.insert(args.end(), options.extra.begin(), options.extra.end());
      std::vector<char*> argv;
      for (auto& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      // Its output goes to its log file; /dev/null keeps it off this test's pipes.
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
      posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
      const int spawned = posix_spawnp(&pid_, "redis-server", &actions, nullptr, argv.data(), environ);
      posix_spawn_file_actions_destroy(&actions);
      if (spawned != 0) {
        pid_ = -1;
        return "cannot run redis-server";
      }
      for (int i = 0; i < 100; ++i) {
        if (Listening(port_)) return "";
        int status;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        std::this_thread::sleep_for(milliseconds(50));
      }
      Stop();
    }
    return "redis-server --tls-port did not start; see the logs in " + Certificates::Get().dir.string();
  }
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGCONT);
    kill(pid_, SIGTERM);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  bool Signal(int signal) const { return pid_ > 0 && kill(pid_, signal) == 0; }
  int port() const { return port_; }
  std::string url(const std::string& host = "localhost", const std::string& userinfo = "", int db = 0) const {
    return "rediss://" + (userinfo.empty() ? "" : userinfo + "@") + host + ":" + std::to_string(port_) + "/" +
           std::to_string(db);
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

Message Msg(std::string content) {
  return {"user", std::move(content), "2026-03-04T05:06:07.123456Z"};
}

Status Store(RedisStage& stage, Logger& log, const std::string& guest, const Message& message) {
  Attributes attributes;
  WriteContext ctx{guest, message, Deadline::After(milliseconds(5000)), log, attributes};
  return stage.write(ctx);
}

ReadResult Read(RedisStage& stage, Logger& log, const std::string& guest) {
  Attributes notes;
  GuestContext ctx{guest, Deadline::After(milliseconds(5000)), log, nullptr, &notes};
  return stage.read(ctx);
}

Status Health(RedisStage& stage) {
  return stage.health(Deadline::After(milliseconds(5000)));
}

// The config error of `config`; "" when it is accepted.
std::string ConfigError(const StageConfig& config) {
  try {
    RedisStage::OptionsFromConfig(config);
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

class RedisTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveCommand("redis-server")) GTEST_SKIP() << "redis-server is not installed: rediss:// is not tested";
    if (!HaveCommand("openssl")) GTEST_SKIP() << "the openssl command is not installed: rediss:// is not tested";
    const Certificates& c = Certificates::Get();
    ASSERT_EQ(c.error, "") << "cannot make the test certificates in " << c.dir;
  }

  // A stage on `url`, with ca_file the test CA unless overridden.
  std::unique_ptr<RedisStage> StageFor(const std::string& url, std::map<std::string, ConfigValue> overrides = {}) {
    if (!overrides.count("ca_file")) overrides["ca_file"] = Certificates::Get().ca;
    return std::make_unique<RedisStage>(RedisStage::OptionsFromConfig(ConfigFor(url, overrides)), log_);
  }

  const Certificates& certs() const { return Certificates::Get(); }

  CapturingLogger log_;
};

TEST_F(RedisTlsTest, StoresAndReadsMessagesOverTls) {
  TlsRedis redis;
  ASSERT_EQ(redis.Start({certs().server_cert, certs().server_key}), "");
  // By name (SNI, DNS name checked) and by address (IP address checked), in
  // another database (SELECT over TLS).
  for (const std::string host : {"localhost", "127.0.0.1"}) {
    auto stage = StageFor(redis.url(host, "", 3));
    const std::string guest = "tls-" + host;
    ASSERT_TRUE(Store(*stage, log_, guest, Msg("hello over TLS")).ok()) << log_.All();
    ASSERT_TRUE(Store(*stage, log_, guest, Msg(std::string(100000, 'x'))).ok()) << log_.All();
    ReadResult read = Read(*stage, log_, guest);
    ASSERT_TRUE(read.status.ok()) << read.status.ToString();
    ASSERT_EQ(read.messages.size(), 2u);
    EXPECT_EQ(read.messages[0].content, "hello over TLS");
    EXPECT_EQ(read.messages[1].content, std::string(100000, 'x'));
    EXPECT_TRUE(Health(*stage).ok());
  }
}

TEST_F(RedisTlsTest, AnIdleConnectionStaysUsableAndADroppedOneIsNoticed) {
  TlsRedis redis;
  ASSERT_EQ(redis.Start({certs().server_cert, certs().server_key}), "");
  auto tls = TlsContext::Create({certs().ca, "", ""});
  std::unique_ptr<RedisConnection> connection, admin;
  ASSERT_TRUE(RedisConnection::Open(ParseRedisUrl(redis.url()), milliseconds(2000), &connection, tls.get()).ok());
  ASSERT_TRUE(RedisConnection::Open(ParseRedisUrl(redis.url()), milliseconds(2000), &admin, tls.get()).ok());
  // TLS 1.3 session tickets arrive after the handshake: not a sign of death.
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_TRUE(connection->LooksAlive());
  ReplyPtr reply;
  ASSERT_TRUE(connection->Command({"PING"}, milliseconds(1000), false, &reply).ok());
  EXPECT_TRUE(connection->LooksAlive());
  ASSERT_TRUE(admin->Command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"}, milliseconds(1000), false,
                             &reply)
                  .ok());
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_FALSE(connection->LooksAlive());
  Status status = connection->Command({"PING"}, milliseconds(1000), false, &reply);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_TRUE(connection->broken());
}

TEST_F(RedisTlsTest, ACommandWaitsNoLongerThanItsTimeout) {
  TlsRedis redis;
  ASSERT_EQ(redis.Start({certs().server_cert, certs().server_key}), "");
  auto tls = TlsContext::Create({certs().ca, "", ""});
  std::unique_ptr<RedisConnection> connection;
  ASSERT_TRUE(RedisConnection::Open(ParseRedisUrl(redis.url()), milliseconds(2000), &connection, tls.get()).ok());
  ASSERT_TRUE(redis.Signal(SIGSTOP));
  ReplyPtr reply;
  auto start = std::chrono::steady_clock::now();
  Status status = connection->Command({"PING"}, milliseconds(200), false, &reply);
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_NE(status.message().find("did not answer PING within 200 ms"), std::string::npos) << status.message();
  EXPECT_TRUE(connection->broken());
  status = connection->Command({"PING"}, milliseconds(200), true, &reply);
  EXPECT_EQ(status.code(), StatusCode::kInternal);
  EXPECT_GE(waited, milliseconds(190));
  EXPECT_LT(waited, milliseconds(1000));

  // A handshake the server never answers ends by the connect timeout.
  start = std::chrono::steady_clock::now();
  status = RedisConnection::Open(ParseRedisUrl(redis.url()), milliseconds(200), &connection, tls.get());
  waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("did not finish in time"), std::string::npos) << status.message();
  EXPECT_LT(waited, milliseconds(1000));
  redis.Signal(SIGCONT);
}

TEST_F(RedisTlsTest, AServerCertificateFromAnotherCaIsRefused) {
  TlsRedis redis;
  ASSERT_EQ(redis.Start({certs().server_cert, certs().server_key}), "");
  auto stage = StageFor(redis.url(), {{"ca_file", certs().other_ca}});
  Status status = Health(*stage);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("certificate failed verification"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("ca_file"), std::string::npos) << status.message();
  // The system's store does not trust the test CA either.
  stage = std::make_unique<RedisStage>(RedisStage::OptionsFromConfig(ConfigFor(redis.url())), log_);
  status = Health(*stage);
  EXPECT_NE(status.message().find("certificate failed verification"), std::string::npos) << status.message();
}

TEST_F(RedisTlsTest, ACertificateForAnotherHostIsRefused) {
  TlsRedis redis;
  ASSERT_EQ(redis.Start({certs().other_host_cert, certs().other_host_key}), "");
  for (const std::string host : {"localhost", "127.0.0.1"}) {
    auto stage = StageFor(redis.url(host));
    Status status = Health(*stage);
    EXPECT_EQ(status.code(), StatusCode::kUnavailable);
    EXPECT_NE(status.message().find("certificate is not for '" + host + "'"), std::string::npos)
        << status.message();
  }
}

TEST_F(RedisTlsTest, AClientCertificateWhenRedisAsksForOne) {
  TlsRedis redis;
  ASSERT_EQ(redis.Start({certs().server_cert, certs().server_key, /*auth_clients=*/true}), "");
  auto without = StageFor(redis.url());
  Status status = Health(*without);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("Redis at localhost:" + std::to_string(redis.port())), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("cert_file and key_file"), std::string::npos) << status.message();

  auto with = StageFor(redis.url(), {{"cert_file", certs().client_cert}, {"key_file", certs().client_key}});
  EXPECT_TRUE(Health(*with).ok());
  ASSERT_TRUE(Store(*with, log_, "tls-client-cert", Msg("with a client certificate")).ok()) << log_.All();
  EXPECT_EQ(Read(*with, log_, "tls-client-cert").messages.size(), 1u);
}

TEST_F(RedisTlsTest, AuthWithUserAndPassword) {
  TlsRedis redis;
  ASSERT_EQ(redis.Start({certs().server_cert,
                         certs().server_key,
                         false,
                         {"--requirepass", "default-secret", "--user", "alice", "on", ">alice-secret", "~*", "&*",
                          "+@all"}}),
            "");
  EXPECT_TRUE(Health(*StageFor(redis.url("localhost", ":default-secret"))).ok());
  EXPECT_TRUE(Health(*StageFor(redis.url("localhost", "default:default-secret"))).ok());
  auto alice = StageFor(redis.url("localhost", "alice:alice-secret"));
  ASSERT_TRUE(Store(*alice, log_, "tls-alice", Msg("as alice")).ok()) << log_.All();
  EXPECT_EQ(Read(*alice, log_, "tls-alice").messages.size(), 1u);

  for (const std::string userinfo : {"alice:wrong-secret-123", ":wrong-secret-123"}) {
    Status status = Health(*StageFor(redis.url("localhost", userinfo)));
    EXPECT_EQ(status.code(), StatusCode::kUnavailable);
    EXPECT_NE(status.message().find("refused AUTH"), std::string::npos) << status.message();
    EXPECT_EQ(status.message().find("wrong-secret-123"), std::string::npos) << status.message();
  }
  Status status = Health(*StageFor(redis.url("localhost")));
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("NOAUTH"), std::string::npos) << status.message();
}

TEST_F(RedisTlsTest, ConfigErrorsNameTheKey) {
  const std::string url = "rediss://localhost:1/0";
  std::string error = ConfigError(ConfigFor(url, {{"ca_file", std::string("/nonexistent/ca.pem")}}));
  EXPECT_NE(error.find("stage[redis].config.ca_file '/nonexistent/ca.pem' cannot be read"), std::string::npos)
      << error;
  error = ConfigError(ConfigFor(url, {{"ca_file", certs().server_key}}));
  EXPECT_NE(error.find("stage[redis].config.ca_file"), std::string::npos) << error;
  error = ConfigError(ConfigFor(url, {{"cert_file", certs().client_cert}}));
  EXPECT_NE(error.find("stage[redis].config.key_file is missing"), std::string::npos) << error;
  error = ConfigError(ConfigFor(url, {{"key_file", certs().client_key}}));
  EXPECT_NE(error.find("stage[redis].config.cert_file is missing"), std::string::npos) << error;
  error = ConfigError(
      ConfigFor(url, {{"cert_file", certs().client_cert}, {"key_file", certs().server_key}}));
  EXPECT_NE(error.find("stage[redis].config.key_file"), std::string::npos) << error;
  EXPECT_NE(error.find("is not the key of cert_file"), std::string::npos) << error;
  error = ConfigError(ConfigFor("redis://localhost:1/0", {{"ca_file", certs().ca}}));
  EXPECT_NE(error.find("stage[redis].config.ca_file is set but url is not rediss://"), std::string::npos)
      << error;
  EXPECT_EQ(ConfigError(ConfigFor(url, {{"ca_file", certs().ca}})), "");
  EXPECT_EQ(ConfigError(ConfigFor(url)), "");  // the system's trusted certificates
}

}  // namespace
}  // namespace stowage::redis
