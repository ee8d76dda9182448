// Reads manifests from files, directories and stdin: multi-document YAML, JSON, `kind: List`.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace mtlsguard::input {

// One Kubernetes object and where it came from, for error messages.
struct Document {
    std::string file;                // path, or "<stdin>"
    std::size_t index = 0;           // 0-based document index within the file
    std::optional<std::size_t> item; // 0-based position within a List's items or a JSON array
    nlohmann::json object;
    // 1-based line of the document's first content line in a YAML file (for SARIF); 0 when
    // unknown (JSON, stdin counts too).
    std::size_t line = 0;
};

struct LoadError {
    LoadError(std::string file_, std::size_t index_, bool has_index_, std::string reason_,
              std::optional<std::size_t> item_ = std::nullopt)
        : file(std::move(file_)), index(index_), has_index(has_index_), reason(std::move(reason_)),
          item(item_) {}
    std::string file;
    std::size_t index = 0;
    bool has_index = false;
    std::string reason;
    std::optional<std::size_t> item; // 0-based position inside a List's items, or a JSON array
    std::string to_string() const;
};

struct LoadLimits {
    std::size_t max_file_bytes = std::size_t{512} << 20;
    std::size_t max_depth = 128;
    std::size_t max_nodes_per_document = std::size_t{8} << 20;
    std::size_t max_alias_nodes = 100000; // values YAML aliases may expand to: stops alias bombs
};

// Converts YAML text (possibly several documents) to JSON values, YAML 1.2 core schema scalars.
// Throws LoadError naming `file`.
std::vector<nlohmann::json> parse_yaml_documents(const std::string& text, const std::string& file,
                                                 const LoadLimits& limits = {});

// Parses `text` as JSON when it starts with '{' or '[', else as YAML.
std::vector<nlohmann::json> parse_manifest_text(const std::string& text, const std::string& file,
                                                const LoadLimits& limits = {});

// Streams every object under the given paths to `sink`, one at a time: a large JSON List or a
// long multi-document YAML file is never held in memory whole. Same rules as load_manifests.
void for_each_manifest(const std::vector<std::string>& paths, const LoadLimits& limits,
                       const std::function<void(Document&&)>& sink);

// Loads every object under the given paths ("-" is stdin; directories recursively: *.yaml, *.yml,
// *.json, in name order). `kind: List` is flattened; empty documents are skipped. The istio
// ConfigMap's `mesh` YAML is turned into JSON in place. Throws LoadError.
std::vector<Document> load_manifests(const std::vector<std::string>& paths,
                                     const LoadLimits& limits = {});

// Reads a --mesh-config file: a MeshConfig YAML, or the istio ConfigMap. Throws LoadError.
nlohmann::json load_mesh_config(const std::string& path, const LoadLimits& limits = {});

// Reads a whole file (or stdin for "-") with a size limit. Throws LoadError.
std::string read_file(const std::string& path, std::size_t max_bytes);

} // namespace mtlsguard::input
