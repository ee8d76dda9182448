// Certificates made and checked with OpenSSL: the demo pair of serve, the certificates of `certs`,
// test PKI.
#include "server/tls/self_signed.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <functional>
#include <limits>
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

constexpr std::chrono::hours demo_validity{365 * 24};
// Clocks of the client and this machine may differ a little.
constexpr std::chrono::minutes backdate{5};

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
using Bio = std::unique_ptr<BIO, BioDeleter>;

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

void set_time(ASN1_TIME* field, SystemTime when) {
    const std::time_t t = std::chrono::system_clock::to_time_t(when);
    if (!ASN1_TIME_set(field, t))
        fail("cannot set the validity");
}

// A certificate with a random 127-bit serial and the given validity, signed later.
Cert new_certificate(EVP_PKEY* public_key, const std::string& common_name, SystemTime not_before,
                     SystemTime not_after) {
    Cert cert(X509_new());
    if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1)
        fail("cannot create a certificate");
    std::unique_ptr<BIGNUM, BignumDeleter> serial(BN_new());
    if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())))
        fail("cannot pick a serial number");
    set_time(X509_getm_notBefore(cert.get()), not_before);
    set_time(X509_getm_notAfter(cert.get()), not_after);
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

Bio memory_bio(std::string_view pem) {
    if (pem.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
        return nullptr;
    return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// nullptr when `pem` holds no readable certificate (the OpenSSL error queue is cleared).
Cert read_certificate(std::string_view pem) {
    Bio bio = memory_bio(pem);
    Cert cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    ERR_clear_error();
    return cert;
}

// nullptr when `pem` holds no readable, unencrypted private key.
Key read_private_key(std::string_view pem) {
    Bio bio = memory_bio(pem);
    // An empty passphrase callback: an encrypted key is refused instead of prompting on a tty.
    Key key(bio ? PEM_read_bio_PrivateKey(
                      bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr)
                : nullptr);
    ERR_clear_error();
    return key;
}

std::optional<SystemTime> to_system_time(const ASN1_TIME* time) {
    struct tm parts {};
    if (!time || ASN1_TIME_to_tm(time, &parts) != 1)
        return std::nullopt;
    const std::time_t t = ::timegm(&parts);
    return std::chrono::system_clock::from_time_t(t);
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
    if (dns_names.empty() && ip_addresses.empty())
        throw std::runtime_error("a certificate needs at least one name");
    const auto now = std::chrono::system_clock::now();
    CertificateSpec ca_spec;
    ca_spec.common_name = "mtls-guard self-signed CA";
    ca_spec.not_before = now - backdate;
    ca_spec.not_after = now + demo_validity;
    ca_spec.is_ca = true;
    const PemKeyPair ca = issue_certificate(ca_spec);

    CertificateSpec leaf_spec;
    leaf_spec.common_name = dns_names.empty() ? "mtls-guard" : dns_names[0];
    leaf_spec.dns_names = dns_names;
    leaf_spec.ip_addresses = ip_addresses;
    leaf_spec.not_before = ca_spec.not_before;
    leaf_spec.not_after = ca_spec.not_after;
    leaf_spec.usage = ExtendedKeyUsage::ServerAndClientAuth;
    const PemKeyPair leaf = issue_certificate(leaf_spec, ca);

    std::filesystem::create_directories(dir);
    GeneratedCertificate out{dir / "ca.crt", dir / "tls.crt", dir / "tls.key"};
    write_file(out.ca_certificate, ca.certificate_pem, 0644);
    // The key first, so that a reader that sees the new certificate also finds its key.
    write_file(out.private_key, leaf.key_pem, 0600);
    write_file(out.certificate, leaf.certificate_pem, 0644);
    return out;
}

PemKeyPair issue_certificate(const CertificateSpec& spec, const std::optional<PemKeyPair>& issuer) {
    ERR_clear_error();
    std::string alt_names;
    for (const auto& name : spec.dns_names) {
        // The names go into an OpenSSL configuration string: refuse anything that could add
        // entries of its own.
        if (!is_plain_dns_name(name))
            throw std::runtime_error("cannot put \"" + name + "\" in a certificate");
        alt_names += (alt_names.empty() ? "DNS:" : ",DNS:") + name;
    }
    for (const auto& ip : spec.ip_addresses) {
        if (ip.empty() || ip.find_first_not_of("0123456789abcdefABCDEF.:") != std::string::npos)
            throw std::runtime_error("not an IP address: \"" + ip + "\"");
        alt_names += (alt_names.empty() ? "IP:" : ",IP:") + ip;
    }
    if (spec.common_name.empty() || spec.common_name.size() > 64)
        throw std::runtime_error("a certificate needs a common name of 1 to 64 characters");
    if (spec.not_after <= spec.not_before)
        throw std::runtime_error("a certificate must end after it starts");

    Cert issuer_cert;
    Key issuer_key;
    if (issuer) {
        issuer_cert = read_certificate(issuer->certificate_pem);
        issuer_key = read_private_key(issuer->key_pem);
        if (!issuer_cert || !issuer_key)
            fail("the issuing CA's certificate or key cannot be read");
        if (X509_check_private_key(issuer_cert.get(), issuer_key.get()) != 1)
            fail("the issuing CA's key does not match its certificate");
    }

    const Key key = generate_p256_key();
    const Cert cert = new_certificate(key.get(), spec.common_name, spec.not_before, spec.not_after);
    X509* signer = issuer ? issuer_cert.get() : cert.get();
    EVP_PKEY* signing_key = issuer ? issuer_key.get() : key.get();
    if (X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) != 1)
        fail("cannot set the issuer");
    if (spec.is_ca) {
        add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
        add_extension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
        add_extension(cert.get(), signer, NID_key_usage, "critical,digitalSignature");
        add_extension(cert.get(), signer, NID_ext_key_usage,
                      spec.usage == ExtendedKeyUsage::ServerAuth   ? "serverAuth"
                      : spec.usage == ExtendedKeyUsage::ClientAuth ? "clientAuth"
                                                                   : "serverAuth,clientAuth");
    }
    add_extension(cert.get(), signer, NID_subject_key_identifier, "hash");
    if (issuer)
        add_extension(cert.get(), signer, NID_authority_key_identifier, "keyid:always");
    if (!alt_names.empty())
        add_extension(cert.get(), signer, NID_subject_alt_name, alt_names);
    if (X509_sign(cert.get(), signing_key, EVP_sha256()) <= 0)
        fail("cannot sign the certificate");

    PemKeyPair out;
    out.certificate_pem = pem_of([&](BIO* bio) { return PEM_write_bio_X509(bio, cert.get()); });
    out.key_pem = pem_of([&](BIO* bio) {
        return PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    });
    return out;
}

std::vector<std::string> split_pem_certificates(std::string_view bundle) {
    static constexpr std::string_view begin = "-----BEGIN CERTIFICATE-----";
    static constexpr std::string_view end = "-----END CERTIFICATE-----";
    std::vector<std::string> out;
    std::size_t at = 0;
    while ((at = bundle.find(begin, at)) != std::string_view::npos) {
        const std::size_t stop = bundle.find(end, at);
        if (stop == std::string_view::npos)
            break;
        out.emplace_back(bundle.substr(at, stop + end.size() - at));
        out.back() += '\n';
        at = stop + end.size();
    }
    return out;
}

std::optional<CertificateInfo> inspect_certificate(std::string_view pem) {
    const Cert cert = read_certificate(pem);
    if (!cert)
        return std::nullopt;
    CertificateInfo info;
    const auto not_before = to_system_time(X509_get0_notBefore(cert.get()));
    const auto not_after = to_system_time(X509_get0_notAfter(cert.get()));
    if (!not_before || !not_after)
        return std::nullopt;
    info.not_before = *not_before;
    info.not_after = *not_after;
    {
        Bio bio(BIO_new(BIO_s_mem()));
        if (bio && X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert.get()), 0,
                                      XN_FLAG_RFC2253) >= 0) {
            char* data = nullptr;
            const long size = BIO_get_mem_data(bio.get(), &data);
            if (size > 0)
                info.subject.assign(data, static_cast<std::size_t>(size));
        }
    }
    info.is_ca = X509_check_ca(cert.get()) != 0;
    const std::uint32_t extended = X509_get_extended_key_usage(cert.get());
    info.server_auth = (X509_get_extension_flags(cert.get()) & EXFLAG_XKUSAGE) != 0 &&
                       (extended & XKU_SSL_SERVER) != 0;
    auto* names = static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
    if (names) {
        for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
            const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
            if (name->type != GEN_DNS)
                continue;
            const ASN1_IA5STRING* dns = name->d.dNSName;
            info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                                        static_cast<std::size_t>(ASN1_STRING_length(dns)));
        }
        GENERAL_NAMES_free(names);
    }
    ERR_clear_error();
    return info;
}

bool key_matches_certificate(std::string_view certificate_pem, std::string_view key_pem) {
    const Cert cert = read_certificate(certificate_pem);
    const Key key = read_private_key(key_pem);
    const bool match = cert && key && X509_check_private_key(cert.get(), key.get()) == 1;
    ERR_clear_error();
    return match;
}

bool is_signed_by(std::string_view certificate_pem, std::string_view ca_certificate_pem) {
    const Cert cert = read_certificate(certificate_pem);
    const Cert ca = read_certificate(ca_certificate_pem);
    if (!cert || !ca)
        return false;
    EVP_PKEY* ca_key = X509_get0_pubkey(ca.get());
    const bool signed_by =
        ca_key &&
        X509_NAME_cmp(X509_get_issuer_name(cert.get()), X509_get_subject_name(ca.get())) == 0 &&
        X509_verify(cert.get(), ca_key) == 1;
    ERR_clear_error();
    return signed_by;
}

} // namespace mtlsguard::https
