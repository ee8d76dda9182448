// The snapshot and admission settings the webhook decides with, published to the deciding threads,
// and their reload from manifest files (serve --snapshot) when the files change.
#include "server/snapshot/snapshot_reloader.hpp"

#include "analysis/analyze.hpp"
#include "analysis/report/messages.hpp"
#include "server/observability/logging.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <fstream>

namespace mtlsguard::https {
namespace fs = std::filesystem;

namespace {

bool manifest_extension(const fs::path& path) {
    const auto ext = path.extension().string();
    return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

constexpr std::uint64_t fnv_offset = 14695981039346656037ULL;
constexpr std::uint64_t fnv_prime = 1099511628211ULL;

void hash_bytes(std::uint64_t& hash, const char* data, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i) {
        hash ^= static_cast<unsigned char>(data[i]);
        hash *= fnv_prime;
    }
}

} // namespace

FileSnapshotReloader::FileSnapshotReloader(input::SnapshotSource source,
                                           admission::Enforcement default_mode,
                                           SnapshotStore& store, observability::Metrics& metrics)
    : source_(std::move(source)), default_mode_(default_mode), store_(store), metrics_(metrics) {
    auto settings = std::make_shared<admission::AdmissionSettings>();
    settings->default_mode = default_mode_;
    store_.publish(std::shared_ptr<const admission::AdmissionSettings>(std::move(settings)));
}

std::vector<FileSnapshotReloader::FileStamp> FileSnapshotReloader::stamp_files() const {
    std::vector<FileStamp> stamps;
    auto stamp = [&](const fs::path& path) {
        FileStamp s;
        s.path = path.string();
        std::error_code ec;
        // Both follow symlinks: a kubelet-style swap of `..data` changes what they point at.
        s.size = fs::file_size(path, ec);
        if (!ec)
            s.modified = fs::last_write_time(path, ec);
        if (ec)
            s.error = ec.message();
        stamps.push_back(std::move(s));
    };
    std::vector<std::string> roots = source_.paths;
    if (source_.mesh_config_file)
        roots.push_back(*source_.mesh_config_file);
    for (const auto& root : roots) {
        std::error_code ec;
        if (!fs::is_directory(root, ec)) {
            stamp(root);
            continue;
        }
        std::vector<fs::path> files;
        for (fs::recursive_directory_iterator
                 it(root, fs::directory_options::skip_permission_denied, ec),
             end;
             !ec && it != end; it.increment(ec)) {
            std::error_code file_ec;
            if (it->is_regular_file(file_ec) && manifest_extension(it->path()))
                files.push_back(it->path());
        }
        if (ec) {
            stamps.push_back(FileStamp{root, 0, {}, "cannot list: " + ec.message()});
            continue;
        }
        std::sort(files.begin(), files.end());
        for (const auto& file : files)
            stamp(file);
    }
    return stamps;
}

std::uint64_t FileSnapshotReloader::content_hash(const std::vector<FileStamp>& stamps) {
    std::uint64_t hash = fnv_offset;
    std::array<char, 65536> chunk{};
    for (const auto& s : stamps) {
        hash_bytes(hash, s.path.data(), s.path.size() + 1);
        hash_bytes(hash, s.error.data(), s.error.size() + 1);
        std::ifstream in(s.path, std::ios::binary);
        while (in) {
            in.read(chunk.data(), chunk.size());
            hash_bytes(hash, chunk.data(), static_cast<std::size_t>(in.gcount()));
        }
    }
    return hash;
}

bool FileSnapshotReloader::poll() {
    auto& log = observability::component_logger("snapshot");
    std::vector<FileStamp> stamps = stamp_files();
    if (attempted_ && stamps == stamps_)
        return false;
    stamps_ = std::move(stamps);
    // Sizes and times moved (or a first look): only a change of content is worth a reload.
    const std::uint64_t hash = content_hash(stamps_);
    if (attempted_ && hash == hash_)
        return false;
    const bool first = !attempted_;
    attempted_ = true;
    hash_ = hash;

    const auto started = std::chrono::steady_clock::now();
    std::string error;
    input::LoadedSnapshot loaded;
    try {
        loaded = input::load_snapshot(source_);
    } catch (const input::LoadError& e) {
        error = e.to_string();
    } catch (const std::exception& e) {
        error = e.what();
    }
    if (!error.empty()) {
        metrics_.record_snapshot_reload(false);
        const bool have_snapshot = store_.ready();
        observability::log_event(log, spdlog::level::err,
                                 have_snapshot ? "snapshot reload failed; keeping the last good one"
                                               : "snapshot load failed; not ready until the "
                                                 "files are fixed",
                                 {{"error", error}});
        if (have_snapshot) {
            // Admission users should learn that the verdict may rest on stale data.
            auto settings = std::make_shared<admission::AdmissionSettings>();
            settings->default_mode = default_mode_;
            settings->extra_warnings.push_back(
                "[mtls-guard] the cluster snapshot could not be reloaded; this decision uses the "
                "last good one (see the mtls-guard log)");
            store_.publish(
                std::shared_ptr<const admission::AdmissionSettings>(std::move(settings)));
        }
        return false;
    }

    const auto loaded_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - started)
                               .count();
    for (const auto& notice : loaded.notices)
        observability::log_event(log, spdlog::level::info, "notice", {{"notice", notice}});
    auto settings = std::make_shared<admission::AdmissionSettings>();
    settings->default_mode = default_mode_;
    store_.publish(std::shared_ptr<const admission::AdmissionSettings>(std::move(settings)));
    store_.publish(loaded.snapshot);
    metrics_.record_snapshot_reload(true);
    metrics_.set_snapshot(*loaded.snapshot, std::chrono::system_clock::now());

    // The whole snapshot's findings, for the metric that makes warn mode visible.
    // Only counted (the findings metric, the log line): three names per finding are enough.
    const AnalysisResult analysis = analyze(*loaded.snapshot, report::names_shown);
    metrics_.set_findings(analysis.findings);
    std::int64_t errors = 0, warnings = 0, infos = 0;
    for (const auto& f : analysis.findings) {
        if (f.severity == conflict::Severity::Error)
            ++errors;
        else if (f.severity == conflict::Severity::Warning)
            ++warnings;
        else
            ++infos;
    }
    if (!analysis.internal_error.empty())
        observability::log_event(log, spdlog::level::err, "snapshot analysis failed",
                                 {{"error", analysis.internal_error}});
    observability::log_event(
        log, spdlog::level::info, first ? "snapshot loaded" : "snapshot reloaded",
        {{"objects", static_cast<std::int64_t>(loaded.snapshot->object_count())},
         {"files", static_cast<std::int64_t>(stamps_.size())},
         {"load_ms", static_cast<std::int64_t>(loaded_ms)},
         {"errors", errors},
         {"warnings", warnings},
         {"infos", infos}});
    return true;
}

} // namespace mtlsguard::https
