// Reads manifests from files, directories and stdin: multi-document YAML, JSON, `kind: List`.
#include "server/input/manifest_loader.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <yaml-cpp/yaml.h>

namespace mtlsguard::input {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Converter {
    const std::string& file;
    std::size_t index;
    const LoadLimits& limits;
    std::size_t nodes = 0;

    [[noreturn]] void fail(const std::string& reason) const {
        throw LoadError{file, index, true, reason};
    }

    json scalar(const YAML::Node& node) const {
        const std::string& text = node.Scalar();
        // Quoted or explicitly tagged strings stay strings; plain scalars follow the core schema.
        if (node.Tag() != "?")
            return text;
        if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
            return nullptr;
        if (text == "true" || text == "True" || text == "TRUE")
            return true;
        if (text == "false" || text == "False" || text == "FALSE")
            return false;
        const char* begin = text.c_str();
        char* end = nullptr;
        const bool sign = text[0] == '-' || text[0] == '+';
        const std::string digits = text.substr(sign ? 1 : 0);
        if (!digits.empty() && std::all_of(digits.begin(), digits.end(),
                                           [](char c) { return c >= '0' && c <= '9'; })) {
            errno = 0;
            const long long v = std::strtoll(begin, &end, 10);
            if (errno == 0 && *end == '\0')
                return v;
            return text; // out of range: keep the text rather than guess
        }
        if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'o')) {
            errno = 0;
            const long long v = std::strtoll(digits.c_str() + 2, &end, digits[1] == 'x' ? 16 : 8);
            if (errno == 0 && *end == '\0' && end != digits.c_str() + 2)
                return text[0] == '-' ? -v : v;
            return text;
        }
        const bool floaty = text.find_first_of("0123456789") != std::string::npos &&
                            text.find_first_not_of("0123456789+-.eE") == std::string::npos;
        if (floaty) {
            errno = 0;
            const double v = std::strtod(begin, &end);
            if (errno == 0 && *end == '\0' && std::isfinite(v))
                return v;
        }
        return text;
    }

    json convert(const YAML::Node& node, std::size_t depth) {
        if (++nodes > limits.max_nodes_per_document)
            fail("document is too large (more than " +
                 std::to_string(limits.max_nodes_per_document) + " values, counting YAML aliases)");
        if (depth > limits.max_depth)
            fail("document is nested deeper than " + std::to_string(limits.max_depth) + " levels");
        switch (node.Type()) {
        case YAML::NodeType::Null:
        case YAML::NodeType::Undefined:
            return nullptr;
        case YAML::NodeType::Scalar:
            return scalar(node);
        case YAML::NodeType::Sequence: {
            json out = json::array();
            for (const auto& item : node)
                out.push_back(convert(item, depth + 1));
            return out;
        }
        case YAML::NodeType::Map: {
            json out = json::object();
            for (const auto& entry : node) {
                if (!entry.first.IsScalar())
                    fail("a map key is not a scalar");
                out[entry.first.Scalar()] = convert(entry.second, depth + 1);
            }
            return out;
        }
        }
        return nullptr;
    }
};

bool manifest_extension(const fs::path& path) {
    const auto ext = path.extension().string();
    return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

std::size_t depth_of(const json& value, std::size_t limit) {
    // Iterative, so a hostile document cannot overflow the stack here.
    std::vector<std::pair<const json*, std::size_t>> stack{{&value, 1}};
    std::size_t deepest = 0;
    while (!stack.empty()) {
        auto [v, d] = stack.back();
        stack.pop_back();
        deepest = std::max(deepest, d);
        if (deepest > limit)
            return deepest;
        if (v->is_structured())
            for (const auto& child : *v)
                stack.emplace_back(&child, d + 1);
    }
    return deepest;
}

// The mesh config inside the istio ConfigMap is YAML in a string; the engine reads JSON.
void convert_mesh_config(json& object, const std::string& file, std::size_t index,
                         const LoadLimits& limits) {
    if (!object.is_object() || object.value("kind", "") != "ConfigMap" ||
        object.value("apiVersion", "") != "v1")
        return;
    auto meta = object.find("metadata");
    if (meta == object.end() || !meta->is_object() || meta->value("name", "") != "istio")
        return;
    auto data = object.find("data");
    if (data == object.end() || !data->is_object())
        return;
    auto mesh = data->find("mesh");
    if (mesh == data->end() || !mesh->is_string())
        return;
    std::vector<json> docs;
    try {
        docs = parse_yaml_documents(mesh->get<std::string>(), file, limits);
    } catch (LoadError& e) {
        e.index = index;
        e.reason = "data.mesh: " + e.reason;
        throw;
    }
    *mesh = docs.empty() ? json(nullptr) : docs.front();
}

void add_object(std::vector<Document>& out, json object, const std::string& file, std::size_t index,
                const LoadLimits& limits) {
    if (object.is_null())
        return; // an empty document between separators
    if (object.is_object() && object.value("kind", "") == "List" && object.contains("items")) {
        const json& items = object["items"];
        if (!items.is_array())
            throw LoadError{file, index, true, "items of a List must be a list"};
        for (const auto& item : items)
            add_object(out, item, file, index, limits);
        return;
    }
    if (!object.is_object())
        throw LoadError{file, index, true,
                        std::string("the document is not an object but a ") + object.type_name()};
    convert_mesh_config(object, file, index, limits);
    out.push_back(Document{file, index, std::move(object)});
}

void load_text(std::vector<Document>& out, const std::string& text, const std::string& file,
               const LoadLimits& limits) {
    auto docs = parse_manifest_text(text, file, limits);
    for (std::size_t i = 0; i < docs.size(); ++i)
        add_object(out, std::move(docs[i]), file, i, limits);
}

} // namespace

std::string LoadError::to_string() const {
    std::string out = file;
    if (has_index)
        out += ": document " + std::to_string(index + 1);
    return out + ": " + reason;
}

std::vector<json> parse_yaml_documents(const std::string& text, const std::string& file,
                                       const LoadLimits& limits) {
    std::vector<YAML::Node> nodes;
    try {
        nodes = YAML::LoadAll(text);
    } catch (const YAML::Exception& e) {
        // Count the separators before the error line to name the document.
        std::size_t doc = 0;
        std::size_t line = 0;
        for (std::size_t pos = 0;
             pos < text.size() && line < static_cast<std::size_t>(std::max(e.mark.line, 0));) {
            const std::size_t next = text.find('\n', pos);
            if (text.compare(pos, 3, "---") == 0 && line > 0)
                ++doc;
            if (next == std::string::npos)
                break;
            pos = next + 1;
            ++line;
        }
        throw LoadError{file, doc, true,
                        "invalid YAML at line " + std::to_string(e.mark.line + 1) + ", column " +
                            std::to_string(e.mark.column + 1) + ": " + e.msg};
    }
    std::vector<json> out;
    out.reserve(nodes.size());
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        Converter converter{file, i, limits};
        out.push_back(converter.convert(nodes[i], 1));
    }
    return out;
}

std::vector<json> parse_manifest_text(const std::string& text, const std::string& file,
                                      const LoadLimits& limits) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && (text[first] == '{' || text[first] == '[')) {
        json value = json::parse(text, nullptr, false);
        if (value.is_discarded()) {
            // Parse again with exceptions only to get the position for the message.
            try {
                const json ignored = json::parse(text);
                (void)ignored;
            } catch (const json::parse_error& e) {
                throw LoadError{file, 0, true, std::string("invalid JSON: ") + e.what()};
            }
            throw LoadError{file, 0, true, "invalid JSON"};
        }
        if (depth_of(value, limits.max_depth) > limits.max_depth)
            throw LoadError{file, 0, true,
                            "document is nested deeper than " + std::to_string(limits.max_depth) +
                                " levels"};
        if (value.is_array())
            return value.get<std::vector<json>>();
        return {std::move(value)};
    }
    return parse_yaml_documents(text, file, limits);
}

std::string read_file(const std::string& path, std::size_t max_bytes) {
    std::string text;
    if (path == "-") {
        char buffer[65536];
        while (std::cin.read(buffer, sizeof buffer) || std::cin.gcount() > 0) {
            text.append(buffer, static_cast<std::size_t>(std::cin.gcount()));
            if (text.size() > max_bytes)
                throw LoadError{"<stdin>", 0, false,
                                "input is larger than " + std::to_string(max_bytes) + " bytes"};
        }
        return text;
    }
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec)
        throw LoadError{path, 0, false, "cannot read: " + ec.message()};
    if (size > max_bytes)
        throw LoadError{path, 0, false,
                        "file is larger than " + std::to_string(max_bytes) + " bytes"};
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw LoadError{path, 0, false, std::string("cannot open: ") + std::strerror(errno)};
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad())
        throw LoadError{path, 0, false, "read error"};
    return text;
}

std::vector<Document> load_manifests(const std::vector<std::string>& paths,
                                     const LoadLimits& limits) {
    std::vector<Document> out;
    for (const auto& path : paths) {
        if (path == "-") {
            load_text(out, read_file(path, limits.max_file_bytes), "<stdin>", limits);
            continue;
        }
        std::error_code ec;
        const auto status = fs::status(path, ec);
        if (ec || !fs::exists(status))
            throw LoadError{path, 0, false, "no such file or directory"};
        if (fs::is_directory(status)) {
            std::vector<fs::path> files;
            for (fs::recursive_directory_iterator
                     it(path, fs::directory_options::skip_permission_denied, ec),
                 end;
                 !ec && it != end; it.increment(ec)) {
                if (it->is_regular_file() && manifest_extension(it->path()))
                    files.push_back(it->path());
            }
            if (ec)
                throw LoadError{path, 0, false, "cannot list: " + ec.message()};
            std::sort(files.begin(), files.end());
            for (const auto& file : files)
                load_text(out, read_file(file.string(), limits.max_file_bytes), file.string(),
                          limits);
        } else {
            load_text(out, read_file(path, limits.max_file_bytes), path, limits);
        }
    }
    return out;
}

json load_mesh_config(const std::string& path, const LoadLimits& limits) {
    const std::string file = path == "-" ? "<stdin>" : path;
    auto docs = parse_manifest_text(read_file(path, limits.max_file_bytes), file, limits);
    for (std::size_t i = 0; i < docs.size(); ++i) {
        json& doc = docs[i];
        if (doc.is_null())
            continue;
        if (!doc.is_object())
            throw LoadError{file, i, true, "mesh config must be a map"};
        if (doc.value("kind", "") == "ConfigMap") {
            convert_mesh_config(doc, file, i, limits);
            const json* data = doc.contains("data") ? &doc["data"] : nullptr;
            if (!data || !data->is_object() || !data->contains("mesh"))
                throw LoadError{file, i, true, "ConfigMap has no data.mesh"};
            return (*data)["mesh"];
        }
        return doc;
    }
    return json::object();
}

} // namespace mtlsguard::input
