// Builds the engine's snapshot from manifest files, for analyze, matrix, review and serve
// --snapshot.
#pragma once

#include "analysis/model/snapshot.hpp"
#include "server/input/manifest_loader.hpp"

#include <memory>
#include <optional>

namespace mtlsguard::input {

struct SnapshotSource {
    std::vector<std::string> paths;
    std::optional<std::string> mesh_config_file;
    std::optional<model::IstioVersion>
        version; // unset: current, or 1.5 when v1alpha1 objects are present
    std::string cluster_domain = "cluster.local";
};

struct LoadedSnapshot {
    std::shared_ptr<const model::Snapshot> snapshot;
    std::vector<std::string> notices; // e.g. "using Istio 1.5 rules: v1alpha1 objects present"
};

// Reads and decodes every object; throws LoadError naming the file and document on bad input.
LoadedSnapshot load_snapshot(const SnapshotSource& source, const LoadLimits& limits = {});

} // namespace mtlsguard::input
