// TlsContext: how the Redis stage's rediss:// connections verify the server
// and present a client certificate (an OpenSSL SSL_CTX, built once from the
// stage's config and shared by all its connections).
#pragma once

#include <memory>
#include <string>

typedef struct ssl_ctx_st SSL_CTX;

namespace stowage::redis {

struct TlsOptions {
  std::string ca_file;    // PEM CA certificate(s); empty: the system's trusted store
  std::string cert_file;  // PEM client certificate (chain); with key_file, or empty
  std::string key_file;   // PEM private key of cert_file; with cert_file, or empty
};

// Thread-safe once built: connections only read it.
class TlsContext {
 public:
  // Loads the files. Throws std::invalid_argument naming the stage's config
  // key (stage[redis].config.ca_file, ...) and saying what to do when a file
  // cannot be read or used, or when only one of cert_file and key_file is set.
  static std::shared_ptr<const TlsContext> Create(const TlsOptions& options);

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* native() const noexcept { return ctx_; }
  // Where the server's certificate must chain to, for messages: the ca_file
  // or "the system's trusted certificates".
  const std::string& trust_source() const noexcept { return trust_source_; }

 private:
  TlsContext(SSL_CTX* ctx, std::string trust_source) : ctx_(ctx), trust_source_(std::move(trust_source)) {}

  SSL_CTX* ctx_;
  std::string trust_source_;
};

// The reasons on this thread's OpenSSL error queue, "; "-joined, and clears it.
std::string TakeOpenSslErrors();

}  // namespace stowage::redis
