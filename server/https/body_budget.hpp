// Bounds the request bodies a listener holds in memory at once: --max-connections times
// --max-body-bytes (256 x 8 MiB = 2 GiB by default) would be far over a pod's memory limit.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <utility>

namespace mtlsguard::https {

class BodyBudget {
  public:
    explicit BodyBudget(std::uint64_t capacity) : capacity_(capacity) {}
    BodyBudget(const BodyBudget&) = delete;
    BodyBudget& operator=(const BodyBudget&) = delete;

    // Bytes taken for one body until destroyed (or reset), moved along with the session.
    class Reservation {
      public:
        Reservation() = default;
        Reservation(Reservation&& other) noexcept
            : budget_(std::exchange(other.budget_, nullptr)), bytes_(other.bytes_) {}
        Reservation& operator=(Reservation&& other) noexcept {
            if (this != &other) {
                reset();
                budget_ = std::exchange(other.budget_, nullptr);
                bytes_ = other.bytes_;
            }
            return *this;
        }
        Reservation(const Reservation&) = delete;
        Reservation& operator=(const Reservation&) = delete;
        ~Reservation() { reset(); }
        void reset() noexcept {
            if (budget_)
                budget_->used_.fetch_sub(bytes_, std::memory_order_relaxed);
            budget_ = nullptr;
        }

      private:
        friend class BodyBudget;
        Reservation(BodyBudget* budget, std::uint64_t bytes) : budget_(budget), bytes_(bytes) {}
        BodyBudget* budget_ = nullptr;
        std::uint64_t bytes_ = 0;
    };

    // Takes `bytes` when that many are still free; nothing when the budget would be exceeded.
    std::optional<Reservation> try_reserve(std::uint64_t bytes) noexcept {
        std::uint64_t used = used_.load(std::memory_order_relaxed);
        do {
            if (bytes > capacity_ || used > capacity_ - bytes)
                return std::nullopt;
        } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
        return Reservation(this, bytes);
    }

    std::uint64_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
    std::uint64_t capacity() const noexcept { return capacity_; }

  private:
    const std::uint64_t capacity_;
    std::atomic<std::uint64_t> used_{0};
};

// The budget for a listener: room for this many bodies of the largest size at once. Small bodies
// (a typical AdmissionReview is a few KiB) are hardly limited by it.
inline constexpr std::uint64_t max_bodies_in_memory = 8;

} // namespace mtlsguard::https
