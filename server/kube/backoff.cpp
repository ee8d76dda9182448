// Exponential backoff with jitter between failed API requests, as client-go's reflector does.
#include "server/kube/backoff.hpp"

#include <algorithm>

namespace mtlsguard::kube {

Backoff::Backoff(BackoffPolicy policy, std::uint64_t seed) : policy_(policy), random_(seed) {}

std::chrono::milliseconds Backoff::next(std::chrono::steady_clock::time_point now) {
    if (failures_ > 0 && now - last_failure_ >= policy_.reset_after)
        failures_ = 0;
    last_failure_ = now;
    // Doubling stops at max; the shift is bounded so it cannot overflow.
    const auto shift = std::min(failures_, 30u);
    const double base = std::min(static_cast<double>(policy_.initial.count()) *
                                     static_cast<double>(std::uint64_t{1} << shift),
                                 static_cast<double>(policy_.max.count()));
    ++failures_;
    std::uniform_real_distribution<double> share(0.0, std::clamp(policy_.jitter, 0.0, 1.0));
    const double delay = base * (1.0 - share(random_));
    return std::chrono::milliseconds(static_cast<std::int64_t>(delay));
}

} // namespace mtlsguard::kube
