#include "redis_connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
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

using SteadyClock = std::chrono::steady_clock;

// Waits until `fd` is ready for `events` or `deadline` passes: 1 ready,
// 0 timed out, -1 error (errno set).
int WaitFor(int fd, short events, SteadyClock::time_point deadline) {
  while (true) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) return 0;
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left, 1 << 30)));
    if (n > 0) return 1;
    if (n < 0 && errno != EINTR) return -1;
  }
}

// What OpenSSL's failed call `result` (SSL_get_error code `error`) means, for
// messages. Clears this thread's OpenSSL error queue.
std::string TlsFailure(int error, int result, int saved_errno) {
  switch (error) {
    case SSL_ERROR_ZERO_RETURN:
      return "the server closed the TLS connection";
    case SSL_ERROR_SYSCALL: {
      std::string queued = ERR_peek_error() != 0 ? TakeOpenSslErrors() : std::string();
      if (!queued.empty()) return queued;
      if (result == 0 || saved_errno == 0) return "the server closed the connection";
      return std::strerror(saved_errno);
    }
    case SSL_ERROR_SSL: {
      std::string reason = TakeOpenSslErrors();
      if (reason.find("certificate required") != std::string::npos)
        reason += " (Redis asks for a client certificate: set stage[redis].config.cert_file and key_file)";
      else if (reason.find("wrong version number") != std::string::npos ||
               reason.find("packet length too long") != std::string::npos)
        reason += " (is this Redis's TLS port? rediss:// needs its tls-port)";
      return "TLS error: " + reason;
    }
    default:
      return "TLS error " + std::to_string(error);
  }
}

bool IsIpAddress(const std::string& host) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 || inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

}  // namespace

// The TLS session over the connection's socket (non-blocking once the TCP
// connection is made; every wait is a poll() bounded by the command's
// deadline) and hiredis's protocol reader, which turns the decrypted bytes
// into replies.
struct RedisConnection::Tls {
  SSL* ssl = nullptr;
  redisReader* reader = nullptr;
  int fd = -1;
  bool answered = false;  // a reply came: the server accepted the handshake

  ~Tls() {
    if (ssl != nullptr) SSL_free(ssl);
    if (reader != nullptr) redisReaderFree(reader);
  }

  // Runs one SSL call until it succeeds (returns its positive result), waiting
  // for the socket as OpenSSL asks. On failure returns <= 0 and sets *error,
  // or *timed_out when `deadline` passed first.
  template <typename Call>
  int Retry(Call call, SteadyClock::time_point deadline, std::string* error, bool* timed_out) {
    while (true) {
      ERR_clear_error();
      errno = 0;
      const int result = call();
      if (result > 0) return result;
      const int saved_errno = errno;
      const int code = SSL_get_error(ssl, result);
      if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
        const int ready = WaitFor(fd, code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
        if (ready == 0) {
          *timed_out = true;
          return 0;
        }
        if (ready < 0) {
          *error = std::strerror(errno);
          return -1;
        }
        continue;
      }
      *error = TlsFailure(code, result, saved_errno);
      return -1;
    }
  }

  // Makes the TLS handshake over the connected socket `fd`, verifying the
  // server's certificate against `tls` and its name against `host` (an IP
  // address against the certificate's IP addresses); sends the name as SNI
  // (RFC 6066 allows no address there). Returns "" or why it failed.
  std::string Handshake(const std::string& host, const TlsContext& tls, int socket,
                        SteadyClock::time_point deadline) {
    fd = socket;
    reader = redisReaderCreate();
    ERR_clear_error();
    ssl = SSL_new(tls.native());
    if (reader == nullptr || ssl == nullptr) return "cannot create a TLS session: " + TakeOpenSslErrors();
    const int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
      return std::string("cannot make the socket non-blocking: ") + std::strerror(errno);
    if (SSL_set_fd(ssl, fd) != 1) return "cannot attach the TLS session: " + TakeOpenSslErrors();
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (IsIpAddress(host)) {
      if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1)
        return "cannot check the certificate for address " + host + ": " + TakeOpenSslErrors();
    } else {
      if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1)
        return "cannot send the TLS server name '" + host + "': " + TakeOpenSslErrors();
      if (SSL_set1_host(ssl, host.c_str()) != 1)
        return "cannot check the certificate for host name '" + host + "': " + TakeOpenSslErrors();
    }
    std::string error;
    bool timed_out = false;
    if (Retry([&] { return SSL_connect(ssl); }, deadline, &error, &timed_out) > 0) return "";
    if (timed_out) return "the TLS handshake did not finish in time (connect_timeout_ms)";
    const long verify = SSL_get_verify_result(ssl);
    if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
      return "its TLS certificate is not for '" + host +
             "' (the host of stage[redis].config.url); connect with a name the certificate holds, or give "
             "Redis a certificate for this one";
    if (verify != X509_V_OK)
      return std::string("its TLS certificate failed verification: ") + X509_verify_cert_error_string(verify) +
             " (trusted: " + tls.trust_source() +
             "); set stage[redis].config.ca_file to the CA that signed Redis's certificate";
    return "the TLS handshake failed: " + error;
  }

  bool WriteAll(const std::string& bytes, SteadyClock::time_point deadline, std::string* error,
                bool* timed_out) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const std::size_t chunk = std::min<std::size_t>(bytes.size() - done, 1 << 30);
      const int n = Retry([&] { return SSL_write(ssl, bytes.data() + done, static_cast<int>(chunk)); },
                          deadline, error, timed_out);
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  }

  bool ReadReply(SteadyClock::time_point deadline, void** raw, std::string* error, bool* timed_out) {
    char buffer[16384];
    while (true) {
      if (redisReaderGetReply(reader, raw) != REDIS_OK) {
        *error = std::string("protocol error: ") + reader->errstr;
        *raw = nullptr;
        return false;
      }
      if (*raw != nullptr) return true;
      const int n = Retry([&] { return SSL_read(ssl, buffer, sizeof buffer); }, deadline, error, timed_out);
      if (n <= 0) return false;
      if (redisReaderFeed(reader, buffer, static_cast<std::size_t>(n)) != REDIS_OK) {
        *error = std::string("protocol error: ") + reader->errstr;
        return false;
      }
    }
  }
};

void ReplyDeleter::operator()(redisReply* reply) const noexcept {
  freeReplyObject(reply);
}

Status RedisConnection::Open(const RedisUrl& url, std::chrono::milliseconds timeout,
                             std::unique_ptr<RedisConnection>* out, const TlsContext* tls) {
  out->reset();
  const std::string address = url.Address();
  if (url.tls && tls == nullptr)
    return Status::Internal("a rediss:// connection to " + address + " was opened without a TLS context");
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
  if (url.tls) {
    connection->tls_ = std::make_unique<Tls>();
    const std::string failed = connection->tls_->Handshake(
        url.host, *tls, context->fd, SteadyClock::now() + std::max(timeout, std::chrono::milliseconds(1)));
    if (!failed.empty()) return Status::Unavailable("cannot reach Redis at " + address + " over TLS: " + failed);
  }
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
  tls_.reset();  // before redisFree closes the socket
  redisFree(context_);
}

Status RedisConnection::Command(const std::vector<std::string_view>& argv, std::chrono::milliseconds timeout,
                                bool deadline_bound, ReplyPtr* reply) {
  if (tls_ != nullptr) return TlsCommand(argv, timeout, deadline_bound, reply);
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
    return TimedOut(name, timeout, deadline_bound);
  }
  reply->reset(static_cast<redisReply*>(raw));
  return Status::Ok();
}

Status RedisConnection::TimedOut(const std::string& name, std::chrono::milliseconds timeout,
                                 bool deadline_bound) const {
  const std::string waited = std::to_string(timeout.count()) + " ms";
  if (deadline_bound)
    return Status::DeadlineExceeded("the request's deadline passed after " + waited + " while Redis at " +
                                    address_ + " ran " + name);
  return Status::Unavailable("Redis at " + address_ + " did not answer " + name + " within " + waited +
                             " (command_timeout_ms); check its load (SLOWLOG GET) or raise command_timeout_ms");
}

Status RedisConnection::TlsCommand(const std::vector<std::string_view>& argv, std::chrono::milliseconds timeout,
                                   bool deadline_bound, ReplyPtr* reply) {
  reply->reset();
  const std::string name = argv.empty() ? std::string() : std::string(argv.front());
  if (broken_)
    return Status::Internal("a broken Redis connection to " + address_ + " was reused for " + name);
  timeout = std::max(timeout, std::chrono::milliseconds(1));
  const SteadyClock::time_point deadline = SteadyClock::now() + timeout;
  const std::string command = EncodeCommand(argv);
  void* raw = nullptr;
  std::string error;
  bool timed_out = false;
  bool ok;
  {
    std::optional<SigpipeGuard> guard;  // OpenSSL writes with write(), as hiredis does
    if (!sigpipe_ignored_) guard.emplace();
    ok = tls_->WriteAll(command, deadline, &error, &timed_out) &&
         tls_->ReadReply(deadline, &raw, &error, &timed_out);
  }
  if (!ok) {
    broken_ = true;
    if (raw != nullptr) freeReplyObject(raw);
    if (timed_out) return TimedOut(name, timeout, deadline_bound);
    // With TLS 1.3 the server checks the client's certificate after the
    // client's side of the handshake is done: a refusal shows on the first read.
    if (!tls_->answered && error.find("client certificate") == std::string::npos)
      error += " (right after the TLS handshake: if Redis asks for client certificates (tls-auth-clients), "
               "set stage[redis].config.cert_file and key_file)";
    return Status::Unavailable(CannotReach(address_, error));
  }
  tls_->answered = true;
  reply->reset(static_cast<redisReply*>(raw));
  return Status::Ok();
}

bool RedisConnection::TlsLooksAlive() const noexcept {
  if (broken_ || tls_->reader->pos < tls_->reader->len || SSL_pending(tls_->ssl) > 0) return false;
  char byte;
  const ssize_t n = recv(tls_->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
  if (n == 0) return false;
  // Bytes wait on the socket: a record the server sent after the handshake
  // (a TLS 1.3 session ticket) is read here without blocking; application
  // data, a close_notify or an error means the connection is not usable.
  ERR_clear_error();
  const int peeked = SSL_peek(tls_->ssl, &byte, 1);
  const int code = peeked > 0 ? SSL_ERROR_NONE : SSL_get_error(tls_->ssl, peeked);
  ERR_clear_error();
  return peeked <= 0 && code == SSL_ERROR_WANT_READ;
}

bool RedisConnection::LooksAlive() const noexcept {
  if (tls_ != nullptr) return TlsLooksAlive();
  if (broken_ || context_->err != 0) return false;
  char byte;
  ssize_t n = recv(context_->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace stowage::redis
