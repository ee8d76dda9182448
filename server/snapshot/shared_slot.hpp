// One shared_ptr that several threads read while one publishes replacements (the snapshot, the
// admission settings, the TLS context).
#pragma once

#include <mutex>
#include <utility>

namespace mtlsguard::https {

// A mutex rather than std::atomic<std::shared_ptr>: libstdc++ 12 implements that with a lock bit
// in the control-block pointer and releases it with memory_order_relaxed after reading the raw
// pointer in load(), which orders nothing against the next store() under the C++ memory model
// (ThreadSanitizer reports the pair as a race). Readers hold the lock only to copy the pointer;
// the value a publish replaces is destroyed after the lock is released, so readers never wait for
// a large snapshot to be freed.
template <class Pointer> class SharedSlot {
  public:
    Pointer load() const {
        std::lock_guard lock(mutex_);
        return value_;
    }
    void store(Pointer value) {
        {
            std::lock_guard lock(mutex_);
            value_.swap(value);
        }
        // `value` now holds the old pointer and is released here, outside the lock.
    }

  private:
    mutable std::mutex mutex_;
    Pointer value_;
};

} // namespace mtlsguard::https
