#include "redis_connection.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <optional>
#include <string>

namespace stowage::redis {
namespace {

timeval ToTimeval(std::chrono::milliseconds timeout) {
  auto ms = std::max<std::int64_t>(timeout.count(), 1);
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
}

// `argv` in the Redis protocol (RESP): *N, then $length and the bytes of
// each argument. hiredis's own formatting (redisCommandArgv) spends several
// thousand instructions per command in sdscatfmt; this spends a few hundred.
std::string EncodeCommand(const std::vector<std::string_view>& argv) {
  std::size_t size = 16;
  for (std::string_view arg : argv) size += arg.size() + 24;
  std::string out;
  out.reserve(size);
  char digits[24];
  auto append_count = [&](char kind, std::size_t n) {
    out += kind;
    auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), n);
    (void)ec;
    out.append(digits, end);
    out += "\r\n";
  };
  append_count('*', argv.size());
  for (std::string_view arg : argv) {
    append_count('$', arg.size());
    out.append(arg);
    out += "\r\n";
  }
  return out;
}

std::string CannotReach(const std::string& address, std::string_view reason) {
  return "cannot reach Redis at " + address + ": " + std::string(reason) +
         "; check that it runs and that stage[redis].config.url is right";
}

// Keeps SIGPIPE from ending the process while this thread writes to a socket
// the server reset (hiredis writes with write(), not send(MSG_NOSIGNAL)): the
// signal is blocked for the thread, and one raised meanwhile is consumed,
// so the write fails with EPIPE instead. Leaves the process's signal handling
// as it found it.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_mask_);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec no_wait{0, 0};
        const int saved_errno = errno;
        sigtimedwait(&pipe_, nullptr, &no_wait);
        errno = saved_errno;
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_, old_mask_;
  bool was_pending_ = false;
};

}  // namespace

void ReplyDeleter::operator()(redisReply* reply) const noexcept {
  freeReplyObject(reply);
}

Status RedisConnection::Open(const RedisUrl& url, std::chrono::milliseconds timeout,
                             std::unique_ptr<RedisConnection>* out) {
  out->reset();
  const std::string address = url.Address();
  redisContext* context = url.kind == RedisUrl::Kind::kUnix
                              ? redisConnectUnixWithTimeout(url.socket_path.c_str(), ToTimeval(timeout))
                              : redisConnectWithTimeout(url.host.c_str(), url.port, ToTimeval(timeout));
  if (context == nullptr) return Status::Unavailable(CannotReach(address, "out of memory for a connection"));
  if (context->err != 0) {
    std::string reason = context->errstr;
    redisFree(context);
    return Status::Unavailable(CannotReach(address, reason));
  }
  std::unique_ptr<RedisConnection> connection(new RedisConnection(context, address));
  if (!url.password.empty()) {
    std::vector<std::string_view> auth = {"AUTH"};
    if (!url.user.empty()) auth.push_back(url.user);
    auth.push_back(url.password);
    ReplyPtr reply;
    if (Status s = connection->Command(auth, timeout, false, &reply); !s.ok()) return s;
    if (reply->type == REDIS_REPLY_ERROR)
      return Status::Unavailable("Redis at " + address +
                                 " refused AUTH: " + std::string(reply->str, reply->len) +
                                 "; check the user and password in stage[redis].config.url");
  }
  if (url.db != 0) {
    const std::string db = std::to_string(url.db);
    ReplyPtr reply;
    if (Status s = connection->Command({"SELECT", db}, timeout, false, &reply); !s.ok()) return s;
    if (reply->type == REDIS_REPLY_ERROR)
      return Status::Unavailable("Redis at " + address + " refused SELECT " + db + ": " +
                                 std::string(reply->str, reply->len) +
                                 "; check the database number in stage[redis].config.url");
  }
  *out = std::move(connection);
  return Status::Ok();
}

RedisConnection::RedisConnection(redisContext* context, std::string address)
    : context_(context), address_(std::move(address)) {
  struct sigaction current {};
  sigpipe_ignored_ = sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_IGN;
}

RedisConnection::~RedisConnection() {
  redisFree(context_);
}

Status RedisConnection::Command(const std::vector<std::string_view>& argv, std::chrono::milliseconds timeout,
                                bool deadline_bound, ReplyPtr* reply) {
  reply->reset();
  const std::string name = argv.empty() ? std::string() : std::string(argv.front());
  if (broken_)
    return Status::Internal("a broken Redis connection to " + address_ + " was reused for " + name);
  if (timeout != socket_timeout_) {
    if (redisSetTimeout(context_, ToTimeval(timeout)) != REDIS_OK) {
      broken_ = true;
      return Status::Unavailable(
          CannotReach(address_, std::string("cannot set the socket timeout: ") + context_->errstr));
    }
    socket_timeout_ = timeout;
  }
  const std::string command = EncodeCommand(argv);
  void* raw = nullptr;
  int saved_errno;
  {
    std::optional<SigpipeGuard> guard;
    if (!sigpipe_ignored_) guard.emplace();
    errno = 0;
    if (redisAppendFormattedCommand(context_, command.data(), command.size()) == REDIS_OK &&
        redisGetReply(context_, &raw) != REDIS_OK) {
      raw = nullptr;
    }
    saved_errno = errno;
  }
  if (raw == nullptr) {
    broken_ = true;
    const bool timed_out =
        context_->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK);
    if (!timed_out) return Status::Unavailable(CannotReach(address_, context_->errstr));
    const std::string waited = std::to_string(timeout.count()) + " ms";
    if (deadline_bound)
      return Status::DeadlineExceeded("the request's deadline passed after " + waited + " while Redis at " +
                                      address_ + " ran " + name);
    return Status::Unavailable(
        "Redis at " + address_ + " did not answer " + name + " within " + waited +
        " (command_timeout_ms); check its load (SLOWLOG GET) or raise command_timeout_ms");
  }
  reply->reset(static_cast<redisReply*>(raw));
  return Status::Ok();
}

bool RedisConnection::LooksAlive() const noexcept {
  if (broken_ || context_->err != 0) return false;
  char byte;
  ssize_t n = recv(context_->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace stowage::redis
