// `mtls-guard certs` against the API server: the CA and serving certificate Secret, and the
// caBundle of the webhook configuration entries that call our Service.
#pragma once

#include "server/certs/certificate_plan.hpp"
#include "server/kube/config.hpp"

#include <chrono>
#include <functional>
#include <spdlog/logger.h>
#include <string>

namespace mtlsguard::certs {

struct WebhookCertificatesOptions {
    CertificatePolicy policy; // service, namespace, validities
    std::string secret_name;  // in policy.namespace_name
    std::string webhook_name; // the ValidatingWebhookConfiguration
    std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
    // Rounds of read, decide, write when another writer gets in between (HTTP 409).
    int conflict_attempts = 5;
    // Tries of one request that fails without an answer, with 429 or with 5xx.
    int transient_attempts = 4;
    std::chrono::milliseconds retry_delay{500}; // doubles with every retry; Retry-After wins
    std::function<SystemTime()> clock = [] { return std::chrono::system_clock::now(); };
};

struct WebhookCertificatesOutcome {
    int exit_code = 0; // 0 done (changed or not), 1 the API refused or failed, 2 bad config
    std::string error; // why, when exit_code != 0; one line
    bool secret_created = false;
    bool secret_updated = false;
    bool new_ca = false;
    bool new_serving_certificate = false;
    int webhooks_patched = 0; // webhook entries whose caBundle was set, summed over patches
    int conflicts = 0;        // 409s (or failed patch preconditions) that forced a re-read
    CertificatePlan plan;     // the state left in the Secret
};

// Makes the Secret hold a valid CA and serving certificate (plan_certificates) and every
// webhook entry of `webhook_name` whose clientConfig.service is our Service trust exactly the
// Secret's ca.crt. When the CA changes, the caBundle (old and new CA) is patched before the
// Secret gets the certificate of the new CA. Does nothing when all is in order. Never throws.
WebhookCertificatesOutcome ensure_webhook_certificates(const kube::ClusterConfig& cluster,
                                                       const WebhookCertificatesOptions& options,
                                                       spdlog::logger& log);

// Standard base64 with padding, as Secret data and caBundle are written.
std::string encode_base64(std::string_view bytes);

// A DNS-1123 subdomain (Secret, webhook configuration names) / label (namespace, Service).
bool is_dns_subdomain(std::string_view name);
bool is_dns_label(std::string_view name);

} // namespace mtlsguard::certs
