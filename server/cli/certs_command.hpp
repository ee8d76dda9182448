// `mtls-guard certs`: flags and entry point of the built-in certificate manager.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace mtlsguard::cli {

struct CertsOptions {
    std::string namespace_name; // --namespace: of the Service and the Secret
    std::string service;        // --service
    std::string secret;         // --secret
    std::string webhook;        // --webhook: the ValidatingWebhookConfiguration
    std::string validity = "8760h";
    std::string renew_before; // empty: a third of --validity
    std::string ca_validity = "87600h";
    std::string ca_renew_before; // empty: a third of --ca-validity
    std::string cluster_domain = "cluster.local";
    std::string kubeconfig; // empty: the in-cluster service account
    std::string context;
    std::string request_timeout = "10s";
};

// Registers the subcommand and its flags on `app`.
CLI::App* add_certs_command(CLI::App& app, CertsOptions& options);

// 0 done (whether or not anything changed), 1 the API server refused or could not be reached,
// 2 bad flags or an unusable cluster configuration. Messages go to stderr; keys never do.
int run_certs(const CertsOptions& options);

// "8760h", "30m", "1h30m", "90s", "30d" (days, for convenience); nullopt for anything else,
// zero or negative.
std::optional<std::chrono::seconds> parse_duration(std::string_view text);

} // namespace mtlsguard::cli
