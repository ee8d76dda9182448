// Tests admission/namespace_change: the fast relabel comparison against a whole-mesh reference.
#include "analysis/admission/namespace_change.hpp"
#include "analysis/conflict/flow_findings.hpp"
#include "analysis/report/findings_output.hpp"
#include "analysis/report/messages.hpp"
#include "tests/analysis/support/builders.hpp"
#include "tests/analysis/support/generated_mesh.hpp"

#include <limits>
#include <tuple>

using namespace mtlsguard;
using namespace mtlsguard::test;
using admission::RelabelComparison;
using conflict::Flow;
using model::NsId;

namespace {

// --- The reference: the whole-mesh comparison compare_relabel made before it evaluated only what
// a relabel can change. It lives here, not in analysis/, so that it stays the straightforward
// version: every flow of every host in both snapshots, and every host's clients resolved afresh
// instead of read from a client index the relabel kept or updated.

using FlowKey =
    std::tuple<std::uint32_t, std::uint16_t, std::uint32_t, std::string, std::uint8_t, NsId>;

FlowKey key_of(const Flow& flow, const model::Snapshot& snapshot, NsId client, NsId changed) {
    const std::uint32_t target =
        flow.service
            ? snapshot.service_id(*flow.service)
            : conflict::external_target |
                  static_cast<std::uint32_t>(flow.external - snapshot.external_hosts().data());
    const std::uint32_t workload =
        flow.workload ? snapshot.workload_id(*flow.workload) : 0xffffffffu;
    const bool moves = client == changed && flow.client != conflict::ClientKind::Sidecar &&
                       flow.client != conflict::ClientKind::ApiServer;
    return {target,
            flow.port,
            workload,
            flow.subset ? flow.subset->name : std::string(),
            moves ? std::uint8_t{0xff} : static_cast<std::uint8_t>(flow.client),
            client};
}

// A view that resolves every host's clients again: it overrides kube-system (never a client)
// with its own configuration, which leaves the order of every answer as the index has it.
resolution::ConfigView fresh_view(const model::Snapshot& snapshot) {
    const NsId system = *snapshot.namespace_id("kube-system");
    return resolution::ConfigView(snapshot, snapshot.config_ptr(system), true);
}

template <typename Visit>
void visit_all_flows(const resolution::ConfigView& view, NsId changed, Visit visit) {
    auto sink = [&](const Flow& flow, const conflict::FlowClients& who) {
        if (!flow.code)
            return;
        std::vector<NsId> namespaces = conflict::client_namespaces(view, who);
        if (!flow.service || flow.service->ns != changed) {
            if (std::find(namespaces.begin(), namespaces.end(), changed) == namespaces.end())
                return;
            namespaces = {changed};
        }
        visit(flow, namespaces);
    };
    conflict::evaluate_mesh(view, sink);
}

using Problems = std::pair<std::set<FlowKey>, std::set<FlowKey>>; // failed, warned

Problems problems_with(const model::Snapshot& snapshot, NsId ns, const model::Labels& labels,
                       model::RelabelTiming timing) {
    const auto copy = model::SnapshotBuilder::relabel_namespace(snapshot, ns, labels, timing);
    Problems out;
    visit_all_flows(fresh_view(*copy), ns, [&](const Flow& flow, const std::vector<NsId>& list) {
        auto& set = flow.verdict == conflict::Verdict::Fail ? out.first : out.second;
        for (NsId client : list)
            set.insert(key_of(flow, *copy, client, ns));
    });
    return out;
}

std::vector<conflict::Finding> finish(std::vector<conflict::Finding> findings) {
    report::describe_all(findings);
    std::sort(findings.begin(), findings.end(), conflict::finding_less);
    return findings;
}

// One side of the comparison: both snapshots relabelled at `timing` (the snapshot itself for the
// "before" side at once, when it has those labels), `existing` only at once.
void compare_at(const model::Snapshot& snapshot, NsId ns, const model::Labels& before,
                const model::Labels& after, std::size_t kept, model::RelabelTiming timing,
                RelabelComparison& out) {
    const bool at_once = timing == model::RelabelTiming::AtOnce;
    Problems was;
    if (at_once && snapshot.namespaces()[ns].labels == before) {
        visit_all_flows(fresh_view(snapshot), ns, [&](const Flow& flow, const auto& list) {
            auto& set = flow.verdict == conflict::Verdict::Fail ? was.first : was.second;
            for (NsId client : list)
                set.insert(key_of(flow, snapshot, client, ns));
        });
    } else {
        was = problems_with(snapshot, ns, before, timing);
    }
    const auto now = model::SnapshotBuilder::relabel_namespace(snapshot, ns, after, timing);
    const auto view = fresh_view(*now);
    conflict::FlowFindingCollector introduced(view, kept);
    conflict::FlowFindingCollector existing(view, kept);
    visit_all_flows(view, ns, [&](const Flow& flow, const std::vector<NsId>& list) {
        std::vector<NsId> fresh, old;
        for (NsId client : list) {
            const FlowKey key = key_of(flow, *now, client, ns);
            const bool known = was.first.count(key) > 0 ||
                               (flow.verdict != conflict::Verdict::Fail && was.second.count(key));
            (known ? old : fresh).push_back(client);
        }
        if (!fresh.empty())
            introduced.add_for(flow, fresh);
        if (!old.empty() && at_once)
            existing.add_for(flow, old);
    });
    out.omitted += introduced.omitted() + (at_once ? existing.omitted() : 0);
    out.codes.insert(introduced.codes().begin(), introduced.codes().end());
    if (!at_once) {
        out.at_restart = finish(introduced.take());
        for (auto& f : out.at_restart)
            if (f.severity == conflict::Severity::Error)
                f.severity = conflict::Severity::Warning;
        return;
    }
    out.codes.insert(existing.codes().begin(), existing.codes().end());
    out.introduces_error = introduced.has_error();
    out.introduced = finish(introduced.take());
    out.existing = finish(existing.take());
}

RelabelComparison reference(const model::Snapshot& snapshot, NsId ns, const model::Labels& before,
                            const model::Labels& after, std::size_t kept) {
    RelabelComparison out;
    compare_at(snapshot, ns, before, after, kept, model::RelabelTiming::AtOnce, out);
    if (admission::changes_injection_labels(before, after))
        compare_at(snapshot, ns, before, after, kept, model::RelabelTiming::AfterRestart, out);
    return out;
}

// --- The mesh: the benchmark's generator at a small size, with what it never emits added: a
// system namespace, clients that skip their sidecar for some ports (§13), a namespace of plain
// clients, and a webhook the API server calls (§16).

std::vector<json> varied_mesh() {
    bench::MeshShape shape;
    shape.namespaces = 14;
    shape.services = 60;
    shape.pods = 220;
    shape.destination_rules = 40;
    shape.peer_authentications = 24;
    shape.sidecar_fraction = 0.55;
    shape.ambient_fraction = 0.3;
    shape.sidecar_resource_fraction = 0.3;
    shape.virtual_service_fraction = 0.3;
    shape.seed = 7;
    std::vector<json> objects = generated_objects(shape);
    const auto first_service = std::find_if(objects.begin(), objects.end(), [](const json& o) {
        return o.value("kind", "") == "Service" && o["metadata"]["namespace"] != "istio-system";
    });
    REQUIRE(first_service != objects.end());
    const std::string target_ns = (*first_service)["metadata"]["namespace"];
    const std::string target = (*first_service)["metadata"]["name"];
    const int target_port = (*first_service)["spec"]["ports"][0]["port"];
    objects.push_back(kube_namespace("kube-system"));
    objects.push_back(deployment(target_ns, "bypasser")
                          .labels({{"app", "bypasser"}})
                          .with_sidecar()
                          .pod_annotation("traffic.sidecar.istio.io/excludeOutboundPorts",
                                          std::to_string(target_port) + ",5432"));
    objects.push_back(kube_namespace("legacy"));
    objects.push_back(deployment("legacy", "batch").labels({{"app", "batch"}}));
    // The oldest namespace-wide policy wins: STRICT, so that what clients send there shows.
    objects.push_back(peer_authentication(target_ns, "strict").strict().created(day(1)));
    // Rules that matter only once legacy's pods have sidecars: its own for a host of another
    // namespace (one for some of its pods), and one exported to it alone.
    const std::string host = target + "." + target_ns + ".svc.cluster.local";
    objects.push_back(destination_rule("legacy", "to-target", host).tls("DISABLE"));
    objects.push_back(destination_rule("legacy", "batch-to-target", host)
                          .tls("ISTIO_MUTUAL")
                          .for_clients({{"app", "batch"}}));
    objects.push_back(
        destination_rule(target_ns, "for-legacy", "*." + target_ns + ".svc.cluster.local")
            .tls("SIMPLE")
            .export_to({"legacy"}));
    objects.push_back(webhook_configuration("checker", target_ns, target, target_port));
    return objects;
}

// The label changes §17 names, each from the namespace's labels as they are.
std::vector<std::pair<std::string, model::Labels>> relabels(const model::Labels& labels) {
    auto with = [&](std::initializer_list<std::pair<std::string, std::string>> set,
                    std::initializer_list<std::string> erase) {
        std::vector<std::pair<std::string, std::string>> entries;
        for (const auto& entry : labels.entries()) {
            // Not a structured binding: clang 14 cannot capture one in the lambda below.
            const std::string& k = entry.first;
            if (std::find(erase.begin(), erase.end(), k) == erase.end() &&
                std::none_of(set.begin(), set.end(), [&](const auto& e) { return e.first == k; }))
                entries.emplace_back(k, entry.second);
        }
        entries.insert(entries.end(), set.begin(), set.end());
        return model::Labels(std::move(entries));
    };
    return {
        {"enrol ambient", with({{"istio.io/dataplane-mode", "ambient"}}, {})},
        {"enrol ambient, injection off",
         with({{"istio.io/dataplane-mode", "ambient"}}, {"istio-injection", "istio.io/rev"})},
        {"leave ambient", with({}, {"istio.io/dataplane-mode", "istio.io/use-waypoint"})},
        {"dataplane-mode none", with({{"istio.io/dataplane-mode", "none"}}, {})},
        {"injection on", with({{"istio-injection", "enabled"}}, {"istio.io/dataplane-mode"})},
        {"injection off", with({}, {"istio-injection", "istio.io/rev"})},
        {"revision canary", with({{"istio.io/rev", "canary"}}, {"istio-injection"})},
        {"use a waypoint", with({{"istio.io/use-waypoint", "waypoint"}}, {})},
        {"no waypoint", with({{"istio.io/use-waypoint", "none"}}, {})},
    };
}

std::vector<json> as_json(const std::vector<conflict::Finding>& findings) {
    std::vector<json> out;
    for (const auto& f : findings)
        out.push_back(report::to_json(f));
    return out;
}

void require_same(const RelabelComparison& fast, const RelabelComparison& whole) {
    CHECK(fast.introduces_error == whole.introduces_error);
    CHECK(fast.omitted == whole.omitted);
    CHECK(fast.codes == whole.codes);
    CHECK(as_json(fast.introduced) == as_json(whole.introduced));
    CHECK(as_json(fast.existing) == as_json(whole.existing));
    CHECK(as_json(fast.at_restart) == as_json(whole.at_restart));
}

} // namespace

TEST_CASE("ambient.md §17: every relabel of every namespace of a varied mesh compares as the "
          "whole-mesh reference does",
          "[namespace_change][relabel]") {
    const auto snapshot = snapshot_of(varied_mesh());
    std::size_t compared = 0, with_findings = 0;
    for (NsId ns = 0; ns < snapshot->namespaces().size(); ++ns) {
        const auto& record = snapshot->namespaces()[ns];
        if (record.system)
            continue;
        for (const auto& [change, after] : relabels(record.labels)) {
            if (!admission::changes_mesh_labels(record.labels, after))
                continue;
            // Few findings kept (the order of evaluation decides which), and all of them.
            for (const std::size_t kept :
                 {std::size_t{2}, std::numeric_limits<std::size_t>::max()}) {
                INFO(record.name << ": " << change << ", " << kept << " kept");
                const auto fast =
                    admission::compare_relabel(*snapshot, ns, record.labels, after, kept);
                require_same(fast, reference(*snapshot, ns, record.labels, after, kept));
                ++compared;
                if (!fast.introduced.empty() || !fast.at_restart.empty())
                    ++with_findings;
            }
        }
    }
    // The mesh must give the comparison something to find.
    CHECK(compared > 100);
    CHECK(with_findings > 10);
}

TEST_CASE("ambient.md §17: a relabel whose old labels are not the snapshot's compares as the "
          "whole-mesh reference does",
          "[namespace_change][relabel]") {
    const auto snapshot = snapshot_of(varied_mesh());
    for (NsId ns = 0; ns < snapshot->namespaces().size(); ++ns) {
        const auto& record = snapshot->namespaces()[ns];
        if (record.system)
            continue;
        const auto changes = relabels(record.labels);
        // From "enrol ambient, injection off" back to each other change.
        const model::Labels& before = changes[1].second;
        for (const auto& [change, after] : changes) {
            if (!admission::changes_mesh_labels(before, after))
                continue;
            INFO(record.name << ": from ambient without injection to " << change);
            require_same(admission::compare_relabel(*snapshot, ns, before, after, 5),
                         reference(*snapshot, ns, before, after, 5));
        }
    }
}
