// `mtls-guard certs` against a fake API server over loopback TLS: the Secret, the caBundle,
// renewals, conflicts, failures; and the real binary's exit codes.
#include "server/certs/webhook_certificates.hpp"
#include "server/input/manifest_loader.hpp"
#include "server/kube/config.hpp"
#include "server/tls/tls_context.hpp"
#include "tests/server/kube/support/kube_harness.hpp"
#include "tests/support/run_command.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

namespace {

using namespace mtlsguard;
using kube::testing::FakeCluster;
using kube::testing::TempDir;
using nlohmann::json;
using std::chrono::hours;

const std::string kNs = "mtls-guard";
const std::string kSecret = "mtls-guard-tls";
const std::string kWebhook = "mtls-guard.mtls-guard.io";
const std::string kSecretPath = "/api/v1/namespaces/mtls-guard/secrets/mtls-guard-tls";
const std::string kWebhookPath = "/apis/admissionregistration.k8s.io/v1/"
                                 "validatingwebhookconfigurations/mtls-guard.mtls-guard.io";
const std::string kAdmission = "admissionregistration.k8s.io";
const std::string kVwcs = "validatingwebhookconfigurations";

json webhook_entry(const std::string& name, const std::string& service_ns,
                   const std::string& service) {
    return {
        {"name", name},
        {"admissionReviewVersions", {"v1"}},
        {"sideEffects", "None"},
        {"clientConfig",
         {{"service",
           {{"namespace", service_ns}, {"name", service}, {"path", "/validate"}, {"port", 443}}}}}};
}

// A cluster with Secrets and webhook configurations, and our webhook configuration holding two
// entries that call our Service and one that calls another.
struct CertsCluster {
    explicit CertsCluster(bool with_webhook = true) {
        cluster.server.add_resource({"", {"v1"}, "secrets", "Secret", true});
        cluster.server.add_resource(
            {kAdmission, {"v1"}, kVwcs, "ValidatingWebhookConfiguration", false});
        if (with_webhook)
            cluster.server.create(kAdmission, kVwcs,
                                  {{"apiVersion", "admissionregistration.k8s.io/v1"},
                                   {"kind", "ValidatingWebhookConfiguration"},
                                   {"metadata", {{"name", kWebhook}}},
                                   {"webhooks",
                                    {webhook_entry("mtls-guard.mtls-guard.io", kNs, "mtls-guard"),
                                     webhook_entry("other.example.io", "other", "other-webhook"),
                                     webhook_entry("second.mtls-guard.io", kNs, "mtls-guard")}}});
    }

    certs::WebhookCertificatesOptions options() const {
        certs::WebhookCertificatesOptions o;
        o.policy.service = "mtls-guard";
        o.policy.namespace_name = kNs;
        o.policy.validity = hours(24 * 365);
        o.policy.renew_before = hours(24 * 30);
        o.secret_name = kSecret;
        o.webhook_name = kWebhook;
        o.retry_delay = std::chrono::milliseconds(10);
        o.request_timeout = std::chrono::seconds(5);
        return o;
    }

    certs::WebhookCertificatesOutcome run() const { return run(options()); }
    certs::WebhookCertificatesOutcome run(const certs::WebhookCertificatesOptions& o) const {
        return certs::ensure_webhook_certificates(cluster.config(), o,
                                                  *kube::testing::test_logger());
    }

    std::optional<json> secret() const { return cluster.server.get("", "secrets", kNs, kSecret); }
    json webhook() const { return *cluster.server.get(kAdmission, kVwcs, "", kWebhook); }

    std::map<std::string, std::string> secret_data() const {
        std::map<std::string, std::string> out;
        const json data = secret().value_or(json::object()).value("data", json::object());
        for (const auto& [key, value] : data.items())
            out[key] = *kube::decode_base64(value.get<std::string>());
        return out;
    }

    std::vector<std::string> writes() const {
        std::vector<std::string> out;
        for (const auto& r : cluster.server.requests())
            if (r.method != "GET")
                out.push_back(r.method + " " + r.path);
        return out;
    }

    // Stores a Secret as if an earlier run had written it.
    void put_secret(const std::map<std::string, std::string>& data) {
        json encoded = json::object();
        for (const auto& [key, value] : data)
            encoded[key] = certs::encode_base64(value);
        cluster.server.create("", "secrets",
                              {{"apiVersion", "v1"},
                               {"kind", "Secret"},
                               {"metadata", {{"name", kSecret}, {"namespace", kNs}}},
                               {"type", "kubernetes.io/tls"},
                               {"data", encoded}});
    }

    // Sets every entry's caBundle to `pem`, as a run would have.
    void set_ca_bundle(const std::string& pem) {
        json vwc = webhook();
        for (auto& hook : vwc["webhooks"])
            hook["clientConfig"]["caBundle"] = certs::encode_base64(pem);
        cluster.server.update(kAdmission, kVwcs, vwc);
    }

    FakeCluster cluster;
};

std::string ca_bundle_of(const json& vwc, std::size_t index) {
    return *kube::decode_base64(
        vwc["webhooks"][index]["clientConfig"].value("caBundle", std::string()));
}

// A CA and a serving certificate signed by it, with chosen ends.
struct IssuedPki {
    https::PemKeyPair ca;
    https::PemKeyPair serving;
};

IssuedPki issue_pki(certs::SystemTime ca_end, certs::SystemTime serving_end) {
    const auto now = std::chrono::system_clock::now();
    https::CertificateSpec ca;
    ca.common_name = "earlier CA";
    ca.is_ca = true;
    ca.not_before = now - hours(24 * 30);
    ca.not_after = ca_end;
    IssuedPki out;
    out.ca = https::issue_certificate(ca);
    https::CertificateSpec leaf;
    leaf.common_name = "mtls-guard.mtls-guard.svc";
    leaf.dns_names = {"mtls-guard", "mtls-guard.mtls-guard", "mtls-guard.mtls-guard.svc",
                      "mtls-guard.mtls-guard.svc.cluster.local"};
    leaf.not_before = now - hours(24 * 30);
    leaf.not_after = serving_end;
    out.serving = https::issue_certificate(leaf, out.ca);
    return out;
}

std::map<std::string, std::string> secret_data_of(const IssuedPki& pki) {
    return {{"tls.crt", pki.serving.certificate_pem},
            {"tls.key", pki.serving.key_pem},
            {"ca.crt", pki.ca.certificate_pem},
            {"ca.key", pki.ca.key_pem}};
}

} // namespace

TEST_CASE("the first run creates the Secret and sets caBundle on the entries calling the Service",
          "[certs]") {
    CertsCluster c;
    const auto outcome = c.run();
    INFO(outcome.error);
    REQUIRE(outcome.exit_code == 0);
    CHECK(outcome.secret_created);
    CHECK(outcome.new_ca);
    CHECK(outcome.webhooks_patched == 2);

    const auto secret = c.secret();
    REQUIRE(secret);
    CHECK(secret->at("type") == "kubernetes.io/tls");
    const auto data = c.secret_data();
    CHECK(data.size() == 4);
    for (const char* key : {"tls.crt", "tls.key", "ca.crt", "ca.key"})
        CHECK(data.count(key) == 1);
    CHECK(https::is_signed_by(data.at("tls.crt"), data.at("ca.crt")));
    const auto leaf = https::inspect_certificate(data.at("tls.crt"));
    REQUIRE(leaf);
    CHECK(leaf->server_auth);
    CHECK(std::set<std::string>(leaf->dns_names.begin(), leaf->dns_names.end()) ==
          std::set<std::string>{"mtls-guard", "mtls-guard.mtls-guard", "mtls-guard.mtls-guard.svc",
                                "mtls-guard.mtls-guard.svc.cluster.local"});

    const json vwc = c.webhook();
    CHECK(ca_bundle_of(vwc, 0) == data.at("ca.crt"));
    CHECK(ca_bundle_of(vwc, 2) == data.at("ca.crt"));
    CHECK_FALSE(vwc["webhooks"][1]["clientConfig"].contains("caBundle"));
    // The rest of the configuration is untouched.
    CHECK(vwc["webhooks"][0]["sideEffects"] == "None");
    CHECK(vwc["webhooks"].size() == 3);

    // The trust anchor reaches the API server before the Secret is written.
    const auto writes = c.writes();
    REQUIRE(writes.size() == 2);
    CHECK(writes[0] == "PATCH " + kWebhookPath);
    CHECK(writes[1] == "POST /api/v1/namespaces/mtls-guard/secrets");
}

TEST_CASE("a second run with a valid Secret changes nothing", "[certs]") {
    CertsCluster c;
    REQUIRE(c.run().exit_code == 0);
    const std::string secret_version = c.secret()->at("metadata").at("resourceVersion");
    const std::string webhook_version = c.webhook().at("metadata").at("resourceVersion");
    c.cluster.server.clear_requests();

    const auto outcome = c.run();
    INFO(outcome.error);
    CHECK(outcome.exit_code == 0);
    CHECK_FALSE(outcome.secret_created);
    CHECK_FALSE(outcome.secret_updated);
    CHECK(outcome.webhooks_patched == 0);
    CHECK(c.writes().empty());
    CHECK(c.secret()->at("metadata").at("resourceVersion") == secret_version);
    CHECK(c.webhook().at("metadata").at("resourceVersion") == webhook_version);
}

TEST_CASE("a serving certificate near its end is renewed under the same CA; caBundle stays",
          "[certs]") {
    CertsCluster c;
    const auto now = std::chrono::system_clock::now();
    const IssuedPki pki = issue_pki(now + hours(24 * 3000), now + hours(24));
    c.put_secret(secret_data_of(pki));
    c.set_ca_bundle(pki.ca.certificate_pem);
    c.cluster.server.clear_requests();

    const auto outcome = c.run();
    INFO(outcome.error);
    REQUIRE(outcome.exit_code == 0);
    CHECK(outcome.secret_updated);
    CHECK_FALSE(outcome.new_ca);
    CHECK(outcome.new_serving_certificate);
    CHECK(outcome.webhooks_patched == 0);
    CHECK(c.writes() == std::vector<std::string>{"PUT " + kSecretPath});

    const auto data = c.secret_data();
    CHECK(data.at("ca.crt") == pki.ca.certificate_pem);
    CHECK(data.at("ca.key") == pki.ca.key_pem);
    CHECK(data.at("tls.crt") != pki.serving.certificate_pem);
    CHECK(https::is_signed_by(data.at("tls.crt"), pki.ca.certificate_pem));
    const auto leaf = https::inspect_certificate(data.at("tls.crt"));
    REQUIRE(leaf);
    CHECK(leaf->not_after - now > hours(24 * 364));
    CHECK(ca_bundle_of(c.webhook(), 0) == pki.ca.certificate_pem);
}

TEST_CASE("a CA near its end is renewed and caBundle holds the old and the new CA", "[certs]") {
    CertsCluster c;
    const auto now = std::chrono::system_clock::now();
    const IssuedPki pki = issue_pki(now + hours(24 * 100), now + hours(24 * 90));
    c.put_secret(secret_data_of(pki));
    c.set_ca_bundle(pki.ca.certificate_pem);
    c.cluster.server.clear_requests();

    const auto outcome = c.run();
    INFO(outcome.error);
    REQUIRE(outcome.exit_code == 0);
    CHECK(outcome.new_ca);
    CHECK(outcome.secret_updated);
    CHECK(outcome.webhooks_patched == 2);
    // caBundle first: the old certificate still works, the new one is trusted before it is used.
    CHECK(c.writes() == std::vector<std::string>{"PATCH " + kWebhookPath, "PUT " + kSecretPath});

    const auto data = c.secret_data();
    const auto bundle = https::split_pem_certificates(data.at("ca.crt"));
    REQUIRE(bundle.size() == 2);
    CHECK(bundle[1] == pki.ca.certificate_pem);
    CHECK(https::is_signed_by(data.at("tls.crt"), bundle[0]));
    CHECK(https::is_signed_by(pki.serving.certificate_pem, bundle[1]));
    const json vwc = c.webhook();
    CHECK(ca_bundle_of(vwc, 0) == data.at("ca.crt"));
    CHECK(ca_bundle_of(vwc, 2) == data.at("ca.crt"));

    // And it is stable from there on.
    c.cluster.server.clear_requests();
    CHECK(c.run().exit_code == 0);
    CHECK(c.writes().empty());
}

TEST_CASE("a 409 on the Secret update is answered by reading again and retrying", "[certs]") {
    CertsCluster c;
    const auto now = std::chrono::system_clock::now();
    const IssuedPki pki = issue_pki(now + hours(24 * 3000), now + hours(24));
    c.put_secret(secret_data_of(pki));
    c.set_ca_bundle(pki.ca.certificate_pem);
    c.cluster.server.interfere_before_next_writes(kSecretPath, 2);

    const auto outcome = c.run();
    INFO(outcome.error);
    REQUIRE(outcome.exit_code == 0);
    CHECK(outcome.conflicts == 2);
    CHECK(outcome.secret_updated);
    std::vector<unsigned> put_statuses;
    for (const auto& r : c.cluster.server.requests())
        if (r.method == "PUT")
            put_statuses.push_back(r.status);
    CHECK(put_statuses == std::vector<unsigned>{409, 409, 200});
    // The other writer's change survives: the retry started from what it wrote.
    CHECK(c.secret()->at("metadata").at("annotations").at("fake.test/interfered") == "2");
    CHECK(https::is_signed_by(c.secret_data().at("tls.crt"), pki.ca.certificate_pem));
}

TEST_CASE("conflicts that never end give up with exit code 1", "[certs]") {
    CertsCluster c;
    const auto now = std::chrono::system_clock::now();
    c.put_secret(secret_data_of(issue_pki(now + hours(24 * 3000), now + hours(24))));
    c.cluster.server.interfere_before_next_writes(kSecretPath, 100);
    auto options = c.options();
    options.conflict_attempts = 3;
    const auto outcome = c.run(options);
    CHECK(outcome.exit_code == 1);
    CHECK(outcome.error.find("gave up after 3 rounds") != std::string::npos);
}

TEST_CASE("two runs at once on a new install agree on one CA", "[certs]") {
    CertsCluster c;
    certs::WebhookCertificatesOutcome a, b;
    std::thread first([&] { a = c.run(); });
    std::thread second([&] { b = c.run(); });
    first.join();
    second.join();
    INFO(a.error << " / " << b.error);
    CHECK(a.exit_code == 0);
    CHECK(b.exit_code == 0);
    CHECK((a.secret_created || b.secret_created));
    const auto data = c.secret_data();
    const json vwc = c.webhook();
    CHECK(ca_bundle_of(vwc, 0) == data.at("ca.crt"));
    CHECK(ca_bundle_of(vwc, 2) == data.at("ca.crt"));
    CHECK(https::is_signed_by(data.at("tls.crt"), data.at("ca.crt")));
}

TEST_CASE("a missing webhook configuration fails cleanly and writes nothing", "[certs]") {
    CertsCluster c(false);
    const auto outcome = c.run();
    CHECK(outcome.exit_code == 1);
    CHECK(outcome.error.find("ValidatingWebhookConfiguration mtls-guard.mtls-guard.io does not "
                             "exist") != std::string::npos);
    CHECK(c.writes().empty());
    CHECK_FALSE(c.secret());
}

TEST_CASE("a webhook configuration with no entry for the Service fails and names the Service",
          "[certs]") {
    CertsCluster c;
    auto options = c.options();
    options.policy.service = "renamed";
    const auto outcome = c.run(options);
    CHECK(outcome.exit_code == 1);
    CHECK(outcome.error.find("none calls Service mtls-guard/renamed") != std::string::npos);
    CHECK(c.writes().empty());
}

TEST_CASE("transient API failures are retried; refusals are not", "[certs]") {
    SECTION("503 twice, then the run succeeds") {
        CertsCluster c;
        c.cluster.server.fail_next(kSecretPath, 503, 2);
        const auto outcome = c.run();
        INFO(outcome.error);
        CHECK(outcome.exit_code == 0);
        CHECK(c.secret());
    }
    SECTION("403 ends the run with exit code 1 and an RBAC hint") {
        CertsCluster c;
        c.cluster.server.fail_next(kSecretPath, 403, 1);
        const auto outcome = c.run();
        CHECK(outcome.exit_code == 1);
        CHECK(outcome.error.find("reading Secret mtls-guard/mtls-guard-tls: HTTP 403") !=
              std::string::npos);
        CHECK(outcome.error.find("RBAC") != std::string::npos);
        CHECK(c.writes().empty());
    }
    SECTION("an API server that is gone ends the run with exit code 1") {
        CertsCluster c;
        auto config = c.cluster.config();
        config.server = "https://127.0.0.1:1";
        auto options = c.options();
        options.transient_attempts = 2;
        const auto outcome =
            certs::ensure_webhook_certificates(config, options, *kube::testing::test_logger());
        CHECK(outcome.exit_code == 1);
        CHECK(outcome.error.find("connect") != std::string::npos);
    }
}

TEST_CASE("a Secret that is not ours to manage is refused", "[certs]") {
    struct ForeignSecret {
        std::string whose;
        json secret;
        std::string reason; // a part of the error
    };
    const ForeignSecret rows[] = {
        {"another type",
         {{"metadata", {{"name", kSecret}, {"namespace", kNs}}},
          {"type", "Opaque"},
          {"data", {{"password", "c2VjcmV0"}}}},
         "has type Opaque"},
        {"cert-manager's",
         {{"metadata",
           {{"name", kSecret},
            {"namespace", kNs},
            {"annotations", {{"cert-manager.io/certificate-name", "mtls-guard-serving"}}}}},
          {"type", "kubernetes.io/tls"},
          {"data", json::object()}},
         "cert-manager"},
    };
    for (const auto& row : rows) {
        INFO("the Secret: " << row.whose);
        CertsCluster c;
        c.cluster.server.create("", "secrets", row.secret);
        const auto outcome = c.run();
        CHECK(outcome.exit_code == 1);
        CHECK(outcome.error.find(row.reason) != std::string::npos);
        CHECK(c.writes().empty());
    }
}

TEST_CASE("a caBundle removed by someone else is put back without touching the Secret", "[certs]") {
    CertsCluster c;
    REQUIRE(c.run().exit_code == 0);
    const std::string secret_version = c.secret()->at("metadata").at("resourceVersion");
    json vwc = c.webhook();
    vwc["webhooks"][0]["clientConfig"].erase("caBundle");
    c.cluster.server.update(kAdmission, kVwcs, vwc);
    c.cluster.server.clear_requests();

    const auto outcome = c.run();
    CHECK(outcome.exit_code == 0);
    CHECK(outcome.webhooks_patched == 1);
    CHECK(c.writes() == std::vector<std::string>{"PATCH " + kWebhookPath});
    CHECK(ca_bundle_of(c.webhook(), 0) == c.secret_data().at("ca.crt"));
    CHECK(c.secret()->at("metadata").at("resourceVersion") == secret_version);
}

TEST_CASE("both entries of the shipped configuration get caBundle and keep everything else",
          "[certs]") {
    // deploy/base/webhook.yaml as kubectl would create it: the Istio kinds, and Namespace updates
    // filtered by a matchCondition. Both call our Service, so both need the CA.
    const std::string path = std::string(MTLS_GUARD_SOURCE_DIR) + "/deploy/base/webhook.yaml";
    std::ifstream in(path);
    REQUIRE(in);
    std::ostringstream text;
    text << in.rdbuf();
    const auto docs = input::parse_yaml_documents(text.str(), path);
    REQUIRE(docs.size() == 1);
    const json shipped = docs.front();
    REQUIRE(shipped.at("metadata").at("name") == kWebhook);
    REQUIRE(shipped.at("webhooks").size() == 2);
    REQUIRE(shipped.at("webhooks")[1].contains("matchConditions"));

    CertsCluster c(false);
    c.cluster.server.create(kAdmission, kVwcs, shipped);
    const auto outcome = c.run();
    INFO(outcome.error);
    REQUIRE(outcome.exit_code == 0);
    CHECK(outcome.webhooks_patched == 2);
    const json vwc = c.webhook();
    REQUIRE(vwc["webhooks"].size() == 2);
    const std::string ca = c.secret_data().at("ca.crt");
    for (std::size_t i = 0; i < 2; ++i) {
        INFO("entry " << i);
        CHECK(ca_bundle_of(vwc, i) == ca);
        json without_bundle = vwc["webhooks"][i];
        without_bundle["clientConfig"].erase("caBundle");
        CHECK(without_bundle == shipped["webhooks"][i]);
    }

    // A second run finds both filled in and writes nothing.
    c.cluster.server.clear_requests();
    const auto again = c.run();
    CHECK(again.exit_code == 0);
    CHECK(again.webhooks_patched == 0);
    CHECK(c.writes().empty());
}

TEST_CASE("serve's TLS loader accepts the pair the Secret holds", "[certs]") {
    CertsCluster c;
    REQUIRE(c.run().exit_code == 0);
    const auto data = c.secret_data();
    const auto result = https::build_server_context({data.at("tls.crt"), data.at("tls.key"), {}});
    INFO(result.error);
    CHECK(result.context != nullptr);
}

TEST_CASE("odd answers from the API server end the run with exit code 1, never a crash",
          "[certs]") {
    SECTION("webhook entries of the wrong shape") {
        CertsCluster c(false);
        c.cluster.server.create(kAdmission, kVwcs,
                                {{"metadata", {{"name", kWebhook}}},
                                 {"webhooks",
                                  {1,
                                   "text",
                                   json::array(),
                                   {{"clientConfig", "x"}},
                                   {{"clientConfig", {{"service", {{"name", 7}}}}}}}}});
        const auto outcome = c.run();
        CHECK(outcome.exit_code == 1);
        CHECK(outcome.error.find("has 5 webhook entries and none calls") != std::string::npos);
    }
    SECTION("a Secret whose fields have the wrong types") {
        CertsCluster c;
        c.cluster.server.create("", "secrets",
                                {{"metadata", {{"name", kSecret}, {"namespace", kNs}}},
                                 {"type", 5},
                                 {"data", "not a map"}});
        const auto outcome = c.run();
        CHECK(outcome.exit_code == 1);
        CHECK(outcome.error.find("has type Opaque") != std::string::npos);
    }
    SECTION("a Secret with undecodable data is repaired") {
        CertsCluster c;
        c.cluster.server.create("", "secrets",
                                {{"metadata", {{"name", kSecret}, {"namespace", kNs}}},
                                 {"type", "kubernetes.io/tls"},
                                 {"data", {{"tls.crt", "%%%"}, {"ca.crt", 12}}}});
        const auto outcome = c.run();
        INFO(outcome.error);
        CHECK(outcome.exit_code == 0);
        CHECK(outcome.secret_updated);
        CHECK(https::is_signed_by(c.secret_data().at("tls.crt"), c.secret_data().at("ca.crt")));
    }
}

// --- the binary ---------------------------------------------------------------------------------

namespace {

using mtlsguard::testing::Run;

// `mtls-guard <args>`, the arguments split by the shell; `env` prefixes a command to run it under.
Run run_binary(const std::string& args, const std::string& env = {}) {
    return mtlsguard::testing::run_shell(env + mtlsguard::testing::shell_quote(MTLS_GUARD_BINARY) +
                                         " " + args);
}

std::string kubeconfig_for(const CertsCluster& c, const TempDir& dir) {
    const auto config = c.cluster.config();
    return dir.write("kubeconfig", "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n"
                                   "  cluster:\n    server: " +
                                       config.server + "\n    certificate-authority-data: " +
                                       certs::encode_base64(config.ca_pem) +
                                       "\nusers:\n- name: u\n  user:\n    token: " + config.token +
                                       "\ncontexts:\n- name: c\n  context:\n    cluster: fake\n"
                                       "    user: u\ncurrent-context: c\n");
}

const std::string kFlags = "certs --namespace mtls-guard --service mtls-guard --secret "
                           "mtls-guard-tls --webhook mtls-guard.mtls-guard.io";

} // namespace

TEST_CASE("the certs command exits 0 when done, 1 on API failures and 2 on bad usage",
          "[certs][binary]") {
    TempDir dir;
    SECTION("creates, then finds nothing to do") {
        CertsCluster c;
        const std::string kubeconfig = kubeconfig_for(c, dir);
        const Run first = run_binary(kFlags +
                                     " --validity 8760h --renew-before 720h "
                                     "--kubeconfig " +
                                     kubeconfig);
        INFO(first.err);
        CHECK(first.exit_code == 0);
        CHECK(first.err.find("created") != std::string::npos);
        CHECK(first.err.find("PRIVATE KEY") == std::string::npos);
        REQUIRE(c.secret());
        c.cluster.server.clear_requests();
        const Run second = run_binary(kFlags + " --kubeconfig " + kubeconfig);
        INFO(second.err);
        CHECK(second.exit_code == 0);
        CHECK(second.err.find("nothing to do") != std::string::npos);
        CHECK(c.writes().empty());
    }
    SECTION("a missing webhook configuration: 1, with the reason") {
        CertsCluster c(false);
        const Run e = run_binary(kFlags + " --kubeconfig " + kubeconfig_for(c, dir));
        CHECK(e.exit_code == 1);
        CHECK(e.err.find("does not exist") != std::string::npos);
    }
    SECTION("bad usage and unusable configuration: 2") {
        for (const std::string& args :
             {std::string("certs --service s --secret x --webhook w"), // no --namespace
              kFlags + " --validity 10x --kubeconfig /dev/null",
              kFlags + " --validity 8760h --renew-before 9000h --kubeconfig /dev/null",
              kFlags + " --validity 87600h --kubeconfig /dev/null", // longer than the CA's renewal
              std::string("certs --namespace Bad_NS --service s --secret x --webhook w "
                          "--kubeconfig /dev/null"),
              kFlags + " --kubeconfig " + (dir.path() / "missing").string(),
              kFlags + " --context other", // --context without --kubeconfig
              kFlags + " --unknown-flag"}) {
            INFO(args);
            const Run e = run_binary(args);
            INFO(e.err);
            CHECK(e.exit_code == 2);
            CHECK(!e.err.empty());
        }
    }
    SECTION("outside a pod without --kubeconfig: 2, saying so") {
        const Run e =
            run_binary(kFlags, "env -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT ");
        CHECK(e.exit_code == 2);
        CHECK(e.err.find("--kubeconfig") != std::string::npos);
    }
}
