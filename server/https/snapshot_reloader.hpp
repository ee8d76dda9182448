// The snapshot and admission settings the webhook decides with, published without locks, and their
// reload from manifest files (serve --snapshot) when the files change.
#pragma once

#include "analysis/admission/admission.hpp"
#include "analysis/model/snapshot.hpp"
#include "server/input/snapshot_files.hpp"
#include "server/observability/metrics.hpp"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace mtlsguard::https {

// Readers take a reference-counted copy of the pointer and never wait for a reload; a snapshot
// lives as long as the last request deciding with it.
class SnapshotStore {
  public:
    std::shared_ptr<const model::Snapshot> snapshot() const noexcept {
        return snapshot_.load(std::memory_order_acquire);
    }
    std::shared_ptr<const admission::AdmissionSettings> settings() const noexcept {
        return settings_.load(std::memory_order_acquire);
    }
    bool ready() const noexcept { return snapshot() != nullptr; }

    void publish(std::shared_ptr<const model::Snapshot> snapshot) noexcept {
        snapshot_.store(std::move(snapshot), std::memory_order_release);
    }
    void publish(std::shared_ptr<const admission::AdmissionSettings> settings) noexcept {
        settings_.store(std::move(settings), std::memory_order_release);
    }

  private:
    std::atomic<std::shared_ptr<const model::Snapshot>> snapshot_;
    std::atomic<std::shared_ptr<const admission::AdmissionSettings>> settings_;
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
