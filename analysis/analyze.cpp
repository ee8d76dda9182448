// The engine's front door: whole-snapshot analysis and the client x server matrix.
#include "analysis/analyze.hpp"

#include "analysis/conflict/flow_findings.hpp"
#include "analysis/conflict/object_checks.hpp"
#include "analysis/conflict/routes.hpp"
#include "analysis/conflict/sidecar_findings.hpp"
#include "analysis/report/messages.hpp"

#include <numeric>
#include <set>

namespace mtlsguard {

AnalysisResult analyze(const model::Snapshot& snapshot, std::size_t names_kept) noexcept {
    AnalysisResult result;
    try {
        const resolution::ConfigView view(snapshot);
        conflict::FlowFindingCollector collector(view, static_cast<std::size_t>(-1), names_kept);
        conflict::HiddenServiceCollector hidden;
        const conflict::FlowSink sink = [&](const conflict::Flow& flow,
                                            const conflict::FlowClients& who) {
            collector.add(flow, who);
            hidden.add(flow);
        };
        conflict::evaluate_mesh(view, sink);
        result.findings = collector.take();
        for (auto& f : hidden.findings())
            result.findings.push_back(std::move(f));
        auto objects = conflict::check_objects(view);
        result.findings.insert(result.findings.end(), std::make_move_iterator(objects.begin()),
                               std::make_move_iterator(objects.end()));
        std::vector<model::ServiceId> services(snapshot.services().size());
        std::iota(services.begin(), services.end(), model::ServiceId{0});
        auto routes = conflict::undefined_subset_routes(view, services);
        result.findings.insert(result.findings.end(), std::make_move_iterator(routes.begin()),
                               std::make_move_iterator(routes.end()));
        report::describe_all(result.findings);
        std::sort(result.findings.begin(), result.findings.end(), conflict::finding_less);
    } catch (const std::exception& e) {
        result.findings.clear();
        result.internal_error = e.what();
    } catch (...) {
        result.findings.clear();
        result.internal_error = "unknown error";
    }
    return result;
}

MatrixResult matrix(const model::Snapshot& snapshot, const std::string& namespace_filter) noexcept {
    MatrixResult result;
    try {
        const resolution::ConfigView view(snapshot);
        std::set<MatrixRow> rows;
        std::optional<model::NsId> filter;
        if (!namespace_filter.empty()) {
            filter = view.namespace_id(namespace_filter);
            if (!filter)
                return result;
        }
        const conflict::FlowSink sink = [&](const conflict::Flow& flow,
                                            const conflict::FlowClients& who) {
            if (flow.dropped)
                return; // REGISTRY_ONLY: a hidden host gets no traffic at all (ambient.md §14)
            const model::NsId target_ns = flow.service ? flow.service->ns : flow.external->ns;
            MatrixRow row;
            if (flow.hidden_by) {
                row.hidden_by_namespace = flow.hidden_by->ref.namespace_name;
                row.hidden_by_name = flow.hidden_by->ref.name;
            }
            row.client_sidecar = flow.client == conflict::ClientKind::Sidecar ||
                                 flow.client == conflict::ClientKind::SidecarBypass;
            row.client_dataplane = std::string(conflict::to_string(flow.client));
            if (flow.via) {
                row.via_namespace = flow.via->namespace_name;
                row.via_name = flow.via->name;
            }
            row.host = std::string(flow.host);
            row.port = flow.port;
            row.target_port = flow.target_port;
            if (flow.workload) {
                row.workload_namespace = view.namespace_name(flow.workload->ns);
                row.workload_name = flow.workload->name;
                row.workload_dataplane = std::string(conflict::workload_dataplane(*flow.workload));
            }
            if (flow.subset)
                row.subset = flow.subset->name;
            row.bypass = std::string(flow.bypass);
            row.client = std::string(resolution::to_string(flow.send));
            row.server = std::string(resolution::to_string(flow.server));
            row.verdict = std::string(conflict::to_string(flow.verdict));
            for (model::NsId ns : conflict::client_namespaces(view, who)) {
                if (filter && ns != *filter && target_ns != *filter)
                    continue;
                row.client_namespace = view.namespace_name(ns);
                rows.insert(row);
            }
        };
        conflict::evaluate_mesh(view, sink);
        result.rows.assign(rows.begin(), rows.end());
    } catch (const std::exception& e) {
        result.rows.clear();
        result.internal_error = e.what();
    } catch (...) {
        result.rows.clear();
        result.internal_error = "unknown error";
    }
    return result;
}

nlohmann::json matrix_json(const std::vector<MatrixRow>& rows) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& r : rows) {
        nlohmann::json j = {{"clientNamespace", r.client_namespace},
                            {"clientSidecar", r.client_sidecar},
                            {"clientDataplane", r.client_dataplane},
                            {"host", r.host},
                            {"port", r.port},
                            {"targetPort", r.target_port},
                            {"client", r.client},
                            {"server", r.server},
                            {"verdict", r.verdict}};
        if (!r.workload_name.empty())
            j["workload"] = {{"namespace", r.workload_namespace},
                             {"name", r.workload_name},
                             {"dataplane", r.workload_dataplane}};
        if (!r.via_name.empty())
            j["via"] = {{"namespace", r.via_namespace}, {"name", r.via_name}};
        if (!r.subset.empty())
            j["subset"] = r.subset;
        if (!r.bypass.empty())
            j["clientBypass"] = r.bypass;
        if (!r.hidden_by_name.empty())
            j["hiddenBy"] = {{"namespace", r.hidden_by_namespace}, {"name", r.hidden_by_name}};
        list.push_back(std::move(j));
    }
    return {{"rows", std::move(list)}};
}

std::string matrix_text(const std::vector<MatrixRow>& rows) {
    std::vector<std::array<std::string, 6>> table;
    table.push_back(
        {"CLIENT", "SERVICE PORT", "WORKLOAD", "CLIENT SENDS", "SERVER ACCEPTS", "VERDICT"});
    for (const auto& r : rows) {
        std::string service = r.host + ":" + std::to_string(r.port);
        if (!r.subset.empty())
            service += " (subset " + r.subset + ")";
        if (!r.via_name.empty())
            service += " via waypoint " + r.via_namespace + "/" + r.via_name;
        if (!r.hidden_by_name.empty())
            service += " hidden by Sidecar " + r.hidden_by_namespace + "/" + r.hidden_by_name +
                       ": passthrough";
        std::string workload =
            r.workload_name.empty() ? "-" : r.workload_namespace + "/" + r.workload_name;
        if (r.target_port && r.target_port != r.port)
            workload += ":" + std::to_string(r.target_port);
        const std::string kind = !r.bypass.empty()                 ? " (sidecar bypassed)"
                                 : r.client_sidecar                ? " (sidecar)"
                                 : r.client_dataplane == "ambient" ? " (ambient)"
                                 : r.client_namespace == model::api_server_client_name
                                     ? " (API server)"
                                     : " (no sidecar)";
        table.push_back(
            {r.client_namespace + kind, service, workload, r.client, r.server, r.verdict});
    }
    std::array<std::size_t, 6> width{};
    for (const auto& line : table)
        for (std::size_t i = 0; i < line.size(); ++i)
            width[i] = std::max(width[i], line[i].size());
    std::string out;
    for (const auto& line : table) {
        for (std::size_t i = 0; i < line.size(); ++i) {
            out += line[i];
            if (i + 1 < line.size())
                out += std::string(width[i] - line[i].size() + 2, ' ');
        }
        out += "\n";
    }
    return out;
}

} // namespace mtlsguard
