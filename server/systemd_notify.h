// Tells systemd what stowaged is doing (the sd_notify protocol, without
// libsystemd): one datagram of "VARIABLE=value" lines to the unix socket
// systemd names in $NOTIFY_SOCKET. stowaged.service is Type=notify, so
// systemd counts the service started at READY=1 (stowaged listens and its
// required stages are healthy), shows it reloading between RELOADING=1 and
// the next READY=1 (a SIGHUP), and stopping after STOPPING=1.
//
// Outside systemd ($NOTIFY_SOCKET unset) every call does nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace stowage::server {

class SystemdNotifier {
 public:
  // The socket named by $NOTIFY_SOCKET: a path, or "@name" for an abstract
  // socket. Unset or empty: inactive.
  static SystemdNotifier FromEnvironment();

  explicit SystemdNotifier(std::string socket) : socket_(std::move(socket)) {}

  bool active() const { return !socket_.empty(); }
  const std::string& socket() const { return socket_; }

  // Sends `state`, newline-separated assignments ("READY=1\nSTATUS=..."), in
  // one datagram. Returns "" once sent (or when inactive), else what failed.
  std::string Notify(std::string_view state) const;

  // READY=1 with a STATUS= line: started, or a reload is done.
  std::string Ready(std::string_view status) const;
  // RELOADING=1 with the CLOCK_MONOTONIC time systemd asks for (MONOTONIC_USEC).
  std::string Reloading(std::string_view status) const;
  // STOPPING=1: the shutdown began.
  std::string Stopping(std::string_view status) const;
  // STATUS= alone, e.g. what the start waits for; with `extend_timeout` > 0,
  // EXTEND_TIMEOUT_USEC= too, so that systemd's start timeout does not run
  // out before that much time from now.
  std::string Status(std::string_view status,
                     std::chrono::microseconds extend_timeout = std::chrono::microseconds(0)) const;

  // Microseconds of CLOCK_MONOTONIC, as MONOTONIC_USEC= carries them.
  static std::uint64_t MonotonicMicroseconds();

 private:
  std::string socket_;
};

// `text` fit for one STATUS= line: newlines become spaces.
std::string OneLine(std::string_view text);

}  // namespace stowage::server
