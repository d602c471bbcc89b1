#include "systemd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace stowage::server {

SystemdNotifier SystemdNotifier::FromEnvironment() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  return SystemdNotifier(socket ? socket : "");
}

std::string SystemdNotifier::Notify(std::string_view state) const {
  if (!active()) return "";
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // "@name" is an abstract socket: a leading NUL and no terminating one.
  const bool abstract = socket_[0] == '@';
  if (socket_[0] != '/' && !abstract)
    return "NOTIFY_SOCKET '" + socket_ + "' is neither an absolute path nor an abstract socket (@name)";
  if (socket_.size() >= sizeof(address.sun_path))
    return "NOTIFY_SOCKET '" + socket_ + "' is longer than a unix socket address may be (" +
           std::to_string(sizeof(address.sun_path) - 1) + " bytes)";
  std::memcpy(address.sun_path, socket_.data(), socket_.size());
  if (abstract) address.sun_path[0] = '\0';
  const auto length =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_.size() + (abstract ? 0 : 1));

  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("could not create a unix datagram socket: ") + std::strerror(errno);
  ssize_t sent;
  do {
    sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address),
                    length);
  } while (sent < 0 && errno == EINTR);
  const int error = errno;
  ::close(fd);
  if (sent < 0) return "could not send to NOTIFY_SOCKET '" + socket_ + "': " + std::strerror(error);
  if (static_cast<std::size_t>(sent) != state.size())
    return "NOTIFY_SOCKET '" + socket_ + "' took " + std::to_string(sent) + " of " + std::to_string(state.size()) +
           " bytes";
  return "";
}

std::string SystemdNotifier::Ready(std::string_view status) const {
  return Notify("READY=1\nSTATUS=" + OneLine(status));
}

std::string SystemdNotifier::Reloading(std::string_view status) const {
  return Notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(MonotonicMicroseconds()) +
                "\nSTATUS=" + OneLine(status));
}

std::string SystemdNotifier::Stopping(std::string_view status) const {
  return Notify("STOPPING=1\nSTATUS=" + OneLine(status));
}

std::string SystemdNotifier::Status(std::string_view status, std::chrono::microseconds extend_timeout) const {
  std::string state = "STATUS=" + OneLine(status);
  if (extend_timeout.count() > 0) state += "\nEXTEND_TIMEOUT_USEC=" + std::to_string(extend_timeout.count());
  return Notify(state);
}

std::uint64_t SystemdNotifier::MonotonicMicroseconds() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000000u + static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
}

std::string OneLine(std::string_view text) {
  std::string line(text);
  for (char& c : line)
    if (c == '\n' || c == '\r') c = ' ';
  return line;
}

}  // namespace stowage::server
