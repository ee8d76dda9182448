// End-to-end tests of the mtls-guard binary: exit codes, error messages, stdin, JSON output, scale.
#include "tests/support/files.hpp"
#include "tests/support/run_command.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using mtlsguard::testing::run;
using mtlsguard::testing::Run;
using mtlsguard::testing::TempDir;

constexpr long one_gib_kib = 1024L * 1024L;

// --- Manifests -----------------------------------------------------------------------------

// default: an injected namespace with my-service (8080) and a sleep client, all with sidecars.
const std::string workloads = R"(apiVersion: v1
kind: Namespace
metadata:
  name: default
  labels: {istio-injection: enabled}
---
apiVersion: v1
kind: Service
metadata: {name: my-service, namespace: default}
spec:
  selector: {app: my-service}
  ports:
  - {name: http, port: 8080, targetPort: 8080}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: my-service, namespace: default}
spec:
  selector: {matchLabels: {app: my-service}}
  template:
    metadata: {labels: {app: my-service}}
    spec:
      containers:
      - name: app
        image: app
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleep, namespace: default}
spec:
  selector: {matchLabels: {app: sleep}}
  template:
    metadata: {labels: {app: sleep}}
    spec:
      containers: [{name: sleep, image: curl}]
)";

const std::string strict_policy = R"(apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: my-service-auth, namespace: default}
spec:
  selector: {matchLabels: {app: my-service}}
  mtls: {mode: STRICT}
)";

std::string destination_rule(const std::string& mode) {
    return "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\n"
           "metadata: {name: my-service-dr, namespace: default}\n"
           "spec:\n  host: my-service\n  trafficPolicy: {tls: {mode: " +
           mode + "}}\n";
}

// A namespace without injection running a plain client: a STRICT port there is only a warning.
const std::string legacy_clients = R"(apiVersion: v1
kind: Namespace
metadata: {name: legacy}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: curl, namespace: legacy}
spec:
  selector: {matchLabels: {app: curl}}
  template:
    metadata: {labels: {app: curl}}
    spec:
      containers: [{name: curl, image: curl}]
)";

std::string namespace_doc(const std::string& name) {
    return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n";
}

std::string repeated(const std::string& s, std::size_t n) {
    std::string out;
    out.reserve(s.size() * n);
    for (std::size_t i = 0; i < n; ++i)
        out += s;
    return out;
}

// `levels` nested anchors, each a list of nine aliases of the one before, indented by `indent`.
std::string alias_bomb(int levels, const std::string& indent = "") {
    std::string out = indent + "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
    for (int i = 1; i < levels; ++i) {
        const std::string prev = "*a" + std::to_string(i - 1);
        out += indent + "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
        for (int j = 0; j < 9; ++j)
            out += (j ? ", " : "") + prev;
        out += "]\n";
    }
    return out;
}

struct BadInput {
    std::string what;
    std::string file_name;
    std::string content;
    std::string location; // "document N" or "document N, item M" (1-based)
    std::string reason;   // a fragment of the reason
};

std::vector<BadInput> bad_inputs() {
    std::string block_nesting;
    for (std::size_t i = 0; i < 300; ++i)
        block_nesting += std::string(2 * i, ' ') + "k:\n";
    return {
        {"malformed YAML in the third document", "three.yaml",
         namespace_doc("a") + "---\n" + namespace_doc("b") +
             "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: [c\n",
         "document 3", "invalid YAML at line"},
        {"malformed JSON", "broken.json",
         R"({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"})", "document 1",
         "invalid JSON"},
        {"a document that is a scalar", "scalar.yaml", namespace_doc("a") + "---\nhello\n",
         "document 2", "the document is not an object but a string"},
        {"a JSON array holding a number", "array.json",
         R"([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}, 5])",
         "document 1, item 2", "the document is not an object but a number"},
        {"labels that are a list", "labels.yaml",
         "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels: [x]\n", "document 1",
         "metadata.labels: expected a map of strings"},
        {"an unknown mTLS mode", "mode.yaml",
         namespace_doc("a") + "---\n" + R"(apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: p, namespace: a}
spec: {mtls: {mode: STRCT}}
)",
         "document 2", "spec.mtls.mode: unknown value \"STRCT\""},
        {"a Service port out of range", "port.yaml",
         "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 70000}]}\n",
         "document 1", "spec.ports[0].port: port 70000 is outside 1..65535"},
        {"a portLevelMtls key that is not a port", "portlevel.yaml",
         "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata: {name: p}\n"
         "spec:\n  portLevelMtls:\n    abc: {mode: STRICT}\n",
         "document 1", "spec.portLevelMtls.abc: key \"abc\" is not a port number"},
        {"a DestinationRule without host", "nohost.yaml",
         "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
         "spec: {trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}\n",
         "document 1", "spec.host: missing"},
        {"a bad object inside a List", "list.json",
         R"({"apiVersion": "v1", "kind": "List", "items": [
             {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
             {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
              "spec": {"ports": [{"port": 0}]}}]})",
         "document 1, item 2", "spec.ports[0].port: port 0 is outside 1..65535"},
        {"a List whose items are not a list", "list.yaml",
         namespace_doc("a") + "---\napiVersion: v1\nkind: List\nitems: {a: 1}\n", "document 2",
         "items of a List must be a list"},
        {"YAML nested 300 levels deep", "deep-block.yaml", block_nesting, "document 1",
         "document is nested deeper than 128 levels"},
        {"YAML flow collections nested 5000 levels deep", "deep-flow.yaml",
         "a: " + std::string(5000, '[') + std::string(5000, ']') + "\n", "document 1", "nested"},
        {"JSON nested 100000 levels deep", "deep.json",
         repeated("{\"a\":", 100000) + "1" + std::string(100000, '}'), "document 1",
         "document is nested deeper than 128 levels"},
        {"a billion-laughs alias bomb", "lol.yaml", alias_bomb(9), "document 1",
         "YAML aliases expand to more than"},
        {"a JSON number too large for a double", "overflow.json",
         R"({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
             "spec": {"ports": [{"port": 1e400}]}})",
         "document 1", "1e400"},
        {"a JSON port far out of range", "port.json",
         R"({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
             "spec": {"ports": [{"port": 100000}]}})",
         "document 1", "port 100000 is outside 1..65535"},
        {"a document that starts with a comma", "comma.yaml", namespace_doc("a") + "---\n,\n",
         "document 2", "invalid YAML"},
        {"a map with a duplicate key", "duplicate.yaml",
         "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n", "document 1",
         "name"},
        {"an unterminated quoted scalar at the end of the file", "unterminated.yaml",
         "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: \"abc\n", "document 1",
         "invalid YAML"},
        {"a syntax error after a leading comment and ---", "commented.yaml",
         "# generated\n---\n" + namespace_doc("a") + "---\nfoo: [\n", "document 2", "invalid YAML"},
    };
}

} // namespace

SCENARIO("Every class of bad input exits 2 naming the file and the document and the reason") {
    const auto cases = bad_inputs();
    const auto index = GENERATE_COPY(range(std::size_t{0}, cases.size()));
    const BadInput& input = cases[index];
    GIVEN(input.what) {
        TempDir dir;
        const auto file = dir.write(input.file_name, input.content);
        // The cap turns a runaway allocation into a failed one rather than a dead test machine.
        const Run r = run({"analyze", "-f", file}, {std::nullopt, 2 * one_gib_kib});
        INFO("stderr: " << r.err);
        INFO("took " << r.seconds << " s, peak RSS " << r.max_rss_kib / 1024 << " MiB");
        CHECK(r.signal == 0);
        CHECK(r.exit_code == 2);
        CHECK(r.out.empty());
        const std::string where = file + ": " + input.location + ": ";
        CHECK_THAT(r.err, Catch::StartsWith("mtls-guard: " + where));
        CHECK_THAT(r.err, Catch::Contains(input.reason));
    }
}

SCENARIO("Random bytes in a manifest exit 2 naming the file and document 1") {
    TempDir dir;
    std::mt19937 random(1234);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int round = 0; round < 5; ++round) {
        std::string text(2000, '\0');
        for (auto& c : text)
            c = static_cast<char>(byte(random));
        const auto file = dir.write("random-" + std::to_string(round) + ".yaml", text);
        const Run r = run({"analyze", "-f", file}, {std::nullopt, 2 * one_gib_kib});
        INFO("round " << round << " stderr: " << r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::StartsWith("mtls-guard: " + file + ": document 1: "));
    }
}

SCENARIO("A bad file inside a directory is named itself") {
    TempDir dir;
    dir.write("manifests/a.yaml", namespace_doc("a"));
    const auto bad = dir.write("manifests/sub/b.yaml", namespace_doc("b") + "---\nkind: [\n");
    dir.write("manifests/README.md", "not: [yaml");
    const Run r = run({"analyze", "-f", (dir.path() / "manifests").string()});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::StartsWith("mtls-guard: " + bad + ": document 2: invalid YAML"));
}

SCENARIO("A missing file exits 2 naming it") {
    TempDir dir;
    const std::string missing = (dir.path() / "missing.yaml").string();
    const Run r = run({"analyze", "-f", missing});
    CHECK(r.exit_code == 2);
    CHECK(r.err == "mtls-guard: " + missing + ": no such file or directory\n");
}

SCENARIO("Invalid UTF-8 in a name is refused naming the file or printed as valid JSON") {
    TempDir dir;
    const auto good = dir.write("workloads.yaml", workloads + "---\n" + strict_policy);
    const auto bad =
        dir.write("dr.yaml", "apiVersion: networking.istio.io/v1beta1\n"
                             "kind: DestinationRule\n"
                             "metadata: {name: \"my-dr\xff\xfe\", namespace: default}\n"
                             "spec:\n  host: my-service\n"
                             "  trafficPolicy: {tls: {mode: DISABLE}}\n");
    const Run r = run({"analyze", "-f", good, "-f", bad, "-o", "json"});
    INFO("exit " << r.exit_code << " stderr: " << r.err);
    if (r.exit_code == 2) {
        CHECK_THAT(r.err, Catch::StartsWith("mtls-guard: " + bad + ": document 1: "));
    } else {
        CHECK(r.exit_code == 1);
        CHECK_FALSE(json::parse(r.out, nullptr, false).is_discarded());
    }
}

SCENARIO("Usage errors exit 2 with a message on stderr") {
    // FILE stands for a valid manifest, so that only the usage is wrong.
    const auto pattern = GENERATE(values<std::vector<std::string>>({
        {},
        {"frobnicate"},
        {"frobnicate", "-f", "FILE"},
        {"analyze"},
        {"analyze", "-f", "FILE", "--bogus"},
        {"analyze", "-f", "FILE", "--istio-version", "1.3"},
        {"analyze", "-f", "FILE", "-o", "yaml"},
        {"analyze", "-f", "FILE", "--fail-on", "sometimes"},
        {"matrix", "-f", "FILE", "-o", "xml"},
        {"review", "--snapshot", "FILE"},
        {"review", "--snapshot", "FILE", "-f", "FILE", "--request", "FILE"},
        {"review", "--snapshot", "FILE", "-f", "FILE", "--mode", "maybe"},
        {"review", "--snapshot", "FILE", "-f", "FILE", "--operation", "PATCH"},
    }));
    TempDir dir;
    const auto file = dir.write("ok.yaml", namespace_doc("a"));
    std::vector<std::string> args;
    std::string joined;
    for (const auto& a : pattern) {
        args.push_back(a == "FILE" ? file : a);
        joined += " " + a;
    }
    INFO("mtls-guard" << joined);
    const Run r = run(args);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_FALSE(r.err.empty());
    CHECK_THAT(r.err, !Catch::Contains("no such file"));
}

SCENARIO("--istio-version takes 1.N, 1.N.P or current, on every subcommand") {
    const auto [command, version] = GENERATE(table<std::string, std::string>({
        {"analyze", "1.4"},
        {"analyze", "1.5"},
        {"analyze", "1.24"},
        {"analyze", "1.25.1"},
        {"analyze", "1.29"},
        {"analyze", "current"},
        {"matrix", "1.24"},
        {"matrix", "1.25.1"},
        {"matrix", "current"},
    }));
    TempDir dir;
    const auto file = dir.write("ok.yaml", namespace_doc("a"));
    INFO("mtls-guard " << command << " --istio-version " << version);
    const Run r = run({command, "-f", file, "--istio-version", version});
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 0);
}

SCENARIO("--istio-version refuses what is not a modelled release, exit 2 naming the value") {
    const auto [command, version] = GENERATE(table<std::string, std::string>({
        {"analyze", "1.3"},
        {"analyze", "1.30"},
        {"analyze", "2.0"},
        {"analyze", "foo"},
        {"analyze", "1.24."},
        {"analyze", "1.024"},
        {"analyze", "1.25.255"},
        {"analyze", ""},
        {"matrix", "1.30"},
        {"review", "2.0"},
        {"serve", "foo"},
    }));
    TempDir dir;
    const auto file = dir.write("ok.yaml", namespace_doc("a"));
    std::vector<std::string> args{command};
    if (command == "review")
        args.insert(args.end(), {"--snapshot", file, "-f", file});
    else if (command == "serve")
        args.insert(args.end(), {"--snapshot", file});
    else
        args.insert(args.end(), {"-f", file});
    args.insert(args.end(), {"--istio-version", version});
    INFO("mtls-guard " << command << " --istio-version '" << version << "'");
    const Run r = run(args);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("--istio-version"));
}

SCENARIO("--help and --version exit 0") {
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"--help"}, {"analyze", "--help"}, {"review", "--help"}}) {
        const Run r = run(args);
        INFO(args.back());
        CHECK(r.exit_code == 0);
        CHECK_THAT(r.out, Catch::Contains("--") && Catch::Contains("Usage"));
    }
    const Run version = run({"--version"});
    CHECK(version.exit_code == 0);
    CHECK_FALSE(version.out.empty());
}

SCENARIO("Manifests can come from stdin with -f -") {
    TempDir dir;
    WHEN("they are clean") {
        const auto file = dir.write("mesh.yaml", workloads);
        const Run r = run({"analyze", "-f", "-"}, {file, 0});
        CHECK(r.exit_code == 0);
        CHECK(r.out == "No mTLS conflicts found.\n");
    }
    WHEN("they conflict") {
        const auto file = dir.write("mesh.yaml", workloads + "---\n" + strict_policy + "---\n" +
                                                     destination_rule("DISABLE"));
        const Run r = run({"analyze", "-f", "-", "-o", "json"}, {file, 0});
        CHECK(r.exit_code == 1);
        const json doc = json::parse(r.out, nullptr, false);
        REQUIRE_FALSE(doc.is_discarded());
        CHECK(doc["summary"]["errors"] == 2);
    }
    WHEN("they are malformed") {
        const auto file = dir.write("bad.yaml", namespace_doc("a") + "---\n" + namespace_doc("b") +
                                                    "---\nmetadata: {name: [c\n");
        const Run r = run({"analyze", "-f", "-"}, {file, 0});
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::StartsWith("mtls-guard: <stdin>: document 3: invalid YAML"));
    }
}

SCENARIO("analyze exits 0 for a clean mesh and 1 for an error finding unless --fail-on never") {
    TempDir dir;
    const auto base = dir.write("workloads.yaml", workloads);
    const auto policy = dir.write("policy.yaml", strict_policy);
    const auto dr = dir.write("dr.yaml", destination_rule("DISABLE"));

    const Run clean = run({"analyze", "-f", base, "-f", policy});
    CHECK(clean.exit_code == 0);
    CHECK(clean.out == "No mTLS conflicts found.\n");

    const Run broken = run({"analyze", "-f", base, "-f", policy, "-f", dr});
    CHECK(broken.exit_code == 1);
    CHECK_THAT(broken.out,
               Catch::Contains("Error [MTG101] (DestinationRule my-service-dr.default)") &&
                   Catch::Contains("Error [MTG101] (PeerAuthentication my-service-auth.default)"));

    const Run never = run({"analyze", "-f", base, "-f", policy, "-f", dr, "--fail-on", "never"});
    CHECK(never.exit_code == 0);
    CHECK(never.out == broken.out);

    const Run on_warning =
        run({"analyze", "-f", base, "-f", policy, "-f", dr, "--fail-on", "warning"});
    CHECK(on_warning.exit_code == 1);
}

SCENARIO("With only warnings analyze exits 0 by default and 1 with --fail-on warning") {
    TempDir dir;
    const auto mesh =
        dir.write("mesh.yaml", workloads + "---\n" + strict_policy + "---\n" + legacy_clients);
    const Run by_default = run({"analyze", "-f", mesh});
    CHECK(by_default.exit_code == 0);
    CHECK_THAT(by_default.out,
               Catch::StartsWith("Warning [MTG203] (PeerAuthentication my-service-auth.default)"));
    const Run on_warning = run({"analyze", "-f", mesh, "--fail-on", "warning"});
    CHECK(on_warning.exit_code == 1);
    CHECK(on_warning.out == by_default.out);
}

SCENARIO("analyze -o json prints findings and a summary that agree") {
    TempDir dir;
    const auto mesh =
        dir.write("mesh.yaml", workloads + "---\n" + strict_policy + "---\n" +
                                   destination_rule("DISABLE") + "---\n" + legacy_clients);
    const Run r = run({"analyze", "-f", mesh, "-o", "json"});
    CHECK(r.exit_code == 1);
    const json doc = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(doc.is_discarded());
    REQUIRE(doc["findings"].is_array());
    REQUIRE(doc["summary"].is_object());
    int errors = 0;
    int warnings = 0;
    int infos = 0;
    for (const auto& f : doc["findings"]) {
        const std::string severity = f["severity"];
        errors += severity == "error";
        warnings += severity == "warning";
        infos += severity == "info";
        CHECK_THAT(f["code"].get<std::string>(), Catch::Matches("MTG[12][0-9][0-9]"));
        CHECK(f["resource"]["kind"].is_string());
        CHECK(f["message"].get<std::string>().find('\n') == std::string::npos);
    }
    CHECK(errors == 2);
    CHECK(warnings >= 1);
    CHECK(doc["summary"] == json{{"errors", errors}, {"warnings", warnings}, {"infos", infos}});
    CHECK(doc["findings"][0]["code"] == "MTG101");
    CHECK(doc["findings"][0]["flow"]["port"] == 8080);
}

SCENARIO("matrix -o json prints rows and exits 0 even when a row fails") {
    TempDir dir;
    const auto mesh = dir.write("mesh.yaml", workloads + "---\n" + strict_policy + "---\n" +
                                                 destination_rule("DISABLE"));
    const Run r = run({"matrix", "-f", mesh, "-o", "json"});
    CHECK(r.exit_code == 0);
    const json doc = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(doc.is_discarded());
    REQUIRE(doc["rows"].is_array());
    bool found = false;
    for (const auto& row : doc["rows"])
        if (row["host"] == "my-service.default.svc.cluster.local" && row["clientSidecar"] == true) {
            found = true;
            CHECK(row["client"] == "PLAINTEXT");
            CHECK(row["server"] == "STRICT");
            CHECK(row["verdict"] == "FAIL");
        }
    CHECK(found);
}

SCENARIO("explain prints the steps of a flow and exits 0; -o json has steps, verdict and fix") {
    TempDir dir;
    const auto mesh = dir.write("mesh.yaml", workloads + "---\n" + strict_policy + "---\n" +
                                                 destination_rule("DISABLE"));
    const Run text = run({"explain", "-f", mesh, "--from", "default", "--to", "my-service:8080"});
    INFO("stderr: " << text.err);
    CHECK(text.exit_code == 0);
    CHECK_THAT(text.out, Catch::Contains("2. DestinationRule: default/my-service-dr"));
    CHECK_THAT(text.out, Catch::Contains("5. Verdict: FAIL [MTG101]"));
    const Run r =
        run({"explain", "-f", mesh, "--from", "default", "--to", "my-service:8080", "-o", "json"});
    CHECK(r.exit_code == 0);
    const json doc = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(doc.is_discarded());
    REQUIRE(doc["flows"].size() == 1);
    const auto& flow = doc["flows"][0];
    CHECK(flow["verdict"] == "FAIL");
    CHECK(flow["code"] == "MTG101");
    CHECK(flow["fix"].is_string());
    CHECK(flow["steps"].size() == 5);
}

SCENARIO("explain exits 2 naming what it did not find, or the malformed --to") {
    TempDir dir;
    const auto mesh = dir.write("mesh.yaml", workloads + "---\n" + strict_policy);
    using Case = std::pair<std::vector<std::string>, std::string>;
    const auto [extra, message] = GENERATE(values<Case>({
        {{"--from", "nowhere", "--to", "my-service"}, "namespace \"nowhere\" not found"},
        {{"--from", "default", "--to", "my-servce"},
         "host \"my-servce\" is no Service or ServiceEntry host of the input (did you mean "
         "my-service.default.svc.cluster.local?)"},
        {{"--from", "default", "--to", "my-service:9999"},
         "has no TCP port 9999 (its TCP ports: 8080)"},
        {{"--from", "default", "--to", "my-service:http"}, "malformed --to \"my-service:http\""},
        {{"--from", "default", "--to", "my-service:70000"}, "malformed --to"},
        {{"--from", "default", "--to", "my-service", "--workload", "default/ghost"},
         "workload \"default/ghost\" not found"},
        {{"--from", "default"}, "--to is required"},
    }));
    std::vector<std::string> args{"explain", "-f", mesh};
    args.insert(args.end(), extra.begin(), extra.end());
    const Run r = run(args);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(message));
    CHECK(r.out.empty());
}

SCENARIO("review prints the AdmissionReview and exits 0 when allowed and 1 when denied") {
    TempDir dir;
    const auto base = dir.write("workloads.yaml", workloads);
    const auto policy = dir.write("policy.yaml", strict_policy);
    const auto good_dr = dir.write("good-dr.yaml", destination_rule("ISTIO_MUTUAL"));
    const auto bad_dr = dir.write("bad-dr.yaml", destination_rule("DISABLE"));

    const Run allowed = run({"review", "--snapshot", base, "--snapshot", policy, "-f", good_dr});
    CHECK(allowed.exit_code == 0);
    json doc = json::parse(allowed.out, nullptr, false);
    REQUIRE_FALSE(doc.is_discarded());
    CHECK(doc["response"]["allowed"] == true);
    CHECK(doc["response"]["uid"] == "mtls-guard-review");

    const Run denied = run({"review", "--snapshot", base, "--snapshot", policy, "-f", bad_dr});
    CHECK(denied.exit_code == 1);
    doc = json::parse(denied.out, nullptr, false);
    REQUIRE_FALSE(doc.is_discarded());
    CHECK(doc["response"]["allowed"] == false);
    CHECK(doc["response"]["status"]["code"] == 403);

    const Run warned =
        run({"review", "--snapshot", base, "--snapshot", policy, "-f", bad_dr, "--mode", "warn"});
    CHECK(warned.exit_code == 0);
}

SCENARIO("review --request answers an AdmissionReview file and exits 2 on a bad one") {
    TempDir dir;
    const auto base = dir.write("workloads.yaml", workloads + "---\n" + strict_policy);
    const json object = {
        {"apiVersion", "networking.istio.io/v1beta1"},
        {"kind", "DestinationRule"},
        {"metadata", {{"name", "my-service-dr"}, {"namespace", "default"}}},
        {"spec", {{"host", "my-service"}, {"trafficPolicy", {{"tls", {{"mode", "DISABLE"}}}}}}}};
    json review = {
        {"apiVersion", "admission.k8s.io/v1"},
        {"kind", "AdmissionReview"},
        {"request",
         {{"uid", "c0ffee"},
          {"kind",
           {{"group", "networking.istio.io"}, {"version", "v1beta1"}, {"kind", "DestinationRule"}}},
          {"namespace", "default"},
          {"name", "my-service-dr"},
          {"operation", "CREATE"},
          {"object", object}}}};

    WHEN("the request is a valid review of a conflicting object") {
        const auto request = dir.write("review.json", review.dump());
        const Run r = run({"review", "--snapshot", base, "--request", request});
        CHECK(r.exit_code == 1);
        const json doc = json::parse(r.out, nullptr, false);
        REQUIRE_FALSE(doc.is_discarded());
        CHECK(doc["response"]["uid"] == "c0ffee");
        CHECK(doc["response"]["allowed"] == false);
    }
    WHEN("the request is not JSON") {
        const auto request = dir.write("review.json", "{\"apiVersion\": ");
        const Run r = run({"review", "--snapshot", base, "--request", request});
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains("HTTP 400: the body is not valid JSON"));
    }
    WHEN("the request has no uid") {
        review["request"].erase("uid");
        const auto request = dir.write("review.json", review.dump());
        const Run r = run({"review", "--snapshot", base, "--request", request});
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains("HTTP 400: request.uid is missing"));
    }
    WHEN("the request file does not exist") {
        const std::string missing = (dir.path() / "nope.json").string();
        const Run r = run({"review", "--snapshot", base, "--request", missing});
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains(missing));
    }
    WHEN("the snapshot is malformed") {
        const auto bad = dir.write("bad.yaml", namespace_doc("a") + "---\n,\n");
        const auto request = dir.write("review.json", review.dump());
        const Run r = run({"review", "--snapshot", bad, "--request", request},
                          {std::nullopt, 2 * one_gib_kib});
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::StartsWith("mtls-guard: " + bad + ": document 2: "));
    }
}

SCENARIO("Semantically odd but well-formed objects get clear findings rather than an error exit") {
    TempDir dir;
    const auto mesh = dir.write("mesh.yaml", workloads + R"(---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: ghost-dr, namespace: default}
spec:
  host: ghost
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: ports, namespace: default}
spec:
  selector: {matchLabels: {app: my-service}}
  mtls: {mode: PERMISSIVE}
  portLevelMtls:
    9999: {mode: STRICT}
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: nobody, namespace: default}
spec:
  selector: {matchLabels: {app: nobody}}
  mtls: {mode: STRICT}
)");
    const Run r = run({"analyze", "-f", mesh, "-o", "json"});
    CHECK(r.exit_code == 0);
    const json doc = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(doc.is_discarded());
    std::vector<std::string> seen;
    for (const auto& f : doc["findings"])
        seen.push_back(f["code"].get<std::string>() + " " + f["severity"].get<std::string>() + " " +
                       f["resource"]["kind"].get<std::string>() + " " +
                       f["resource"]["name"].get<std::string>());
    CHECK(seen == std::vector<std::string>{"MTG204 warning PeerAuthentication ports",
                                           "MTG206 info DestinationRule ghost-dr",
                                           "MTG206 info PeerAuthentication nobody"});
}

SCENARIO("review -f of an object that cannot be decoded is denied with the field named") {
    TempDir dir;
    const auto base = dir.write("workloads.yaml", workloads);
    const auto object = dir.write("typo.yaml", R"(apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: typo, namespace: default}
spec: {mtls: {mode: STRCT}}
)");
    const Run r = run({"review", "--snapshot", base, "-f", object});
    CHECK(r.exit_code == 1);
    const json doc = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(doc.is_discarded());
    CHECK(doc["response"]["allowed"] == false);
    CHECK(doc["response"]["status"]["code"] == 400);
    CHECK(doc["response"]["status"]["message"] ==
          "mtls-guard cannot read this PeerAuthentication: spec.mtls.mode: unknown value "
          "\"STRCT\" (expected UNSET, DISABLE, PERMISSIVE or STRICT)");
}

SCENARIO("review -f with more than one object exits 2 and says how many it found") {
    TempDir dir;
    const auto base = dir.write("workloads.yaml", workloads);
    const auto two = dir.write("two.yaml", destination_rule("ISTIO_MUTUAL") + "---\n" +
                                               destination_rule("DISABLE"));
    const Run r = run({"review", "--snapshot", base, "-f", two});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("expected exactly one object, found 2"));
}

SCENARIO("A tiny alias bomb is refused without a large amount of memory") {
    // 300 bytes must not cost more memory than a webhook pod is typically given (256 MiB).
    TempDir dir;
    const auto file = dir.write("lol.yaml", alias_bomb(9));
    const Run r = run({"analyze", "-f", file}, {std::nullopt, 4 * one_gib_kib});
    WARN("alias bomb: exit " << r.exit_code << " after " << r.seconds << " s, peak RSS "
                             << r.max_rss_kib / 1024 << " MiB");
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("document 1") && Catch::Contains("YAML aliases"));
#ifndef MTLS_GUARD_SANITIZED // sanitizer shadow memory and quarantine inflate RSS
    CHECK(r.max_rss_kib < 256 * 1024);
#endif
}

SCENARIO("Many alias-bomb documents in one small file do not add up to gigabytes") {
    // Each document stays under the per-document node limit; together they must not exhaust
    // memory: an 8 KB file must not need more than 256 MiB either.
    TempDir dir;
    std::string text;
    for (int d = 0; d < 16; ++d) {
        text += "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: junk-" + std::to_string(d) +
                "}\njunk:\n" + alias_bomb(6, "  ") + "---\n";
    }
    const auto file = dir.write("bombs.yaml", text);
    const Run r = run({"analyze", "-f", file}, {std::nullopt, 4 * one_gib_kib});
    WARN(text.size() << " bytes of alias bombs: exit " << r.exit_code << " after " << r.seconds
                     << " s, peak RSS " << r.max_rss_kib / 1024 << " MiB");
    CHECK(r.signal == 0);
    CHECK((r.exit_code == 0 || r.exit_code == 2));
#ifndef MTLS_GUARD_SANITIZED // sanitizer shadow memory and quarantine inflate RSS
    CHECK(r.max_rss_kib < 256 * 1024);
#endif
}

SCENARIO("A 50 MB manifest of small Service documents is analysed without a crash") {
    // Under the sanitizers the same many-document path is exercised with 5 MB: at -O0 with ASan
    // 50 MB takes five minutes and proves nothing more. How fast a large manifest is read is a
    // benchmark's business (tests/bench), not a timed check here.
#ifdef MTLS_GUARD_SANITIZED
    constexpr std::size_t megabytes = 5;
#else
    constexpr std::size_t megabytes = 50;
#endif
    TempDir dir;
    const fs::path file = dir.path() / "huge.yaml";
    std::size_t services = 0;
    {
        std::ofstream out(file, std::ios::binary);
        std::size_t written = 0;
        while (written < megabytes << 20) {
            const std::string doc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-" +
                                    std::to_string(services) + "\n  namespace: ns-" +
                                    std::to_string(services % 100) +
                                    "\nspec:\n  selector: {app: a" + std::to_string(services) +
                                    "}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n"
                                    "---\n";
            out << doc;
            written += doc.size();
            ++services;
        }
    }
    const Run r = run({"analyze", "-f", file.string(), "-o", "json"});
    WARN(megabytes << " MB manifest (" << services << " Services): exit " << r.exit_code
                   << " after " << r.seconds << " s, peak RSS " << r.max_rss_kib / 1024 << " MiB");
    INFO("stderr: " << r.err);
    CHECK(r.signal == 0);
    CHECK(r.exit_code == 0);
    const json doc = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(doc.is_discarded());
    CHECK(doc["summary"]["errors"] == 0);
}

SCENARIO("analyze -o sarif points each finding at the file and line of its object") {
    TempDir dir;
    const auto workload_file = dir.write("shop/workloads.yaml", R"(# the shop's workloads
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {istio-injection: enabled}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web:1, ports: [{containerPort: 8080}]}]}
)");
    const auto policies = dir.write("shop/policies.yaml", R"(apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
---

# a debugging rule someone forgot
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web-plaintext, namespace: shop}
spec:
  host: web
  trafficPolicy: {tls: {mode: DISABLE}}
)");
    const Run r = run({"analyze", "-f", (dir.path() / "shop").string(), "-o", "sarif"});
    CHECK(r.exit_code == 1);
    const json log = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(log.is_discarded());
    CHECK(log["version"] == "2.1.0");
    const json& first_run = log["runs"][0];
    CHECK(first_run["tool"]["driver"]["name"] == "mtls-guard");
    const json& rules = first_run["tool"]["driver"]["rules"];
    std::map<std::string, int> lines; // "Kind name" -> startLine of the MTG101 results
    for (const auto& result : first_run["results"]) {
        const json& rule = rules.at(result["ruleIndex"].get<std::size_t>());
        CHECK(rule["id"] == result["ruleId"]);
        if (result["ruleId"] != "MTG101")
            continue;
        CHECK(result["level"] == "error");
        const json& physical = result["locations"][0]["physicalLocation"];
        CHECK(physical["artifactLocation"]["uri"] == "file://" + policies);
        const std::string name =
            result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"];
        lines[name] = physical["region"]["startLine"];
        REQUIRE(result.contains("relatedLocations"));
        CHECK_FALSE(
            result["partialFingerprints"]["mtlsGuardFinding/v1"].get<std::string>().empty());
    }
    CHECK(lines == std::map<std::string, int>{{"DestinationRule shop/web-plaintext", 8},
                                              {"PeerAuthentication shop/default", 1}});
    (void)workload_file;
}
