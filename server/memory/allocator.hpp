// Which allocator the process runs on, and the two things serve asks of it: its tuning for a large
// cluster's sync, and giving freed memory back to the system after a snapshot build.
#pragma once

#include <string_view>

namespace mtlsguard::memory {

// "jemalloc" when the executable links it (the Release mtls-guard does, see memory/README.md),
// "glibc" otherwise (the tests, sanitizer builds).
std::string_view allocator_name() noexcept;

// glibc only: one arena for all threads and large buffers in their own mappings. jemalloc reads
// its settings from the executable (jemalloc_config.cpp) before main() runs.
void tune_allocator() noexcept;

// Returns freed memory to the system now rather than on the allocator's own schedule.
void give_back_free_memory() noexcept;

// From now on, memory freed is given back at once (jemalloc; glibc has no such setting). Called
// once the first snapshot is in use: during the first sync, keeping freed pages for a second lets
// the list reader reuse them (a quarter less CPU); afterwards the peak, when a findings analysis
// and an event's build overlap, is lower without them. MALLOC_CONF in the environment wins.
void give_back_freed_memory_at_once() noexcept;

} // namespace mtlsguard::memory
