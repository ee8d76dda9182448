// The serving TLS context: built from PEM files with the webhook's TLS policy, and swapped for a
// new one when the files change on disk (cert-manager and the kubelet replace them through a
// symlink).
#include "server/tls/tls_context.hpp"

#include "server/observability/logging.hpp"

#include <array>
#include <boost/asio/buffer.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <thread>

namespace mtlsguard::https {
namespace {

namespace ssl = boost::asio::ssl;

// TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3 suites are all fine as they are.
constexpr const char* tls12_ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr std::size_t max_pem_bytes = std::size_t{1} << 20;

std::string openssl_error(std::string_view what) {
    std::string out(what);
    const unsigned long code = ERR_get_error();
    if (code != 0) {
        std::array<char, 256> text{};
        ERR_error_string_n(code, text.data(), text.size());
        out += ": ";
        out += text.data();
    }
    ERR_clear_error();
    return out;
}

struct BioDeleter {
    void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};
struct X509Deleter {
    void operator()(X509* cert) const noexcept { X509_free(cert); }
};
struct MdCtxDeleter {
    void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};

// Advertises the client CA's subjects in the CertificateRequest, so a client holding several
// certificates picks the right one.
std::string add_client_ca_names(SSL_CTX* ctx, const std::string& pem) {
    std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio)
        return openssl_error("cannot read the client CA");
    int added = 0;
    while (true) {
        std::unique_ptr<X509, X509Deleter> cert(
            PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
        if (!cert)
            break;
        if (SSL_CTX_add_client_CA(ctx, cert.get()) != 1)
            return openssl_error("cannot use the client CA");
        ++added;
    }
    ERR_clear_error(); // the loop ends on "no start line"
    return added > 0 ? std::string() : std::string("the client CA file holds no certificate");
}

std::string read_whole_file(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return "cannot read " + path + ": " + std::strerror(errno);
    out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad())
        return "cannot read " + path;
    if (out.size() > max_pem_bytes)
        return path + " is larger than 1 MiB";
    if (out.empty())
        return path + " is empty";
    return {};
}

std::string sha256_of(const std::array<const std::string*, 3>& parts) {
    std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
        return {};
    for (const std::string* part : parts) {
        // Length-prefixed, so that moving bytes from one file to the next changes the digest.
        const std::uint64_t length = part->size();
        EVP_DigestUpdate(ctx.get(), &length, sizeof length);
        EVP_DigestUpdate(ctx.get(), part->data(), part->size());
    }
    if (EVP_DigestFinal_ex(ctx.get(), digest.data(), &size) != 1)
        return {};
    return std::string(digest.begin(), digest.begin() + size);
}

// "subject, expires <date>" of the serving certificate, for the log.
std::string describe_certificate(SSL_CTX* ctx) {
    X509* cert = SSL_CTX_get0_certificate(ctx);
    if (!cert)
        return "no certificate";
    std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
    if (!bio)
        return {};
    X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    BIO_puts(bio.get(), ", expires ");
    ASN1_TIME_print(bio.get(), X509_get0_notAfter(cert));
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

void wipe(std::string& secret) noexcept {
    if (!secret.empty())
        OPENSSL_cleanse(secret.data(), secret.size());
    secret.clear();
}

} // namespace

TlsContextResult build_server_context(const TlsMaterial& material) {
    TlsContextResult result;
    try {
        ERR_clear_error();
        auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
        SSL_CTX* native = context->native_handle();
        context->set_options(ssl::context::default_workarounds | ssl::context::single_dh_use |
                             ssl::context::no_compression);
        if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1)
            return {nullptr, openssl_error("cannot require TLS 1.2")};
        SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                        SSL_OP_NO_COMPRESSION);
        if (SSL_CTX_set_cipher_list(native, tls12_ciphers) != 1)
            return {nullptr, openssl_error("cannot set the TLS 1.2 ciphers")};
        boost::system::error_code ec;
        context->use_certificate_chain(boost::asio::buffer(material.certificate_chain_pem), ec);
        if (ec)
            return {nullptr, "the certificate cannot be used: " + ec.message()};
        context->use_private_key(boost::asio::buffer(material.private_key_pem), ssl::context::pem,
                                 ec);
        if (ec)
            return {nullptr, "the private key cannot be used: " + ec.message()};
        if (SSL_CTX_check_private_key(native) != 1)
            return {nullptr, openssl_error("the private key does not match the certificate")};
        if (!material.client_ca_pem.empty()) {
            context->add_certificate_authority(boost::asio::buffer(material.client_ca_pem), ec);
            if (ec)
                return {nullptr, "the client CA cannot be used: " + ec.message()};
            if (auto error = add_client_ca_names(native, material.client_ca_pem); !error.empty())
                return {nullptr, error};
            context->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
            // Resumed sessions of verified clients need an id context, or OpenSSL fails them.
            static constexpr unsigned char session_id[] = "mtls-guard";
            SSL_CTX_set_session_id_context(native, session_id, sizeof session_id - 1);
        }
        result.context = std::move(context);
    } catch (const std::exception& e) {
        result.error = std::string("cannot create a TLS context: ") + e.what();
        result.context.reset();
    }
    return result;
}

TlsContextStore::TlsContextStore(TlsFiles files, observability::Metrics& metrics)
    : files_(std::move(files)), metrics_(metrics) {}

TlsContextStore::Read TlsContextStore::read_files() const {
    Read read;
    // A swap may land between two reads: read the certificate again after the key, and start
    // over when it changed, so that a pair is never half old and half new.
    for (int attempt = 0; attempt < 5; ++attempt) {
        read = Read{};
        std::string again;
        read.error = read_whole_file(files_.certificate, read.material.certificate_chain_pem);
        if (read.error.empty())
            read.error = read_whole_file(files_.private_key, read.material.private_key_pem);
        if (read.error.empty() && !files_.client_ca.empty())
            read.error = read_whole_file(files_.client_ca, read.material.client_ca_pem);
        if (read.error.empty())
            read.error = read_whole_file(files_.certificate, again);
        if (!read.error.empty() || again == read.material.certificate_chain_pem)
            break;
        wipe(read.material.private_key_pem);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (read.error.empty())
        read.digest = sha256_of({&read.material.certificate_chain_pem,
                                 &read.material.private_key_pem, &read.material.client_ca_pem});
    return read;
}

std::string TlsContextStore::load_initial() {
    Read read = read_files();
    if (!read.error.empty())
        return read.error;
    auto built = build_server_context(read.material);
    wipe(read.material.private_key_pem);
    if (!built.context)
        return built.error;
    observability::log_event(observability::component_logger("tls"), spdlog::level::info,
                             "serving certificate loaded",
                             {{"certificate", files_.certificate},
                              {"clientCA", files_.client_ca},
                              {"subject", describe_certificate(built.context->native_handle())}});
    current_.store(std::move(built.context));
    loaded_digest_ = std::move(read.digest);
    return {};
}

bool TlsContextStore::poll() {
    auto& log = observability::component_logger("tls");
    Read read = read_files();
    if (!read.error.empty()) {
        // A missing or unreadable file mid-rotation: keep serving the old pair, say so once.
        const std::string key = "error:" + read.error;
        if (refused_digest_ != key) {
            refused_digest_ = key;
            metrics_.record_tls_reload(false);
            observability::log_event(log, spdlog::level::err,
                                     "certificate reload failed; keeping the current one",
                                     {{"error", read.error}});
        }
        return false;
    }
    if (read.digest == loaded_digest_ || read.digest == refused_digest_) {
        if (read.digest == loaded_digest_)
            refused_digest_.clear(); // back to the pair in use: a later breakage is news again
        wipe(read.material.private_key_pem);
        return false;
    }
    auto built = build_server_context(read.material);
    wipe(read.material.private_key_pem);
    // A writer that replaces the two files one after the other (not through a symlink swap) can
    // be caught half way: look again shortly before calling the pair broken.
    for (int attempt = 0; !built.context && attempt < 2; ++attempt) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        Read again = read_files();
        if (!again.error.empty() || again.digest == read.digest) {
            wipe(again.material.private_key_pem);
            break;
        }
        read = std::move(again);
        built = build_server_context(read.material);
        wipe(read.material.private_key_pem);
    }
    if (!built.context) {
        refused_digest_ = read.digest;
        metrics_.record_tls_reload(false);
        observability::log_event(log, spdlog::level::err,
                                 "new certificate refused; keeping the current one",
                                 {{"certificate", files_.certificate}, {"error", built.error}});
        return false;
    }
    const std::string subject = describe_certificate(built.context->native_handle());
    current_.store(std::move(built.context));
    loaded_digest_ = std::move(read.digest);
    refused_digest_.clear();
    metrics_.record_tls_reload(true);
    observability::log_event(log, spdlog::level::info, "serving certificate reloaded",
                             {{"certificate", files_.certificate}, {"subject", subject}});
    return true;
}

} // namespace mtlsguard::https
