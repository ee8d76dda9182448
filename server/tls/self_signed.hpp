// Certificates made and checked with OpenSSL: serve's throwaway demo pair, the CA and serving
// certificate of `mtls-guard certs`, and the test PKI.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
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

// A certificate and its private key (PKCS#8), both PEM.
struct PemKeyPair {
    std::string certificate_pem;
    std::string key_pem;
};

enum class ExtendedKeyUsage : std::uint8_t { ServerAuth, ClientAuth, ServerAndClientAuth };

using SystemTime = std::chrono::system_clock::time_point;

// What to put in a new certificate. A CA gets basicConstraints CA:TRUE (pathlen 0) and
// keyCertSign/cRLSign; a leaf gets CA:FALSE, digitalSignature and `usage`.
struct CertificateSpec {
    std::string common_name;
    std::vector<std::string> dns_names;    // subject alternative names (letters, digits, - and .)
    std::vector<std::string> ip_addresses; // IPv4 or IPv6 literals
    SystemTime not_before;
    SystemTime not_after;
    bool is_ca = false;
    ExtendedKeyUsage usage = ExtendedKeyUsage::ServerAuth; // leaf only
};

// A fresh EC P-256 key and a certificate for it with a random serial, signed by `issuer` (its
// certificate and key), or self-signed when there is none. Throws std::runtime_error for names
// that are not plain DNS names or IP addresses, for an issuer that cannot be read, and when
// OpenSSL fails.
PemKeyPair issue_certificate(const CertificateSpec& spec,
                             const std::optional<PemKeyPair>& issuer = std::nullopt);

// What a certificate says, as far as a renewal decision needs it.
struct CertificateInfo {
    std::string subject; // one line, RFC 2253
    SystemTime not_before;
    SystemTime not_after;
    std::vector<std::string> dns_names;
    bool is_ca = false;
    bool server_auth = false; // extendedKeyUsage is present and lists serverAuth
};

// The PEM blocks of the certificates in `bundle`, in order, each ending with a newline. Text
// around them is ignored; an unterminated block yields nothing for it.
std::vector<std::string> split_pem_certificates(std::string_view bundle);

// Reads the first certificate of `pem`; nullopt when there is none or it does not parse.
std::optional<CertificateInfo> inspect_certificate(std::string_view pem);

// True when `key_pem` is the private key of the certificate in `certificate_pem`.
bool key_matches_certificate(std::string_view certificate_pem, std::string_view key_pem);

// True when the certificate's issuer is the CA's subject and the CA's key verifies its signature.
bool is_signed_by(std::string_view certificate_pem, std::string_view ca_certificate_pem);

} // namespace mtlsguard::https
