// A throwaway CA and serving certificate for local and demo use of serve (no --tls-cert given).
#include "server/https/self_signed.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <memory>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace mtlsguard::https {
namespace {

constexpr long validity_seconds = 365L * 24 * 3600;
// Clocks of the client and this machine may differ a little.
constexpr long backdate_seconds = 300;

struct PkeyDeleter {
    void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};
struct PkeyCtxDeleter {
    void operator()(EVP_PKEY_CTX* ctx) const noexcept { EVP_PKEY_CTX_free(ctx); }
};
struct X509Deleter {
    void operator()(X509* cert) const noexcept { X509_free(cert); }
};
struct ExtensionDeleter {
    void operator()(X509_EXTENSION* ext) const noexcept { X509_EXTENSION_free(ext); }
};
struct BignumDeleter {
    void operator()(BIGNUM* bn) const noexcept { BN_free(bn); }
};
struct BioDeleter {
    void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};

using Key = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using Cert = std::unique_ptr<X509, X509Deleter>;

[[noreturn]] void fail(const std::string& what) {
    std::string message = "cannot generate a certificate: " + what;
    if (const unsigned long code = ERR_get_error(); code != 0) {
        std::array<char, 256> text{};
        ERR_error_string_n(code, text.data(), text.size());
        message += ": ";
        message += text.data();
    }
    ERR_clear_error();
    throw std::runtime_error(message);
}

Key generate_p256_key() {
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(
        EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256") != 1 ||
        EVP_PKEY_generate(ctx.get(), &raw) != 1)
        fail("EC P-256 key generation failed");
    return Key(raw);
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    std::unique_ptr<X509_EXTENSION, ExtensionDeleter> ext(
        X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
        fail("cannot add extension " + value);
}

void set_common_name(X509_NAME* name, const std::string& common_name) {
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                   -1, 0) != 1)
        fail("cannot set the common name");
}

// A certificate with a random 127-bit serial, backdated a little, valid for a year, signed later.
Cert new_certificate(EVP_PKEY* public_key, const std::string& common_name) {
    Cert cert(X509_new());
    if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1)
        fail("cannot create a certificate");
    std::unique_ptr<BIGNUM, BignumDeleter> serial(BN_new());
    if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())))
        fail("cannot pick a serial number");
    if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -backdate_seconds) ||
        !X509_gmtime_adj(X509_getm_notAfter(cert.get()), validity_seconds))
        fail("cannot set the validity");
    set_common_name(X509_get_subject_name(cert.get()), common_name);
    if (X509_set_pubkey(cert.get(), public_key) != 1)
        fail("cannot set the public key");
    return cert;
}

std::string pem_of(const std::function<int(BIO*)>& write) {
    std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
    if (!bio || write(bio.get()) != 1)
        fail("cannot encode PEM");
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    if (size <= 0)
        fail("cannot encode PEM");
    return std::string(data, static_cast<std::size_t>(size));
}

// Written next to the target and renamed over it, so a reader polling the directory (serve's
// certificate reload) never sees half a file.
void write_file(const std::filesystem::path& path, const std::string& content, mode_t mode) {
    const std::filesystem::path temporary = path.string() + ".tmp";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        throw std::runtime_error("cannot write " + temporary.string() + ": " +
                                 std::strerror(errno));
    std::size_t written = 0;
    while (written < content.size()) {
        const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            const int error = errno;
            ::close(fd);
            throw std::runtime_error("cannot write " + temporary.string() + ": " +
                                     std::strerror(error));
        }
        written += static_cast<std::size_t>(n);
    }
    if (::fchmod(fd, mode) != 0 || ::close(fd) != 0)
        throw std::runtime_error("cannot write " + temporary.string() + ": " +
                                 std::strerror(errno));
    std::filesystem::rename(temporary, path);
}

bool is_plain_dns_name(const std::string& name) {
    if (name.empty() || name.size() > 253)
        return false;
    for (const char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return false;
    return true;
}

} // namespace

std::vector<std::string> default_certificate_dns_names() {
    std::vector<std::string> names = {"localhost"};
    std::array<char, 256> host{};
    if (::gethostname(host.data(), host.size() - 1) == 0) {
        const std::string name(host.data());
        if (is_plain_dns_name(name) && name != "localhost")
            names.push_back(name);
    }
    return names;
}

GeneratedCertificate write_self_signed_certificate(const std::filesystem::path& dir,
                                                   const std::vector<std::string>& dns_names,
                                                   const std::vector<std::string>& ip_addresses) {
    ERR_clear_error();
    std::string alt_names;
    for (const auto& name : dns_names) {
        // The names go into an OpenSSL configuration string: refuse anything that could add
        // entries of its own.
        if (!is_plain_dns_name(name))
            throw std::runtime_error("cannot put \"" + name + "\" in a certificate");
        alt_names += (alt_names.empty() ? "DNS:" : ",DNS:") + name;
    }
    for (const auto& ip : ip_addresses) {
        if (ip.empty() || ip.find_first_not_of("0123456789abcdefABCDEF.:") != std::string::npos)
            throw std::runtime_error("not an IP address: \"" + ip + "\"");
        alt_names += (alt_names.empty() ? "IP:" : ",IP:") + ip;
    }
    if (alt_names.empty())
        throw std::runtime_error("a certificate needs at least one name");

    const Key ca_key = generate_p256_key();
    const Cert ca = new_certificate(ca_key.get(), "mtls-guard self-signed CA");
    X509_set_issuer_name(ca.get(), X509_get_subject_name(ca.get()));
    add_extension(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_extension(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
    add_extension(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
    if (X509_sign(ca.get(), ca_key.get(), EVP_sha256()) <= 0)
        fail("cannot sign the CA");

    const Key key = generate_p256_key();
    const Cert leaf = new_certificate(key.get(), dns_names.empty() ? "mtls-guard" : dns_names[0]);
    X509_set_issuer_name(leaf.get(), X509_get_subject_name(ca.get()));
    add_extension(leaf.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_extension(leaf.get(), ca.get(), NID_key_usage, "critical,digitalSignature");
    add_extension(leaf.get(), ca.get(), NID_ext_key_usage, "serverAuth,clientAuth");
    add_extension(leaf.get(), ca.get(), NID_subject_key_identifier, "hash");
    add_extension(leaf.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
    add_extension(leaf.get(), ca.get(), NID_subject_alt_name, alt_names);
    if (X509_sign(leaf.get(), ca_key.get(), EVP_sha256()) <= 0)
        fail("cannot sign the serving certificate");

    std::filesystem::create_directories(dir);
    GeneratedCertificate out{dir / "ca.crt", dir / "tls.crt", dir / "tls.key"};
    write_file(out.ca_certificate,
               pem_of([&](BIO* bio) { return PEM_write_bio_X509(bio, ca.get()); }), 0644);
    // The key first, so that a reader that sees the new certificate also finds its key.
    write_file(out.private_key, pem_of([&](BIO* bio) {
                   return PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr,
                                                   nullptr);
               }),
               0600);
    write_file(out.certificate,
               pem_of([&](BIO* bio) { return PEM_write_bio_X509(bio, leaf.get()); }), 0644);
    return out;
}

} // namespace mtlsguard::https
