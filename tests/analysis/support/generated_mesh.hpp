// A mesh of the benchmark's generator as the engine's tests read it: its objects, without the
// `istio` ConfigMap.
#pragma once

#include "tests/bench/synthetic_mesh.hpp"

#include <nlohmann/json.hpp>
#include <vector>

namespace mtlsguard::test {

// The ConfigMap holds the mesh config as YAML, which the server decodes, not the engine: left
// out, its settings (auto mTLS, root namespace istio-system) are the defaults.
inline std::vector<nlohmann::json> generated_objects(const bench::MeshShape& shape) {
    std::vector<nlohmann::json> objects;
    bench::generate_synthetic_mesh(shape, [&](nlohmann::json&& o) {
        if (o.value("kind", "") != "ConfigMap")
            objects.push_back(std::move(o));
    });
    return objects;
}

} // namespace mtlsguard::test
