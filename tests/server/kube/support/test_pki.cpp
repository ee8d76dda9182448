// Certificates for loopback TLS tests: a CA, server certificates and client certificates.
#include "tests/server/kube/support/test_pki.hpp"

#include <array>
#include <functional>
#include <memory>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdexcept>

namespace mtlsguard::kube::testing {
namespace {

struct KeyDeleter {
    void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};
struct CertDeleter {
    void operator()(X509* cert) const noexcept { X509_free(cert); }
};
struct BioDeleter {
    void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};
struct ExtensionDeleter {
    void operator()(X509_EXTENSION* ext) const noexcept { X509_EXTENSION_free(ext); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using Cert = std::unique_ptr<X509, CertDeleter>;
using Bio = std::unique_ptr<BIO, BioDeleter>;

[[noreturn]] void fail(const std::string& what) {
    std::string message = "test PKI: " + what;
    if (const unsigned long code = ERR_get_error(); code != 0) {
        std::array<char, 256> text{};
        ERR_error_string_n(code, text.data(), text.size());
        message += ": ";
        message += text.data();
    }
    ERR_clear_error();
    throw std::runtime_error(message);
}

Key new_key() {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    if (!key)
        fail("key generation");
    return Key(key);
}

std::string to_pem(const std::function<int(BIO*)>& write) {
    Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || write(bio.get()) != 1)
        fail("PEM encoding");
    char* data = nullptr;
    const long size = BIO_ctrl(bio.get(), BIO_CTRL_INFO, 0, &data); // BIO_get_mem_data
    if (size <= 0 || !data)
        fail("PEM encoding");
    return std::string(data, static_cast<std::size_t>(size));
}

Bio memory_bio(const std::string& pem) {
    Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio)
        fail("BIO");
    return bio;
}

Cert read_cert(const std::string& pem) {
    Bio bio = memory_bio(pem);
    Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert)
        fail("reading a certificate");
    return cert;
}

Key read_key(const std::string& pem) {
    Bio bio = memory_bio(pem);
    Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key)
        fail("reading a key");
    return key;
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    std::unique_ptr<X509_EXTENSION, ExtensionDeleter> ext(
        X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
        fail("extension " + value);
}

Cert new_cert(EVP_PKEY* key, const std::string& common_name) {
    Cert cert(X509_new());
    if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1)
        fail("new certificate");
    static long serial = 1000;
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), ++serial);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24L * 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                               0);
    if (X509_set_pubkey(cert.get(), key) != 1)
        fail("public key");
    return cert;
}

KeyPair issue(const KeyPair& ca_pair, const std::string& common_name,
              const std::vector<std::pair<std::string, std::string>>& extensions) {
    Cert ca = read_cert(ca_pair.certificate_pem);
    Key ca_key = read_key(ca_pair.key_pem);
    Key key = new_key();
    Cert cert = new_cert(key.get(), common_name);
    X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get()));
    add_extension(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), ca.get(), NID_key_usage, "critical,digitalSignature");
    add_extension(cert.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
    for (const auto& [name, value] : extensions)
        add_extension(cert.get(), ca.get(), OBJ_txt2nid(name.c_str()), value);
    if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) <= 0)
        fail("signing");
    return {to_pem([&](BIO* b) { return PEM_write_bio_X509(b, cert.get()); }), to_pem([&](BIO* b) {
                return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr,
                                                nullptr);
            })};
}

} // namespace

TestCa make_test_ca(const std::string& common_name) {
    Key key = new_key();
    Cert cert = new_cert(key.get(), common_name);
    X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
    add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
    add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0)
        fail("signing the CA");
    TestCa ca;
    ca.ca.certificate_pem = to_pem([&](BIO* b) { return PEM_write_bio_X509(b, cert.get()); });
    ca.ca.key_pem = to_pem([&](BIO* b) {
        return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    });
    return ca;
}

KeyPair TestCa::issue_server(const std::vector<std::string>& ip_addresses,
                             const std::vector<std::string>& dns_names) const {
    std::string names;
    for (const auto& ip : ip_addresses)
        names += (names.empty() ? "IP:" : ",IP:") + ip;
    for (const auto& dns : dns_names)
        names += (names.empty() ? "DNS:" : ",DNS:") + dns;
    return issue(ca, "kube-apiserver",
                 {{"subjectAltName", names}, {"extendedKeyUsage", "serverAuth"}});
}

KeyPair TestCa::issue_client(const std::string& common_name) const {
    return issue(ca, common_name, {{"extendedKeyUsage", "clientAuth"}});
}

} // namespace mtlsguard::kube::testing
