// The I/O threads' event loops: one io_context per thread, and connections dealt out to them in
// turn, so that a connection's handlers all run on one thread.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <memory>
#include <vector>

namespace mtlsguard::https {

// One shared io_context run by N threads hands each ready socket from the thread in epoll_wait to
// another through a mutex and a condition variable, and wakes sleeping threads to do so; on a
// loaded 2-core machine those hand-offs and context switches cost more than the HTTP work. With a
// loop per thread (nginx's model: a worker per core, each with its own epoll) a connection's
// events are read and handled by the same thread, and the loops share nothing. The price: a slow
// request (a large body to read and decide) delays the other connections of its own loop, while
// another loop may be idle.
class IoPool {
  public:
    explicit IoPool(unsigned threads) {
        const unsigned count = threads == 0 ? 1 : threads;
        loops_.reserve(count);
        for (unsigned i = 0; i < count; ++i)
            // Concurrency hint 1: only this loop's thread runs it, so Asio does not signal other
            // threads when there is more work.
            loops_.push_back(std::make_unique<boost::asio::io_context>(1));
    }

    // The first loop goes first, explicitly: its pending accepts hold sockets made for the other
    // loops, which must still exist when those accepts are destroyed. A connection's own handlers
    // hold nothing of another loop.
    ~IoPool() {
        for (auto& loop : loops_)
            loop.reset();
    }
    IoPool(const IoPool&) = delete;
    IoPool& operator=(const IoPool&) = delete;

    std::size_t size() const noexcept { return loops_.size(); }
    boost::asio::io_context& at(std::size_t i) noexcept { return *loops_[i]; }
    // The loop for the signal handler, the acceptors and their retry timers.
    boost::asio::io_context& first() noexcept { return *loops_.front(); }
    // The loop for the next connection, in turn (from any thread).
    boost::asio::io_context& next() noexcept {
        return *loops_[next_.fetch_add(1, std::memory_order_relaxed) % loops_.size()];
    }

  private:
    std::vector<std::unique_ptr<boost::asio::io_context>> loops_;
    std::atomic<std::size_t> next_{0};
};

} // namespace mtlsguard::https
