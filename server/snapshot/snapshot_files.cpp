// Builds the engine's snapshot from manifest files, for analyze, matrix, review and serve
// --snapshot.
#include "server/snapshot/snapshot_files.hpp"

#include "analysis/model/decode.hpp"

namespace mtlsguard::input {

namespace {

bool is_kubernetes_object(const nlohmann::json& document) {
    return !document.is_object() || (document.contains("apiVersion") && document.contains("kind"));
}

} // namespace

LoadedSnapshot load_snapshot(const SnapshotSource& source, const LoadLimits& limits) {
    model::Settings settings;
    settings.cluster_domain = source.cluster_domain;
    model::SnapshotBuilder builder(settings);
    if (source.mesh_config_file) {
        const auto mesh = load_mesh_config(*source.mesh_config_file, limits);
        auto outcome = model::decode_mesh_config(mesh);
        if (outcome.status == model::DecodeOutcome::Status::Error)
            throw LoadError{*source.mesh_config_file, 0, false, outcome.error};
        builder.set_mesh_override(std::get<model::MeshConfig>(std::move(*outcome.object)));
    }
    LoadedSnapshot out;
    // Decoded as they are read: the JSON of one object at a time is alive.
    for_each_manifest(source.paths, limits, [&](Document&& doc) {
        if (!source.strict && !is_kubernetes_object(doc.object)) {
            // A repository holds more YAML than manifests (charts, values, CI files).
            out.notices.push_back(
                LoadError{doc.file, doc.index, true,
                          "skipped: not a Kubernetes object (no apiVersion or no kind); "
                          "--strict refuses it",
                          doc.item}
                    .to_string());
            return;
        }
        if (source.on_document)
            source.on_document(doc);
        if (auto error = builder.add(doc.object))
            throw LoadError{doc.file, doc.index, true, *error, doc.item};
    });
    if (source.version) {
        builder.set_version(*source.version);
    } else if (builder.has_alpha_policies()) {
        builder.set_version(model::IstioVersion{5});
        out.notices.push_back("authentication.istio.io/v1alpha1 objects found: using the Istio 1.5 "
                              "rules (say --istio-version to choose)");
    }
    out.snapshot = builder.build();
    return out;
}

} // namespace mtlsguard::input
