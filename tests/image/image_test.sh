#!/usr/bin/env bash
# The image test (.ci/run's image stage, docs/image.md): makes the two base images when missing
# (tests/image/base_images.sh), builds the Dockerfile from this checkout with podman, then runs the
# image as the deployment does (UID 65532 from the image, read-only root filesystem, every
# capability dropped, no privilege escalation) and checks:
#   --version is the project's version;
#   `analyze` of the demo mesh from stdin gives the demo's golden findings (and, with a host build,
#   the same bytes as the host binary);
#   the process runs as 65532:65532 with no capabilities at all;
#   `serve` on the demo mesh becomes ready, denies the demo's conflicting DestinationRule over
#   HTTPS, and exits 0 on SIGTERM within its drain timeout;
#   the image is under 50 MB (its size is printed).
#   tests/image/image_test.sh          both steps
#   tests/image/image_test.sh build    base images and podman build only (.ci/run, in the background)
#   tests/image/image_test.sh check    the checks only, on the image built before (.ci/run, at the
#                                      end, when the GCC step's build/mtls-guard is there to compare)
# Needs root, podman, runc, debootstrap, curl and python3 (./setup.sh deps installs them), and
# Debian's archive for the base images and the build stage's packages. Network otherwise only on
# 127.0.0.1. Every container it starts is removed at exit.
#   MTLS_GUARD_IMAGE        tag to build (default localhost/mtls-guard:test)
#   MTLS_GUARD_HOST_BIN     a host build of mtls-guard to compare `analyze` with (default
#                           build/mtls-guard when it exists)
#   MTLS_GUARD_BUILD_NICE   nice level of the podman build (default 0; .ci/run: 19)
set -euo pipefail
cd "$(dirname "$0")/../.."

export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/tests/image/containers.conf}
IMAGE=${MTLS_GUARD_IMAGE:-localhost/mtls-guard:test}
HOST_BIN=${MTLS_GUARD_HOST_BIN:-build/mtls-guard}
MAX_BYTES=50000000 # 50 MB, as podman counts
DRAIN_SECONDS=5
started=$SECONDS
mode=${1:-all}
case "$mode" in
    all | build | check) ;;
    *) echo "usage: $0 [build|check]" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/image/image_test.sh runs rootful podman: run it as root" >&2
    exit 2
fi

dir=$(mktemp -d /var/tmp/mtls-guard-image-test.XXXXXX)
containers=()
cleanup() {
    local c
    for c in "${containers[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# How the deployment runs it (deploy/base/deployment.yaml): no --user (the image's own), nothing
# writable but what is mounted, no capabilities, no privilege escalation. --read-only-tmpfs=false:
# not even /tmp (the deployment mounts an emptyDir there; serve here writes only to /state).
RUN_FLAGS=(--pull never --read-only --read-only-tmpfs=false --cap-drop ALL
    --security-opt no-new-privileges)

if [ "$mode" != check ]; then
    echo "== base images"
    tests/image/base_images.sh

    echo "== podman build"
    build_started=$SECONDS
    # The image this tag named before: removed after the build, so that runs leave one image.
    previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    # --network host: the build stage's apt-get reaches Debian's archive without a bridge or
    # iptables rules. --layers=false: every run compiles anyway (the sources change), and no
    # intermediate build-stage images (about 1 GB each) pile up in the machine's storage.
    # Only the build at the given priority: the base images are mostly waiting on the network,
    # and at nice 19 on a busy machine debootstrap's dependency resolution (perl) starved for
    # over 10 minutes.
    # Bounded: 30 minutes is CI's whole budget.
    timeout 1800 nice -n "${MTLS_GUARD_BUILD_NICE:-0}" \
        podman build --pull=never --network host --layers=false -t "$IMAGE" . >"$dir/build.log" 2>&1 ||
        { cat "$dir/build.log"; fail "podman build"; }
    grep -E '^(bundled |from the base image: )' "$dir/build.log" || true
    current=$(podman image inspect --format '{{.Id}}' "$IMAGE")
    if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
        # Without --force: an image another tag still names stays.
        podman rmi "$previous" >/dev/null 2>&1 || true
    fi
    # podman 4.3 once deleted a tagged base image during a --layers=false build (Dockerfile).
    for base in docker.io/library/debian:12 gcr.io/distroless/cc-debian12:nonroot; do
        podman image exists "$base" || fail "the build removed the base image $base"
    done
    echo "(podman build: $((SECONDS - build_started)) s)"
fi
if [ "$mode" = build ]; then
    echo "(image build: $((SECONDS - started)) s)"
    exit 0
fi
podman image exists "$IMAGE" || fail "no image $IMAGE: run $0 build first"

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $size bytes ($((size / 1000000)) MB)"
[ "$size" -lt "$MAX_BYTES" ] || fail "the image is $size bytes, over $MAX_BYTES"

echo "== --version"
want_version=$(sed -n 's/^project(mtls_guard VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
version=$(timeout 60 podman run --rm --network none "${RUN_FLAGS[@]}" "$IMAGE" --version)
echo "$version"
[ "$version" = "$want_version" ] || fail "--version printed '$version', CMakeLists.txt says '$want_version'"

echo "== analyze of the demo mesh from stdin"
status=0
timeout 60 podman run --rm -i --network none "${RUN_FLAGS[@]}" "$IMAGE" analyze -f - -o json \
    <deploy/demo/mesh.yaml >"$dir/analyze.json" || status=$?
# 1: the demo has errors (deploy/demo/expect.json).
[ "$status" -eq 1 ] || fail "analyze exited $status, the demo's expectation is 1"
# The golden file is the JSON re-serialised sorted with two-space indents (nlohmann's dump(2),
# tests/fixtures/scenario_test.cpp); Python's json writes the same bytes.
python3 -c 'import json, sys
doc = json.load(open(sys.argv[1]))
sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n")' \
    "$dir/analyze.json" >"$dir/analyze.normalised.json"
diff -u deploy/demo/golden/analyze.json "$dir/analyze.normalised.json" ||
    fail "analyze in the image differs from deploy/demo/golden/analyze.json"
echo "same as deploy/demo/golden/analyze.json"
if [ -x "$HOST_BIN" ]; then
    "$HOST_BIN" analyze -f - -o json <deploy/demo/mesh.yaml >"$dir/analyze.host.json" || true
    cmp -s "$dir/analyze.json" "$dir/analyze.host.json" ||
        fail "analyze in the image differs from $HOST_BIN's"
    echo "same bytes as $HOST_BIN"
fi

echo "== serve on the demo mesh"
# The state directory is the only writable place: the generated certificate and the port file.
mkdir -p "$dir/state"
chown 65532:65532 "$dir/state"
name=mtls-guard-image-test-$$
containers+=("$name")
# --network host, listening on 127.0.0.1 only: the host's loopback, no port mapping needed.
podman run -d --name "$name" --network host "${RUN_FLAGS[@]}" \
    -v "$PWD/deploy/demo:/demo:ro" -v "$dir/state:/state" "$IMAGE" \
    serve --snapshot /demo/mesh.yaml --listen 127.0.0.1:0 --cert-dir /state \
    --port-file /state/port --drain-timeout-seconds "$DRAIN_SECONDS" >/dev/null
show_logs() { podman logs "$name" 2>&1 | tail -n 50 >&2 || true; }

port=""
for _ in $(seq 300); do # up to 30 s: the machine may be busy with the other builds
    [ -s "$dir/state/port" ] && port=$(head -n 1 "$dir/state/port")
    [ -n "$port" ] && break
    [ "$(podman inspect --format '{{.State.Running}}' "$name")" = true ] || break
    sleep 0.1
done
[ -n "$port" ] || { show_logs; fail "serve wrote no port file"; }

# Who the process is, read from the host's /proc (the image has no shell to ask).
pid=$(podman inspect --format '{{.State.Pid}}' "$name")
grep -E '^(Uid|Gid|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' "/proc/$pid/status"
awk '/^Uid:|^Gid:/ { for (i = 2; i <= 5; i++) if ($i != 65532) bad = 1 }
     /^Cap(Inh|Prm|Eff|Bnd|Amb):/ { if ($2 != "0000000000000000") bad = 1 }
     /^NoNewPrivs:/ { if ($2 != 1) bad = 1 }
     END { exit bad }' "/proc/$pid/status" || fail "serve is not UID/GID 65532 without capabilities"
[ "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$name")" = true ] ||
    fail "the root filesystem is not read-only"
echo "serve: pid $pid, UID/GID 65532, no capabilities, read-only root filesystem"

curl_tls() { curl -sS --max-time 10 --cacert "$dir/state/ca.crt" "$@"; }
ready=""
for _ in $(seq 100); do # up to 10 s
    if [ "$(curl_tls -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port/readyz" 2>/dev/null)" = 200 ]; then
        ready=1
        break
    fi
    sleep 0.1
done
[ -n "$ready" ] || { show_logs; fail "serve did not become ready on 127.0.0.1:$port"; }
echo "serve: ready on 127.0.0.1:$port"

# The demo's review (./setup.sh demo): a DestinationRule sending plaintext to STRICT payments-api.
curl_tls -H 'Content-Type: application/json' --data-binary @deploy/demo/review-payments-plaintext.json \
    "https://127.0.0.1:$port/validate" >"$dir/response.json" || { show_logs; fail "POST /validate"; }
python3 -c 'import json, sys
review = json.load(open(sys.argv[1]))
response = json.load(open(sys.argv[2]))["response"]
assert response["uid"] == review["request"]["uid"], "uid"
assert response["allowed"] is False, "allowed"
assert response["status"]["code"] == 403, "code"
assert "[MTG101]" in response["status"]["message"], "MTG101"
print("serve: denied:", response.get("status", {}).get("message", "")[:160])' \
    deploy/demo/review-payments-plaintext.json "$dir/response.json" ||
    { cat "$dir/response.json"; fail "the review was not denied with MTG101"; }

stop_started=$SECONDS
podman kill --signal TERM "$name" >/dev/null
code=$(timeout $((DRAIN_SECONDS + 10)) podman wait "$name") || { show_logs; fail "serve did not stop on SIGTERM"; }
stop_seconds=$((SECONDS - stop_started))
[ "$code" = 0 ] || { show_logs; fail "serve exited $code on SIGTERM"; }
[ "$stop_seconds" -le "$DRAIN_SECONDS" ] || fail "serve took $stop_seconds s to stop (drain timeout $DRAIN_SECONDS s)"
echo "serve: exit 0 on SIGTERM after $stop_seconds s"

echo "(image test: $((SECONDS - started)) s)"
