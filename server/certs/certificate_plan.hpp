// What the webhook's certificate Secret should hold: keep it, renew the serving certificate, or
// renew the CA (keeping the previous one trusted). No I/O; the clock is a parameter.
#pragma once

#include "server/tls/self_signed.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mtlsguard::certs {

using SystemTime = https::SystemTime;

// Keys of the Secret (type kubernetes.io/tls). ca.crt is the caBundle: the current CA first, then
// earlier CAs that are still valid, so that pods still serving a certificate of the previous CA
// keep working while the kubelet swaps the files. ca.key is what lets a later run renew the
// serving certificate under the same CA; the Deployment mounts only the first three keys.
inline constexpr const char* kTlsCrt = "tls.crt";
inline constexpr const char* kTlsKey = "tls.key";
inline constexpr const char* kCaCrt = "ca.crt";
inline constexpr const char* kCaKey = "ca.key";

struct CertificatePolicy {
    std::string service;        // the webhook's Service
    std::string namespace_name; // ... and its namespace
    std::string cluster_domain = "cluster.local";
    std::chrono::seconds validity{std::chrono::hours(24 * 365)};         // serving certificate
    std::chrono::seconds renew_before{std::chrono::hours(24 * 365) / 3}; // serving certificate
    std::chrono::seconds ca_validity{std::chrono::hours(24 * 365 * 10)}; // CA
    std::chrono::seconds ca_renew_before{std::chrono::hours(24 * 365 * 10) / 3};
};

// A usage error in the policy ("--renew-before must be shorter than --validity"), empty if none.
std::string check_policy(const CertificatePolicy& policy);

// svc, svc.ns, svc.ns.svc, svc.ns.svc.<cluster domain>: the names the API server and in-cluster
// clients use for the Service.
std::vector<std::string> serving_dns_names(const CertificatePolicy& policy);

struct CertificatePlan {
    bool changed = false; // the Secret must be written
    bool new_ca = false;
    bool new_serving_certificate = false;
    std::map<std::string, std::string> data; // the four keys above, decoded; all of them
    std::vector<std::string> reasons;        // why, one short phrase each (never key material)
    SystemTime ca_not_after{};
    SystemTime serving_not_after{};
    SystemTime serving_renew_at{}; // when a run will next renew the serving certificate
    SystemTime ca_renew_at{};
};

// Decides from the Secret's current data (decoded; nullopt when the Secret does not exist) what
// it must hold at `now`. Keeps everything that is valid; a new serving certificate when it is
// missing, unreadable, not from the current CA, for other names, without serverAuth, or due
// (less than renew_before left); a new CA (and serving certificate) when the CA or its key is
// missing, unreadable or due. Throws std::runtime_error only when OpenSSL cannot make a key.
CertificatePlan plan_certificates(const std::optional<std::map<std::string, std::string>>& current,
                                  const CertificatePolicy& policy, SystemTime now);

// "2027-03-01T12:00:00Z"
std::string format_time(SystemTime time);

} // namespace mtlsguard::certs
