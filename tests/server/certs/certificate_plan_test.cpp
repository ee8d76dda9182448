// The renewal decision of `mtls-guard certs`: what the Secret must hold, at chosen points in time.
#include "server/certs/certificate_plan.hpp"

#include <catch2/catch.hpp>
#include <functional>
#include <memory>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <set>

namespace {

using namespace mtlsguard;
using certs::CertificatePolicy;
using certs::kCaCrt;
using certs::kCaKey;
using certs::kTlsCrt;
using certs::kTlsKey;
using Data = std::map<std::string, std::string>;
using std::chrono::hours;

CertificatePolicy policy() {
    CertificatePolicy p;
    p.service = "mtls-guard";
    p.namespace_name = "guard-system";
    p.validity = hours(24 * 365);
    p.renew_before = hours(24 * 30);
    p.ca_validity = hours(24 * 365 * 10);
    p.ca_renew_before = hours(24 * 365 * 3);
    return p;
}

const certs::SystemTime t0 = std::chrono::system_clock::now();

struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

X509Ptr read_x509(const std::string& pem) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    X509Ptr cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
    BIO_free(bio);
    return cert;
}

// OpenSSL's own verification: chain to one of the CAs, purpose TLS server, and the host name.
bool verifies_as_server(const std::string& leaf_pem, const std::string& ca_bundle_pem,
                        const std::string& host,
                        certs::SystemTime at = std::chrono::system_clock::now()) {
    X509Ptr leaf = read_x509(leaf_pem);
    if (!leaf)
        return false;
    X509_STORE* store = X509_STORE_new();
    for (const auto& pem : https::split_pem_certificates(ca_bundle_pem)) {
        X509Ptr ca = read_x509(pem);
        X509_STORE_add_cert(store, ca.get());
    }
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, leaf.get(), nullptr);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    X509_VERIFY_PARAM_set_time(param, std::chrono::system_clock::to_time_t(at));
    const bool ok = X509_verify_cert(ctx) == 1;
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

const std::vector<std::string> kNames = {"mtls-guard", "mtls-guard.guard-system",
                                         "mtls-guard.guard-system.svc",
                                         "mtls-guard.guard-system.svc.cluster.local"};

} // namespace

TEST_CASE("a missing Secret gets a new CA and a serving certificate for the Service's four names",
          "[certs]") {
    const auto plan = certs::plan_certificates(std::nullopt, policy(), t0);
    CHECK(plan.changed);
    CHECK(plan.new_ca);
    CHECK(plan.new_serving_certificate);
    REQUIRE(plan.data.size() == 4);
    for (const char* key : {kTlsCrt, kTlsKey, kCaCrt, kCaKey})
        CHECK(!plan.data.at(key).empty());
    CHECK(plan.data.at(kTlsKey).find("BEGIN PRIVATE KEY") != std::string::npos);
    CHECK(https::split_pem_certificates(plan.data.at(kCaCrt)).size() == 1);

    const auto leaf = https::inspect_certificate(plan.data.at(kTlsCrt));
    REQUIRE(leaf);
    CHECK(std::set<std::string>(leaf->dns_names.begin(), leaf->dns_names.end()) ==
          std::set<std::string>(kNames.begin(), kNames.end()));
    CHECK(leaf->server_auth);
    CHECK_FALSE(leaf->is_ca);
    CHECK(leaf->not_after - t0 > hours(24 * 364));
    CHECK(leaf->not_after - t0 <= hours(24 * 365) + hours(1));
    const auto ca = https::inspect_certificate(plan.data.at(kCaCrt));
    REQUIRE(ca);
    CHECK(ca->is_ca);
    CHECK(ca->not_after - t0 > hours(24 * 365 * 10 - 24));

    CHECK(https::key_matches_certificate(plan.data.at(kTlsCrt), plan.data.at(kTlsKey)));
    CHECK(https::key_matches_certificate(plan.data.at(kCaCrt), plan.data.at(kCaKey)));
    for (const auto& host : kNames) {
        INFO(host);
        CHECK(verifies_as_server(plan.data.at(kTlsCrt), plan.data.at(kCaCrt), host));
    }
    CHECK_FALSE(
        verifies_as_server(plan.data.at(kTlsCrt), plan.data.at(kCaCrt), "mtls-guard.other.svc"));
    // The CA is not a serving certificate, and another CA does not vouch for the leaf.
    CHECK_FALSE(verifies_as_server(
        plan.data.at(kTlsCrt), certs::plan_certificates(std::nullopt, policy(), t0).data.at(kCaCrt),
        kNames[2]));
}

TEST_CASE("a valid Secret is kept exactly as it is", "[certs]") {
    const auto first = certs::plan_certificates(std::nullopt, policy(), t0);
    for (const auto later : {hours(0), hours(24), hours(24 * 300)}) {
        INFO("hours later: " << later.count());
        const auto again = certs::plan_certificates(first.data, policy(), t0 + later);
        CHECK_FALSE(again.changed);
        CHECK_FALSE(again.new_ca);
        CHECK_FALSE(again.new_serving_certificate);
        CHECK(again.data == first.data);
        CHECK(again.reasons.empty());
    }
}

TEST_CASE("a serving certificate inside the renewal window is renewed under the same CA",
          "[certs]") {
    const auto first = certs::plan_certificates(std::nullopt, policy(), t0);
    const auto when = t0 + hours(24 * 365) - hours(24 * 30) + hours(1);
    const auto renewed = certs::plan_certificates(first.data, policy(), when);
    CHECK(renewed.changed);
    CHECK_FALSE(renewed.new_ca);
    CHECK(renewed.new_serving_certificate);
    CHECK(renewed.data.at(kCaCrt) == first.data.at(kCaCrt));
    CHECK(renewed.data.at(kCaKey) == first.data.at(kCaKey));
    CHECK(renewed.data.at(kTlsCrt) != first.data.at(kTlsCrt));
    CHECK(renewed.data.at(kTlsKey) != first.data.at(kTlsKey));
    CHECK(https::is_signed_by(renewed.data.at(kTlsCrt), first.data.at(kCaCrt)));
    const auto leaf = https::inspect_certificate(renewed.data.at(kTlsCrt));
    REQUIRE(leaf);
    CHECK(leaf->not_after - when > hours(24 * 364));
    // ... and the renewed Secret is stable again.
    CHECK_FALSE(certs::plan_certificates(renewed.data, policy(), when + hours(1)).changed);
}

TEST_CASE("a CA inside its renewal window is replaced and the old CA stays trusted until it "
          "expires",
          "[certs]") {
    const auto first = certs::plan_certificates(std::nullopt, policy(), t0);
    const auto when = t0 + hours(24 * 365 * 7) + hours(24);
    const auto rotated = certs::plan_certificates(first.data, policy(), when);
    CHECK(rotated.changed);
    CHECK(rotated.new_ca);
    CHECK(rotated.new_serving_certificate);
    const auto bundle = https::split_pem_certificates(rotated.data.at(kCaCrt));
    REQUIRE(bundle.size() == 2);
    CHECK(bundle[1] == first.data.at(kCaCrt));
    CHECK(bundle[0] != first.data.at(kCaCrt));
    CHECK(rotated.data.at(kCaKey) != first.data.at(kCaKey));
    CHECK(https::is_signed_by(rotated.data.at(kTlsCrt), bundle[0]));
    // Both the old and the new serving certificate verify against the bundle during the overlap.
    CHECK(verifies_as_server(rotated.data.at(kTlsCrt), rotated.data.at(kCaCrt), kNames[2],
                             when + hours(1)));

    // Stable during the overlap.
    CHECK_FALSE(certs::plan_certificates(rotated.data, policy(), when + hours(24)).changed);

    // Once the old CA has expired it leaves the bundle; the new CA stays.
    const auto after = certs::plan_certificates(rotated.data, policy(), t0 + hours(24 * 3660));
    CHECK(after.changed);
    CHECK_FALSE(after.new_ca);
    CHECK(https::split_pem_certificates(after.data.at(kCaCrt)) ==
          std::vector<std::string>{bundle[0]});
}

TEST_CASE("a Secret that does not fit is repaired, keeping what still holds", "[certs]") {
    const auto good = certs::plan_certificates(std::nullopt, policy(), t0);
    const auto other = certs::plan_certificates(std::nullopt, policy(), t0);

    struct Case {
        std::string name;
        std::function<void(Data&, CertificatePolicy&)> damage;
        bool new_ca;
    };
    const std::vector<Case> cases = {
        {"serving certificate removed", [](Data& d, CertificatePolicy&) { d.erase(kTlsCrt); },
         false},
        {"serving key of another certificate",
         [&](Data& d, CertificatePolicy&) { d[kTlsKey] = other.data.at(kTlsKey); }, false},
        {"serving certificate of another CA",
         [&](Data& d, CertificatePolicy&) {
             d[kTlsCrt] = other.data.at(kTlsCrt);
             d[kTlsKey] = other.data.at(kTlsKey);
         },
         false},
        {"serving certificate is garbage",
         [](Data& d, CertificatePolicy&) { d[kTlsCrt] = "-----BEGIN CERTIFICATE-----\nxx\n"; },
         false},
        {"the Service was renamed", [](Data&, CertificatePolicy& p) { p.service = "guard"; },
         false},
        {"another cluster domain",
         [](Data&, CertificatePolicy& p) { p.cluster_domain = "corp.example"; }, false},
        {"CA key removed", [](Data& d, CertificatePolicy&) { d.erase(kCaKey); }, true},
        {"CA key of another CA",
         [&](Data& d, CertificatePolicy&) { d[kCaKey] = other.data.at(kCaKey); }, true},
        {"ca.crt is not a certificate", [](Data& d, CertificatePolicy&) { d[kCaCrt] = "junk"; },
         true},
        {"ca.crt holds the serving certificate",
         [&](Data& d, CertificatePolicy&) { d[kCaCrt] = good.data.at(kTlsCrt); }, true},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        Data data = good.data;
        data["extra"] = "kept";
        CertificatePolicy p = policy();
        c.damage(data, p);
        const auto plan = certs::plan_certificates(data, p, t0 + hours(1));
        CHECK(plan.changed);
        CHECK(plan.new_serving_certificate);
        CHECK(plan.new_ca == c.new_ca);
        CHECK(!plan.reasons.empty());
        CHECK(plan.data.at("extra") == "kept");
        if (!c.new_ca)
            CHECK(plan.data.at(kCaKey) == good.data.at(kCaKey));
        const auto names = certs::serving_dns_names(p);
        CHECK(verifies_as_server(plan.data.at(kTlsCrt), plan.data.at(kCaCrt), names[3],
                                 t0 + hours(2)));
        CHECK_FALSE(certs::plan_certificates(plan.data, p, t0 + hours(2)).changed);
    }
}

TEST_CASE("a serving certificate without serverAuth is replaced", "[certs]") {
    auto data = certs::plan_certificates(std::nullopt, policy(), t0).data;
    https::CertificateSpec spec;
    spec.common_name = "client";
    spec.dns_names = kNames;
    spec.not_before = t0 - hours(1);
    spec.not_after = t0 + hours(24 * 365);
    spec.usage = https::ExtendedKeyUsage::ClientAuth;
    const auto client =
        https::issue_certificate(spec, https::PemKeyPair{data[kCaCrt], data[kCaKey]});
    data[kTlsCrt] = client.certificate_pem;
    data[kTlsKey] = client.key_pem;
    const auto plan = certs::plan_certificates(data, policy(), t0);
    CHECK(plan.new_serving_certificate);
    CHECK_FALSE(plan.new_ca);
    CHECK(https::inspect_certificate(plan.data.at(kTlsCrt))->server_auth);
}

TEST_CASE("policies that would renew on every run, or outlive their CA, are refused", "[certs]") {
    CHECK(certs::check_policy(policy()).empty());
    auto p = policy();
    p.renew_before = p.validity;
    CHECK(certs::check_policy(p).find("--renew-before") != std::string::npos);
    p = policy();
    p.ca_renew_before = p.ca_validity + hours(1);
    CHECK(certs::check_policy(p).find("--ca-renew-before") != std::string::npos);
    p = policy();
    p.validity = p.ca_renew_before + hours(1);
    p.renew_before = hours(1);
    CHECK(certs::check_policy(p).find("--validity") != std::string::npos);
    p = policy();
    p.validity = std::chrono::minutes(10);
    CHECK(!certs::check_policy(p).empty());
}

TEST_CASE("the generator refuses names that are not plain DNS names", "[certs]") {
    https::CertificateSpec spec;
    spec.common_name = "x";
    spec.not_before = t0;
    spec.not_after = t0 + hours(1);
    spec.dns_names = {"a,DNS:evil"};
    CHECK_THROWS(https::issue_certificate(spec));
    spec.dns_names = {"ok"};
    spec.not_after = t0;
    CHECK_THROWS(https::issue_certificate(spec));
    spec.not_after = t0 + hours(1);
    CHECK_THROWS(https::issue_certificate(spec, https::PemKeyPair{"junk", "junk"}));
    CHECK_NOTHROW(https::issue_certificate(spec));
}
