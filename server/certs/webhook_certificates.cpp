// `mtls-guard certs` against the API server: read, decide, write the Secret, patch caBundle.
#include "server/certs/webhook_certificates.hpp"

#include "server/kube/http_client.hpp"
#include "server/kube/watch_event.hpp"

#include <boost/asio/io_context.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <vector>

namespace mtlsguard::certs {
namespace {

using kube::HttpMethod;
using kube::HttpRequest;
using kube::HttpResult;
using nlohmann::json;

// A failure that ends the run with exit code 1 (the API said no, or could not be reached).
struct ApiFailure {
    std::string message;
};

// One synchronous request at a time over the shared client: the command does one thing after
// another, and retries what may pass on its own (no answer, 429, 5xx, a rotated token).
class SyncApi {
  public:
    SyncApi(const kube::ClusterConfig& cluster, const WebhookCertificatesOptions& options,
            spdlog::logger& log)
        : client_(io_.get_executor(), cluster), options_(options), log_(log) {}

    HttpResult call(HttpRequest request) {
        request.timeout = options_.request_timeout;
        request.body_limit = std::size_t{8} << 20;
        auto delay = options_.retry_delay;
        bool token_retried = false;
        for (int attempt = 1;; ++attempt) {
            std::optional<HttpResult> answer;
            client_.send(request, [&answer](HttpResult r) { answer = std::move(r); });
            io_.restart();
            io_.run();
            if (!answer) {
                answer.emplace();
                answer->error = boost::asio::error::operation_aborted;
                answer->error_detail = "the request ended without an answer";
            }
            if (answer->status == 401 && !token_retried) {
                client_.token_rejected(); // a projected token may have rotated
                token_retried = true;
                continue;
            }
            const bool transient = answer->error || answer->status == 429 || answer->status >= 500;
            if (!transient || attempt >= options_.transient_attempts)
                return *answer;
            auto wait = answer->retry_after
                            ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::min<std::chrono::seconds>(*answer->retry_after,
                                                                 std::chrono::seconds(10)))
                            : delay;
            log_.warn("{} {}: {}; retrying in {} ms", method_name(request.method), request.target,
                      answer->describe(), wait.count());
            std::this_thread::sleep_for(wait);
            delay *= 2;
        }
    }

    static const char* method_name(HttpMethod method) {
        switch (method) {
        case HttpMethod::Get:
            return "GET";
        case HttpMethod::Post:
            return "POST";
        case HttpMethod::Put:
            return "PUT";
        case HttpMethod::Patch:
            return "PATCH";
        }
        return "?";
    }

  private:
    boost::asio::io_context io_;
    kube::ApiClient client_;
    const WebhookCertificatesOptions& options_;
    spdlog::logger& log_;
};

json parse_body(const HttpResult& result, const std::string& what) {
    std::string error;
    auto parsed = kube::parse_json_limited(result.body, error);
    if (!parsed || !parsed->is_object())
        throw ApiFailure{what + ": the API server's answer is not a JSON object" +
                         (error.empty() ? "" : " (" + error + ")")};
    return std::move(*parsed);
}

std::string rbac_hint(unsigned status) {
    return status == 403 ? " (RBAC: see the Role and ClusterRole named <release>-certs)" : "";
}

// The webhook configuration as far as we touch it.
struct WebhookConfig {
    struct Entry {
        std::size_t index = 0;
        std::string name;
        std::string ca_bundle; // base64, as stored
    };
    std::vector<Entry> ours; // entries whose clientConfig.service is our Service
    std::size_t total = 0;
};

// The member `key` of `object` when both are objects; an empty object otherwise. The answers
// come from the network: no shape is assumed.
const json& member_object(const json& object, const char* key) {
    static const json empty = json::object();
    if (!object.is_object())
        return empty;
    auto it = object.find(key);
    return it != object.end() && it->is_object() ? *it : empty;
}

// The member `key` when it is a string; empty otherwise.
std::string member_string(const json& object, const char* key) {
    if (!object.is_object())
        return {};
    auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

WebhookConfig read_webhook_config(const json& object, const WebhookCertificatesOptions& options) {
    WebhookConfig config;
    auto hooks = object.find("webhooks");
    if (hooks == object.end() || !hooks->is_array())
        return config;
    config.total = hooks->size();
    for (std::size_t i = 0; i < hooks->size(); ++i) {
        const json& hook = (*hooks)[i];
        const json& client = member_object(hook, "clientConfig");
        const json& service = member_object(client, "service");
        if (member_string(service, "namespace") != options.policy.namespace_name ||
            member_string(service, "name") != options.policy.service)
            continue;
        WebhookConfig::Entry entry;
        entry.index = i;
        entry.name = member_string(hook, "name");
        entry.ca_bundle = member_string(client, "caBundle");
        config.ours.push_back(std::move(entry));
    }
    return config;
}

struct SecretState {
    bool exists = false;
    json object;
    std::string resource_version;
    std::map<std::string, std::string> data; // decoded
};

SecretState read_secret(const json& object, const std::string& where) {
    SecretState state;
    state.exists = true;
    state.object = object;
    state.resource_version = member_string(member_object(object, "metadata"), "resourceVersion");
    std::string type = member_string(object, "type");
    if (type.empty())
        type = "Opaque";
    if (type != "kubernetes.io/tls")
        throw ApiFailure{where + " has type " + type +
                         ", not kubernetes.io/tls; the type of a Secret cannot change: delete it "
                         "or choose another --secret"};
    const json& annotations = member_object(member_object(object, "metadata"), "annotations");
    if (annotations.contains("cert-manager.io/certificate-name"))
        throw ApiFailure{where +
                         " is managed by cert-manager (annotation "
                         "cert-manager.io/certificate-name); use cert-manager or `mtls-guard "
                         "certs`, not both"};
    for (const auto& [key, value] : member_object(object, "data").items()) {
        if (!value.is_string())
            continue;
        // Unreadable values count as missing: they are replaced.
        if (auto decoded = kube::decode_base64(value.get<std::string>()))
            state.data[key] = std::move(*decoded);
    }
    return state;
}

class Run {
  public:
    Run(const kube::ClusterConfig& cluster, const WebhookCertificatesOptions& options,
        spdlog::logger& log)
        : options_(options), log_(log), api_(cluster, options, log) {
        const std::string& ns = options.policy.namespace_name;
        secret_path_ = "/api/v1/namespaces/" + ns + "/secrets/" + options.secret_name;
        secrets_path_ = "/api/v1/namespaces/" + ns + "/secrets";
        webhook_path_ = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/" +
                        options.webhook_name;
        secret_where_ = "Secret " + ns + "/" + options.secret_name;
        webhook_where_ = "ValidatingWebhookConfiguration " + options.webhook_name;
    }

    WebhookCertificatesOutcome go() {
        for (int round = 1; round <= options_.conflict_attempts; ++round) {
            if (attempt())
                return outcome_;
            ++outcome_.conflicts;
            log_.info("another writer changed {} or {} meanwhile; reading again (round {} of {})",
                      secret_where_, webhook_where_, round + 1, options_.conflict_attempts);
        }
        throw ApiFailure{"gave up after " + std::to_string(options_.conflict_attempts) +
                         " rounds of conflicting writes to " + secret_where_ + " or " +
                         webhook_where_};
    }

  private:
    // One round; false when a write lost a race (409) and everything must be read again.
    bool attempt() {
        WebhookConfig webhook = get_webhook();
        SecretState secret = get_secret();
        const SystemTime now = options_.clock();
        CertificatePlan plan = plan_certificates(
            secret.exists ? std::optional(secret.data) : std::nullopt, options_.policy, now);
        const std::string bundle = encode_base64(plan.data.at(kCaCrt));

        bool patched = false;
        if (plan.changed && plan.new_ca) {
            // The API server must trust the new CA before any pod can serve its certificate.
            auto after = patch_ca_bundle(webhook, bundle);
            if (!after)
                return false;
            webhook = *after;
            patched = true;
        }
        std::string written_version = secret.resource_version;
        if (plan.changed) {
            for (const auto& reason : plan.reasons)
                log_.info("{}: {}", secret_where_, reason);
            auto version = write_secret(secret, plan);
            if (!version)
                return false;
            written_version = *version;
        }
        if (needs_patch(webhook, bundle)) {
            auto after = patch_ca_bundle(webhook, bundle);
            if (!after)
                return false;
            patched = true;
        }
        // A run that read an older Secret may have patched after us; whoever patched last makes
        // sure the Secret it patched for is still the current one.
        if (patched && get_secret_version() != written_version)
            return false;

        outcome_.plan = plan;
        outcome_.new_ca = outcome_.new_ca || plan.new_ca;
        outcome_.new_serving_certificate =
            outcome_.new_serving_certificate || plan.new_serving_certificate;
        log_.info("{}: serving certificate valid until {} (renewal due at {}), CA valid until {} "
                  "(renewal due at {}); {} webhook entr{} of {} trust it{}",
                  secret_where_, format_time(plan.serving_not_after),
                  format_time(plan.serving_renew_at), format_time(plan.ca_not_after),
                  format_time(plan.ca_renew_at), webhook.ours.size(),
                  webhook.ours.size() == 1 ? "y" : "ies", webhook_where_,
                  (plan.changed || patched) ? "" : "; nothing to do");
        return true;
    }

    WebhookConfig get_webhook() {
        HttpRequest request;
        request.target = webhook_path_;
        const HttpResult result = api_.call(request);
        if (result.status == 404)
            throw ApiFailure{webhook_where_ +
                             " does not exist: install the webhook configuration first (it is "
                             "part of the manifests and the chart), then run certs again"};
        if (!result.ok())
            throw ApiFailure{"reading " + webhook_where_ + ": " + result.describe() +
                             rbac_hint(result.status)};
        WebhookConfig config = read_webhook_config(parse_body(result, webhook_where_), options_);
        if (config.ours.empty())
            throw ApiFailure{webhook_where_ + " has " + std::to_string(config.total) +
                             " webhook entr" + (config.total == 1 ? "y" : "ies") +
                             " and none calls Service " + options_.policy.namespace_name + "/" +
                             options_.policy.service + " (check --namespace and --service)"};
        return config;
    }

    SecretState get_secret() {
        HttpRequest request;
        request.target = secret_path_;
        const HttpResult result = api_.call(request);
        if (result.status == 404)
            return {};
        if (!result.ok())
            throw ApiFailure{"reading " + secret_where_ + ": " + result.describe() +
                             rbac_hint(result.status)};
        return read_secret(parse_body(result, secret_where_), secret_where_);
    }

    std::string get_secret_version() {
        const SecretState state = get_secret();
        return state.exists ? state.resource_version : std::string();
    }

    // The new resourceVersion, or nullopt after a 409.
    std::optional<std::string> write_secret(const SecretState& secret,
                                            const CertificatePlan& plan) {
        json object = secret.exists ? secret.object : json::object();
        object["apiVersion"] = "v1";
        object["kind"] = "Secret";
        json& metadata = object["metadata"];
        if (!secret.exists || !metadata.is_object()) {
            metadata = {{"name", options_.secret_name},
                        {"namespace", options_.policy.namespace_name},
                        {"labels",
                         {{"app.kubernetes.io/name", "mtls-guard"},
                          {"app.kubernetes.io/component", "certs"},
                          {"app.kubernetes.io/managed-by", "mtls-guard-certs"}}}};
        }
        metadata.erase("managedFields");
        object["type"] = "kubernetes.io/tls";
        json data = json::object();
        for (const auto& [key, value] : plan.data)
            data[key] = encode_base64(value);
        object["data"] = std::move(data);
        object.erase("stringData");

        HttpRequest request;
        request.method = secret.exists ? HttpMethod::Put : HttpMethod::Post;
        request.target = secret.exists ? secret_path_ : secrets_path_;
        request.body = object.dump();
        const HttpResult result = api_.call(request);
        if (result.status == 409)
            return std::nullopt; // created or changed by someone else since we read it
        if (!result.success())
            throw ApiFailure{std::string(secret.exists ? "updating " : "creating ") +
                             secret_where_ + ": " + result.describe() + rbac_hint(result.status)};
        (secret.exists ? outcome_.secret_updated : outcome_.secret_created) = true;
        log_.info("{} {} ({}{})", secret_where_, secret.exists ? "updated" : "created",
                  plan.new_ca ? "new CA and serving certificate" : "new serving certificate",
                  plan.new_ca ? "" : ", same CA");
        return member_string(member_object(parse_body(result, secret_where_), "metadata"),
                             "resourceVersion");
    }

    static bool needs_patch(const WebhookConfig& webhook, const std::string& bundle) {
        for (const auto& entry : webhook.ours)
            if (entry.ca_bundle != bundle)
                return true;
        return false;
    }

    // Sets caBundle on our entries that differ; the configuration after the patch, or nullopt
    // when the entries moved meanwhile (the test of each entry's name failed).
    std::optional<WebhookConfig> patch_ca_bundle(const WebhookConfig& webhook,
                                                 const std::string& bundle) {
        json ops = json::array();
        int entries = 0;
        for (const auto& entry : webhook.ours) {
            if (entry.ca_bundle == bundle)
                continue;
            const std::string at = "/webhooks/" + std::to_string(entry.index);
            // Guards against the list changing between our read and this patch.
            ops.push_back({{"op", "test"}, {"path", at + "/name"}, {"value", entry.name}});
            ops.push_back(
                {{"op", "add"}, {"path", at + "/clientConfig/caBundle"}, {"value", bundle}});
            ++entries;
        }
        if (entries == 0)
            return webhook;
        HttpRequest request;
        request.method = HttpMethod::Patch;
        request.target = webhook_path_;
        request.content_type = "application/json-patch+json";
        request.body = ops.dump();
        const HttpResult result = api_.call(request);
        // 422: a failed `test` (the entries moved); 409: a conflict the server did not retry.
        if (result.status == 409 || result.status == 422)
            return std::nullopt;
        if (result.status == 404)
            throw ApiFailure{webhook_where_ + " was deleted while certs ran"};
        if (!result.success())
            throw ApiFailure{"patching the caBundle of " + webhook_where_ + ": " +
                             result.describe() + rbac_hint(result.status)};
        outcome_.webhooks_patched += entries;
        log_.info("{}: caBundle set on {} webhook entr{}", webhook_where_, entries,
                  entries == 1 ? "y" : "ies");
        WebhookConfig after = read_webhook_config(parse_body(result, webhook_where_), options_);
        if (after.ours.empty())
            throw ApiFailure{webhook_where_ + " no longer calls Service " +
                             options_.policy.namespace_name + "/" + options_.policy.service};
        return after;
    }

    const WebhookCertificatesOptions& options_;
    spdlog::logger& log_;
    SyncApi api_;
    std::string secret_path_, secrets_path_, webhook_path_, secret_where_, webhook_where_;
    WebhookCertificatesOutcome outcome_;
};

bool dns_label_chars(std::string_view part) {
    if (part.empty() || part.size() > 63 || part.front() == '-' || part.back() == '-')
        return false;
    for (const char c : part)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    return true;
}

} // namespace

bool is_dns_label(std::string_view name) {
    return dns_label_chars(name);
}

bool is_dns_subdomain(std::string_view name) {
    if (name.empty() || name.size() > 253)
        return false;
    std::size_t start = 0;
    while (true) {
        const std::size_t dot = name.find('.', start);
        if (!dns_label_chars(name.substr(start, dot - start)))
            return false;
        if (dot == std::string_view::npos)
            return true;
        start = dot + 1;
    }
}

std::string encode_base64(std::string_view bytes) {
    static constexpr char table[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    auto byte = [&](std::size_t at) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at]));
    };
    for (; i + 2 < bytes.size(); i += 3) {
        const std::uint32_t n = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
        out += table[(n >> 18) & 63];
        out += table[(n >> 12) & 63];
        out += table[(n >> 6) & 63];
        out += table[n & 63];
    }
    if (i < bytes.size()) {
        std::uint32_t n = byte(i) << 16;
        if (i + 1 < bytes.size())
            n |= byte(i + 1) << 8;
        out += table[(n >> 18) & 63];
        out += table[(n >> 12) & 63];
        out += i + 1 < bytes.size() ? table[(n >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

WebhookCertificatesOutcome ensure_webhook_certificates(const kube::ClusterConfig& cluster,
                                                       const WebhookCertificatesOptions& options,
                                                       spdlog::logger& log) {
    WebhookCertificatesOutcome failed;
    try {
        if (const std::string problem = check_policy(options.policy); !problem.empty()) {
            failed.exit_code = 2;
            failed.error = problem;
            return failed;
        }
        Run run(cluster, options, log);
        return run.go();
    } catch (const ApiFailure& e) {
        failed.exit_code = 1;
        failed.error = e.message;
    } catch (const kube::ConfigError& e) {
        failed.exit_code = 2;
        failed.error = e.what();
    } catch (const std::exception& e) {
        failed.exit_code = 1;
        failed.error = e.what();
    }
    return failed;
}

} // namespace mtlsguard::certs
