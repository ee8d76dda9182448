#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for a bounded time.
#   tests/fuzz/run_fuzzers.sh [SECONDS_PER_TARGET]      (default 30; CI uses a short run)
#   FUZZ_TARGETS="fuzz_watch_stream fuzz_http_request" tests/fuzz/run_fuzzers.sh 180   (some only)
#   FUZZ_BUILD_DIR=build-asan FUZZ_REUSE_BUILD=1 tests/fuzz/run_fuzzers.sh 20
#       (CI) builds the targets in an existing clang build configured with MTLS_GUARD_FUZZ=ON and
#       MTLS_GUARD_SANITIZE=address, instead of configuring build-fuzz (-O2) from scratch.
# Crashes are written to build-fuzz/crashes/<target>/ and make the script fail; each one must
# become a regression test (a fixture or a unit test) before it is fixed.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-30}
build=${FUZZ_BUILD_DIR:-build-fuzz}

if [ "${FUZZ_REUSE_BUILD:-0}" = 1 ]; then
    grep -q '^MTLS_GUARD_FUZZ:BOOL=ON' "$build/CMakeCache.txt" ||
        { echo "run_fuzzers.sh: $build is not configured with MTLS_GUARD_FUZZ=ON" >&2; exit 2; }
else
    CXX=clang++ CC=clang cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DMTLS_GUARD_FUZZ=ON -DMTLS_GUARD_SANITIZE=address -DMTLS_GUARD_TESTS=OFF >/dev/null
fi
read -r -a targets <<<"${FUZZ_TARGETS:-fuzz_admission_review fuzz_manifest fuzz_watch_stream fuzz_http_request}"
cmake --build "$build" --target "${targets[@]}" --parallel "$(nproc)"

# Seed corpora: the project's own fixtures, copied into a writable working corpus per target.
work="$build/corpus"
mkdir -p "$work"/{fuzz_admission_review,fuzz_manifest,fuzz_watch_stream,fuzz_http_request}
mkdir -p "$build/crashes"
cp tests/fuzz/corpus/admission/*.json "$work/fuzz_admission_review/"
find tests/fixtures deploy/demo -name '*.yaml' -print0 | while IFS= read -r -d '' f; do
    cp "$f" "$work/fuzz_manifest/$(echo "$f" | tr '/' '_')"
done
cp tests/fuzz/corpus/watch/* "$work/fuzz_watch_stream/"
# HTTP: the hand-written requests, and every AdmissionReview seed as a POST /validate.
cp tests/fuzz/corpus/http/* "$work/fuzz_http_request/"
for f in tests/fuzz/corpus/admission/*.json; do
    printf 'POST /validate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n' \
        "$(wc -c <"$f")" | cat - "$f" >"$work/fuzz_http_request/$(basename "$f" .json).http"
done

# One target per core at a time (FUZZ_JOBS to change it): each fuzzer is a single process, so on
# 2 cores two of them take the time of one. Their reports are printed in order once they finish.
jobs=${FUZZ_JOBS:-$(nproc)}
run_target() {
    local target=$1 log="$build/$1.log" rc=0
    mkdir -p "$build/crashes/$target"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        "$build/tests/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$build/crashes/$target/" -print_final_stats=1 "$work/$target" >"$log" 2>&1 || rc=$?
    echo "$rc" >"$build/$target.status"
}
for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s"
    rm -f "$build/$target.status"
    run_target "$target" &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
done
wait

status=0
for target in "${targets[@]}"; do
    log="$build/$target.log"
    echo "== $target"
    if [ "$(cat "$build/$target.status" 2>/dev/null || echo 1)" != 0 ]; then
        echo "$target FAILED; last lines of $log:"
        tail -40 "$log"
        status=1
    fi
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE" "$log" | sed "s/^/  /" || true
done
exit $status
