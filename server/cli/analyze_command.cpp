// `mtls-guard analyze` and `mtls-guard matrix`: the engine over a set of manifests.
#include "analysis/analyze.hpp"
#include "analysis/report/findings_output.hpp"
#include "analysis/report/sarif.hpp"
#include "analysis/version.hpp"
#include "server/cli/commands.hpp"

#include <filesystem>
#include <iostream>
#include <unordered_map>

namespace mtlsguard::cli {

void print_notices(const std::vector<std::string>& notices) {
    for (const auto& n : notices)
        std::cerr << "mtls-guard: " << n << "\n";
}

namespace {

// The same document as report::findings_document(...).dump(2), written finding by finding so that
// a large result is never held as one JSON tree.
void write_findings_json(std::ostream& out, const std::vector<conflict::Finding>& findings) {
    int errors = 0, warnings = 0, infos = 0;
    out << "{\n  \"findings\": [";
    for (std::size_t i = 0; i < findings.size(); ++i) {
        const auto& f = findings[i];
        (f.severity == conflict::Severity::Error     ? errors
         : f.severity == conflict::Severity::Warning ? warnings
                                                     : infos)++;
        std::string text =
            report::to_json(f).dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
        std::string indented = "    ";
        for (char c : text) {
            indented += c;
            if (c == '\n')
                indented += "    ";
        }
        out << (i ? ",\n" : "\n") << indented;
    }
    out << (findings.empty() ? "],\n" : "\n  ],\n");
    const nlohmann::json summary = {{"errors", errors}, {"warnings", warnings}, {"infos", infos}};
    out << "  \"summary\": " << summary.dump() << "\n}\n";
}

// Where each object was read from, by kind, namespace (as written, maybe empty) and name.
class ObjectLocations {
  public:
    void note(const input::Document& doc) {
        if (doc.file == "<stdin>" || !doc.object.is_object())
            return;
        const auto& meta = doc.object.value("metadata", nlohmann::json::object());
        if (!meta.is_object())
            return;
        std::string uri = std::filesystem::path(doc.file).lexically_normal().generic_string();
        if (std::filesystem::path(uri).is_absolute())
            uri = "file://" + uri;
        locations_.emplace(
            key(doc.object.value("kind", ""), meta.value("namespace", ""), meta.value("name", "")),
            report::SourceLocation{std::move(uri), doc.line});
    }
    std::optional<report::SourceLocation> find(const model::ObjectRef& ref) const {
        auto it = locations_.find(key(ref.kind, ref.namespace_name, ref.name));
        if (it == locations_.end()) // a namespaced object written without its namespace
            it = locations_.find(key(ref.kind, "", ref.name));
        if (it == locations_.end())
            return std::nullopt;
        return it->second;
    }

  private:
    static std::string key(const std::string& kind, const std::string& ns,
                           const std::string& name) {
        return kind + '\n' + ns + '\n' + name;
    }
    std::unordered_map<std::string, report::SourceLocation> locations_;
};

} // namespace

std::optional<input::LoadedSnapshot> load(const input::SnapshotSource& source) {
    try {
        auto loaded = input::load_snapshot(source);
        print_notices(loaded.notices);
        return loaded;
    } catch (const input::LoadError& e) {
        std::cerr << "mtls-guard: " << e.to_string() << "\n";
        return std::nullopt;
    }
}

int run_analyze(const AnalyzeOptions& options) {
    ObjectLocations locations;
    input::SnapshotSource source = options.source;
    if (options.output == Output::Sarif)
        source.on_document = [&](const input::Document& doc) { locations.note(doc); };
    const auto loaded = load(source);
    if (!loaded)
        return 2;
    const auto result = analyze(*loaded->snapshot);
    if (!result.internal_error.empty()) {
        std::cerr << "mtls-guard: internal error: " << result.internal_error << "\n";
        return 2;
    }
    if (options.output == Output::Json) {
        write_findings_json(std::cout, result.findings);
    } else if (options.output == Output::Sarif) {
        const auto locate = [&](const model::ObjectRef& ref) { return locations.find(ref); };
        std::cout << report::sarif_document(result.findings, locate, version())
                         .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                  << "\n";
    } else if (result.findings.empty()) {
        std::cout << "No mTLS conflicts found.\n";
    } else {
        std::cout << report::findings_text(result.findings);
    }
    if (options.fail_on == "never")
        return 0;
    for (const auto& f : result.findings) {
        if (f.severity == conflict::Severity::Error)
            return 1;
        if (options.fail_on == "warning" && f.severity == conflict::Severity::Warning)
            return 1;
    }
    return 0;
}

int run_matrix(const MatrixOptions& options) {
    const auto loaded = load(options.source);
    if (!loaded)
        return 2;
    const auto result = matrix(*loaded->snapshot, options.namespace_filter);
    if (!result.internal_error.empty()) {
        std::cerr << "mtls-guard: internal error: " << result.internal_error << "\n";
        return 2;
    }
    if (options.output == Output::Json)
        std::cout << matrix_json(result.rows)
                         .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                  << "\n";
    else
        std::cout << matrix_text(result.rows);
    return 0;
}

} // namespace mtlsguard::cli
