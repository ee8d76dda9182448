// What the webhook's certificate Secret should hold: keep it, renew the serving certificate, or
// renew the CA (keeping the previous one trusted).
#include "server/certs/certificate_plan.hpp"

#include <algorithm>
#include <ctime>
#include <set>

namespace mtlsguard::certs {
namespace {

// Clocks of the API servers and of this pod may differ a little.
constexpr std::chrono::minutes kBackdate{5};
// Earlier CAs kept in the bundle besides the current one (more only pile up after repeated
// losses of the CA key).
constexpr std::size_t kMaxPreviousCas = 2;

std::string field(const std::map<std::string, std::string>& data, const char* key) {
    auto it = data.find(key);
    return it == data.end() ? std::string() : it->second;
}

struct CurrentCa {
    std::string certificate_pem;
    std::string key_pem;
    https::CertificateInfo info;
};

// The current CA of the Secret when it can still sign: first certificate of ca.crt, a CA, with
// its key in ca.key. Otherwise why not.
std::optional<CurrentCa> usable_ca(const std::map<std::string, std::string>& data,
                                   std::string& why_not) {
    const auto bundle = https::split_pem_certificates(field(data, kCaCrt));
    if (bundle.empty()) {
        why_not = "no CA certificate";
        return std::nullopt;
    }
    auto info = https::inspect_certificate(bundle.front());
    if (!info || !info->is_ca) {
        why_not = "ca.crt does not start with a readable CA certificate";
        return std::nullopt;
    }
    const std::string key = field(data, kCaKey);
    if (key.empty()) {
        why_not = "no CA key";
        return std::nullopt;
    }
    if (!https::key_matches_certificate(bundle.front(), key)) {
        why_not = "the CA key does not match the CA certificate";
        return std::nullopt;
    }
    return CurrentCa{bundle.front(), key, *info};
}

// Why the serving certificate must be replaced; empty when it can stay.
std::string serving_problem(const std::map<std::string, std::string>& data, const CurrentCa& ca,
                            const CertificatePolicy& policy, SystemTime now) {
    const std::string cert = field(data, kTlsCrt);
    const std::string key = field(data, kTlsKey);
    if (cert.empty() || key.empty())
        return "no serving certificate";
    const auto info = https::inspect_certificate(cert);
    if (!info)
        return "the serving certificate cannot be read";
    if (!https::key_matches_certificate(cert, key))
        return "the serving key does not match the serving certificate";
    if (!https::is_signed_by(cert, ca.certificate_pem))
        return "the serving certificate is not signed by the current CA";
    const auto expected = serving_dns_names(policy);
    if (std::set<std::string>(info->dns_names.begin(), info->dns_names.end()) !=
        std::set<std::string>(expected.begin(), expected.end()))
        return "the serving certificate names other hosts";
    if (!info->server_auth)
        return "the serving certificate does not allow serverAuth";
    if (info->not_before > now + kBackdate)
        return "the serving certificate is not valid yet";
    if (info->not_after - now <= policy.renew_before)
        return "the serving certificate is due for renewal (valid until " +
               format_time(info->not_after) + ")";
    return {};
}

https::PemKeyPair new_ca(const CertificatePolicy& policy, SystemTime now) {
    https::CertificateSpec spec;
    spec.common_name = "mtls-guard CA " + policy.service + "." + policy.namespace_name;
    if (spec.common_name.size() > 64)
        spec.common_name = "mtls-guard CA";
    spec.not_before = now - kBackdate;
    spec.not_after = now + policy.ca_validity;
    spec.is_ca = true;
    return https::issue_certificate(spec);
}

https::PemKeyPair new_serving_certificate(const CertificatePolicy& policy, const CurrentCa& ca,
                                          SystemTime now) {
    https::CertificateSpec spec;
    spec.dns_names = serving_dns_names(policy);
    spec.common_name = spec.dns_names[2].size() <= 64 ? spec.dns_names[2] : "mtls-guard";
    spec.not_before = now - kBackdate;
    // check_policy keeps the validity within the CA's remaining life; this only guards a CA whose
    // end is nearer than the policy says (a CA made elsewhere).
    spec.not_after = std::min<SystemTime>(now + policy.validity, ca.info.not_after);
    spec.usage = https::ExtendedKeyUsage::ServerAuth;
    return https::issue_certificate(spec, https::PemKeyPair{ca.certificate_pem, ca.key_pem});
}

} // namespace

std::string check_policy(const CertificatePolicy& policy) {
    using std::chrono::seconds;
    if (policy.validity < seconds(3600))
        return "--validity must be at least 1h";
    if (policy.renew_before <= seconds(0) || policy.renew_before >= policy.validity)
        return "--renew-before must be positive and shorter than --validity (otherwise every run "
               "would renew)";
    if (policy.ca_renew_before <= seconds(0) || policy.ca_renew_before >= policy.ca_validity)
        return "--ca-renew-before must be positive and shorter than --ca-validity";
    if (policy.validity > policy.ca_renew_before)
        return "--validity must not be longer than --ca-renew-before: a serving certificate must "
               "end before its CA is due for renewal";
    return {};
}

std::vector<std::string> serving_dns_names(const CertificatePolicy& policy) {
    const std::string svc = policy.service;
    const std::string with_ns = svc + "." + policy.namespace_name;
    return {svc, with_ns, with_ns + ".svc", with_ns + ".svc." + policy.cluster_domain};
}

std::string format_time(SystemTime time) {
    const std::time_t t = std::chrono::system_clock::to_time_t(time);
    std::tm parts{};
    ::gmtime_r(&t, &parts);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
    return text;
}

CertificatePlan plan_certificates(const std::optional<std::map<std::string, std::string>>& current,
                                  const CertificatePolicy& policy, SystemTime now) {
    CertificatePlan plan;
    const std::map<std::string, std::string> data =
        current.value_or(std::map<std::string, std::string>{});
    if (!current)
        plan.reasons.push_back("the Secret does not exist");

    std::string why_not;
    std::optional<CurrentCa> ca = usable_ca(data, why_not);
    if (ca && ca->info.not_after - now <= policy.ca_renew_before) {
        why_not = "the CA is due for renewal (valid until " + format_time(ca->info.not_after) + ")";
        ca.reset();
    }

    // Earlier CAs that still vouch for certificates pods may be serving.
    std::vector<std::string> previous;
    const auto bundle = https::split_pem_certificates(field(data, kCaCrt));
    for (std::size_t i = 0; i < bundle.size(); ++i) {
        if (ca && i == 0)
            continue;
        const auto info = https::inspect_certificate(bundle[i]);
        if (info && info->is_ca && info->not_after > now &&
            std::find(previous.begin(), previous.end(), bundle[i]) == previous.end())
            previous.push_back(bundle[i]);
    }
    if (previous.size() > kMaxPreviousCas)
        previous.resize(kMaxPreviousCas);

    if (!ca) {
        if (current)
            plan.reasons.push_back(why_not);
        const https::PemKeyPair made = new_ca(policy, now);
        auto info = https::inspect_certificate(made.certificate_pem);
        if (!info)
            throw std::runtime_error("a new CA certificate cannot be read back");
        ca = CurrentCa{made.certificate_pem, made.key_pem, *info};
        plan.new_ca = true;
    }

    std::string problem =
        plan.new_ca ? std::string("new CA") : serving_problem(data, *ca, policy, now);
    std::string cert = field(data, kTlsCrt);
    std::string key = field(data, kTlsKey);
    if (!problem.empty()) {
        if (!plan.new_ca)
            plan.reasons.push_back(problem);
        const https::PemKeyPair made = new_serving_certificate(policy, *ca, now);
        cert = made.certificate_pem;
        key = made.key_pem;
        plan.new_serving_certificate = true;
    }

    std::string ca_bundle = ca->certificate_pem;
    for (const auto& pem : previous)
        ca_bundle += pem;
    if (!plan.new_ca && ca_bundle != field(data, kCaCrt))
        plan.reasons.push_back("expired or duplicate CAs leave the bundle");

    plan.data = data;
    plan.data[kTlsCrt] = cert;
    plan.data[kTlsKey] = key;
    plan.data[kCaCrt] = ca_bundle;
    plan.data[kCaKey] = ca->key_pem;
    plan.changed = !current || plan.data != data;

    const auto serving = https::inspect_certificate(cert);
    plan.ca_not_after = ca->info.not_after;
    plan.ca_renew_at = ca->info.not_after - policy.ca_renew_before;
    if (serving) {
        plan.serving_not_after = serving->not_after;
        plan.serving_renew_at = serving->not_after - policy.renew_before;
    }
    return plan;
}

} // namespace mtlsguard::certs
