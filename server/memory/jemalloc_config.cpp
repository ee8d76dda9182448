// jemalloc's settings for mtls-guard, compiled into the executable only when it links jemalloc.
// jemalloc reads this string before main(); MALLOC_CONF in the environment overrides any of them.
//  - narenas:1        one arena, as serve had with glibc: what the I/O threads free after decoding
//                     list pages is reused by the snapshot build on its own thread. jemalloc's
//                     per-thread caches keep the threads off the arena's lock far more than
//                     glibc's.
//  - background_thread:true  freed pages are purged by jemalloc's own thread, not by the snapshot
//                     build or a request's thread.
//  - dirty_decay_ms:1000, muzzy_decay_ms:0  freed pages go back to the system within about a
//                     second (the default keeps them ten), and straight away rather than through
//                     MADV_FREE, which a container's memory accounting still counts.
// The figures behind these choices are in docs/performance.md ("jemalloc").
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "narenas:1,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
}
