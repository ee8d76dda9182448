// The serving TLS context: built from PEM files with the webhook's TLS policy, and swapped for a
// new one when the files change on disk (cert-manager and the kubelet replace them through a
// symlink).
#pragma once

#include "server/observability/metrics.hpp"
#include "server/snapshot/shared_slot.hpp"

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

namespace mtlsguard::https {

using SslContextPtr = std::shared_ptr<boost::asio::ssl::context>;

struct TlsMaterial {
    std::string certificate_chain_pem; // leaf first, then intermediates
    std::string private_key_pem;
    std::string client_ca_pem; // empty: clients are not asked for a certificate
};

struct TlsContextResult {
    SslContextPtr context; // null on error
    std::string error;
};

// TLS 1.2 minimum; TLS 1.2 ciphers limited to ECDHE with AES-GCM or ChaCha20-Poly1305; no
// renegotiation, no compression, the server's cipher order. Fails when the key does not match the
// certificate. With a client CA, a client certificate signed by it is required.
TlsContextResult build_server_context(const TlsMaterial& material);

struct TlsFiles {
    std::string certificate;
    std::string private_key;
    std::string client_ca; // empty: none
};

// Owns the current context. New connections take `current()`; a connection keeps the context it
// started with, so a swap never breaks a handshake in progress.
class TlsContextStore {
  public:
    TlsContextStore(TlsFiles files, observability::Metrics& metrics);

    // Reads the files and builds the first context. Returns an empty string on success, else why
    // not (a missing file, a key that does not match...); the caller retries.
    std::string load_initial();

    // Rebuilds the context when the files' contents changed. A broken pair is refused once per
    // distinct content (logged, counted) and the old context stays. Returns true after a swap.
    bool poll();

    SslContextPtr current() const { return current_.load(); }
    const TlsFiles& files() const noexcept { return files_; }

  private:
    struct Read {
        TlsMaterial material;
        std::string digest; // SHA-256 of the three files, to see a change without keeping the key
        std::string error;
    };
    Read read_files() const;

    TlsFiles files_;
    observability::Metrics& metrics_;
    SharedSlot<SslContextPtr> current_;
    std::string loaded_digest_;  // only touched by the polling thread
    std::string refused_digest_; // the last content refused, not to log it every poll
};

} // namespace mtlsguard::https
