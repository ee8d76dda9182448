// Periodic background work of serve (snapshot and certificate polls) on one thread of its own: a
// reload of a large mesh takes seconds and must not hold up an I/O thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>

namespace mtlsguard::https {

class Poller {
  public:
    Poller() = default;
    ~Poller() { stop(); }
    Poller(const Poller&) = delete;
    Poller& operator=(const Poller&) = delete;

    // Runs `task` every `interval`, the first time at once. May be called before or after start().
    void add(std::string name, std::chrono::milliseconds interval, std::function<void()> task);

    void start();
    // Waits for a task in progress to finish, then joins.
    void stop();

  private:
    struct Task {
        std::string name;
        std::chrono::milliseconds interval;
        std::function<void()> run;
        std::chrono::steady_clock::time_point due;
    };
    void loop();

    std::mutex mutex_;
    std::condition_variable wake_;
    std::list<Task> tasks_; // a list: running tasks stay valid while others are added
    bool stopping_ = false;
    std::thread thread_;
};

} // namespace mtlsguard::https
