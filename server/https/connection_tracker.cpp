// Counts a listener's open connections against --max-connections, and finds them again to drain
// them on SIGTERM.
#include "server/https/connection_tracker.hpp"

#include <vector>

namespace mtlsguard::https {

std::optional<ConnectionTracker::Slot> ConnectionTracker::try_acquire() {
    std::lock_guard lock(mutex_);
    if (open_.size() >= limit_)
        return std::nullopt;
    const std::uint64_t id = next_id_++;
    open_.emplace(id, std::weak_ptr<Connection>());
    return Slot(this, id);
}

void ConnectionTracker::attach(std::uint64_t id, const std::weak_ptr<Connection>& owner) {
    bool drain_now = false;
    {
        std::lock_guard lock(mutex_);
        const auto it = open_.find(id);
        if (it == open_.end())
            return;
        it->second = owner;
        drain_now = draining_;
    }
    // Outside the lock: begin_drain posts to the connection's loop and must not call back in.
    if (drain_now)
        if (auto connection = owner.lock())
            connection->begin_drain();
}

void ConnectionTracker::release(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    open_.erase(id);
    if (open_.empty())
        idle_.notify_all();
}

void ConnectionTracker::drain_all() {
    std::vector<std::shared_ptr<Connection>> connections;
    {
        std::lock_guard lock(mutex_);
        draining_ = true;
        connections.reserve(open_.size());
        for (const auto& [id, owner] : open_)
            if (auto connection = owner.lock())
                connections.push_back(std::move(connection));
    }
    for (const auto& connection : connections)
        connection->begin_drain();
}

bool ConnectionTracker::wait_until_idle(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    return idle_.wait_until(lock, deadline, [&] { return open_.empty(); });
}

std::size_t ConnectionTracker::open_connections() const {
    std::lock_guard lock(mutex_);
    return open_.size();
}

} // namespace mtlsguard::https
