#include "test_server.h"

#include <arpa/inet.h>
#include <glob.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace stowage::postgres::testing {
namespace {

std::string FindBinDir() {
  if (const char* dir = std::getenv("STOWAGE_TEST_PG_BIN")) return dir;
  glob_t found{};
  std::string dir;
  if (glob("/usr/lib/postgresql/*/bin/initdb", 0, nullptr, &found) == 0 && found.gl_pathc > 0) {
    dir = std::filesystem::path(found.gl_pathv[found.gl_pathc - 1]).parent_path();
  }
  globfree(&found);
  return dir;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// Quotes `s` as one POSIX shell word.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string DatabaseUrlFromEnv() {
  const char* url = std::getenv("STOWAGE_TEST_DATABASE_URL");
  if (url == nullptr || *url == '\0') {
    ADD_FAILURE() << "STOWAGE_TEST_DATABASE_URL is not set: point it at a PostgreSQL server whose user may "
                     "create databases, e.g. postgresql://stowage@127.0.0.1:5499/stowage (scripts/test sets "
                     "it after starting one)";
    return "";
  }
  return url;
}

std::string WithDatabase(const std::string& url, const std::string& dbname) {
  auto start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  auto query = url.find('?', start);
  auto slash = url.find('/', start);
  std::string head = url.substr(0, std::min(slash, query));
  std::string tail = query == std::string::npos ? "" : url.substr(query);
  return head + "/" + dbname + tail;
}

PrivateServer::PrivateServer() : bin_dir_(FindBinDir()) {}

PrivateServer::~PrivateServer() {
  if (running_) Run(Quote(bin_dir_ + "/pg_ctl") + " -D " + Quote(dir_ + "/data") + " -m immediate -w stop");
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

bool PrivateServer::Run(const std::string& command) {
  std::string full = command + " >>" + Quote(dir_ + "/commands.log") + " 2>&1";
  if (geteuid() == 0) full = "runuser -u postgres -- sh -c " + Quote(full);
  if (std::system(full.c_str()) == 0) return true;
  std::ifstream log(dir_ + "/commands.log");
  std::stringstream text;
  text << log.rdbuf();
  error_ = "`" + command + "` failed:\n" + text.str();
  return false;
}

bool PrivateServer::Init() {
  if (bin_dir_.empty()) {
    error_ =
        "no PostgreSQL server binaries (initdb) under /usr/lib/postgresql/*/bin; set STOWAGE_TEST_PG_BIN";
    return false;
  }
  char tmpl[] = "/tmp/stowage-pg-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    error_ = "cannot create a temporary folder under /tmp";
    return false;
  }
  dir_ = tmpl;
  if (geteuid() == 0) {
    passwd* pw = getpwnam("postgres");
    if (pw == nullptr || chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      error_ = "running as root, but cannot hand " + dir_ + " to the user postgres (PostgreSQL refuses root)";
      return false;
    }
  }
  port_ = FreePort();
  if (!Run(Quote(bin_dir_ + "/initdb") + " -D " + Quote(dir_ + "/data") +
           " -U stowage --auth=trust -E UTF8 --locale=C.UTF-8")) {
    return false;
  }
  if (!Start()) return false;
  try {
    soci::session sql(soci::postgresql,
                      "host=127.0.0.1 port=" + std::to_string(port_) + " user=stowage dbname=postgres");
    sql << "CREATE DATABASE stowage";
  } catch (const std::exception& e) {
    error_ = std::string("cannot create the database stowage: ") + e.what();
    return false;
  }
  return true;
}

bool PrivateServer::Start() {
  bool ok = Run(Quote(bin_dir_ + "/pg_ctl") + " -D " + Quote(dir_ + "/data") + " -l " +
                Quote(dir_ + "/server.log") + " -o " +
                Quote("-p " + std::to_string(port_) + " -k " + dir_ + " -c listen_addresses=127.0.0.1") +
                " -w start");
  running_ = running_ || ok;
  return ok;
}

bool PrivateServer::Stop() {
  bool ok = Run(Quote(bin_dir_ + "/pg_ctl") + " -D " + Quote(dir_ + "/data") + " -m fast -w stop");
  if (ok) running_ = false;
  return ok;
}

std::string PrivateServer::url() const {
  return "postgresql://stowage@127.0.0.1:" + std::to_string(port_) + "/stowage";
}

}  // namespace stowage::postgres::testing
