// The snapshot and admission settings the webhook decides with, published to the deciding threads,
// and their reload from manifest files (serve --snapshot) when the files change.
#pragma once

#include "analysis/admission/admission.hpp"
#include "analysis/model/snapshot.hpp"
#include "server/observability/metrics.hpp"
#include "server/snapshot/shared_slot.hpp"
#include "server/snapshot/snapshot_files.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace mtlsguard::https {

// Readers take a reference-counted copy of the pointer (a lock held for that copy only) and never
// wait for a reload; a snapshot lives as long as the last request deciding with it.
class SnapshotStore {
  public:
    std::shared_ptr<const model::Snapshot> snapshot() const { return snapshot_.load(); }
    std::shared_ptr<const admission::AdmissionSettings> settings() const {
        return settings_.load();
    }
    bool ready() const { return snapshot() != nullptr; }

    void publish(std::shared_ptr<const model::Snapshot> snapshot) {
        snapshot_.store(std::move(snapshot));
    }
    void publish(std::shared_ptr<const admission::AdmissionSettings> settings) {
        settings_.store(std::move(settings));
    }

  private:
    SharedSlot<std::shared_ptr<const model::Snapshot>> snapshot_;
    SharedSlot<std::shared_ptr<const admission::AdmissionSettings>> settings_;
};

// Polls the files of a SnapshotSource: size and modification time of every manifest (directories
// read recursively, as the loader does), then a content hash when those moved, and reloads only
// when the content changed. A load that fails keeps the last good snapshot, is logged and counted,
// and adds a warning to every admission response until a load succeeds. Not thread-safe: one
// polling thread calls poll().
class FileSnapshotReloader {
  public:
    FileSnapshotReloader(input::SnapshotSource source, admission::Enforcement default_mode,
                         SnapshotStore& store, observability::Metrics& metrics);

    // Looks at the files and loads them when they changed (the first call always loads).
    // Returns true when a new snapshot was published.
    bool poll();

  private:
    struct FileStamp {
        std::string path;
        std::uintmax_t size = 0;
        std::filesystem::file_time_type modified;
        std::string error; // set when the path cannot be read: part of what is compared
        friend bool operator==(const FileStamp&, const FileStamp&) = default;
    };
    std::vector<FileStamp> stamp_files() const;
    static std::uint64_t content_hash(const std::vector<FileStamp>& stamps);

    input::SnapshotSource source_;
    admission::Enforcement default_mode_;
    SnapshotStore& store_;
    observability::Metrics& metrics_;
    bool attempted_ = false;
    std::vector<FileStamp> stamps_; // as of the last look
    std::uint64_t hash_ = 0;        // content of the last load attempt, good or bad
};

} // namespace mtlsguard::https
