// SystemdNotifier against a datagram socket the test binds, as systemd does.
#include "systemd_notify.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace stowage::server {
namespace {

// A bound unix datagram socket: a path in a scratch folder, or an abstract one.
class Listener {
 public:
  explicit Listener(bool abstract) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    socklen_t length;
    if (abstract) {
      name_ = "@stowage-notify-test-" + std::to_string(::getpid());
      std::memcpy(address.sun_path + 1, name_.data() + 1, name_.size() - 1);
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
    } else {
      char folder[] = "/tmp/stowage-notify-test.XXXXXX";
      EXPECT_NE(::mkdtemp(folder), nullptr) << std::strerror(errno);
      folder_ = folder;
      name_ = folder_ + "/notify";
      std::memcpy(address.sun_path, name_.c_str(), name_.size() + 1);
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size() + 1);
    }
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), length), 0) << std::strerror(errno);
  }
  ~Listener() {
    if (fd_ >= 0) ::close(fd_);
    if (!folder_.empty()) std::filesystem::remove_all(folder_);
  }

  const std::string& name() const { return name_; }

  // The next datagram, or "<none>" after a second without one.
  std::string Receive() const {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) return "<none>";
    std::vector<char> buffer(4096);
    const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), 0);
    if (n < 0) return std::string("<error: ") + std::strerror(errno) + ">";
    return std::string(buffer.data(), static_cast<std::size_t>(n));
  }

 private:
  int fd_ = -1;
  std::string folder_;
  std::string name_;
};

TEST(SystemdNotifierTest, SendsEachStateAsOneDatagramToAPathSocket) {
  Listener listener(false);
  SystemdNotifier notifier(listener.name());
  ASSERT_TRUE(notifier.active());

  EXPECT_EQ(notifier.Ready("serving on http://127.0.0.1:8000"), "");
  EXPECT_EQ(listener.Receive(), "READY=1\nSTATUS=serving on http://127.0.0.1:8000");

  EXPECT_EQ(notifier.Stopping("shutting down"), "");
  EXPECT_EQ(listener.Receive(), "STOPPING=1\nSTATUS=shutting down");

  EXPECT_EQ(notifier.Status("waiting for required stages", std::chrono::seconds(40)), "");
  EXPECT_EQ(listener.Receive(), "STATUS=waiting for required stages\nEXTEND_TIMEOUT_USEC=40000000");

  EXPECT_EQ(notifier.Status("no extension"), "");
  EXPECT_EQ(listener.Receive(), "STATUS=no extension");
}

TEST(SystemdNotifierTest, ReloadingCarriesTheMonotonicClock) {
  Listener listener(false);
  SystemdNotifier notifier(listener.name());
  const std::uint64_t before = SystemdNotifier::MonotonicMicroseconds();
  EXPECT_EQ(notifier.Reloading("reloading /etc/stowage/pipeline.toml"), "");
  const std::uint64_t after = SystemdNotifier::MonotonicMicroseconds();
  const std::string got = listener.Receive();

  const std::string head = "RELOADING=1\nMONOTONIC_USEC=";
  ASSERT_EQ(got.substr(0, head.size()), head) << got;
  const std::size_t end = got.find('\n', head.size());
  ASSERT_NE(end, std::string::npos) << got;
  const std::uint64_t usec = std::stoull(got.substr(head.size(), end - head.size()));
  EXPECT_GE(usec, before);
  EXPECT_LE(usec, after);
  EXPECT_EQ(got.substr(end), "\nSTATUS=reloading /etc/stowage/pipeline.toml");
}

TEST(SystemdNotifierTest, ReachesAnAbstractSocket) {
  Listener listener(true);
  SystemdNotifier notifier(listener.name());
  EXPECT_EQ(notifier.Notify("READY=1"), "");
  EXPECT_EQ(listener.Receive(), "READY=1");
}

TEST(SystemdNotifierTest, StatusIsOneLine) {
  Listener listener(false);
  SystemdNotifier notifier(listener.name());
  EXPECT_EQ(notifier.Ready("reload refused:\n  pipeline.toml:3: bad\r\n"), "");
  EXPECT_EQ(listener.Receive(), "READY=1\nSTATUS=reload refused:   pipeline.toml:3: bad  ");
}

TEST(SystemdNotifierTest, InactiveWithoutNotifySocket) {
  ::unsetenv("NOTIFY_SOCKET");
  SystemdNotifier notifier = SystemdNotifier::FromEnvironment();
  EXPECT_FALSE(notifier.active());
  EXPECT_EQ(notifier.Ready("serving"), "");

  ::setenv("NOTIFY_SOCKET", "", 1);
  EXPECT_FALSE(SystemdNotifier::FromEnvironment().active());

  ::setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
  EXPECT_EQ(SystemdNotifier::FromEnvironment().socket(), "/run/systemd/notify");
  ::unsetenv("NOTIFY_SOCKET");
}

TEST(SystemdNotifierTest, SaysWhatFailed) {
  char folder[] = "/tmp/stowage-notify-test.XXXXXX";
  ASSERT_NE(::mkdtemp(folder), nullptr);
  const std::string missing = std::string(folder) + "/nobody-listens";
  std::string error = SystemdNotifier(missing).Ready("serving");
  EXPECT_NE(error.find("could not send to NOTIFY_SOCKET '" + missing + "'"), std::string::npos) << error;
  std::filesystem::remove_all(folder);

  error = SystemdNotifier("relative/notify").Ready("serving");
  EXPECT_NE(error.find("neither an absolute path nor an abstract socket"), std::string::npos) << error;

  error = SystemdNotifier("/" + std::string(200, 'x')).Ready("serving");
  EXPECT_NE(error.find("longer than a unix socket address may be"), std::string::npos) << error;
}

}  // namespace
}  // namespace stowage::server
