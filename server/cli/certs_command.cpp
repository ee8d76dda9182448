// `mtls-guard certs`: parses durations and names, picks the cluster configuration, and runs the
// certificate manager once (for an initContainer, a Job or a CronJob).
#include "server/cli/certs_command.hpp"

#include "server/certs/webhook_certificates.hpp"
#include "server/kube/config.hpp"

#include <charconv>
#include <iostream>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace mtlsguard::cli {
namespace {

int usage_error(const std::string& message) {
    std::cerr << "mtls-guard certs: " << message << "\n";
    return 2;
}

std::shared_ptr<spdlog::logger> certs_logger() {
    auto logger = std::make_shared<spdlog::logger>(
        "certs", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l certs: %v", spdlog::pattern_time_type::utc);
    logger->set_level(spdlog::level::info);
    return logger;
}

} // namespace

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
    if (text.empty() || text.size() > 32)
        return std::nullopt;
    std::int64_t total = 0;
    while (!text.empty()) {
        std::int64_t value = 0;
        const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (error != std::errc() || end == text.data() + text.size() || value < 0 ||
            value > 1'000'000'000)
            return std::nullopt;
        std::int64_t unit = 0;
        switch (*end) {
        case 'd':
            unit = 86400;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'm':
            unit = 60;
            break;
        case 's':
            unit = 1;
            break;
        default:
            return std::nullopt;
        }
        total += value * unit;
        text.remove_prefix(static_cast<std::size_t>(end - text.data()) + 1);
    }
    if (total <= 0 || total > std::int64_t{100} * 366 * 86400)
        return std::nullopt;
    return std::chrono::seconds(total);
}

CLI::App* add_certs_command(CLI::App& app, CertsOptions& options) {
    auto* command = app.add_subcommand(
        "certs", "create or renew the webhook's CA and serving certificate Secret and patch the "
                 "webhook configuration's caBundle (once; idempotent)");
    command
        ->add_option("--namespace", options.namespace_name, "namespace of the Service and Secret")
        ->required();
    command->add_option("--service", options.service, "the webhook's Service")->required();
    command->add_option("--secret", options.secret, "Secret (type kubernetes.io/tls) to manage")
        ->required();
    command
        ->add_option("--webhook", options.webhook,
                     "ValidatingWebhookConfiguration whose entries calling --service get caBundle")
        ->required();
    command->add_option("--validity", options.validity, "serving certificate lifetime (h, m, s, d)")
        ->capture_default_str();
    command->add_option("--renew-before", options.renew_before,
                        "renew the serving certificate when less than this is left (default: a "
                        "third of --validity)");
    command->add_option("--ca-validity", options.ca_validity, "CA lifetime")->capture_default_str();
    command->add_option("--ca-renew-before", options.ca_renew_before,
                        "renew the CA when less than this is left (default: a third of "
                        "--ca-validity); the old CA stays in caBundle until it expires");
    command->add_option("--cluster-domain", options.cluster_domain, "cluster DNS suffix")
        ->capture_default_str();
    command->add_option("--kubeconfig", options.kubeconfig,
                        "kubeconfig file (default: the pod's service account)");
    command->add_option("--context", options.context, "kubeconfig context (default: current)");
    command->add_option("--request-timeout", options.request_timeout, "per API request")
        ->capture_default_str();
    return command;
}

int run_certs(const CertsOptions& options) {
    if (!certs::is_dns_label(options.namespace_name))
        return usage_error("--namespace \"" + options.namespace_name +
                           "\" is not a namespace name (lower-case DNS label)");
    if (!certs::is_dns_label(options.service))
        return usage_error("--service \"" + options.service +
                           "\" is not a Service name (lower-case DNS label)");
    if (!certs::is_dns_subdomain(options.secret))
        return usage_error("--secret \"" + options.secret + "\" is not a Secret name");
    if (!certs::is_dns_subdomain(options.webhook))
        return usage_error("--webhook \"" + options.webhook +
                           "\" is not a ValidatingWebhookConfiguration name");
    if (!certs::is_dns_subdomain(options.cluster_domain))
        return usage_error("--cluster-domain \"" + options.cluster_domain +
                           "\" is not a DNS domain");

    certs::WebhookCertificatesOptions run;
    run.policy.service = options.service;
    run.policy.namespace_name = options.namespace_name;
    run.policy.cluster_domain = options.cluster_domain;
    run.secret_name = options.secret;
    run.webhook_name = options.webhook;
    struct Duration {
        const char* flag;
        const std::string& text;
        std::chrono::seconds& out;
    };
    for (const Duration& d :
         {Duration{"--validity", options.validity, run.policy.validity},
          Duration{"--ca-validity", options.ca_validity, run.policy.ca_validity}}) {
        auto parsed = parse_duration(d.text);
        if (!parsed)
            return usage_error(std::string(d.flag) + " \"" + d.text +
                               "\" is not a duration such as 8760h, 30m or 90d");
        d.out = *parsed;
    }
    run.policy.renew_before = run.policy.validity / 3;
    run.policy.ca_renew_before = run.policy.ca_validity / 3;
    for (const Duration& d :
         {Duration{"--renew-before", options.renew_before, run.policy.renew_before},
          Duration{"--ca-renew-before", options.ca_renew_before, run.policy.ca_renew_before}}) {
        if (d.text.empty())
            continue;
        auto parsed = parse_duration(d.text);
        if (!parsed)
            return usage_error(std::string(d.flag) + " \"" + d.text +
                               "\" is not a duration such as 720h or 30d");
        d.out = *parsed;
    }
    auto timeout = parse_duration(options.request_timeout);
    if (!timeout || *timeout > std::chrono::minutes(10))
        return usage_error("--request-timeout \"" + options.request_timeout +
                           "\" is not a duration between 1s and 10m");
    run.request_timeout = *timeout;
    if (const std::string problem = certs::check_policy(run.policy); !problem.empty())
        return usage_error(problem);

    if (!options.context.empty() && options.kubeconfig.empty())
        return usage_error("--context needs --kubeconfig");
    kube::ClusterConfig cluster;
    try {
        cluster = options.kubeconfig.empty()
                      ? kube::load_in_cluster()
                      : kube::load_kubeconfig(options.kubeconfig, options.context);
    } catch (const kube::ConfigError& e) {
        return usage_error(e.what());
    }

    auto logger = certs_logger();
    const auto outcome = certs::ensure_webhook_certificates(cluster, run, *logger);
    if (outcome.exit_code != 0)
        std::cerr << "mtls-guard certs: " << outcome.error << "\n";
    return outcome.exit_code;
}

} // namespace mtlsguard::cli
