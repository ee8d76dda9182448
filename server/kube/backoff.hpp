// Exponential backoff with jitter between failed API requests, as client-go's reflector does.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace mtlsguard::kube {

struct BackoffPolicy {
    std::chrono::milliseconds initial{800};
    std::chrono::milliseconds max{30000};
    double jitter = 0.2; // a delay is drawn from [base * (1 - jitter), base]
    // A failure this long after the previous one starts again from `initial`: the connection was
    // healthy in between.
    std::chrono::milliseconds reset_after{std::chrono::minutes(2)};
};

// Not thread-safe; one per reflector.
class Backoff {
  public:
    explicit Backoff(BackoffPolicy policy = {}, std::uint64_t seed = std::random_device{}());

    // Records a failure at `now` and returns how long to wait before trying again: the base delay
    // doubles from `initial` up to `max` with every failure, minus a random share of up to
    // `jitter`, so that replicas do not retry in step.
    std::chrono::milliseconds next(std::chrono::steady_clock::time_point now);

    // Forgets the failures (the next delay is `initial` again).
    void reset() noexcept { failures_ = 0; }
    unsigned failures() const noexcept { return failures_; }
    const BackoffPolicy& policy() const noexcept { return policy_; }

  private:
    BackoffPolicy policy_;
    std::mt19937_64 random_;
    unsigned failures_ = 0;
    std::chrono::steady_clock::time_point last_failure_{};
};

} // namespace mtlsguard::kube
