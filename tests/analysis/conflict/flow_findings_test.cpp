// Tests conflict/flow_findings: which findings a collector keeps, what it counts as omitted, and
// attribution_count against attribute().
#include "analysis/conflict/flow_findings.hpp"
#include "analysis/report/findings_output.hpp"
#include "tests/analysis/support/builders.hpp"
#include "tests/analysis/support/generated_mesh.hpp"

#include <limits>
#include <set>

using namespace mtlsguard;
using namespace mtlsguard::test;
using conflict::Flow;
using conflict::FlowClients;

namespace {

// A mesh of the benchmark's generator, mesh-wide STRICT, with sidecar, ambient and plain clients:
// dozens of flows with codes, over many hosts.
std::shared_ptr<const model::Snapshot> generated_mesh() {
    bench::MeshShape shape;
    shape.namespaces = 12;
    shape.services = 80;
    shape.pods = 300;
    shape.destination_rules = 30;
    shape.peer_authentications = 20;
    shape.sidecar_fraction = 0.55;
    shape.ambient_fraction = 0.3;
    shape.sidecar_resource_fraction = 0.2;
    shape.virtual_service_fraction = 0.3;
    shape.seed = 11;
    std::vector<json> objects = generated_objects(shape);
    // Mesh-wide STRICT, and a mesh-wide rule that turns mTLS off: sidecar and plain clients fail
    // towards every STRICT sidecar host.
    objects.push_back(peer_authentication("istio-system", "default").strict());
    objects.push_back(destination_rule("istio-system", "plaintext", "*.local").tls("DISABLE"));
    return snapshot_of(objects);
}

std::string ref_text(const model::ObjectRef& ref) {
    return ref.kind + "/" + ref.namespace_name + "/" + ref.name;
}

// What tells one finding from another: everything but its client namespaces.
std::string key_of(const Flow& flow, const conflict::Attribution& a) {
    std::string key = std::string(conflict::to_string(*flow.code)) + "|" + ref_text(a.resource);
    for (const auto& r : a.related)
        key += "," + ref_text(r);
    key += "|" + std::string(flow.host) + "|" + std::to_string(flow.port) + "|" +
           std::to_string(flow.target_port) + "|";
    if (flow.workload)
        key += std::to_string(flow.workload->ns) + "/" + flow.workload->name;
    key += "|" + (flow.subset ? flow.subset->name : std::string()) + "|" +
           std::to_string(static_cast<int>(flow.client)) + "|" +
           (flow.via ? ref_text(*flow.via) : std::string()) + "|" +
           std::string(resolution::to_string(flow.send)) + "|" +
           std::string(resolution::to_string(flow.server));
    return key;
}

// The rule FlowFindingCollector documents, step by step: a flow's attributions in order; one whose
// finding exists joins it; a new one is kept while its severity has room, else omitted; a flow
// that nobody sends ends where it would first be kept or joined.
struct KeepingModel {
    std::size_t room;
    std::set<std::string> kept;
    std::array<std::size_t, 3> per_severity{};
    std::size_t omitted = 0;

    void add(const Flow& flow, bool nobody_sends) {
        const auto severity = static_cast<std::size_t>(conflict::severity_of(flow));
        for (const auto& a : conflict::attribute(flow)) {
            const std::string key = key_of(flow, a);
            if (kept.contains(key)) {
                if (nobody_sends)
                    return;
                continue;
            }
            if (per_severity[severity] >= room) {
                ++omitted;
                continue;
            }
            if (nobody_sends)
                return;
            kept.insert(key);
            ++per_severity[severity];
        }
    }
};

std::vector<std::string> as_text(const std::vector<conflict::Finding>& findings) {
    std::vector<std::string> out;
    for (const auto& f : findings)
        out.push_back(report::to_json(f).dump());
    return out;
}

} // namespace

TEST_CASE("attribution_count is the number of attributions attribute() makes, for every flow",
          "[flow_findings]") {
    const auto snapshot = generated_mesh();
    const resolution::ConfigView view(*snapshot);
    std::size_t coded = 0, two = 0;
    conflict::evaluate_mesh(view, [&](const Flow& flow, const FlowClients&) {
        const std::size_t made = conflict::attribute(flow).size();
        CHECK(conflict::attribution_count(flow) == made);
        coded += flow.code ? 1u : 0u;
        two += made == 2 ? 1u : 0u;
    });
    CHECK(coded > 40);
    CHECK(two > 0); // a rule and a policy, each named on the other's finding
}

TEST_CASE("A collector with room for few findings keeps the first of each severity, joins later "
          "flows to them, and counts every other attribution as omitted",
          "[flow_findings]") {
    const auto snapshot = generated_mesh();
    const resolution::ConfigView view(*snapshot);
    const auto room = GENERATE(std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{20});
    conflict::FlowFindingCollector few(view, room);
    conflict::FlowFindingCollector all(view);
    KeepingModel model{room, {}, {}, 0};
    // Twice over: the second time, the flows of the kept findings join them with every severity
    // full, and all the others are omitted again.
    for (int pass = 0; pass < 2; ++pass)
        conflict::evaluate_mesh(view, [&](const Flow& flow, const FlowClients& who) {
            few.add(flow, who);
            all.add(flow, who);
            if (flow.code)
                model.add(flow, conflict::client_namespaces(view, who).empty());
        });
    INFO("room for " << room << " findings per severity");
    CHECK(few.omitted() == model.omitted);
    CHECK(few.codes() == all.codes());
    CHECK(few.has_error() == all.has_error());
    CHECK(all.omitted() == 0);
    if (room <= 3)
        CHECK(model.omitted > 40); // the mesh overflows them: the omitted path is exercised

    const auto kept = as_text(few.take());
    const auto every = as_text(all.take());
    CHECK(kept.size() == model.kept.size());
    // A kept finding is whole: the same clients as with room for all, every later flow joined.
    const std::set<std::string> known(every.begin(), every.end());
    for (const auto& finding : kept)
        CHECK(known.contains(finding));
}
