// Builds the engine's snapshot from manifest files, for analyze, matrix, review and serve
// --snapshot.
#pragma once

#include "analysis/model/snapshot.hpp"
#include "server/input/manifest_loader.hpp"

#include <functional>
#include <memory>
#include <optional>

namespace mtlsguard::input {

struct SnapshotSource {
    std::vector<std::string> paths;
    std::optional<std::string> mesh_config_file;
    std::optional<model::IstioVersion>
        version; // unset: current, or 1.5 when v1alpha1 objects are present
    std::string cluster_domain = "cluster.local";
    // Refuse (exit 2) a document that is not a Kubernetes object (no apiVersion or no kind)
    // instead of skipping it with a notice: a Helm Chart.yaml, a values.yaml, an OpenAPI file.
    bool strict = false;
    // Called with each Kubernetes object document before it is decoded (e.g. to remember where
    // each object was read from, for SARIF).
    std::function<void(const Document&)> on_document;
};

struct LoadedSnapshot {
    std::shared_ptr<const model::Snapshot> snapshot;
    // e.g. "using Istio 1.5 rules: v1alpha1 objects present", or a document skipped as not a
    // Kubernetes object
    std::vector<std::string> notices;
};

// Reads and decodes every object; throws LoadError naming the file and document on bad input.
// A YAML or JSON object without apiVersion or kind is not a Kubernetes object: skipped with a
// notice naming it, or refused when `source.strict`.
LoadedSnapshot load_snapshot(const SnapshotSource& source, const LoadLimits& limits = {});

} // namespace mtlsguard::input
