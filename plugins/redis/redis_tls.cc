#include "redis_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace stowage::redis {
namespace {

struct CtxFree {
  void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};

// Throws for a file that cannot be opened at all, with the system's reason:
// clearer than OpenSSL's "system library" for a wrong path.
void MustBeReadable(const std::string& key, const std::string& path, const std::string& what) {
  std::ifstream file(path);
  if (!file) {
    const std::string reason = std::strerror(errno);
    throw std::invalid_argument("stage[redis].config." + key + " '" + path + "' cannot be read (" + reason +
                                "); give the path of " + what + " readable by stowaged");
  }
}

}  // namespace

std::string TakeOpenSslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? "no detail from OpenSSL" : out;
}

std::shared_ptr<const TlsContext> TlsContext::Create(const TlsOptions& options) {
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) throw std::runtime_error("cannot create a TLS context for Redis: " + TakeOpenSslErrors());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // The certificate must chain to a trusted CA; the host name is checked per
  // connection (RedisConnection sets it on each SSL).
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  // Writes are retried with the same buffer; partial writes are allowed.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE);
  // An encrypted key_file must fail, not prompt on the terminal.
  SSL_CTX_set_default_passwd_cb(ctx.get(), [](char*, int, int, void*) { return 0; });

  std::string trust_source;
  if (!options.ca_file.empty()) {
    const std::string what = "the PEM certificate of the CA that signed Redis's certificate";
    MustBeReadable("ca_file", options.ca_file, what);
    if (SSL_CTX_load_verify_locations(ctx.get(), options.ca_file.c_str(), nullptr) != 1)
      throw std::invalid_argument("stage[redis].config.ca_file '" + options.ca_file +
                                  "' holds no usable PEM certificate (" + TakeOpenSslErrors() + "); give " +
                                  what);
    trust_source = "ca_file " + options.ca_file;
  } else {
    if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1)
      throw std::invalid_argument(
          "cannot load the system's trusted certificates for rediss:// (" + TakeOpenSslErrors() +
          "); install the ca-certificates package or set stage[redis].config.ca_file");
    trust_source = "the system's trusted certificates (set ca_file for a private CA)";
  }

  if (options.cert_file.empty() != options.key_file.empty()) {
    const std::string set = options.cert_file.empty() ? "key_file" : "cert_file";
    const std::string missing = options.cert_file.empty() ? "cert_file" : "key_file";
    throw std::invalid_argument("stage[redis].config." + missing + " is missing: " + set +
                                " is set, and a client certificate needs both cert_file and key_file; set " +
                                missing + " or remove " + set);
  }
  if (!options.cert_file.empty()) {
    MustBeReadable("cert_file", options.cert_file, "the client's PEM certificate");
    MustBeReadable("key_file", options.key_file, "the client certificate's PEM private key");
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), options.cert_file.c_str()) != 1)
      throw std::invalid_argument("stage[redis].config.cert_file '" + options.cert_file +
                                  "' holds no usable PEM certificate (" + TakeOpenSslErrors() +
                                  "); give the client's PEM certificate");
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      const std::string reason = TakeOpenSslErrors();
      if (reason.find("key values mismatch") != std::string::npos)
        throw std::invalid_argument("stage[redis].config.key_file '" + options.key_file +
                                    "' is not the key of cert_file '" + options.cert_file +
                                    "'; give the key that matches the certificate");
      throw std::invalid_argument("stage[redis].config.key_file '" + options.key_file +
                                  "' holds no usable PEM private key (" + reason +
                                  "); give the unencrypted PEM key of cert_file");
    }
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
      throw std::invalid_argument("stage[redis].config.key_file '" + options.key_file +
                                  "' is not the key of cert_file '" + options.cert_file + "' (" +
                                  TakeOpenSslErrors() + "); give the key that matches the certificate");
  }
  return std::shared_ptr<const TlsContext>(new TlsContext(ctx.release(), std::move(trust_source)));
}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
}

}  // namespace stowage::redis
