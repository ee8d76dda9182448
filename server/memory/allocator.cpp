// The allocator seen at run time: jemalloc when the executable links it, glibc's otherwise.
#include "server/memory/allocator.hpp"

#include <cstddef>
#include <cstdlib>
#include <malloc.h>
#include <string>
#include <sys/types.h>

// jemalloc's control interface, declared weak so that the server library links without jemalloc
// (the tests and sanitizer builds run on glibc's allocator, where it stays null).
extern "C" int mallctl(const char* name, void* oldp, std::size_t* oldlenp, void* newp,
                       std::size_t newlen) __attribute__((weak));

namespace mtlsguard::memory {

namespace {

bool on_jemalloc() noexcept {
    return mallctl != nullptr;
}

} // namespace

std::string_view allocator_name() noexcept {
    return on_jemalloc() ? "jemalloc" : "glibc";
}

// glibc's allocator, tuned for a process whose peak is a large cluster's first sync: one arena for
// all threads, so that what the I/O threads free after decoding list pages is reused by the
// snapshot build on its own thread instead of staying in their arenas (each thread gets one by
// default); and buffers from 256 KiB up (list pages, their parse) in their own mappings, given back
// when freed. MALLOC_ARENA_MAX or MALLOC_MMAP_THRESHOLD_ in the environment win.
void tune_allocator() noexcept {
    if (on_jemalloc())
        return;
    if (!std::getenv("MALLOC_ARENA_MAX"))
        mallopt(M_ARENA_MAX, 1);
    if (!std::getenv("MALLOC_MMAP_THRESHOLD_"))
        mallopt(M_MMAP_THRESHOLD, 256 * 1024);
}

void give_back_free_memory() noexcept {
    if (on_jemalloc()) {
        // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena's unused dirty pages, now.
        mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
        return;
    }
    malloc_trim(0);
}

void give_back_freed_memory_at_once() noexcept {
    // MALLOC_CONF in the environment wins, as it does over jemalloc_config.cpp.
    if (!on_jemalloc() || std::getenv("MALLOC_CONF"))
        return;
    ssize_t at_once = 0;
    // The default of arenas made later, then each existing arena's own.
    mallctl("arenas.dirty_decay_ms", nullptr, nullptr, &at_once, sizeof at_once);
    unsigned arenas = 0;
    std::size_t size = sizeof arenas;
    if (mallctl("arenas.narenas", &arenas, &size, nullptr, 0) != 0)
        return;
    for (unsigned i = 0; i < arenas; ++i) {
        const std::string name = "arena." + std::to_string(i) + ".dirty_decay_ms";
        mallctl(name.c_str(), nullptr, nullptr, &at_once, sizeof at_once);
    }
}

} // namespace mtlsguard::memory
