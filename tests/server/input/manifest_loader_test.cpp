// Tests of the manifest loader: YAML/JSON parsing, documents and Lists, directories, limits,
// errors.
#include "server/input/manifest_loader.hpp"
#include "tests/support/files.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <typeinfo>
#include <unistd.h>

namespace fs = std::filesystem;
using mtlsguard::input::Document;
using mtlsguard::input::load_manifests;
using mtlsguard::input::load_mesh_config;
using mtlsguard::input::LoadError;
using mtlsguard::input::LoadLimits;
using mtlsguard::input::parse_manifest_text;
using mtlsguard::input::parse_yaml_documents;
using mtlsguard::input::read_file;
using nlohmann::json;

namespace {

using mtlsguard::testing::TempDir;

// Runs `f` and returns the LoadError it threw; any other exception fails the test.
template <typename F> std::optional<LoadError> load_error(F&& f) {
    try {
        f();
    } catch (const LoadError& e) {
        return e;
    } catch (const std::exception& e) {
        FAIL("threw a " << typeid(e).name() << " instead of a LoadError: " << e.what());
    }
    return std::nullopt;
}

json only_document(const std::string& yaml) {
    const auto docs = parse_yaml_documents(yaml, "test.yaml");
    REQUIRE(docs.size() == 1);
    return docs.front();
}

std::string namespace_yaml(const std::string& name) {
    return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n";
}

std::vector<std::string> names_of(const std::vector<Document>& docs) {
    std::vector<std::string> out;
    for (const auto& d : docs)
        out.push_back(d.object["metadata"]["name"].get<std::string>());
    return out;
}

// `levels` nested anchors, each a list of nine aliases of the one before: 9^levels leaves.
std::string alias_bomb(int levels) {
    std::string out = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
    for (int i = 1; i < levels; ++i) {
        const std::string prev = "*a" + std::to_string(i - 1);
        out += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
        for (int j = 0; j < 9; ++j)
            out += (j ? ", " : "") + prev;
        out += "]\n";
    }
    return out;
}

// How parsing ended in a child process that has a memory cap and an alarm clock.
enum class Outcome { Parsed, Refused, OutOfMemory, OtherException, Crashed, TimedOut };

std::string describe(Outcome outcome) {
    switch (outcome) {
    case Outcome::Parsed:
        return "parsed";
    case Outcome::Refused:
        return "refused with a LoadError";
    case Outcome::OutOfMemory:
        return "ran out of its 1 GiB address-space cap (std::bad_alloc)";
    case Outcome::OtherException:
        return "threw something other than a LoadError";
    case Outcome::Crashed:
        return "crashed";
    case Outcome::TimedOut:
        return "did not finish in 30 s";
    }
    return "?";
}

// Parses in a forked child so that runaway memory or a crash cannot take the test runner along.
Outcome parse_isolated(const std::string& text) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
#ifndef MTLS_GUARD_SANITIZED
        const rlimit cap{rlim_t{1} << 30, rlim_t{1} << 30};
        ::setrlimit(RLIMIT_AS, &cap);
#endif
        ::alarm(30);
        try {
            const auto docs = parse_manifest_text(text, "isolated.yaml");
            (void)docs;
            ::_exit(0);
        } catch (const LoadError&) {
            ::_exit(1);
        } catch (const std::bad_alloc&) {
            ::_exit(3);
        } catch (...) {
            ::_exit(4);
        }
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status))
        return WTERMSIG(status) == SIGALRM ? Outcome::TimedOut : Outcome::Crashed;
    switch (WEXITSTATUS(status)) {
    case 0:
        return Outcome::Parsed;
    case 1:
        return Outcome::Refused;
    case 3:
        return Outcome::OutOfMemory;
    default:
        return Outcome::OtherException;
    }
}

} // namespace

SCENARIO("Multi-document YAML yields one object per document and skips empty documents") {
    TempDir dir;
    const auto file = dir.write(
        "multi.yaml", "---\n" + namespace_yaml("one") + "---\n---\n" + namespace_yaml("two") +
                          "---\n# only a comment\n" + "---\n" + namespace_yaml("three"));
    const auto docs = load_manifests({file});
    REQUIRE(docs.size() == 3);
    CHECK(names_of(docs) == std::vector<std::string>{"one", "two", "three"});
    CHECK(docs[0].file == file);
    CHECK(docs[0].index == 0);
    // Empty documents still count, so that indexes match what an editor shows.
    CHECK(docs[1].index == 2);
    CHECK(docs[2].index == 4);
}

SCENARIO("A JSON object file is one object and a JSON array file is one object per item") {
    TempDir dir;
    const auto object_file =
        dir.write("one.json", R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}})");
    const auto array_file =
        dir.write("many.json", R"( [{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}},
                          {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}])");
    const auto docs = load_manifests({object_file, array_file});
    REQUIRE(docs.size() == 3);
    CHECK(names_of(docs) == std::vector<std::string>{"a", "b", "c"});
    CHECK(docs[0].index == 0);
    CHECK_FALSE(docs[0].item.has_value());
    // The array is the file's one document; its elements are items of it.
    CHECK(docs[1].file == array_file);
    CHECK(docs[1].index == 0);
    CHECK(docs[1].item == std::optional<std::size_t>{0});
    CHECK(docs[2].index == 0);
    CHECK(docs[2].item == std::optional<std::size_t>{1});
    CHECK(docs[2].object["apiVersion"] == "v1");
}

SCENARIO("A kind: List is flattened into its items which keep the List's document index") {
    TempDir dir;
    const auto file = dir.write("list.yaml", namespace_yaml("first") + "---\n" + R"(apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: item-a}
- apiVersion: v1
  kind: List
  items:
  - {apiVersion: v1, kind: Namespace, metadata: {name: nested-item}}
- apiVersion: v1
  kind: Namespace
  metadata: {name: item-b}
)");
    const auto docs = load_manifests({file});
    REQUIRE(docs.size() == 4);
    CHECK(names_of(docs) == std::vector<std::string>{"first", "item-a", "nested-item", "item-b"});
    CHECK(docs[0].index == 0);
    CHECK_FALSE(docs[0].item.has_value());
    CHECK(docs[1].index == 1);
    CHECK(docs[1].item == std::optional<std::size_t>{0});
    CHECK(docs[3].index == 1);
    CHECK(docs[3].item == std::optional<std::size_t>{2});
}

SCENARIO("A List whose items are not a list or hold a scalar is refused naming the document") {
    TempDir dir;
    const auto not_list =
        dir.write("a.yaml", namespace_yaml("x") + "---\napiVersion: v1\nkind: List\nitems: 5\n");
    auto error = load_error([&] { load_manifests({not_list}); });
    REQUIRE(error);
    CHECK(error->index == 1);
    CHECK(error->reason == "items of a List must be a list");

    const auto scalar_item =
        dir.write("b.yaml", "apiVersion: v1\nkind: List\nitems:\n- just a string\n");
    error = load_error([&] { load_manifests({scalar_item}); });
    REQUIRE(error);
    CHECK(error->index == 0);
    CHECK(error->item == std::optional<std::size_t>{0});
    CHECK(error->reason == "the document is not an object but a string");
    CHECK(error->to_string() ==
          scalar_item + ": document 1, item 1: the document is not an object but a string");
}

SCENARIO(
    "A directory is read recursively in name order taking only .yaml and .yml and .json files") {
    TempDir dir;
    dir.write("b.yaml", namespace_yaml("b"));
    dir.write("a.yaml", namespace_yaml("a"));
    dir.write("sub/c.yaml", namespace_yaml("sub-c"));
    dir.write("sub/deeper/d.yml", namespace_yaml("sub-deeper-d"));
    dir.write("x.yml", namespace_yaml("x"));
    dir.write("y.json", R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"y"}})");
    dir.write("README.md", "# not a manifest: {{ broken");
    dir.write("notes.txt", "key: [unterminated");
    dir.write("values.yaml.orig", "also: [ignored");
    const auto docs = load_manifests({dir.path().string()});
    CHECK(names_of(docs) == std::vector<std::string>{"a", "b", "sub-c", "sub-deeper-d", "x", "y"});
    REQUIRE(docs.size() == 6);
    CHECK(docs[2].file == (dir.path() / "sub" / "c.yaml").string());
}

SCENARIO("Plain YAML scalars follow the YAML 1.2 core schema; quoted ones stay strings") {
    const json doc = only_document(R"(plain_int: 80
quoted_int: "80"
single_quoted: '80'
signed: -3
plus: +80
leading_zero: 080
hex: 0x1F
octal: 0o17
float: 1.5
exponent: 1e3
t: true
T: True
f: false
n: null
tilde: ~
empty:
wildcard: "*.local"
on: on
yes: yes
no: no
off: off
y: y
version: 1.2.3
tagged: !!str 443
huge: 99999999999999999999
)");
    CHECK(doc["plain_int"] == 80);
    CHECK(doc["plain_int"].is_number_integer());
    CHECK(doc["quoted_int"] == "80");
    CHECK(doc["single_quoted"] == "80");
    CHECK(doc["signed"] == -3);
    CHECK(doc["plus"] == 80);
    CHECK(doc["leading_zero"] == 80);
    CHECK(doc["hex"] == 31);
    CHECK(doc["octal"] == 15);
    CHECK(doc["float"].is_number_float());
    CHECK(doc["float"].get<double>() == Approx(1.5));
    CHECK(doc["exponent"].get<double>() == Approx(1000.0));
    CHECK(doc["t"] == true);
    CHECK(doc["T"] == true);
    CHECK(doc["f"] == false);
    CHECK(doc["n"].is_null());
    CHECK(doc["tilde"].is_null());
    CHECK(doc["empty"].is_null());
    CHECK(doc["wildcard"] == "*.local");
    // YAML 1.1 booleans are plain strings under the 1.2 core schema.
    CHECK(doc["on"] == "on");
    CHECK(doc["yes"] == "yes");
    CHECK(doc["no"] == "no");
    CHECK(doc["off"] == "off");
    CHECK(doc["y"] == "y");
    CHECK(doc["version"] == "1.2.3");
    CHECK(doc["tagged"] == "443");
    // Too big for an integer: kept as text rather than rounded.
    CHECK(doc["huge"] == "99999999999999999999");
}

SCENARIO("An unquoted *.local is an alias so it is refused with the YAML error") {
    const auto error = load_error(
        [] { parse_yaml_documents("apiVersion: v1\nspec:\n  host: *.local\n", "dr.yaml"); });
    REQUIRE(error);
    CHECK(error->file == "dr.yaml");
    CHECK(error->index == 0);
    CHECK_THAT(error->reason, Catch::Contains("invalid YAML at line 3") &&
                                  Catch::Contains("anchor is not defined"));
}

SCENARIO("The istio ConfigMap's data.mesh YAML string becomes a JSON object") {
    TempDir dir;
    const auto file = dir.write("istio.yaml", R"(apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    enableAutoMtls: false
    rootNamespace: mesh-root
    defaultConfig:
      proxyMetadata: {}
)");
    const auto docs = load_manifests({file});
    REQUIRE(docs.size() == 1);
    const json& mesh = docs[0].object["data"]["mesh"];
    REQUIRE(mesh.is_object());
    CHECK(mesh["enableAutoMtls"] == false);
    CHECK(mesh["rootNamespace"] == "mesh-root");
    CHECK(mesh["defaultConfig"]["proxyMetadata"] == json::object());
}

SCENARIO("Another ConfigMap's data.mesh stays a string") {
    TempDir dir;
    const auto file = dir.write("other.yaml", R"(apiVersion: v1
kind: ConfigMap
metadata: {name: not-istio}
data:
  mesh: "enableAutoMtls: false"
)");
    const auto docs = load_manifests({file});
    REQUIRE(docs.size() == 1);
    CHECK(docs[0].object["data"]["mesh"] == "enableAutoMtls: false");
}

SCENARIO("The istio-cni-config ConfigMap's AMBIENT_ENABLEMENT_SELECTOR YAML becomes JSON (§10)") {
    TempDir dir;
    // As the istio-cni chart renders it: toYaml of ambient.enablementSelectors, quoted.
    const auto file = dir.write("cni.yaml", R"(apiVersion: v1
kind: ConfigMap
metadata:
  name: istio-cni-config
  namespace: istio-system
data:
  AMBIENT_ENABLED: "true"
  AMBIENT_ENABLEMENT_SELECTOR: "- podSelector:\n    matchLabels:\n      istio.io/dataplane-mode: ambient\n- namespaceSelector:\n    matchLabels:\n      istio.io/dataplane-mode: ambient\n  podSelector:\n    matchExpressions:\n    - key: istio.io/dataplane-mode\n      operator: NotIn\n      values:\n      - none\n"
  EXCLUDE_NAMESPACES: "kube-system"
)");
    const auto docs = load_manifests({file});
    REQUIRE(docs.size() == 1);
    const json& selectors = docs[0].object["data"]["AMBIENT_ENABLEMENT_SELECTOR"];
    REQUIRE(selectors.is_array());
    REQUIRE(selectors.size() == 2);
    CHECK(selectors[0]["podSelector"]["matchLabels"]["istio.io/dataplane-mode"] == "ambient");
    CHECK(selectors[1]["podSelector"]["matchExpressions"][0]["operator"] == "NotIn");
    CHECK(docs[0].object["data"]["EXCLUDE_NAMESPACES"] == "kube-system");
    CHECK(docs[0].object["data"]["AMBIENT_ENABLED"] == "true");
}

SCENARIO("Invalid YAML in the istio ConfigMap's mesh names the ConfigMap's document") {
    TempDir dir;
    const auto file = dir.write("istio.yaml", namespace_yaml("a") + R"(---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    enableAutoMtls: [false
)");
    const auto error = load_error([&] { load_manifests({file}); });
    REQUIRE(error);
    CHECK(error->file == file);
    CHECK(error->index == 1);
    CHECK_THAT(error->reason, Catch::StartsWith("data.mesh: invalid YAML"));
}

SCENARIO("A LoadError prints the file and the 1-based document number and the reason") {
    const LoadError with_index{"dir/mesh.yaml", 2, true, "metadata.name: missing"};
    CHECK(with_index.to_string() == "dir/mesh.yaml: document 3: metadata.name: missing");
    const LoadError without_index{"dir/mesh.yaml", 0, false, "no such file or directory"};
    CHECK(without_index.to_string() == "dir/mesh.yaml: no such file or directory");
    const LoadError in_list{"list.json", 0, true, "metadata.name: missing", 4};
    CHECK(in_list.to_string() == "list.json: document 1, item 5: metadata.name: missing");
}

SCENARIO("Invalid YAML in the third document is reported as document 3") {
    const std::string text = namespace_yaml("a") + "---\n" + namespace_yaml("b") +
                             "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: [c\n";
    const auto error = load_error([&] { parse_yaml_documents(text, "three.yaml"); });
    REQUIRE(error);
    CHECK(error->file == "three.yaml");
    CHECK(error->has_index);
    CHECK(error->index == 2);
    CHECK_THAT(error->to_string(), Catch::StartsWith("three.yaml: document 3: invalid YAML at"));
}

SCENARIO("An empty document before a syntax error still counts when numbering documents") {
    const std::string text = namespace_yaml("a") + "---\n---\nfoo: [\n";
    const auto error = load_error([&] { parse_yaml_documents(text, "gap.yaml"); });
    REQUIRE(error);
    CHECK(error->index == 2);
}

SCENARIO("A comment before the first --- does not shift the document number of a YAML error") {
    // A decode error in the same place is reported as document 2; a syntax error must agree.
    const std::string text = "# rendered by helm\n---\n" + namespace_yaml("a") + "---\nfoo: [\n";
    const auto error = load_error([&] { parse_yaml_documents(text, "commented.yaml"); });
    REQUIRE(error);
    CHECK(error->index == 1);
}

SCENARIO("A YAML directive before the first --- does not shift the document number either") {
    const std::string text = "%YAML 1.2\n---\n" + namespace_yaml("a") + "---\nfoo: [\n";
    const auto error = load_error([&] { parse_yaml_documents(text, "directive.yaml"); });
    REQUIRE(error);
    CHECK(error->index == 1);
}

SCENARIO("A top-level scalar or list document is refused as not an object") {
    TempDir dir;
    const auto file = dir.write("scalar.yaml", namespace_yaml("a") + "---\njust text\n");
    auto error = load_error([&] { load_manifests({file}); });
    REQUIRE(error);
    CHECK(error->index == 1);
    CHECK(error->reason == "the document is not an object but a string");

    const auto list_file = dir.write("list.yaml", "- a\n- b\n");
    error = load_error([&] { load_manifests({list_file}); });
    REQUIRE(error);
    CHECK(error->index == 0);
    CHECK_THAT(error->reason, Catch::StartsWith("the document is not an object but a"));
    CHECK_THAT(error->reason, Catch::Contains("array"));
}

SCENARIO("Invalid JSON is refused as document 1 with the parser's position") {
    const auto error =
        load_error([] { parse_manifest_text(R"({"apiVersion": "v1", "kind": })", "broken.json"); });
    REQUIRE(error);
    CHECK(error->file == "broken.json");
    CHECK(error->has_index);
    CHECK(error->index == 0);
    CHECK_THAT(error->reason, Catch::StartsWith("invalid JSON") && Catch::Contains("column 30"));
}

SCENARIO("A JSON number too large for a double is a LoadError and not a stray exception") {
    const auto error = load_error([] {
        parse_manifest_text(R"({"apiVersion": "v1", "kind": "Service", "x": 1e400})", "big.json");
    });
    REQUIRE(error);
    CHECK(error->file == "big.json");
    CHECK(error->index == 0);
    CHECK_THAT(error->reason, Catch::Contains("1e400"));
}

SCENARIO("A YAML map with the same key twice is refused rather than silently keeping one") {
    const auto error = load_error([] {
        parse_yaml_documents("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  name: b\n",
                             "dup.yaml");
    });
    REQUIRE(error);
    CHECK(error->index == 0);
    CHECK_THAT(error->reason, Catch::Contains("name"));
}

SCENARIO("An unterminated quoted scalar at the end of a file is invalid YAML") {
    for (const std::string quote : {"\"", "'"}) {
        INFO("quote " << quote);
        const auto error = load_error([&] {
            parse_yaml_documents("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + quote +
                                     "abc\n",
                                 "unterminated.yaml");
        });
        REQUIRE(error);
        CHECK(error->index == 0);
        CHECK_THAT(error->reason, Catch::StartsWith("invalid YAML"));
    }
}

SCENARIO("YAML nested deeper than the limit is refused with a clear reason") {
    LoadLimits limits;
    limits.max_depth = 16;
    std::string block;
    for (int i = 0; i < 40; ++i)
        block += std::string(static_cast<std::size_t>(2 * i), ' ') + "k:\n";
    auto error = load_error([&] { parse_yaml_documents(block, "deep.yaml", limits); });
    REQUIRE(error);
    CHECK(error->index == 0);
    CHECK_THAT(error->reason, Catch::StartsWith("document is nested deeper than 16 levels"));

    // Exactly at the limit is fine: 15 nested maps plus the scalar leaf.
    std::string at_limit;
    for (int i = 0; i < 15; ++i)
        at_limit += std::string(static_cast<std::size_t>(2 * i), ' ') + "k:\n";
    CHECK(parse_yaml_documents(at_limit, "ok.yaml", limits).size() == 1);
}

SCENARIO("Deeply nested YAML flow collections are refused with a reason that says so") {
    for (const std::size_t depth : {300U, 1000U, 100000U}) {
        INFO("depth " << depth);
        const std::string text = "a: " + std::string(depth, '[') + std::string(depth, ']') + "\n";
        const auto error = load_error([&] { parse_yaml_documents(text, "flow.yaml"); });
        REQUIRE(error);
        CHECK(error->index == 0);
        CHECK_THAT(error->reason, Catch::Contains("nested"));
    }
}

SCENARIO("JSON nested 100000 deep is refused without overflowing the stack") {
    const std::size_t depth = 100000;
    for (const auto& [open, close] :
         std::vector<std::pair<std::string, std::string>>{{"[", "]"}, {"{\"a\":", "}"}}) {
        std::string text;
        for (std::size_t i = 0; i < depth; ++i)
            text += open;
        text += "1";
        for (std::size_t i = 0; i < depth; ++i)
            text += close;
        const auto error = load_error([&] { parse_manifest_text(text, "deep.json"); });
        REQUIRE(error);
        CHECK(error->index == 0);
        CHECK(error->reason == "document is nested deeper than 128 levels");
    }
}

// No clock here (shared machines are noisy): that the refusal names the limit shows the
// expansion stopped there, and CTest's timeout catches one that never stops.
SCENARIO("A billion-laughs alias bomb is refused by the node limit before it expands") {
    GIVEN("a small node limit") {
        LoadLimits limits;
        limits.max_nodes_per_document = 10000;
        const auto error =
            load_error([&] { parse_yaml_documents(alias_bomb(9), "lol.yaml", limits); });
        REQUIRE(error);
        CHECK(error->index == 0);
        CHECK_THAT(error->reason,
                   Catch::StartsWith("document is too large (more than 10000 values)"));
    }
    GIVEN("the default limits") {
        const auto error = load_error([&] { parse_yaml_documents(alias_bomb(9), "lol.yaml"); });
        REQUIRE(error);
        CHECK_THAT(error->reason,
                   Catch::StartsWith("YAML aliases expand to more than 100000 values"));
    }
}

SCENARIO("A self-referencing anchor is refused instead of recursing forever") {
    for (const std::string text : {"a: &a [*a]\n", "a: &a {b: *a}\n"}) {
        INFO(text);
        const auto error = load_error([&] { parse_yaml_documents(text, "loop.yaml"); });
        REQUIRE(error);
        CHECK_THAT(error->reason, Catch::Contains("recursive anchor"));
    }
}

SCENARIO("Aliases below the limits expand to copies of the anchored value") {
    const json doc = only_document("base: &labels {app: web, tier: front}\ncopy: *labels\n");
    CHECK(doc["copy"] == json{{"app", "web"}, {"tier", "front"}});
}

SCENARIO("A file over max_file_bytes is refused before it is parsed") {
    TempDir dir;
    const auto file = dir.write("big.yaml", namespace_yaml(std::string(200, 'n')));
    LoadLimits limits;
    limits.max_file_bytes = 64;
    const auto error = load_error([&] { load_manifests({file}, limits); });
    REQUIRE(error);
    CHECK(error->file == file);
    CHECK_FALSE(error->has_index);
    CHECK(error->reason == "file is larger than 64 bytes");
    CHECK(error->to_string() == file + ": file is larger than 64 bytes");
}

SCENARIO("A file inside a directory over max_file_bytes is named itself") {
    TempDir dir;
    dir.write("a.yaml", namespace_yaml("a"));
    const auto big = dir.write("z.yaml", namespace_yaml(std::string(200, 'z')));
    LoadLimits limits;
    limits.max_file_bytes = 64;
    const auto error = load_error([&] { load_manifests({dir.path().string()}, limits); });
    REQUIRE(error);
    CHECK(error->file == big);
}

SCENARIO("A path that does not exist is refused naming the path") {
    TempDir dir;
    const std::string missing = (dir.path() / "nope.yaml").string();
    const auto error = load_error([&] { load_manifests({missing}); });
    REQUIRE(error);
    CHECK(error->file == missing);
    CHECK_FALSE(error->has_index);
    CHECK(error->reason == "no such file or directory");
}

SCENARIO("A directory holding a non-manifest file and no manifests yields nothing") {
    TempDir dir;
    dir.write("README.md", "# docs\n{{ not yaml");
    dir.write("chart/templates/NOTES.txt", "{{ .Release.Name }}");
    CHECK(load_manifests({dir.path().string()}).empty());
}

SCENARIO("An empty file and a comment-only file yield no documents") {
    TempDir dir;
    const auto empty = dir.write("empty.yaml", "");
    const auto comments = dir.write("comments.yml", "# nothing here\n---\n# still nothing\n");
    CHECK(load_manifests({empty, comments}).empty());
}

SCENARIO("A --mesh-config file may be a plain MeshConfig or the istio ConfigMap") {
    TempDir dir;
    const auto plain = dir.write("mesh.yaml", "enableAutoMtls: false\nrootNamespace: root\n");
    const auto config_map = dir.write("cm.yaml", R"(apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    enableAutoMtls: false
    rootNamespace: root
)");
    const json expected = {{"enableAutoMtls", false}, {"rootNamespace", "root"}};
    CHECK(load_mesh_config(plain) == expected);
    CHECK(load_mesh_config(config_map) == expected);
}

SCENARIO("A --mesh-config ConfigMap without data.mesh is refused naming the document") {
    TempDir dir;
    const auto file = dir.write(
        "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\ndata: {other: x}\n");
    const auto error = load_error([&] { load_mesh_config(file); });
    REQUIRE(error);
    CHECK(error->file == file);
    CHECK(error->index == 0);
    CHECK(error->reason == "ConfigMap has no data.mesh");
}

SCENARIO("Random bytes in a .yaml file give a LoadError and never a crash") {
    std::mt19937 random(20240601);
    std::uniform_int_distribution<int> byte(0, 255);
    std::size_t refused = 0;
    for (int round = 0; round < 200; ++round) {
        std::string text(static_cast<std::size_t>(1 + round * 7), '\0');
        for (auto& c : text)
            c = static_cast<char>(byte(random));
        const Outcome outcome = parse_isolated(text);
        INFO("round " << round << ": " << describe(outcome));
        CHECK((outcome == Outcome::Refused || outcome == Outcome::Parsed));
        refused += outcome == Outcome::Refused;
    }
    // Almost all random inputs are not YAML; the few that are must simply parse.
    CHECK(refused > 150);
}

SCENARIO("A document that is only a comma is refused as invalid YAML without runaway memory") {
    // yaml-cpp 0.7's LoadAll loops forever on a stray top-level comma, allocating as it goes.
    for (const std::string text :
         {",", "\n,\n", "apiVersion: v1\nkind: Namespace\n---\n,\n", ", a: 1\n"}) {
        INFO("input " << text);
        const Outcome outcome = parse_isolated(text);
        INFO(describe(outcome));
        CHECK(outcome == Outcome::Refused);
    }
}

SCENARIO("A YAML syntax error names the file's line, not the line within its document") {
    const std::string text = namespace_yaml("a") + "---\n" + namespace_yaml("b") +
                             "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: \"c\n";
    const auto error = load_error([&] { parse_yaml_documents(text, "lines.yaml"); });
    REQUIRE(error);
    CHECK(error->index == 2);
    // The unterminated quote opens on line 14 of the file (line 4 of the third document); the
    // parser points at the scalar's first character, after the quote.
    CHECK_THAT(error->reason, Catch::StartsWith("invalid YAML at line 14, column 10: "));
}

SCENARIO("Bytes that are not UTF-8, or a NUL, are refused rather than cutting the document short") {
    for (const std::string& bad :
         {std::string("\xff"), std::string("\xc3"), std::string(1, '\0')}) {
        const std::string text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a" + bad +
                                 "\n  labels: {team: x}\n";
        const auto error = load_error([&] { parse_yaml_documents(text, "bytes.yaml"); });
        REQUIRE(error);
        CHECK(error->index == 0);
        CHECK_THAT(error->reason, Catch::StartsWith("invalid YAML at line 4, column 10: "));
    }
    CHECK(only_document("name: \"\\xe9t\\u00e9\"\nplain: \xc3\xa9t\xc3\xa9\n")["plain"] ==
          "\xc3\xa9t\xc3\xa9");
}

SCENARIO(
    "Block scalars and tagged scalars stay strings; an empty tagged scalar is an empty string") {
    const json doc = only_document("literal: |\n  80\nfolded: >\n  true\nstr: !!str\nplain:\n");
    CHECK(doc["literal"] == "80\n");
    CHECK(doc["folded"] == "true\n");
    CHECK(doc["str"] == "");
    CHECK(doc["plain"].is_null());
}

SCENARIO("An anchor defined again is what later aliases refer to, and is not a recursion") {
    const json doc = only_document("a: &x [&x 1, *x]\nb: *x\n");
    CHECK(doc["a"] == json{1, 1});
    CHECK(doc["b"] == 1);
}

SCENARIO("A merge key is kept as an ordinary key, as it always was") {
    const json doc = only_document("base: &b {app: web}\nderived:\n  <<: *b\n  tier: front\n");
    CHECK(doc["derived"]["<<"] == json{{"app", "web"}});
    CHECK(doc["derived"]["tier"] == "front");
}

SCENARIO("Content after a document end marker without a --- is refused as a second document") {
    const auto error = load_error([] { parse_yaml_documents("a: 1\n...\nb: 2\n", "end.yaml"); });
    REQUIRE(error);
    CHECK(error->index == 0);
    CHECK_THAT(error->reason, Catch::Contains("unexpected content after the document"));
}

SCENARIO("Double-quoted escapes give the same text whether the loader or libfyaml unescapes them") {
    // JSON's escapes on one line are unescaped by the loader; YAML's others, NUL, and folded lines
    // are left to libfyaml. Both must give what YAML says.
    const json doc = only_document(
        R"(json: "{\"a\":[\"b\\c\"],\"d\":\"\/\b\f\n\r\t\"}"
bmp: "\u0041\u00e9\u07FF\u0800\uFFFF"
tab: "a	b"
yaml: "\x41\xe9\0\e\N\_\L\P\U0001F600\ \	|"
nul: "a\u0000b"
folded: "one
  two\n"
joined: "tail\
  x"
empty: ""
plain_key_last_on_line: value
flow: [a, "b\"c", d]
)");
    CHECK(doc["json"] == "{\"a\":[\"b\\c\"],\"d\":\"/\b\f\n\r\t\"}");
    CHECK(doc["bmp"] == "A\xc3\xa9\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf");
    CHECK(doc["tab"] == "a\tb");
    CHECK(doc["yaml"] == std::string("A\xc3\xa9\0\x1b\xc2\x85\xc2\xa0\xe2\x80\xa8\xe2\x80\xa9"
                                     "\xf0\x9f\x98\x80 \t|",
                                     22));
    CHECK(doc["nul"] == std::string("a\0b", 3));
    CHECK(doc["folded"] == "one two\n");
    CHECK(doc["joined"] == "tailx");
    CHECK(doc["empty"] == "");
    CHECK(doc["plain_key_last_on_line"] == "value");
    CHECK(doc["flow"] == json{"a", "b\"c", "d"});
}

SCENARIO("Plain scalars at the end of a line, folded over lines, or in flow keep their text") {
    const json doc = only_document("a: one two  \nb: first\n  second\n\n  third\nc: [x y, z]\n"
                                   "d: k=v # comment\ne: \"q\" \nf: 1 \n");
    CHECK(doc["a"] == "one two");
    CHECK(doc["b"] == "first second\nthird");
    CHECK(doc["c"] == json{"x y", "z"});
    CHECK(doc["d"] == "k=v");
    CHECK(doc["e"] == "q");
    CHECK(doc["f"] == 1);
}

SCENARIO("A plain key is typed like a value and written as JSON writes it") {
    const json doc = only_document("1: a\ntrue: b\n~: c\n1.5: d\n0x10: e\nname: f\nnull2: g\n");
    CHECK(doc["1"] == "a");
    CHECK(doc["true"] == "b");
    CHECK(doc[""] == "c");
    CHECK(doc["1.5"] == "d");
    CHECK(doc["16"] == "e");
    CHECK(doc["name"] == "f");
    CHECK(doc["null2"] == "g");
    // Typed keys collide with their written form, as they always did.
    const auto error = load_error([] { parse_yaml_documents("16: a\n0x10: b\n", "keys.yaml"); });
    REQUIRE(error);
    CHECK_THAT(error->reason,
               Catch::Contains("duplicate key \"16\"") && Catch::Contains("(line 2, column 1)"));
    // A key with an anchor, and an alias as a key.
    const json anchored = only_document("&k name: a\nother:\n  *k : b\n");
    CHECK(anchored["name"] == "a");
    CHECK(anchored["other"]["name"] == "b");
}

SCENARIO("read_file returns a file's bytes whole, and refuses one over the limit") {
    TempDir dir;
    std::string content;
    for (int i = 0; content.size() < 300000; ++i)
        content += "line " + std::to_string(i) + std::string(1, '\0') + "\xff\n";
    const auto file = dir.write("bytes.bin", content);
    CHECK(read_file(file, content.size()) == content);
    const auto error = load_error([&] { read_file(file, content.size() - 1); });
    REQUIRE(error);
    CHECK(error->reason == "file is larger than " + std::to_string(content.size() - 1) + " bytes");
    CHECK(read_file(dir.write("empty.yaml", ""), 10).empty());
    // /proc files report a size of 0 but have content.
    CHECK_FALSE(read_file("/proc/self/status", 1 << 20).empty());
}
