// Certificates for loopback TLS tests: a CA, server certificates and client certificates.
#include "tests/server/kube/support/test_pki.hpp"

#include "server/tls/self_signed.hpp"

#include <chrono>

namespace mtlsguard::kube::testing {
namespace {

// Valid from five minutes ago for a day: long enough for any test, short enough to be harmless.
https::CertificateSpec spec_for(const std::string& common_name) {
    const auto now = std::chrono::system_clock::now();
    https::CertificateSpec spec;
    spec.common_name = common_name;
    spec.not_before = now - std::chrono::minutes(5);
    spec.not_after = now + std::chrono::hours(24);
    return spec;
}

KeyPair to_key_pair(const https::PemKeyPair& pair) {
    return {pair.certificate_pem, pair.key_pem};
}

https::PemKeyPair to_pem_pair(const KeyPair& pair) {
    return {pair.certificate_pem, pair.key_pem};
}

} // namespace

TestCa make_test_ca(const std::string& common_name) {
    https::CertificateSpec spec = spec_for(common_name);
    spec.is_ca = true;
    TestCa ca;
    ca.ca = to_key_pair(https::issue_certificate(spec));
    return ca;
}

KeyPair TestCa::issue_server(const std::vector<std::string>& ip_addresses,
                             const std::vector<std::string>& dns_names) const {
    https::CertificateSpec spec = spec_for("kube-apiserver");
    spec.ip_addresses = ip_addresses;
    spec.dns_names = dns_names;
    spec.usage = https::ExtendedKeyUsage::ServerAuth;
    return to_key_pair(https::issue_certificate(spec, to_pem_pair(ca)));
}

KeyPair TestCa::issue_client(const std::string& common_name) const {
    https::CertificateSpec spec = spec_for(common_name);
    spec.usage = https::ExtendedKeyUsage::ClientAuth;
    return to_key_pair(https::issue_certificate(spec, to_pem_pair(ca)));
}

} // namespace mtlsguard::kube::testing
