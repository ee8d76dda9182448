// `mtls-guard review`: the webhook's answer to one change, computed offline by the same code path.
#include "server/admission/review_endpoint.hpp"
#include "server/cli/commands.hpp"

#include <iostream>

namespace mtlsguard::cli {
namespace {

// Whether the snapshot already holds an object of this kind, namespace and name.
bool snapshot_has(const model::Snapshot& snapshot, const std::string& kind, const std::string& ns,
                  const std::string& name) {
    if (kind == "MeshPolicy") {
        for (const auto& p : snapshot.mesh_policies())
            if (p.ref.name == name)
                return true;
        return false;
    }
    if (kind == "Namespace")
        return snapshot.namespace_id(name).has_value();
    auto id = snapshot.namespace_id(ns);
    if (!id)
        return false;
    const auto& config = snapshot.config(*id);
    auto named = [&](const auto& list) {
        return std::any_of(list.begin(), list.end(),
                           [&](const auto& o) { return o.ref.name == name && o.ref.kind == kind; });
    };
    return named(config.peer_authentications) || named(config.destination_rules) ||
           named(config.policies);
}

nlohmann::json review_for_object(const model::Snapshot& snapshot, nlohmann::json object,
                                 const ReviewOptions& options) {
    const std::string api_version = object.value("apiVersion", "");
    const std::string kind = object.value("kind", "");
    const auto slash = api_version.find('/');
    const std::string group =
        slash == std::string::npos ? std::string() : api_version.substr(0, slash);
    const std::string version =
        slash == std::string::npos ? api_version : api_version.substr(slash + 1);
    const auto& meta = object.contains("metadata") && object["metadata"].is_object()
                           ? object["metadata"]
                           : nlohmann::json::object();
    const std::string name = meta.value("name", "");
    // Cluster-scoped kinds carry no request.namespace.
    const bool cluster_scoped = kind == "MeshPolicy" || kind == "Namespace";
    std::string ns = cluster_scoped ? std::string() : meta.value("namespace", "default");
    std::string operation = options.operation;
    if (operation.empty())
        operation = snapshot_has(snapshot, kind, ns, name) ? "UPDATE" : "CREATE";
    nlohmann::json request = {
        {"uid", "mtls-guard-review"},
        {"kind", {{"group", group}, {"version", version}, {"kind", kind}}},
        {"name", name},
        {"operation", operation},
        {"dryRun", options.dry_run},
        {"userInfo", {{"username", "mtls-guard-review"}}},
    };
    if (!ns.empty())
        request["namespace"] = ns;
    if (operation == "DELETE") {
        request["object"] = nullptr;
        request["oldObject"] = std::move(object);
    } else {
        request["object"] = std::move(object);
    }
    return {{"apiVersion", "admission.k8s.io/v1"},
            {"kind", "AdmissionReview"},
            {"request", std::move(request)}};
}

} // namespace

int run_review(const ReviewOptions& options) {
    input::LoadedSnapshot loaded;
    std::string body;
    try {
        loaded = input::load_snapshot(options.source);
        print_notices(loaded.notices);
        if (!options.request_file.empty()) {
            body = input::read_file(options.request_file, std::size_t{64} << 20);
        } else {
            auto docs = input::load_manifests({options.object_file});
            if (docs.size() != 1) {
                std::cerr << "mtls-guard: " << options.object_file
                          << ": expected exactly one object, found " << docs.size() << "\n";
                return 2;
            }
            body =
                review_for_object(*loaded.snapshot, std::move(docs.front().object), options).dump();
        }
    } catch (const input::LoadError& e) {
        std::cerr << "mtls-guard: " << e.to_string() << "\n";
        return 2;
    }
    admission::AdmissionSettings settings;
    settings.default_mode = *admission::parse_enforcement(options.mode);
    const auto reply = server::handle_review(*loaded.snapshot, body, settings);
    std::cout << reply.body << "\n";
    if (reply.status != 200) {
        std::cerr << "mtls-guard: HTTP " << reply.status << ": " << reply.decision.error << "\n";
        return 2;
    }
    return reply.decision.allowed ? 0 : 1;
}

} // namespace mtlsguard::cli
