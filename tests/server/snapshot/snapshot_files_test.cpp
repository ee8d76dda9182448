// Tests of load_snapshot: decode errors name file, document and field; version notice; mesh config.
#include "server/snapshot/snapshot_files.hpp"
#include "tests/support/files.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <typeinfo>
#include <unistd.h>

namespace fs = std::filesystem;
using mtlsguard::input::load_snapshot;
using mtlsguard::input::LoadedSnapshot;
using mtlsguard::input::LoadError;
using mtlsguard::input::SnapshotSource;
using mtlsguard::model::IstioVersion;

namespace {

using mtlsguard::testing::TempDir;

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

SnapshotSource source_of(std::vector<std::string> paths) {
    SnapshotSource source;
    source.paths = std::move(paths);
    return source;
}

const std::string namespace_doc = R"(apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    istio-injection: enabled
)";

const std::string service_doc = R"(apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 8080, targetPort: 80}
)";

const std::string alpha_policy_doc = R"(apiVersion: authentication.istio.io/v1alpha1
kind: Policy
metadata: {name: default, namespace: shop}
spec:
  peers:
  - mtls: {}
)";

} // namespace

SCENARIO("A malformed object becomes a LoadError naming the file and its document and the field") {
    // The bad object is the third document, after two good ones.
    const auto [what, bad_object, reason] = GENERATE(table<std::string, std::string, std::string>({
        {"an unknown PeerAuthentication mode", R"(apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec:
  mtls: {mode: STRCT}
)",
         "spec.mtls.mode: unknown value \"STRCT\" (expected UNSET, DISABLE, PERMISSIVE or "
         "STRICT)"},
        {"a Service port above 65535", R"(apiVersion: v1
kind: Service
metadata: {name: big, namespace: shop}
spec:
  ports:
  - port: 70000
)",
         "spec.ports[0].port: port 70000 is outside 1..65535"},
        {"a Service port of zero", R"(apiVersion: v1
kind: Service
metadata: {name: zero, namespace: shop}
spec:
  ports:
  - port: 80
  - port: 0
)",
         "spec.ports[1].port: port 0 is outside 1..65535"},
        {"a quoted Service port", R"(apiVersion: v1
kind: Service
metadata: {name: quoted, namespace: shop}
spec:
  ports:
  - port: "80"
)",
         "spec.ports[0].port: expected a port number, got string"},
        {"a portLevelMtls key that is not a number", R"(apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: ports, namespace: shop}
spec:
  mtls: {mode: STRICT}
  portLevelMtls:
    abc: {mode: DISABLE}
)",
         "spec.portLevelMtls.abc: key \"abc\" is not a port number"},
        {"a DestinationRule without host", R"(apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: nohost, namespace: shop}
spec:
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
)",
         "spec.host: missing"},
        {"an unknown DestinationRule TLS mode", R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: typo, namespace: shop}
spec:
  host: web
  trafficPolicy: {tls: {mode: ISTIO_MUTUL}}
)",
         "spec.trafficPolicy.tls.mode: unknown value \"ISTIO_MUTUL\" (expected DISABLE, "
         "SIMPLE, MUTUAL or ISTIO_MUTUAL)"},
        {"a missing metadata.name", R"(apiVersion: v1
kind: Service
metadata: {namespace: shop}
spec: {ports: [{port: 80}]}
)",
         "metadata.name: missing"},
        {"labels that are not a map", R"(apiVersion: v1
kind: Service
metadata:
  name: web2
  namespace: shop
  labels: [app, web]
)",
         "metadata.labels: expected a map of strings"},
        {"spec.mtls that is a string", R"(apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: flat, namespace: shop}
spec:
  mtls: STRICT
)",
         "spec.mtls: expected an object, got string"},
        {"a name that is a number", R"(apiVersion: v1
kind: Service
metadata: {name: 42, namespace: shop}
)",
         "metadata.name: expected a string, got number"},
        {"an object without kind (with --strict)", R"(apiVersion: v1
metadata: {name: what}
)",
         "apiVersion and kind are required"},
    }));
    GIVEN(what) {
        TempDir dir;
        const auto file =
            dir.write("cluster.yaml", namespace_doc + "---\n" + service_doc + "---\n" + bad_object);
        auto source = source_of({file});
        source.strict = true; // else the object without kind is skipped, not refused
        const auto error = load_error([&] { load_snapshot(source); });
        REQUIRE(error);
        CHECK(error->file == file);
        CHECK(error->has_index);
        CHECK(error->index == 2);
        CHECK(error->reason == reason);
        CHECK(error->to_string() == file + ": document 3: " + reason);
    }
}

SCENARIO("A port too large in a JSON manifest is reported with the number that was written") {
    TempDir dir;
    const auto file = dir.write(
        "svc.json",
        R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"shop"},
            "spec":{"ports":[{"port":100000}]}})");
    const auto error = load_error([&] { load_snapshot(source_of({file})); });
    REQUIRE(error);
    CHECK(error->index == 0);
    CHECK(error->reason == "spec.ports[0].port: port 100000 is outside 1..65535");
}

SCENARIO("A malformed item of a List names the List's document and the item") {
    TempDir dir;
    const auto file = dir.write("list.yaml", namespace_doc + R"(---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: ok, namespace: shop}
- apiVersion: security.istio.io/v1beta1
  kind: PeerAuthentication
  metadata: {name: bad, namespace: shop}
  spec: {mtls: {mode: strict}}
)");
    const auto error = load_error([&] { load_snapshot(source_of({file})); });
    REQUIRE(error);
    CHECK(error->index == 1);
    CHECK(error->item == std::optional<std::size_t>{1});
    CHECK(error->to_string() ==
          file + ": document 2, item 2: spec.mtls.mode: unknown value \"strict\" (expected UNSET, "
                 "DISABLE, PERMISSIVE or STRICT)");
}

SCENARIO("An istio ConfigMap whose mesh is not a map is refused with a reason that says so") {
    TempDir dir;
    const auto file = dir.write("istio.yaml", R"(apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: just some text
)");
    const auto error = load_error([&] { load_snapshot(source_of({file})); });
    REQUIRE(error);
    CHECK(error->index == 0);
    CHECK_THAT(error->reason, Catch::StartsWith("data.mesh:") && Catch::Contains("map"));
}

SCENARIO("Unknown kinds are skipped and known ones are decoded into the snapshot") {
    TempDir dir;
    const auto file = dir.write("mixed.yaml", namespace_doc + "---\n" + service_doc + R"(---
apiVersion: example.com/v1
kind: Widget
metadata: {name: whatever}
spec: {anything: [goes, here]}
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: shop}
data: {x: eA==}
)");
    const auto loaded = load_snapshot(source_of({file}));
    REQUIRE(loaded.snapshot);
    REQUIRE(loaded.snapshot->services().size() == 1);
    CHECK(loaded.snapshot->services()[0].host == "web.shop.svc.cluster.local");
    CHECK(loaded.snapshot->namespace_id("shop").has_value());
    CHECK(loaded.notices.empty());
}

SCENARIO("YAML that is not a Kubernetes object is skipped with a note naming it, or refused with "
         "--strict") {
    // A GitOps repository: a Helm chart's metadata and values beside the manifests.
    TempDir dir;
    dir.write("Chart.yaml", "apiVersion: v2\nname: shop\nversion: 1.0.0\n");
    dir.write("values.yaml", "replicaCount: 2\nimage: {repository: shop}\n");
    dir.write("shop.yaml", namespace_doc + "---\n" + service_doc);
    GIVEN("the default") {
        const auto loaded = load_snapshot(source_of({dir.path().string()}));
        THEN("the manifests are read and each skipped document is named once") {
            REQUIRE(loaded.snapshot);
            CHECK(loaded.snapshot->services().size() == 1);
            REQUIRE(loaded.notices.size() == 2);
            CHECK_THAT(loaded.notices[0], Catch::Contains("Chart.yaml") &&
                                              Catch::Contains("document 1") &&
                                              Catch::Contains("not a Kubernetes object"));
            CHECK_THAT(loaded.notices[1], Catch::Contains("values.yaml"));
        }
    }
    GIVEN("--strict") {
        auto source = source_of({dir.path().string()});
        source.strict = true;
        const auto error = load_error([&] { load_snapshot(source); });
        THEN("the first such document stops the load, named as today") {
            REQUIRE(error);
            CHECK_THAT(error->file, Catch::EndsWith("Chart.yaml"));
            CHECK(error->reason == "apiVersion and kind are required");
        }
    }
    GIVEN("a document that is not even a map") {
        const auto file = dir.write("list.yaml", "- just\n- a list\n");
        const auto error = load_error([&] { load_snapshot(source_of({file})); });
        THEN("it is still refused: it cannot be told apart from a broken manifest") {
            REQUIRE(error);
            CHECK_THAT(error->reason, Catch::Contains("not an object"));
        }
    }
}

SCENARIO("v1alpha1 objects without --istio-version switch to the 1.5 rules and say so") {
    TempDir dir;
    const auto file = dir.write("alpha.yaml", namespace_doc + "---\n" + alpha_policy_doc);

    WHEN("no version is given") {
        const auto loaded = load_snapshot(source_of({file}));
        REQUIRE(loaded.notices.size() == 1);
        CHECK_THAT(loaded.notices[0], Catch::Contains("v1alpha1") && Catch::Contains("1.5") &&
                                          Catch::Contains("--istio-version"));
        CHECK(loaded.snapshot->settings().version == IstioVersion{5});
        CHECK_FALSE(loaded.snapshot->mesh().auto_mtls);
    }
    WHEN("a version is given") {
        auto source = source_of({file});
        source.version = IstioVersion{4};
        const auto loaded = load_snapshot(source);
        CHECK(loaded.notices.empty());
        CHECK(loaded.snapshot->settings().version == IstioVersion{4});
    }
    WHEN("there are no v1alpha1 objects") {
        const auto plain = dir.write("plain.yaml", namespace_doc);
        const auto loaded = load_snapshot(source_of({plain}));
        CHECK(loaded.notices.empty());
        CHECK(loaded.snapshot->settings().version == IstioVersion::current());
        CHECK(loaded.snapshot->mesh().auto_mtls);
    }
}

SCENARIO("--mesh-config may be the istio ConfigMap or a plain MeshConfig") {
    // Each form turns auto mTLS off; the JSON one names no root namespace, so the default stays.
    const auto [form, file_name, content, root_namespace] =
        GENERATE(table<std::string, std::string, std::string, std::string>({
            {"the istio ConfigMap", "istio-cm.yaml", R"(apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    enableAutoMtls: false
    rootNamespace: mesh-root
)",
             "mesh-root"},
            {"a plain MeshConfig", "mesh.yaml", "enableAutoMtls: false\nrootNamespace: mesh-root\n",
             "mesh-root"},
            {"a MeshConfig in JSON", "mesh.json", R"({"enableAutoMtls": false})", "istio-system"},
        }));
    GIVEN(form) {
        TempDir dir;
        auto source = source_of({dir.write("cluster.yaml", namespace_doc)});
        source.mesh_config_file = dir.write(file_name, content);
        const auto loaded = load_snapshot(source);
        CHECK_FALSE(loaded.snapshot->mesh().auto_mtls);
        CHECK(loaded.snapshot->mesh().root_namespace == root_namespace);
    }
}

SCENARIO("--mesh-config beats an istio ConfigMap found among the manifests") {
    TempDir dir;
    const auto manifests = dir.write("cluster.yaml", namespace_doc + R"(---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: "enableAutoMtls: true\nrootNamespace: from-cluster"
)");
    const auto mesh = dir.write("mesh.yaml", "enableAutoMtls: false\n");
    auto source = source_of({manifests});
    CHECK(load_snapshot(source).snapshot->mesh().root_namespace == "from-cluster");
    source.mesh_config_file = mesh;
    const auto loaded = load_snapshot(source);
    CHECK_FALSE(loaded.snapshot->mesh().auto_mtls);
}

SCENARIO("A revisioned istio ConfigMap given as --mesh-config is used as the mesh config") {
    // Revisioned installs name it istio-<revision>; the user said explicitly it is the mesh config.
    TempDir dir;
    const auto manifests = dir.write("cluster.yaml", namespace_doc);
    const auto mesh = dir.write("istio-canary.yaml", R"(apiVersion: v1
kind: ConfigMap
metadata: {name: istio-canary, namespace: istio-system}
data:
  mesh: |-
    enableAutoMtls: false
)");
    auto source = source_of({manifests});
    source.mesh_config_file = mesh;
    std::optional<LoadedSnapshot> loaded;
    const auto error = load_error([&] { loaded = load_snapshot(source); });
    INFO((error ? error->to_string() : std::string("no error")));
    REQUIRE_FALSE(error);
    REQUIRE(loaded);
    CHECK_FALSE(loaded->snapshot->mesh().auto_mtls);
}

SCENARIO("A malformed --mesh-config is refused naming the mesh config file and the field") {
    TempDir dir;
    const auto manifests = dir.write("cluster.yaml", namespace_doc);
    const auto [content, reason] = GENERATE(table<std::string, std::string>({
        {"enableAutoMtls: maybe\n", "mesh.enableAutoMtls: expected true or false"},
        {"rootNamespace: [a]\n", "mesh.rootNamespace: expected a string, got array"},
        {"- just\n- a list\n", "mesh config must be a map"},
        {"enableAutoMtls: [\n", "invalid YAML"},
    }));
    const auto mesh = dir.write("mesh.yaml", content);
    auto source = source_of({manifests});
    source.mesh_config_file = mesh;
    const auto error = load_error([&] { load_snapshot(source); });
    REQUIRE(error);
    CHECK(error->file == mesh);
    CHECK_THAT(error->reason, Catch::Contains(reason));
}

SCENARIO("A missing manifest path is refused before anything is decoded") {
    TempDir dir;
    const auto good = dir.write("good.yaml", namespace_doc);
    const std::string missing = good + ".missing";
    const auto error = load_error([&] { load_snapshot(source_of({good, missing})); });
    REQUIRE(error);
    CHECK(error->file == missing);
    CHECK(error->reason == "no such file or directory");
}
