// Counts a listener's open connections against --max-connections, and finds them again to drain
// them on SIGTERM.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

namespace mtlsguard::https {

// An open connection as the drain sees it. begin_drain() is called from any thread; the connection
// moves to its own loop, closes at once when idle, and otherwise closes after its current
// response.
class Connection {
  public:
    virtual ~Connection() = default;
    virtual void begin_drain() = 0;
};

class ConnectionTracker {
  public:
    explicit ConnectionTracker(std::size_t limit) : limit_(limit) {}
    ConnectionTracker(const ConnectionTracker&) = delete;
    ConnectionTracker& operator=(const ConnectionTracker&) = delete;

    // One open connection; releases its place when destroyed. Move it along as the connection
    // changes hands (TLS detection, then the HTTP session) and attach the current owner.
    class Slot {
      public:
        Slot(Slot&& other) noexcept
            : tracker_(std::exchange(other.tracker_, nullptr)), id_(other.id_) {}
        Slot& operator=(Slot&&) = delete;
        Slot(const Slot&) = delete;
        Slot& operator=(const Slot&) = delete;
        ~Slot() {
            if (tracker_)
                tracker_->release(id_);
        }
        void attach(const std::weak_ptr<Connection>& owner) {
            if (tracker_)
                tracker_->attach(id_, owner);
        }

      private:
        friend class ConnectionTracker;
        Slot(ConnectionTracker* tracker, std::uint64_t id) : tracker_(tracker), id_(id) {}
        ConnectionTracker* tracker_;
        std::uint64_t id_;
    };

    // A place for a new connection, or nothing when `limit` are open.
    std::optional<Slot> try_acquire();

    // Asks every open connection to finish; connections attached later are asked at once.
    void drain_all();

    // Waits until no connection is open; false when the deadline came first.
    bool wait_until_idle(std::chrono::steady_clock::time_point deadline);

    std::size_t open_connections() const;

  private:
    void attach(std::uint64_t id, const std::weak_ptr<Connection>& owner);
    void release(std::uint64_t id);

    const std::size_t limit_;
    mutable std::mutex mutex_;
    std::condition_variable idle_;
    std::unordered_map<std::uint64_t, std::weak_ptr<Connection>> open_;
    std::uint64_t next_id_ = 0;
    bool draining_ = false;
};

} // namespace mtlsguard::https
