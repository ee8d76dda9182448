// mtls-mesh-gen: writes a synthetic Istio mesh as a JSON List or as multi-document YAML.
#include "tests/bench/synthetic_mesh.hpp"

#include <CLI/CLI.hpp>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace {

using nlohmann::json;

bool is_ascii_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_ascii_digit(char c) {
    return c >= '0' && c <= '9';
}

// Whether a string can be written unquoted and still read back as the same string by any YAML
// 1.1 or 1.2 parser. Deliberately narrow: a letter first (so never a number, timestamp, `*`
// alias or `.inf`), then only name characters, and not one of the YAML 1.1 boolean/null words.
bool plain_safe(std::string_view s) {
    if (s.empty() || !is_ascii_alpha(s.front()))
        return false;
    for (const char c : s) {
        if (!is_ascii_alpha(c) && !is_ascii_digit(c) && c != '.' && c != '_' && c != '/' &&
            c != '-')
            return false;
    }
    if (s.size() > 5)
        return true;
    std::string lower(s);
    for (char& c : lower) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    constexpr std::array<std::string_view, 9> reserved{"y",   "n",    "yes",   "no",  "on",
                                                       "off", "true", "false", "null"};
    for (const std::string_view word : reserved) {
        if (lower == word)
            return false;
    }
    return true;
}

// Multi-line text (the mesh config) reads better as a literal block; only used when the block
// reproduces the string exactly.
bool literal_block_safe(std::string_view s) {
    if (s.find('\n') == std::string_view::npos || s.front() == ' ' || s.front() == '\n')
        return false;
    if (s.size() >= 2 && s.substr(s.size() - 2) == "\n\n")
        return false;
    for (const char c : s) {
        if (c != '\n' && (c < ' ' || c > '~'))
            return false;
    }
    return true;
}

// A small JSON-to-YAML emitter in the layout kubectl uses (sequences at their key's indent).
class YamlWriter {
  public:
    explicit YamlWriter(std::string& out) : out_(out) {}

    void document(const json& value) {
        out_ += "---\n";
        if (value.is_object() && !value.empty()) {
            mapping(value, 0, false);
        } else if (value.is_array() && !value.empty()) {
            sequence(value, 0);
        } else {
            scalar(value, 0);
            out_ += '\n';
        }
    }

  private:
    void mapping(const json& object, std::size_t indent, bool first_inline) {
        bool first = true;
        for (const auto& [key, value] : object.items()) {
            if (!(first && first_inline))
                out_.append(indent, ' ');
            first = false;
            out_ += plain_safe(key) ? key : json(key).dump();
            out_ += ':';
            if (value.is_object() && !value.empty()) {
                out_ += '\n';
                mapping(value, indent + 2, false);
            } else if (value.is_array() && !value.empty()) {
                out_ += '\n';
                sequence(value, indent);
            } else {
                out_ += ' ';
                scalar(value, indent);
                out_ += '\n';
            }
        }
    }

    void sequence(const json& array, std::size_t indent) {
        for (const json& value : array) {
            out_.append(indent, ' ');
            out_ += '-';
            if (value.is_object() && !value.empty()) {
                out_ += ' ';
                mapping(value, indent + 2, true);
            } else if (value.is_array() && !value.empty()) {
                out_ += '\n';
                sequence(value, indent + 2);
            } else {
                out_ += ' ';
                scalar(value, indent);
                out_ += '\n';
            }
        }
    }

    // Writes a scalar or empty collection without the final newline.
    void scalar(const json& value, std::size_t indent) {
        if (value.is_object()) {
            out_ += "{}";
        } else if (value.is_array()) {
            out_ += "[]";
        } else if (value.is_string()) {
            const auto& s = value.get_ref<const std::string&>();
            if (plain_safe(s)) {
                out_ += s;
            } else if (literal_block_safe(s)) {
                literal_block(s, indent + 2);
            } else {
                out_ += value.dump(); // a JSON string is a valid YAML double-quoted scalar
            }
        } else if (value.is_number_float()) {
            // YAML 1.1 resolvers want a dot in a float ("1e+20" would read as a string).
            std::string text = value.dump();
            if (text.find_first_of(".n") == std::string::npos) {
                const std::size_t e = text.find_first_of("eE");
                text.insert(e == std::string::npos ? text.size() : e, ".0");
            }
            out_ += text;
        } else {
            out_ += value.dump(); // null, booleans, integers
        }
    }

    void literal_block(std::string_view s, std::size_t indent) {
        const bool keep_newline = s.back() == '\n';
        out_ += keep_newline ? "|" : "|-";
        if (keep_newline)
            s.remove_suffix(1);
        for (;;) {
            const std::size_t end = s.find('\n');
            const std::string_view line = s.substr(0, end);
            out_ += '\n';
            if (!line.empty()) {
                out_.append(indent, ' ');
                out_ += line;
            }
            if (end == std::string_view::npos)
                break;
            s.remove_prefix(end + 1);
        }
    }

    std::string& out_;
};

// Output with write errors surfaced as exceptions, so generation stops at a full disk. The file
// is opened at the first write, so that a rejected shape leaves an existing file alone, and an
// unfinished file is removed, so that a truncated mesh never passes for a complete one.
class Output {
  public:
    explicit Output(std::string path) : path_(std::move(path)) {}
    Output(const Output&) = delete;
    Output& operator=(const Output&) = delete;
    ~Output() {
        if (owned_ && file_ != nullptr) {
            std::fclose(file_);
            if (regular_)
                std::remove(path_.c_str());
        }
    }

    void write(std::string_view text) {
        if (file_ == nullptr)
            open();
        if (std::fwrite(text.data(), 1, text.size(), file_) != text.size())
            fail();
        bytes_ += text.size();
    }

    void close() {
        if (file_ == nullptr)
            open();
        const bool failed = std::fflush(file_) != 0 || std::ferror(file_) != 0;
        const int closed = owned_ ? std::fclose(file_) : 0;
        file_ = nullptr;
        if (failed || closed != 0)
            fail();
    }

    std::size_t bytes() const { return bytes_; }

  private:
    void open() {
        if (path_.empty() || path_ == "-") {
            path_ = "standard output";
            file_ = stdout;
        } else {
            file_ = std::fopen(path_.c_str(), "wb");
            if (file_ == nullptr)
                fail();
            owned_ = true;
            // Only a real file is ever removed, never a device or a pipe (/dev/stdout, a FIFO).
            std::error_code ignored;
            regular_ = std::filesystem::is_regular_file(path_, ignored);
        }
        // Large writes: the output is tens of megabytes.
        std::setvbuf(file_, nullptr, _IOFBF, std::size_t{1} << 20);
    }

    [[noreturn]] void fail() const {
        throw std::runtime_error(path_ + ": " + std::strerror(errno));
    }

    std::string path_;
    std::FILE* file_ = nullptr;
    bool owned_ = false;
    bool regular_ = false; // removed when unfinished
    std::size_t bytes_ = 0;
};

} // namespace

int main(int argc, char** argv) {
    mtlsguard::bench::MeshShape shape;
    std::string format = "json";
    std::string output;
    bool quiet = false;

    CLI::App app{
        "Writes a deterministic synthetic Istio mesh (Namespaces, Services, Pods, "
        "PeerAuthentications, DestinationRules, ServiceEntries, Sidecars, VirtualServices) "
        "for benchmarks."};
    app.add_option("--namespaces", shape.namespaces, "Namespaces, istio-system included")
        ->capture_default_str();
    app.add_option("--services", shape.services, "Services")->capture_default_str();
    app.add_option("--pods", shape.pods, "Pods")->capture_default_str();
    app.add_option("--destination-rules", shape.destination_rules, "DestinationRules")
        ->capture_default_str();
    app.add_option("--peer-authentications", shape.peer_authentications,
                   "PeerAuthentications, the mesh-wide one included")
        ->capture_default_str();
    app.add_option("--sidecar-fraction", shape.sidecar_fraction,
                   "Share of namespaces with sidecar injection")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    app.add_option("--ambient-fraction", shape.ambient_fraction,
                   "Share of namespaces in ambient mode (at most 1 - the sidecar fraction)")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    app.add_option("--sidecar-resource-fraction", shape.sidecar_resource_fraction,
                   "Share of injected namespaces with a namespace-wide Sidecar resource")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    app.add_option("--virtual-service-fraction", shape.virtual_service_fraction,
                   "Share of services with a VirtualService (DestinationRules with subsets get "
                   "one too)")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    app.add_option("--seed", shape.seed, "Random seed; same seed and shape, same mesh")
        ->capture_default_str();
    app.add_option("--format", format, "json (one v1 List) or yaml (--- separated documents)")
        ->check(CLI::IsMember({"json", "yaml"}))
        ->capture_default_str();
    app.add_option("-o,--output", output, "Output file (default: standard output)");
    app.add_flag("-q,--quiet", quiet, "Do not print the summary on standard error");
    CLI11_PARSE(app, argc, argv);

    const auto started = std::chrono::steady_clock::now();
    std::map<std::string, std::size_t> kinds;
    try {
        Output out(output);
        const bool yaml = format == "yaml";
        std::string buffer;
        bool first = true;
        // The List header goes out with the first item, once the shape has been accepted.
        constexpr std::string_view list_header = R"({"apiVersion":"v1","kind":"List","items":[)";
        mtlsguard::bench::generate_synthetic_mesh(shape, [&](json&& item) {
            ++kinds[item.value("kind", std::string())];
            buffer.clear();
            if (yaml) {
                YamlWriter(buffer).document(item);
            } else {
                if (first)
                    buffer += list_header;
                buffer += first ? "\n" : ",\n";
                buffer += item.dump();
            }
            first = false;
            out.write(buffer);
        });
        if (!yaml) {
            if (first)
                out.write(list_header);
            out.write("\n],\"metadata\":{\"resourceVersion\":\"\"}}\n");
        }
        out.close();

        if (!quiet) {
            const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
            std::size_t total = 0;
            std::string summary;
            for (const auto& [kind, count] : kinds) {
                summary += ' ' + kind + '=' + std::to_string(count);
                total += count;
            }
            std::fprintf(stderr, "mtls-mesh-gen: %zu objects:%s; %zu bytes in %.2f s\n", total,
                         summary.c_str(), out.bytes(), took.count());
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mtls-mesh-gen: %s\n", e.what());
        return 1;
    }
    return 0;
}
