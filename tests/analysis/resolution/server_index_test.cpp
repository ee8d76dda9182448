// Tests resolution/server_index: the snapshot's endpoints of every Service port are the ones its
// views resolve, after every kind of build, and views answer from it only where they may.
#include "analysis/resolution/server_index.hpp"
#include "tests/analysis/support/builders.hpp"
#include "tests/analysis/support/generated_mesh.hpp"

using namespace mtlsguard;
using namespace mtlsguard::test;
using resolution::ConfigView;
using resolution::Endpoint;

namespace {

// A benchmark mesh with sidecar, ambient and plain workloads, selector and port-level policies.
std::vector<json> varied_mesh() {
    bench::MeshShape shape;
    shape.namespaces = 10;
    shape.services = 60;
    shape.pods = 240;
    shape.destination_rules = 20;
    shape.peer_authentications = 40;
    shape.sidecar_fraction = 0.55;
    shape.ambient_fraction = 0.3;
    shape.seed = 7;
    return generated_objects(shape);
}

std::string text_of(const Endpoint& e) {
    auto accept = [](const std::optional<resolution::ServerAccept>& a) {
        return a ? std::string(resolution::to_string(*a)) : std::string("-");
    };
    return e.workload->name + ":" + std::to_string(e.target_port) + " " +
           std::string(resolution::to_string(e.mode.accept)) + " by " +
           (e.mode.peer_authentication ? e.mode.peer_authentication->ref.name : "-") + "/" +
           (e.mode.alpha_policy ? e.mode.alpha_policy->ref.name : "-") +
           (e.mode.port_level ? " port" : "") + (e.mode.bypassed ? " bypassed" : "") + " peer " +
           accept(e.peer) + " earlier " + accept(e.earlier) + "/" + accept(e.earlier_peer);
}

std::vector<std::string> texts(const std::vector<Endpoint>& endpoints) {
    std::vector<std::string> out;
    for (const auto& e : endpoints)
        out.push_back(text_of(e));
    return out;
}

// Every Service port's endpoints as `view` lists them (from the index where it shares the
// snapshot's servers) against the same resolved afresh in a view that cannot use the index.
void expect_listed_as_resolved(const ConfigView& view, const ConfigView& fresh,
                               const ConfigView* earlier = nullptr,
                               const ConfigView* fresh_earlier = nullptr) {
    std::vector<Endpoint> listed, resolved;
    std::size_t endpoints = 0;
    for (model::ServiceId id = 0; id < view.snapshot().services().size(); ++id) {
        const auto& service = view.service(id);
        const auto& again = fresh.service(id);
        for (std::size_t p = 0; p < service.service.ports.size(); ++p) {
            INFO(service.host << " port " << service.service.ports[p].port);
            resolution::list_endpoints(view, earlier, service, service.service.ports[p], listed);
            resolution::list_endpoints(fresh, fresh_earlier, again, again.service.ports[p],
                                       resolved);
            CHECK(texts(listed) == texts(resolved));
            endpoints += listed.size();
        }
    }
    CHECK(endpoints > 0);
}

// A view of `snapshot` that resolves every server itself: kube-system's configuration replaced by
// an equal one, and the mesh's MeshPolicy list by an equal one (either stops the index's use).
ConfigView resolving_view(const model::Snapshot& snapshot) {
    return ConfigView(snapshot, snapshot.mesh_policies());
}

} // namespace

TEST_CASE("§3, §11: the snapshot's endpoints of every Service port are those its view resolves",
          "[server-index]") {
    const auto snapshot = snapshot_of(varied_mesh());
    const ConfigView view(*snapshot);
    for (model::NsId ns = 0; ns < snapshot->namespaces().size(); ++ns)
        CHECK(view.shares_servers(ns));
    const ConfigView fresh = resolving_view(*snapshot);
    CHECK_FALSE(fresh.shares_servers(0));
    expect_listed_as_resolved(view, fresh);
}

TEST_CASE("§3: an incremental update resolves the changed namespace's servers again and keeps the "
          "others'",
          "[server-index][incremental]") {
    const auto objects = varied_mesh();
    const auto previous = snapshot_of(objects);
    const std::string changed = previous->namespaces()[1].name;
    // The namespace's servers turn STRICT, through a policy of its own.
    std::vector<json> update_objects;
    for (const auto& o : objects)
        if (o["metadata"].value("namespace", "") == changed)
            update_objects.push_back(o);
    update_objects.push_back(peer_authentication(changed, "default").strict());
    model::SnapshotBuilder update;
    for (const auto& o : update_objects)
        REQUIRE_FALSE(update.add(o).has_value());
    const auto updated = update.build_update(*previous, {changed});
    REQUIRE(updated != nullptr);
    const model::NsId id = ns_id(*updated, changed);
    for (model::NsId ns = 0; ns < updated->namespaces().size(); ++ns) {
        INFO(updated->namespaces()[ns].name);
        if (updated->namespaces()[ns].services.empty())
            continue;
        const bool shared =
            updated->server_index().by_namespace[ns] == previous->server_index().by_namespace[ns];
        CHECK(shared == (ns != id));
    }
    expect_listed_as_resolved(ConfigView(*updated), resolving_view(*updated));
}

TEST_CASE("§3: a mesh-wide policy change resolves every namespace's servers again",
          "[server-index][incremental]") {
    const auto objects = varied_mesh();
    const auto previous = snapshot_of(objects);
    model::SnapshotBuilder update;
    REQUIRE_FALSE(update.add(peer_authentication("istio-system", "default").strict()).has_value());
    const auto updated = update.build_update(*previous, {"istio-system"});
    REQUIRE(updated != nullptr);
    for (model::NsId ns = 0; ns < updated->namespaces().size(); ++ns)
        if (!updated->namespaces()[ns].services.empty())
            CHECK(updated->server_index().by_namespace[ns] !=
                  previous->server_index().by_namespace[ns]);
    expect_listed_as_resolved(ConfigView(*updated), resolving_view(*updated));
}

TEST_CASE("ambient.md §17: a relabelled snapshot resolves the namespace's servers again, at once "
          "and after a restart",
          "[server-index][relabel]") {
    const auto snapshot = snapshot_of(varied_mesh());
    for (model::NsId ns = 0; ns < snapshot->namespaces().size(); ++ns) {
        const std::string& name = snapshot->namespaces()[ns].name;
        for (auto timing : {model::RelabelTiming::AtOnce, model::RelabelTiming::AfterRestart})
            for (const LabelMap& labels : {LabelMap{{"istio.io/dataplane-mode", "ambient"}},
                                           LabelMap{{"istio-injection", "enabled"}}, LabelMap{}}) {
                INFO(name << " relabelled, timing " << static_cast<int>(timing));
                const auto relabelled = model::SnapshotBuilder::relabel_namespace(
                    *snapshot, ns, labels_of(labels), timing);
                expect_listed_as_resolved(ConfigView(*relabelled), resolving_view(*relabelled));
                // The overlay view of the same relabel: the namespace's servers resolved in it,
                // the others' from the index.
                const ConfigView overlay(*snapshot,
                                         std::make_shared<const model::RelabelledNamespace>(
                                             model::SnapshotBuilder::relabel_overlay(
                                                 *snapshot, ns, labels_of(labels), timing)));
                CHECK_FALSE(overlay.shares_servers(ns));
                expect_listed_as_resolved(overlay, resolving_view(*relabelled));
            }
    }
}

TEST_CASE("§3: a view with a changed configuration resolves that namespace's servers, and the "
          "earlier view's modes line up with its own",
          "[server-index]") {
    const auto snapshot = snapshot_of(varied_mesh());
    const model::NsId root = ns_id(*snapshot, "istio-system");
    const model::NsId other = snapshot->namespaces()[0].name == "istio-system" ? 1 : 0;
    const ConfigView plain(*snapshot);
    const ConfigView fresh = resolving_view(*snapshot);
    SECTION("a mesh-wide STRICT policy: every namespace's servers change") {
        auto objects = varied_mesh();
        objects.push_back(peer_authentication("istio-system", "default").strict());
        const auto strict_mesh = snapshot_of(objects);
        const ConfigView strict(*snapshot,
                                strict_mesh->config_ptr(ns_id(*strict_mesh, "istio-system")), true);
        CHECK_FALSE(strict.shares_servers(other));
        CHECK_FALSE(strict.shares_servers(root));
        expect_listed_as_resolved(strict, strict, &plain, &fresh);
    }
    SECTION("a namespace's configuration replaced: only that namespace") {
        const ConfigView changed(*snapshot, snapshot->config_ptr(other), true);
        CHECK_FALSE(changed.shares_servers(other));
        for (model::NsId ns = 0; ns < snapshot->namespaces().size(); ++ns)
            CHECK(changed.shares_servers(ns) == (ns != other));
        expect_listed_as_resolved(changed, fresh, &plain, &fresh);
    }
}
