// Tests of server/kube/backoff: 0.8 s doubling to 30 s with jitter, reset after health.
#include "server/kube/backoff.hpp"

#include <catch2/catch.hpp>

using namespace mtlsguard::kube;
using namespace std::chrono_literals;

TEST_CASE("Backoff doubles from 0.8 s up to 30 s, each delay jittered below its base") {
    Backoff backoff({}, 1);
    auto now = std::chrono::steady_clock::time_point{} + 1h;
    const std::int64_t bases[] = {800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000};
    for (std::int64_t base : bases) {
        const auto delay = backoff.next(now).count();
        INFO("base " << base << " ms, got " << delay << " ms");
        CHECK(delay <= base);
        CHECK(delay >= base * 8 / 10);
        now += 1s; // failures in quick succession
    }
    CHECK(backoff.failures() == 9);
}

TEST_CASE("Backoff starts over after a healthy period, or when reset") {
    BackoffPolicy policy;
    policy.jitter = 0.0;
    Backoff backoff(policy, 1);
    auto now = std::chrono::steady_clock::time_point{} + 1h;
    CHECK(backoff.next(now) == 800ms);
    CHECK(backoff.next(now + 1s) == 1600ms);
    CHECK(backoff.next(now + 2s) == 3200ms);
    // Two minutes without a failure: the connection was healthy meanwhile.
    CHECK(backoff.next(now + 2s + 2min) == 800ms);
    CHECK(backoff.next(now + 3s + 2min) == 1600ms);
    backoff.reset();
    CHECK(backoff.next(now + 4s + 2min) == 800ms);
}

TEST_CASE("Replicas with different seeds do not retry in step") {
    Backoff a({}, 1);
    Backoff b({}, 2);
    const auto now = std::chrono::steady_clock::time_point{} + 1h;
    bool differ = false;
    for (int i = 0; i < 5; ++i)
        differ = differ || a.next(now) != b.next(now);
    CHECK(differ);
}
