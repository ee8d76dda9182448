// Certificates for loopback TLS tests: a CA, server certificates and client certificates.
#pragma once

#include <string>
#include <vector>

namespace mtlsguard::kube::testing {

struct KeyPair {
    std::string certificate_pem;
    std::string key_pem;
};

struct TestCa {
    KeyPair ca; // the CA's own certificate and key (tests only: to issue more)

    // A serving certificate with these subject alternative names.
    KeyPair issue_server(const std::vector<std::string>& ip_addresses,
                         const std::vector<std::string>& dns_names) const;
    // A client certificate (clientAuth), as kubeadm issues for users.
    KeyPair issue_client(const std::string& common_name) const;
};

TestCa make_test_ca(const std::string& common_name = "fake kube-apiserver CA");

} // namespace mtlsguard::kube::testing
