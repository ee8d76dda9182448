// A throwaway CA and serving certificate for local and demo use of serve (no --tls-cert given).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace mtlsguard::https {

struct GeneratedCertificate {
    std::filesystem::path ca_certificate; // ca.crt: what a client such as curl --cacert trusts
    std::filesystem::path certificate;    // tls.crt
    std::filesystem::path private_key;    // tls.key, mode 0600
};

// Creates an EC P-256 CA and a serving certificate it signs, valid for a year, with subject
// alternative names `dns_names` and `ip_addresses`, and writes ca.crt, tls.crt and tls.key into
// `dir` (created when missing). The leaf allows serverAuth and clientAuth, so the same pair can act
// as a client certificate against --client-ca ca.crt. The CA key is never written: nothing else
// can be signed with it. Throws std::runtime_error.
GeneratedCertificate write_self_signed_certificate(const std::filesystem::path& dir,
                                                   const std::vector<std::string>& dns_names,
                                                   const std::vector<std::string>& ip_addresses);

// The names a generated certificate carries by default: localhost and this host's name.
std::vector<std::string> default_certificate_dns_names();

} // namespace mtlsguard::https
