// Unit tests of the serving TLS context: the TLS policy, refused key pairs, generated certificates,
// and reloads that swap only when the files hold a new, usable pair.
#include "server/observability/metrics.hpp"
#include "server/tls/self_signed.hpp"
#include "server/tls/tls_context.hpp"
#include "tests/support/files.hpp"
#include "tests/support/metrics_text.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <random>
#include <sstream>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace mtlsguard;

namespace {

using mtlsguard::testing::TempDir;

using mtlsguard::testing::slurp;

https::TlsMaterial material_of(const https::GeneratedCertificate& generated) {
    return {slurp(generated.certificate), slurp(generated.private_key), {}};
}

https::GeneratedCertificate generate(const fs::path& dir) {
    return https::write_self_signed_certificate(dir, {"localhost", "webhook.example"},
                                                {"127.0.0.1"});
}

using mtlsguard::testing::sample;

} // namespace

TEST_CASE("A generated certificate names localhost and its IPs, and its CA verifies it") {
    TempDir dir;
    const auto generated = generate(dir.path());
    CHECK(fs::status(generated.private_key).permissions() ==
          (fs::perms::owner_read | fs::perms::owner_write));

    FILE* cert_file = std::fopen(generated.certificate.c_str(), "r");
    REQUIRE(cert_file);
    X509* cert = PEM_read_X509(cert_file, nullptr, nullptr, nullptr);
    std::fclose(cert_file);
    REQUIRE(cert);
    CHECK(X509_check_host(cert, "localhost", 0, 0, nullptr) == 1);
    CHECK(X509_check_host(cert, "webhook.example", 0, 0, nullptr) == 1);
    CHECK(X509_check_host(cert, "other.example", 0, 0, nullptr) != 1);
    CHECK(X509_check_ip_asc(cert, "127.0.0.1", 0) == 1);

    FILE* ca_file = std::fopen(generated.ca_certificate.c_str(), "r");
    REQUIRE(ca_file);
    X509* ca = PEM_read_X509(ca_file, nullptr, nullptr, nullptr);
    std::fclose(ca_file);
    REQUIRE(ca);
    X509_STORE* store = X509_STORE_new();
    X509_STORE_add_cert(store, ca);
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, cert, nullptr);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    CHECK(X509_verify_cert(ctx) == 1);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(ca);
    X509_free(cert);
}

TEST_CASE("Names that could inject OpenSSL configuration are refused") {
    TempDir dir;
    CHECK_THROWS(https::write_self_signed_certificate(dir.path(), {"a,DNS:evil"}, {}));
    CHECK_THROWS(https::write_self_signed_certificate(dir.path(), {"localhost"}, {"1.2.3.4,x"}));
    CHECK_THROWS(https::write_self_signed_certificate(dir.path(), {}, {}));
}

TEST_CASE("The serving context requires TLS 1.2 and refuses renegotiation and compression") {
    TempDir dir;
    const auto built = https::build_server_context(material_of(generate(dir.path())));
    REQUIRE(built.context);
    CHECK(built.error.empty());
    SSL_CTX* native = built.context->native_handle();
    CHECK(SSL_CTX_get_min_proto_version(native) == TLS1_2_VERSION);
    const auto options = SSL_CTX_get_options(native);
    CHECK((options & SSL_OP_NO_RENEGOTIATION) != 0);
    CHECK((options & SSL_OP_NO_COMPRESSION) != 0);
    CHECK((options & SSL_OP_CIPHER_SERVER_PREFERENCE) != 0);
    // Every TLS 1.2 suite on offer is ECDHE with an AEAD cipher.
    SSL* ssl = SSL_new(native);
    REQUIRE(ssl);
    STACK_OF(SSL_CIPHER)* ciphers = SSL_get1_supported_ciphers(ssl);
    REQUIRE(ciphers);
    int tls12 = 0;
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
        const SSL_CIPHER* cipher = sk_SSL_CIPHER_value(ciphers, i);
        const std::string name = SSL_CIPHER_get_name(cipher);
        if (name.rfind("TLS_", 0) == 0)
            continue; // a TLS 1.3 suite: all of them are AEAD with forward secrecy
        ++tls12;
        CAPTURE(name);
        CHECK(name.rfind("ECDHE-", 0) == 0);
        CHECK(
            (name.find("GCM") != std::string::npos || name.find("CHACHA20") != std::string::npos));
        CHECK(SSL_CIPHER_is_aead(cipher) == 1);
    }
    CHECK(tls12 > 0);
    sk_SSL_CIPHER_free(ciphers);
    SSL_free(ssl);
    // No client certificate is asked for without a client CA.
    CHECK(SSL_CTX_get_verify_mode(native) == SSL_VERIFY_NONE);
}

TEST_CASE("A client CA makes a client certificate mandatory") {
    TempDir dir;
    const auto generated = generate(dir.path());
    auto material = material_of(generated);
    material.client_ca_pem = slurp(generated.ca_certificate);
    const auto built = https::build_server_context(material);
    REQUIRE(built.context);
    CHECK(SSL_CTX_get_verify_mode(built.context->native_handle()) ==
          (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT));
    material.client_ca_pem = "not a certificate";
    CHECK_FALSE(https::build_server_context(material).context);
}

TEST_CASE("A key that does not match the certificate, or garbage, is refused with a reason") {
    TempDir one, two;
    const auto a = generate(one.path());
    const auto b = generate(two.path());
    https::TlsMaterial mismatched{slurp(a.certificate), slurp(b.private_key), {}};
    const auto refused = https::build_server_context(mismatched);
    CHECK_FALSE(refused.context);
    CHECK_FALSE(refused.error.empty());

    https::TlsMaterial garbage{
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", slurp(a.private_key), {}};
    CHECK_FALSE(https::build_server_context(garbage).context);
    https::TlsMaterial no_key{slurp(a.certificate), "", {}};
    CHECK_FALSE(https::build_server_context(no_key).context);
}

TEST_CASE("The context store swaps only for a new usable pair and counts each reload") {
    TempDir live, next, other;
    const auto current = generate(live.path());
    observability::Metrics metrics;
    https::TlsContextStore store({current.certificate.string(), current.private_key.string(), {}},
                                 metrics);
    REQUIRE(store.load_initial().empty());
    const auto first = store.current();
    REQUIRE(first);

    // Unchanged files: nothing to do.
    CHECK_FALSE(store.poll());
    CHECK(store.current() == first);

    // A new pair written in place: swapped, counted.
    const auto renewed = generate(next.path());
    fs::copy_file(renewed.private_key, current.private_key, fs::copy_options::overwrite_existing);
    fs::copy_file(renewed.certificate, current.certificate, fs::copy_options::overwrite_existing);
    CHECK(store.poll());
    const auto second = store.current();
    CHECK(second != first);
    CHECK(sample(metrics.render(), R"(mtls_guard_tls_reloads_total{result="success"})") == 1);

    // A broken pair (the key of another certificate): refused once, the old context stays.
    const auto stranger = generate(other.path());
    fs::copy_file(stranger.private_key, current.private_key, fs::copy_options::overwrite_existing);
    CHECK_FALSE(store.poll());
    CHECK_FALSE(store.poll());
    CHECK(store.current() == second);
    CHECK(sample(metrics.render(), R"(mtls_guard_tls_reloads_total{result="failure"})") == 1);

    // Fixed again: swapped.
    fs::copy_file(stranger.certificate, current.certificate, fs::copy_options::overwrite_existing);
    CHECK(store.poll());
    CHECK(store.current() != second);
    CHECK(sample(metrics.render(), R"(mtls_guard_tls_reloads_total{result="success"})") == 2);
}

TEST_CASE("The first load reports a missing file instead of failing hard") {
    TempDir dir;
    observability::Metrics metrics;
    https::TlsContextStore store(
        {(dir.path() / "tls.crt").string(), (dir.path() / "tls.key").string(), {}}, metrics);
    const std::string error = store.load_initial();
    CHECK_THAT(error, Catch::Contains("tls.crt"));
    CHECK_FALSE(store.current());
}
