#!/bin/sh
# Benchmark of `mtls-guard serve`: wrk POSTs a realistic AdmissionReview to /validate over TLS, then
# the same wrk settings fetch a static body of the same size from nginx over TLS; prints both
# throughputs, their ratio and the server-side decision p99 (from the /metrics histogram).
#
#   tests/bench/serve_bench.sh [path/to/mtls-guard]      (default: build-release/mtls-guard)
#
# Needs wrk, nginx (nginx-light), curl, awk, ps, openssl. Builds nothing. Environment: DURATION
# (10s), WRK_THREADS (2), WRK_CONNECTIONS (32), WARMUP (2s), ROUNDS (1): with more rounds the two
# servers take turns (serve, nginx, serve, nginx, ...) so that load from elsewhere on the machine
# hits both alike, and the medians are printed. SERVER_THREADS (the cores available): serve's I/O
# threads and nginx's worker processes alike. FLOOR=1 also measures serve answering GET /healthz
# (TLS + HTTP and nothing else), the floor under /validate. Also prints the CPU time each server and
# wrk spent per request: on a busy machine that is steadier than requests/s.
#
# Both servers do the same work around the answer: the same certificate and TLS defaults (printed),
# keep-alive, the POSTed body read, and one log line written per request (serve's decision log,
# nginx's access log).
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-$ROOT/build-release/mtls-guard}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-32}
ROUNDS=${ROUNDS:-1}
SERVER_THREADS=${SERVER_THREADS:-$(nproc)}
FLOOR=${FLOOR:-0}

for tool in wrk nginx curl awk ps openssl; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "serve_bench: $tool is missing (apt-get install wrk nginx-light curl)" >&2
        exit 2
    }
done
[ -x "$BIN" ] || {
    echo "serve_bench: no executable at $BIN (build it: cmake --build build-release --target mtls-guard)" >&2
    exit 2
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mtls-guard-bench.XXXXXX")
SERVE_PID=
NGINX_PID=
cleanup() {
    [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (at most 10 s) for a file to exist.
wait_for_file() {
    i=0
    while [ ! -s "$1" ]; do
        i=$((i + 1))
        [ "$i" -le 100 ] || { echo "serve_bench: $2 did not start" >&2; exit 1; }
        sleep 0.1
    done
}

# ------------------------------------------------------------------ mtls-guard on the demo mesh
# With the DestinationRule the review updates, as the cluster holds it: a live snapshot follows the
# cluster, so an UPDATE's oldObject is its own copy.
"$BIN" serve --listen 127.0.0.1:0 --port-file "$TMP/serve.port" --cert-dir "$TMP/certs" \
    --snapshot "$ROOT/deploy/demo/mesh.yaml" \
    --snapshot "$ROOT/tests/bench/data/catalog-destination-rule.yaml" \
    --log-format json --threads "$SERVER_THREADS" \
    2>"$TMP/serve.log" &
SERVE_PID=$!
wait_for_file "$TMP/serve.port" "mtls-guard serve"
SERVE_PORT=$(head -n 1 "$TMP/serve.port")
CA="$TMP/certs/ca.crt"
i=0
until curl -sf --cacert "$CA" "https://localhost:$SERVE_PORT/readyz" >/dev/null; do
    i=$((i + 1))
    [ "$i" -le 100 ] || { echo "serve_bench: mtls-guard never became ready" >&2; cat "$TMP/serve.log" >&2; exit 1; }
    sleep 0.1
done

# What `kubectl apply` of a changed DestinationRule makes the API server send: an UPDATE with the
# object and the old object, kubectl's last-applied annotation, managedFields and user info (the
# same file the in-process benchmark mtls-review-endpoint-bench and the reader tests use).
cp "$ROOT/tests/bench/data/admission-review-update.json" "$TMP/review.json"

# The response mtls-guard gives to it becomes nginx's static body: same size, same type.
curl -sf --cacert "$CA" -H 'Content-Type: application/json' --data-binary "@$TMP/review.json" \
    "https://localhost:$SERVE_PORT/validate?timeout=10s" >"$TMP/response.json"
grep -q '"allowed":true' "$TMP/response.json" || {
    echo "serve_bench: unexpected verdict: $(cat "$TMP/response.json")" >&2
    exit 1
}

echo '-- GETs the URL, for the floor run.' >"$TMP/get.lua"
cat >"$TMP/post.lua" <<EOF
-- POSTs the AdmissionReview; wrk reports any answer other than 2xx/3xx.
local file = io.open("$TMP/review.json", "rb")
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
EOF

# ------------------------------------------------------------------ nginx with the same certificate
mkdir -p "$TMP/nginx/html" "$TMP/nginx/logs"
cp "$TMP/response.json" "$TMP/nginx/html/validate"
# Workers drop privileges when the master runs as root: they must be able to read the body.
chmod 755 "$TMP" "$TMP/nginx" "$TMP/nginx/html"
chmod 644 "$TMP/nginx/html/validate"
NGINX_PORT=$(awk 'BEGIN { srand(); print 20000 + int(rand() * 20000) }')
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
worker_processes $SERVER_THREADS;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    # Like serve's decision log: one line per request, written as it happens.
    access_log $TMP/nginx/logs/access.log;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    # Like mtls-guard: no limit on requests per kept-alive connection.
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_certificate $TMP/certs/tls.crt;
        ssl_certificate_key $TMP/certs/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers on;
        root $TMP/nginx/html;
        location = /validate {
            default_type application/json;
            # The static module refuses POST with 405: serve the file for it anyway.
            error_page 405 =200 \$uri;
        }
    }
}
EOF
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" &
NGINX_PID=$!
i=0
until curl -sf --cacert "$CA" -X POST -H 'Content-Type: application/json' \
    --data-binary "@$TMP/review.json" "https://localhost:$NGINX_PORT/validate" >"$TMP/nginx-response.json"; do
    i=$((i + 1))
    [ "$i" -le 100 ] || { echo "serve_bench: nginx did not start" >&2; cat "$TMP/nginx/logs/error.log" >&2; exit 1; }
    sleep 0.1
done
cmp -s "$TMP/response.json" "$TMP/nginx-response.json" || {
    echo "serve_bench: nginx does not serve the same body" >&2
    exit 1
}

# The TLS each one negotiates with a default OpenSSL client (wrk is one): they must match.
tls_of() {
    echo | openssl s_client -connect "127.0.0.1:$1" -CAfile "$CA" 2>/dev/null |
        awk '/^New, / { proto = $2; cipher = $5 } /Server Temp Key:/ { group = $4 }
             END { sub(/,$/, "", proto); sub(/,$/, "", group); print proto, cipher, group }'
}
SERVE_TLS=$(tls_of "$SERVE_PORT")
NGINX_TLS=$(tls_of "$NGINX_PORT")
[ "$SERVE_TLS" = "$NGINX_TLS" ] || echo "serve_bench: warning: TLS differs: serve $SERVE_TLS, nginx $NGINX_TLS" >&2

# ------------------------------------------------------------------ the runs
run_wrk() { # url duration output [script]
    timeout 120 wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"$2" --latency -s "${4:-$TMP/post.lua}" "$1" >"$3"
    if grep -q 'Non-2xx' "$3" || grep -q 'Socket errors' "$3"; then
        echo "serve_bench: errors during the run against $1:" >&2
        cat "$3" >&2
        exit 1
    fi
}
rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
p99() { awk '$1 == "99%" { print $2 }' "$1"; }
requests() { awk '/ requests in / { print $1 }' "$1"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# CPU time (user + system, in clock ticks) used so far by the given processes, and by the
# finished children of this shell (the wrk runs).
TICKS=$(getconf CLK_TCK)
cpu_ticks() { for pid in "$@"; do cat "/proc/$pid/stat"; done | awk '{ t += $14 + $15 } END { print t + 0 }'; }
# `times` must run in this shell (a $(...) subshell has no finished children of its own).
children_seconds() {
    awk 'NR == 2 {
        n = split($0, f, /[ms ]+/); t = 0
        for (i = 1; i + 1 <= n; i += 2) if (f[i] != "") t += f[i] * 60 + f[i + 1]
        print t }' "$TMP/times"
}
NGINX_PIDS="$NGINX_PID $(ps -o pid= --ppid "$NGINX_PID" | tr '\n' ' ')"

# One measured run: url, output, pids of the server[, wrk script]; appends "rps server-us wrk-us"
# to output.cpu.
measured_run() {
    server_before=$(cpu_ticks $3)
    times >"$TMP/times"
    wrk_before=$(children_seconds)
    run_wrk "$1" "$DURATION" "$2" ${4:-}
    server_after=$(cpu_ticks $3)
    times >"$TMP/times"
    wrk_after=$(children_seconds)
    awk -v r="$(rps "$2")" -v n="$(requests "$2")" -v s0="$server_before" -v s1="$server_after" \
        -v w0="$wrk_before" -v w1="$wrk_after" -v hz="$TICKS" \
        'BEGIN { printf "%s %.1f %.1f\n", r, (s1 - s0) / hz / n * 1e6, (w1 - w0) / n * 1e6 }' >>"$2.cpu"
}

# The decision histogram as "le count" lines (cumulative counts).
histogram() {
    curl -sf --cacert "$CA" "https://localhost:$SERVE_PORT/metrics" |
        awk -F'[{}" ]+' '/^mtls_guard_admission_decision_seconds_bucket/ { print $3, $NF }'
}

SERVE_URL="https://127.0.0.1:$SERVE_PORT/validate?timeout=10s"
NGINX_URL="https://127.0.0.1:$NGINX_PORT/validate"
echo "warming up ($WARMUP each)..." >&2
run_wrk "$SERVE_URL" "$WARMUP" "$TMP/warm-serve.txt"
run_wrk "$NGINX_URL" "$WARMUP" "$TMP/warm-nginx.txt"

histogram >"$TMP/hist-before.txt"
round=1
while [ "$round" -le "$ROUNDS" ]; do
    echo "round $round/$ROUNDS: mtls-guard /validate, then nginx: wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d$DURATION ..." >&2
    measured_run "$SERVE_URL" "$TMP/serve-wrk.txt" "$SERVE_PID"
    measured_run "$NGINX_URL" "$TMP/nginx-wrk.txt" "$NGINX_PIDS"
    [ "$FLOOR" = 1 ] && measured_run "https://127.0.0.1:$SERVE_PORT/healthz" "$TMP/floor-wrk.txt" \
        "$SERVE_PID" "$TMP/get.lua"
    round=$((round + 1))
done
histogram >"$TMP/hist-after.txt"

SERVE_RPS=$(awk '{ print $1 }' "$TMP/serve-wrk.txt.cpu" | median)
NGINX_RPS=$(awk '{ print $1 }' "$TMP/nginx-wrk.txt.cpu" | median)
RATIO=$(paste -d' ' "$TMP/serve-wrk.txt.cpu" "$TMP/nginx-wrk.txt.cpu" | awk '{ print $1 / $4 }' | median)
# p99 of the decisions made during the measured run: the difference of the two cumulative
# histograms, interpolated inside the bucket as Prometheus' histogram_quantile does.
DECISION=$(awk '
    NR == FNR { before[$1] = $2; next }
    { le[++n] = $1; count[n] = $2 - before[$1] }
    END {
        total = count[n]
        if (total <= 0) { print "none 0"; exit }
        rank = 0.99 * total
        lower = 0; below = 0
        for (i = 1; i <= n; i++) {
            if (count[i] >= rank) {
                if (le[i] == "+Inf") { printf "> %.0f us %d\n", lower * 1e6, total; exit }
                upper = le[i] + 0
                inside = count[i] - below
                q = inside > 0 ? lower + (upper - lower) * (rank - below) / inside : upper
                printf "%.0f us %d\n", q * 1e6, total
                exit
            }
            lower = le[i] + 0; below = count[i]
        }
    }' "$TMP/hist-before.txt" "$TMP/hist-after.txt")

echo
echo "body: $(wc -c <"$TMP/review.json") bytes AdmissionReview in, $(wc -c <"$TMP/response.json") bytes out; loopback; $(nproc) cores; $SERVER_THREADS serve threads / nginx workers"
echo "TLS negotiated: serve $SERVE_TLS; nginx $NGINX_TLS"
[ "$ROUNDS" -gt 1 ] && echo "medians of $ROUNDS alternating rounds; per round (requests/s, server CPU us/request, wrk CPU us/request): serve $(awk '{ printf "[%s %s %s] ", $1, $2, $3 }' "$TMP/serve-wrk.txt.cpu")nginx $(awk '{ printf "[%s %s %s] ", $1, $2, $3 }' "$TMP/nginx-wrk.txt.cpu")"
echo "mtls-guard serve /validate : $SERVE_RPS requests/s (wrk p99 $(p99 "$TMP/serve-wrk.txt"), last round)"
echo "nginx static, same body    : $NGINX_RPS requests/s (wrk p99 $(p99 "$TMP/nginx-wrk.txt"), last round)"
awk -v r="$RATIO" 'BEGIN { printf "ratio mtls-guard / nginx   : %.2f (target >= 0.95)\n", r }'
echo "decision p99 (server side) : $(echo "$DECISION" | awk '{ $NF = ""; print }')over $(echo "$DECISION" | awk '{ print $NF }') decisions (target <= 100 us)"
echo "CPU per request, mtls-guard: server $(awk '{ print $2 }' "$TMP/serve-wrk.txt.cpu" | median) us, wrk $(awk '{ print $3 }' "$TMP/serve-wrk.txt.cpu" | median) us"
echo "CPU per request, nginx     : server $(awk '{ print $2 }' "$TMP/nginx-wrk.txt.cpu" | median) us, wrk $(awk '{ print $3 }' "$TMP/nginx-wrk.txt.cpu" | median) us"
if [ "$FLOOR" = 1 ]; then
    echo "floor, serve GET /healthz  : $(awk '{ print $1 }' "$TMP/floor-wrk.txt.cpu" | median) requests/s, server $(awk '{ print $2 }' "$TMP/floor-wrk.txt.cpu" | median) us, wrk $(awk '{ print $3 }' "$TMP/floor-wrk.txt.cpu" | median) us per request"
fi
