// IoPool: connections are dealt out to the loops in turn, and each loop's handlers run on the
// one thread that runs it, including those posted from other threads (the drain does that).
#include "server/https/io_pool.hpp"

#include <boost/asio/post.hpp>
#include <catch2/catch.hpp>
#include <set>
#include <thread>
#include <vector>

using mtlsguard::https::IoPool;

SCENARIO("Connections are dealt out to the loops in turn") {
    GIVEN("a pool of three loops") {
        IoPool pool(3);
        REQUIRE(pool.size() == 3);
        THEN("six connections get each loop twice, in order") {
            std::vector<boost::asio::io_context*> dealt;
            for (int i = 0; i < 6; ++i)
                dealt.push_back(&pool.next());
            CHECK(dealt[0] == &pool.at(0));
            CHECK(dealt[1] == &pool.at(1));
            CHECK(dealt[2] == &pool.at(2));
            CHECK(dealt[3] == &pool.at(0));
            CHECK(dealt[4] == &pool.at(1));
            CHECK(dealt[5] == &pool.at(2));
        }
        THEN("the acceptors' loop is the first") {
            CHECK(&pool.first() == &pool.at(0));
        }
    }
    GIVEN("no threads asked for") {
        IoPool pool(0);
        THEN("there is still one loop") {
            CHECK(pool.size() == 1);
            CHECK(&pool.next() == &pool.first());
        }
    }
}

SCENARIO("A loop runs everything posted to it on its own thread, whichever thread posted it") {
    IoPool pool(2);
    std::vector<std::thread::id> ran_on[2];
    for (int round = 0; round < 100; ++round)
        for (std::size_t loop = 0; loop < 2; ++loop)
            boost::asio::post(pool.at(loop),
                              [&, loop] { ran_on[loop].push_back(std::this_thread::get_id()); });
    std::thread::id runner[2];
    std::vector<std::thread> threads;
    for (std::size_t loop = 0; loop < 2; ++loop)
        threads.emplace_back([&, loop] {
            runner[loop] = std::this_thread::get_id();
            pool.at(loop).run();
        });
    for (auto& t : threads)
        t.join();
    for (std::size_t loop = 0; loop < 2; ++loop) {
        REQUIRE(ran_on[loop].size() == 100);
        CHECK(std::set<std::thread::id>(ran_on[loop].begin(), ran_on[loop].end()) ==
              std::set<std::thread::id>{runner[loop]});
    }
}
