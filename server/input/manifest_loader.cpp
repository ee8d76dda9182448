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

bool looks_like_json(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    return first != std::string::npos && (text[first] == '{' || text[first] == '[');
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

using Sink = std::function<void(Document&&)>;

// One decoded document (or List item): checks it is an object, flattens Lists, converts mesh YAML.
void deliver(json object, const std::string& file, std::size_t index,
             std::optional<std::size_t> item, const LoadLimits& limits, const Sink& sink) {
    if (object.is_null())
        return; // an empty document between separators
    if (object.is_object() && object.contains("items") &&
        object.value("kind", "").ends_with("List")) {
        json& items = object["items"];
        if (!items.is_array())
            throw LoadError{file, index, true, "items of a List must be a list", item};
        for (std::size_t i = 0; i < items.size(); ++i)
            deliver(std::move(items[i]), file, index, i, limits, sink);
        return;
    }
    if (!object.is_object())
        throw LoadError{file, index, true,
                        std::string("the document is not an object but a ") + object.type_name(),
                        item};
    convert_mesh_config(object, file, index, limits);
    sink(Document{file, index, item, std::move(object)});
}

// Builds a DOM from SAX events; the streaming parser keeps one for the envelope and one per item.
struct DomBuilder {
    json root;
    std::vector<json*> stack;
    json* element = nullptr;

    void reset() {
        root = json();
        stack.clear();
        element = nullptr;
    }
    json* value(json&& v) {
        if (stack.empty()) {
            root = std::move(v);
            return &root;
        }
        if (stack.back()->is_array()) {
            stack.back()->push_back(std::move(v));
            return &stack.back()->back();
        }
        *element = std::move(v);
        return element;
    }
    void open(json&& container) { stack.push_back(value(std::move(container))); }
    void key(const std::string& k) { element = &(*stack.back())[k]; }
    void close() { stack.pop_back(); }
};

// Parses a JSON document and hands over, one by one, the elements of a top-level array or of the
// top-level object's `items` array (a List), so that only one item is ever built at a time.
class StreamingJson : public nlohmann::json_sax<json> {
  public:
    StreamingJson(std::size_t max_depth, std::function<void(json&&, std::size_t)> emit)
        : max_depth_(max_depth), emit_(std::move(emit)) {}

    bool too_deep = false;
    std::string error;
    DomBuilder envelope;

    bool null() override { return scalar(nullptr); }
    bool boolean(bool v) override { return scalar(v); }
    bool number_integer(number_integer_t v) override { return scalar(v); }
    bool number_unsigned(number_unsigned_t v) override { return scalar(v); }
    bool number_float(number_float_t v, const string_t&) override { return scalar(v); }
    bool string(string_t& v) override { return scalar(std::move(v)); }
    bool binary(binary_t& v) override { return scalar(json::binary(std::move(v))); }
    bool start_object(std::size_t) override { return open(json::object()); }
    bool start_array(std::size_t) override {
        // The array whose elements are streamed: the top level, or the top-level `items`.
        const bool stream = !in_item_ && ((depth_ == 0) || (depth_ == 1 && top_key_ == "items"));
        if (!open(json::array()))
            return false;
        if (stream)
            streamed_depth_ = depth_;
        return true;
    }
    bool key(string_t& k) override {
        if (depth_ == 1 && !in_item_)
            top_key_ = k;
        target().key(k);
        return true;
    }
    bool end_object() override { return close(); }
    bool end_array() override {
        if (!in_item_ && depth_ == streamed_depth_)
            streamed_depth_ = 0;
        return close();
    }
    bool parse_error(std::size_t position, const std::string&,
                     const nlohmann::detail::exception& e) override {
        error = "invalid JSON at byte " + std::to_string(position) + ": " + e.what();
        return false;
    }

  private:
    DomBuilder& target() { return in_item_ ? item_ : envelope; }
    bool starts_item() const {
        return !in_item_ && streamed_depth_ != 0 && depth_ == streamed_depth_;
    }

    bool scalar(json v) {
        if (starts_item()) {
            emit_(std::move(v), next_item_++);
            return true;
        }
        target().value(std::move(v));
        return true;
    }
    bool open(json container) {
        if (++depth_ > max_depth_) {
            too_deep = true;
            return false;
        }
        if (depth_ - 1 == streamed_depth_ && streamed_depth_ != 0 && !in_item_) {
            in_item_ = true;
            item_.reset();
        }
        target().open(std::move(container));
        return true;
    }
    bool close() {
        target().close();
        --depth_;
        if (in_item_ && depth_ == streamed_depth_) {
            in_item_ = false;
            emit_(std::move(item_.root), next_item_++);
            item_.reset();
        }
        return true;
    }

    std::size_t max_depth_;
    std::function<void(json&&, std::size_t)> emit_;
    DomBuilder item_;
    std::size_t depth_ = 0;
    std::size_t streamed_depth_ = 0; // depth of the streamed array while inside it, else 0
    bool in_item_ = false;
    std::string top_key_;
    std::size_t next_item_ = 0;
};

template <typename Input>
void stream_json(Input&& input, const std::string& file, const LoadLimits& limits,
                 const Sink& sink) {
    StreamingJson parser(limits.max_depth, [&](json&& item, std::size_t position) {
        deliver(std::move(item), file, 0, position, limits, sink);
    });
    const bool ok = json::sax_parse(std::forward<Input>(input), &parser);
    if (!ok) {
        if (parser.too_deep)
            throw LoadError{file, 0, true,
                            "document is nested deeper than " + std::to_string(limits.max_depth) +
                                " levels"};
        throw LoadError{file, 0, true,
                        parser.error.empty() ? std::string("invalid JSON") : parser.error};
    }
    json& envelope = parser.envelope.root;
    if (envelope.is_array())
        return; // a top-level array: every element was delivered
    if (envelope.is_object() && envelope.contains("items")) {
        if (!envelope.value("kind", "").ends_with("List"))
            throw LoadError{file, 0, true,
                            "a top-level object with items must be a List (kind ...List)"};
        return;
    }
    deliver(std::move(envelope), file, 0, std::nullopt, limits, sink);
}

// Splits multi-document YAML at `---` lines, so each document is parsed and dropped on its own.
struct YamlChunk {
    std::size_t first_line = 0; // 0-based line of the chunk in the file
    std::string_view text;
};

std::vector<YamlChunk> split_yaml(const std::string& text) {
    std::vector<YamlChunk> chunks;
    std::size_t chunk_start = 0, chunk_line = 0, line = 0;
    bool leading = true; // before the first marker: counts only if it has content
    auto has_content = [](std::string_view t) {
        std::size_t pos = 0;
        while (pos < t.size()) {
            const auto end = t.find('\n', pos);
            const auto l =
                t.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
            const auto first = l.find_first_not_of(" \t\r");
            if (first != std::string_view::npos && l[first] != '#' && l[first] != '%')
                return true;
            if (end == std::string_view::npos)
                break;
            pos = end + 1;
        }
        return false;
    };
    for (std::size_t pos = 0; pos <= text.size();) {
        const auto end = text.find('\n', pos);
        const bool marker =
            text.compare(pos, 3, "---") == 0 &&
            (pos + 3 >= text.size() || text[pos + 3] == '\n' || text[pos + 3] == ' ' ||
             text[pos + 3] == '\t' || text[pos + 3] == '\r');
        if (marker && pos > chunk_start) {
            const std::string_view chunk(text.data() + chunk_start, pos - chunk_start);
            if (!leading || has_content(chunk))
                chunks.push_back({chunk_line, chunk});
        }
        if (marker) {
            chunk_start = pos;
            chunk_line = line;
            leading = false;
        }
        if (end == std::string::npos)
            break;
        pos = end + 1;
        ++line;
    }
    const std::string_view last(text.data() + chunk_start, text.size() - chunk_start);
    if (!leading || has_content(last))
        chunks.push_back({chunk_line, last});
    return chunks;
}

json yaml_chunk_to_json(const YamlChunk& chunk, const std::string& file, std::size_t index,
                        const LoadLimits& limits) {
    std::vector<YAML::Node> nodes;
    try {
        nodes = YAML::LoadAll(std::string(chunk.text));
    } catch (const YAML::Exception& e) {
        throw LoadError{file, index, true,
                        "invalid YAML at line " +
                            std::to_string(chunk.first_line +
                                           static_cast<std::size_t>(std::max(e.mark.line, 0)) + 1) +
                            ", column " + std::to_string(e.mark.column + 1) + ": " + e.msg};
    }
    if (nodes.empty())
        return nullptr;
    if (nodes.size() > 1)
        throw LoadError{file, index, true, "unexpected document marker inside a document"};
    Converter converter{file, index, limits};
    return converter.convert(nodes.front(), 1);
}

void stream_text(const std::string& text, const std::string& file, const LoadLimits& limits,
                 const Sink& sink) {
    if (looks_like_json(text)) {
        stream_json(text, file, limits, sink);
        return;
    }
    const auto chunks = split_yaml(text);
    for (std::size_t i = 0; i < chunks.size(); ++i)
        deliver(yaml_chunk_to_json(chunks[i], file, i, limits), file, i, std::nullopt, limits,
                sink);
}

} // namespace

std::string LoadError::to_string() const {
    std::string out = file;
    if (has_index)
        out += ": document " + std::to_string(index + 1);
    if (item)
        out += ", item " + std::to_string(*item + 1);
    return out + ": " + reason;
}

std::vector<json> parse_yaml_documents(const std::string& text, const std::string& file,
                                       const LoadLimits& limits) {
    std::vector<json> out;
    const auto chunks = split_yaml(text);
    out.reserve(chunks.size());
    for (std::size_t i = 0; i < chunks.size(); ++i)
        out.push_back(yaml_chunk_to_json(chunks[i], file, i, limits));
    return out;
}

std::vector<json> parse_manifest_text(const std::string& text, const std::string& file,
                                      const LoadLimits& limits) {
    if (!looks_like_json(text))
        return parse_yaml_documents(text, file, limits);
    std::vector<json> out;
    StreamingJson parser(limits.max_depth,
                         [&](json&& item, std::size_t) { out.push_back(std::move(item)); });
    if (!json::sax_parse(text, &parser)) {
        if (parser.too_deep)
            throw LoadError{file, 0, true,
                            "document is nested deeper than " + std::to_string(limits.max_depth) +
                                " levels"};
        throw LoadError{file, 0, true,
                        parser.error.empty() ? std::string("invalid JSON") : parser.error};
    }
    json& envelope = parser.envelope.root;
    if (envelope.is_object() && envelope.contains("items")) {
        // Give the List back whole: callers of this function flatten it themselves.
        envelope["items"] = std::move(out);
        return {std::move(envelope)};
    }
    if (envelope.is_array())
        return out;
    return {std::move(envelope)};
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

namespace {

// A JSON file is parsed straight from the stream (a 100 MB List never sits in memory as text);
// YAML is read whole and split into documents.
void stream_file(const std::string& path, const LoadLimits& limits, const Sink& sink) {
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec)
        throw LoadError{path, 0, false, "cannot read: " + ec.message()};
    if (size > limits.max_file_bytes)
        throw LoadError{path, 0, false,
                        "file is larger than " + std::to_string(limits.max_file_bytes) + " bytes"};
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw LoadError{path, 0, false, std::string("cannot open: ") + std::strerror(errno)};
    in >> std::ws;
    const int first = in.peek();
    if (first == '{' || first == '[') {
        stream_json(in, path, limits, sink);
        if (in.bad())
            throw LoadError{path, 0, false, "read error"};
        return;
    }
    stream_text(read_file(path, limits.max_file_bytes), path, limits, sink);
}

} // namespace

void for_each_manifest(const std::vector<std::string>& paths, const LoadLimits& limits,
                       const Sink& sink) {
    for (const auto& path : paths) {
        if (path == "-") {
            stream_text(read_file(path, limits.max_file_bytes), "<stdin>", limits, sink);
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
                stream_file(file.string(), limits, sink);
        } else {
            stream_file(path, limits, sink);
        }
    }
}

std::vector<Document> load_manifests(const std::vector<std::string>& paths,
                                     const LoadLimits& limits) {
    std::vector<Document> out;
    for_each_manifest(paths, limits, [&](Document&& doc) { out.push_back(std::move(doc)); });
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
