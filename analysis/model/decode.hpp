// Turns one Kubernetes object, as the API server sends it in JSON, into the engine's model.
#pragma once

#include "analysis/model/objects.hpp"

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace mtlsguard::model {

struct DecodeOutcome {
    enum class Status : std::uint8_t { Decoded, Skipped, Error };
    Status status = Status::Skipped;
    std::optional<DecodedObject> object;
    std::string error; // for Error: "field.path: what is wrong"
};

// Decodes one object. Kinds the engine does not use are Skipped; a known kind with a malformed
// or out-of-range field is an Error naming the field. Never throws.
// `default_namespace` is where a namespaced object without metadata.namespace goes (kubectl's).
DecodeOutcome decode_object(const nlohmann::json& object,
                            std::string_view default_namespace = "default") noexcept;

// Decodes a MeshConfig document (the value of the `mesh` key of the `istio` ConfigMap, already
// turned from YAML into JSON). Unknown keys are ignored; wrong types are errors.
DecodeOutcome decode_mesh_config(const nlohmann::json& mesh) noexcept;

// Whether decode_object would decode (not skip) this apiVersion/kind pair.
bool is_known_kind(std::string_view api_version, std::string_view kind) noexcept;

} // namespace mtlsguard::model
