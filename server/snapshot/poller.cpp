// Periodic background work of serve (snapshot and certificate polls) on one thread of its own: a
// reload of a large mesh takes seconds and must not hold up an I/O thread.
#include "server/snapshot/poller.hpp"

#include "server/observability/logging.hpp"

#include <vector>

namespace mtlsguard::https {

void Poller::add(std::string name, std::chrono::milliseconds interval, std::function<void()> task) {
    {
        std::lock_guard lock(mutex_);
        tasks_.push_back(
            Task{std::move(name), interval, std::move(task), std::chrono::steady_clock::now()});
    }
    wake_.notify_all();
}

void Poller::start() {
    std::lock_guard lock(mutex_);
    if (!thread_.joinable())
        thread_ = std::thread([this] { loop(); });
}

void Poller::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable())
        thread_.join();
}

void Poller::loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        const auto now = std::chrono::steady_clock::now();
        std::vector<Task*> due;
        auto next = now + std::chrono::hours(1);
        for (auto& task : tasks_) {
            if (task.due <= now) {
                due.push_back(&task);
                task.due = now + task.interval;
            }
            next = std::min(next, task.due);
        }
        if (due.empty()) {
            wake_.wait_until(lock, next);
            continue;
        }
        lock.unlock();
        for (Task* task : due) {
            try {
                task->run();
            } catch (const std::exception& e) {
                observability::log_event(observability::component_logger("serve"),
                                         spdlog::level::err, "background task failed",
                                         {{"task", task->name}, {"error", e.what()}});
            }
        }
        lock.lock();
    }
}

} // namespace mtlsguard::https
