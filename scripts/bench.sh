#!/usr/bin/env bash
# Benchmark of issues 4 and 20: builds (release), starts a fake WeChat and the
# hub (release build, SQLite in a temp dir, loopback only), runs
# scanlogin-bench with the standard sizes and stops everything on exit.
#
#   scripts/bench.sh                    # one run, standard sizes
#   RUNS=3 scripts/bench.sh             # three runs, a fresh hub and database each
#   N=2000 F=2000 scripts/bench.sh      # smaller
#   WECHAT=simulator scripts/bench.sh   # the hub's built-in simulator instead
#   BASELINE=/path/to/old/scanlogin BASELINE_REV=8a6b6fd scripts/bench.sh
#                                       # A/B: the old binary against this build
#
# Phases of each run (see bench/src/main.rs): warm-up; N waiting browsers
# (memory); IDLE seconds of idle CPU; R confirms/s for D s (confirm -> push);
# F complete logins (create, socket, single-step confirm, push, redeem);
# FULL logins in the full flow as the widget and mini-program do them
# (create, code image from the fake's getwxacodeunlimit, socket, scan,
# `scanned`, confirm with the mp_token, `confirmed`, redeem); OIDC logins as
# a stock relying party does them (GET /oauth2/authorize, the page's scene,
# code image and socket, scan, confirm, /oauth2/authorize/complete with the
# ticket, POST /oauth2/token with client_secret_basic and PKCE, GET
# /oauth2/userinfo) for the client bench-rp, which this script adds through
# the environment (SCANLOGIN__CLIENTS__1__...); POLLS short polls.
#
# Compare mode (BASELINE set): the baseline binary and the new build
# (HUB_BIN) run ALTERNATELY, baseline first (A, B, A, B, A, B with the
# default RUNS=3), with the same load tool (BENCH_BIN) and the same fake
# WeChat, each with a fresh database; then `scanlogin-bench compare` prints,
# for each figure, both sides' median (min-max) over the runs and the ratio
# new / baseline, as a Markdown table on stderr, also saved next to $OUT as
# compare-<time>.md. Every run's JSON line is appended to $OUT as usual, with
# "side": "baseline" or "new" and the binary in its label. Both hubs get the
# same environment overrides, all keys that the baseline (8a6b6fd) knows; the
# hub refuses unknown keys, so when config.toml has gained keys since the
# baseline, BASELINE_REV=<commit> gives the baseline that commit's
# config.toml (git show REV:config.toml), or BASELINE_CONFIG=<file> any.
#
# WeChat's side (WECHAT): `fake` (default) starts `scanlogin-bench
# fake-wechat` on 127.0.0.1:$FAKE_PORT as its own process and runs the hub in
# live mode against it, as in production: the hub's CPU figures leave out
# WeChat's work, and the fake's CPU is reported beside them. `simulator` runs
# the hub with its built-in simulator: the hub exchanges each code with
# itself over HTTP, so its CPU includes WeChat's side.
#
# Knobs (environment): N waiting browsers (10000), R confirms/s (1000),
# D seconds of confirms (10), K login workers (32), F logins (10000),
# FULL full-flow logins (3000, 0 skips), OIDC logins (1000, 0 skips),
# POLLS short polls for the polling baseline (20000, 0 skips), IDLE seconds
# of idle watch (25), RUNS (1; 3 in compare mode, per side), PORT (18181),
# HUB_WORKERS (0 = one per core),
# DB_MAX_CONNECTIONS (config.toml's value when unset), PG_URL (PostgreSQL
# instead of SQLite: a fresh database per run on that server), BUILD (1; 0 skips the
# build), OUT (JSON lines, target/bench/results.jsonl), LABEL (free text),
# HUB_BIN / BENCH_BIN (prebuilt binaries, e.g. a patched hub), WECHAT
# (fake or simulator), FAKE_PORT (18182, the fake WeChat's loopback port),
# CODE_IMAGE_BYTES (size of the fake's code images; the tool's default when
# unset), BASELINE (an older hub binary: compare mode), BASELINE_REV /
# BASELINE_CONFIG (the baseline's config file, see above).
# Results: the table on stderr, one JSON line per run appended to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-10000} R=${R:-1000} D=${D:-10} K=${K:-32} F=${F:-10000}
FULL=${FULL:-3000} OIDC=${OIDC:-1000}
POLLS=${POLLS:-20000} IDLE=${IDLE:-25} PORT=${PORT:-18181}
HUB_WORKERS=${HUB_WORKERS:-0} BUILD=${BUILD:-1} LABEL=${LABEL:-}
WECHAT=${WECHAT:-fake} FAKE_PORT=${FAKE_PORT:-18182}
BASELINE=${BASELINE:-} BASELINE_REV=${BASELINE_REV:-} BASELINE_CONFIG=${BASELINE_CONFIG:-}
if [ -n "$BASELINE" ]; then RUNS=${RUNS:-3}; else RUNS=${RUNS:-1}; fi
case "$WECHAT" in
    fake | simulator) ;;
    *) echo "bench.sh: WECHAT must be fake or simulator, not '$WECHAT'" >&2; exit 2 ;;
esac
# The mini-program the fake WeChat knows; the hub is given the same (live
# mode only; the simulator uses config.toml's app).
BENCH_APP_ID=wxbench000000000 BENCH_APP_SECRET=bench-app-secret-not-a-real-one
# The OpenID Connect relying party of the OIDC phase (a second client).
RP_ID=bench-rp RP_SECRET=bench-rp-secret-not-a-real-one
RP_REDIRECT=http://127.0.0.1/scanlogin-bench/callback
target_dir=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$target_dir/bench/results.jsonl}
HUB_BIN=${HUB_BIN:-$target_dir/release/scanlogin}
BENCH_BIN=${BENCH_BIN:-$target_dir/release/scanlogin-bench}
if [ -n "$BASELINE" ] && [ ! -x "$BASELINE" ]; then
    echo "bench.sh: BASELINE=$BASELINE is not an executable file" >&2
    exit 2
fi

# Each waiting browser is one socket in the hub and one in the tool.
if [ "$(ulimit -n)" -lt 20000 ]; then
    ulimit -n 20000 || echo "bench.sh: cannot raise ulimit -n to 20000; N may fail" >&2
fi

if [ "$BUILD" = 1 ]; then
    cargo build --release -p scanlogin -p scanlogin-bench
fi
mkdir -p "$(dirname "$OUT")"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/scanlogin-bench.XXXXXX")
# The configuration each side's hub reads (see the header).
NEW_CONFIG=config.toml
OLD_CONFIG=${BASELINE_CONFIG:-config.toml}
if [ -n "$BASELINE_REV" ]; then
    OLD_CONFIG=$tmp/baseline-config.toml
    git show "$BASELINE_REV:config.toml" >"$OLD_CONFIG"
fi
hub_pid="" fake_pid="" bench_pid=""
# Stops process $1 (SIGTERM, then SIGKILL after 10 s).
stop_pid() {
    local pid=$1
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
stop_hub() {
    stop_pid "$hub_pid"
    hub_pid=""
    drop_pg_dbs
}
stop_fake() {
    stop_pid "$fake_pid"
    fake_pid=""
}
cleanup() {
    stop_pid "$bench_pid"
    stop_hub
    stop_fake
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts the fake WeChat on 127.0.0.1:$FAKE_PORT and waits until it hands
# out an access token for the bench app.
start_fake() {
    local dir=$1
    mkdir -p "$dir"
    if curl -sS -o /dev/null "http://127.0.0.1:$FAKE_PORT/" 2>/dev/null; then
        echo "bench.sh: something already listens on 127.0.0.1:$FAKE_PORT; set FAKE_PORT" >&2
        return 1
    fi
    local image_args=()
    if [ -n "${CODE_IMAGE_BYTES:-}" ]; then
        image_args=(--code-image-bytes "$CODE_IMAGE_BYTES")
    fi
    "$BENCH_BIN" fake-wechat --bind "127.0.0.1:$FAKE_PORT" \
        --app-id "$BENCH_APP_ID" --app-secret "$BENCH_APP_SECRET" --max-secs 7200 \
        "${image_args[@]}" >"$dir/fake-wechat.log" 2>&1 &
    fake_pid=$!
    local ask
    ask=$(printf '{"grant_type":"client_credential","appid":"%s","secret":"%s"}' "$BENCH_APP_ID" "$BENCH_APP_SECRET")
    wait_for "the fake WeChat" "$fake_pid" "$dir/fake-wechat.log" 100 fake_answers "$ask"
}

# The fake hands out an access token for the bench app (so id and secret match).
fake_answers() {
    curl -fsS -X POST -d "$1" "http://127.0.0.1:$FAKE_PORT/cgi-bin/stable_token" \
        | grep -q '"access_token"'
}

# wait_for WHAT PID LOG TRIES PROBE...: runs PROBE every 0.1 s, at most TRIES
# times, until it succeeds; fails (showing LOG) if PID dies or time runs out.
wait_for() {
    local what=$1 pid=$2 log=$3 tries=$4
    shift 4
    for _ in $(seq 1 "$tries"); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench.sh: $what did not come up; its log:" >&2
    cat "$log" >&2
    return 1
}

# start_hub DIR BINARY CONFIG: the hub BINARY with CONFIG plus the
# environment below (only keys that every compared build knows).
# The hub's database: a fresh SQLite file in the run's folder, or with
# PG_URL (a PostgreSQL server URL with a database the script may create
# others beside, e.g. postgres://postgres@127.0.0.1:5432/test) a fresh
# PostgreSQL database per run (scanlogin_bench_*), dropped when the hub stops.
database_url() {
    if [ -z "${PG_URL:-}" ]; then
        echo "sqlite://$1/db.sqlite"
        return
    fi
    local name
    name="scanlogin_bench_$(date +%s%N)"
    psql "$PG_URL" -qc "CREATE DATABASE $name" >/dev/null
    echo "${PG_URL%/*}/$name"
}
drop_pg_dbs() {
    [ -n "${PG_URL:-}" ] || return 0
    local name
    for name in $(psql "$PG_URL" -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'scanlogin_bench_%'" 2>/dev/null); do
        psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
    done
}

start_hub() {
    local dir=$1 bin=$2 config=$3
    mkdir -p "$dir"
    local env=(
        SCANLOGIN__SERVER__BIND="127.0.0.1:$PORT"
        SCANLOGIN__SERVER__PUBLIC_URL="http://127.0.0.1:$PORT"
        SCANLOGIN__SERVER__SECRET_KEY_FILE="$dir/secret.key"
        SCANLOGIN__SERVER__WORKERS="$HUB_WORKERS"
        SCANLOGIN__DATABASE__URL="$(database_url "$dir")"
        SCANLOGIN__SCENE__TTL_SECS=3600
        # One load tool on one address plays thousands of people: no limits.
        SCANLOGIN__RATE_LIMIT__SCENES_PER_MINUTE=0
        SCANLOGIN__RATE_LIMIT__QRCODES_PER_MINUTE=0
        SCANLOGIN__RATE_LIMIT__SOCKETS_PER_MINUTE=0
        SCANLOGIN__RATE_LIMIT__POLLS_PER_MINUTE=0
        SCANLOGIN__RATE_LIMIT__MP_PER_MINUTE=0
        SCANLOGIN__RATE_LIMIT__MP_PER_SCENE_PER_MINUTE=0
        SCANLOGIN__RATE_LIMIT__REDEEMS_PER_MINUTE=0
        SCANLOGIN__RATE_LIMIT__AUTH_FAILURES_PER_MINUTE=0
        SCANLOGIN__RATE_LIMIT__OTHER_PER_MINUTE=0
        SCANLOGIN__LOG__LEVEL=warn
        # The relying party of the OIDC phase.
        SCANLOGIN__CLIENTS__1__CLIENT_ID="$RP_ID"
        SCANLOGIN__CLIENTS__1__NAME="Bench relying party"
        SCANLOGIN__CLIENTS__1__CLIENT_SECRET="$RP_SECRET"
        SCANLOGIN__CLIENTS__1__REDIRECT_URIS="[\"$RP_REDIRECT\"]"
    )
    if [ "$WECHAT" = fake ]; then
        env+=(
            SCANLOGIN__WECHAT__MODE=live
            SCANLOGIN__WECHAT__API_BASE="http://127.0.0.1:$FAKE_PORT/"
            SCANLOGIN__APPS__0__APP_ID="$BENCH_APP_ID"
            SCANLOGIN__APPS__0__SECRET="$BENCH_APP_SECRET"
            NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
        )
    else
        env+=(SCANLOGIN__WECHAT__MODE=simulator)
    fi
    if [ -n "${DB_MAX_CONNECTIONS:-}" ]; then
        env+=(SCANLOGIN__DATABASE__MAX_CONNECTIONS="$DB_MAX_CONNECTIONS")
    fi
    env "${env[@]}" RUST_LOG=warn "$bin" --config "$config" serve >"$dir/hub.log" 2>&1 &
    hub_pid=$!
    wait_for "the hub" "$hub_pid" "$dir/hub.log" 300 curl -fsS "http://127.0.0.1:$PORT/healthz"
}

# one_run I SIDE BINARY CONFIG: a fresh fake WeChat, hub and database, run
# I of the tool against BINARY (SIDE: baseline, new or empty); its JSON line
# goes to $tmp/SIDE-I/result.json and $OUT.
one_run() {
    local i=$1 side=$2 bin=$3 config=$4
    local dir=$tmp/${side:-run}-$i name="${side:+$side }run $i/$RUNS"
    local wechat_args=(--wechat "$WECHAT") side_args=() label
    mkdir -p "$dir"
    if [ "$WECHAT" = fake ]; then
        start_fake "$dir"
        wechat_args+=(--wechat-pid "$fake_pid")
        echo "bench.sh: $name, fake WeChat pid $fake_pid on 127.0.0.1:$FAKE_PORT" >&2
    fi
    start_hub "$dir" "$bin" "$config"
    echo "bench.sh: $name, hub $bin (pid $hub_pid) on 127.0.0.1:$PORT, WeChat: $WECHAT" >&2
    label="${LABEL:+$LABEL }${side:+$side ($bin) }run $i/$RUNS load $(cut -d' ' -f1 /proc/loadavg)"
    if [ -n "$side" ]; then side_args=(--side "$side"); fi
    # In the background so that a SIGTERM to this script stops everything
    # at once (a foreground child would delay the trap until it ends).
    "$BENCH_BIN" --hub "http://127.0.0.1:$PORT/" --pid "$hub_pid" "${wechat_args[@]}" \
        --waiting "$N" --rate "$R" --secs "$D" --workers "$K" --logins "$F" \
        --full-logins "$FULL" --oidc-logins "$OIDC" \
        --oidc-client-id "$RP_ID" --oidc-client-secret "$RP_SECRET" \
        --oidc-redirect-uri "$RP_REDIRECT" \
        --polls "$POLLS" --idle-secs "$IDLE" "${side_args[@]}" --label "$label" \
        >"$dir/result.json" &
    bench_pid=$!
    wait "$bench_pid" || status=$?
    bench_pid=""
    tee -a "$OUT" <"$dir/result.json"
    stop_hub
    stop_fake
    # Each run's database holds its code images (tens of MB): not kept.
    rm -f "$dir"/db.sqlite*
    if [ -s "$dir/hub.log" ]; then
        echo "bench.sh: hub log of $name (warnings and errors):" >&2
        tail -n 20 "$dir/hub.log" >&2
    fi
    if [ -s "$dir/fake-wechat.log" ]; then
        echo "bench.sh: fake WeChat log of $name:" >&2
        tail -n 5 "$dir/fake-wechat.log" >&2
    fi
}

echo "bench.sh: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
status=0
if [ -z "$BASELINE" ]; then
    for run in $(seq 1 "$RUNS"); do
        one_run "$run" "" "$HUB_BIN" "$NEW_CONFIG"
    done
    echo "bench.sh: results appended to $OUT" >&2
    exit "$status"
fi

# Compare mode: baseline and new build alternately, RUNS each.
for run in $(seq 1 "$RUNS"); do
    one_run "$run" baseline "$BASELINE" "$OLD_CONFIG"
    one_run "$run" new "$HUB_BIN" "$NEW_CONFIG"
done
table=$(dirname "$OUT")/compare-$(date -u +%Y%m%dT%H%M%SZ).md
results=()
for f in "$tmp"/*/result.json; do
    if [ -s "$f" ]; then results+=("$f"); fi
done
{
    echo "# scanlogin bench: baseline $BASELINE vs new $HUB_BIN, $(date -u +%FT%TZ), $(nproc) cores"
    echo
    "$BENCH_BIN" compare "${results[@]}"
} >"$table" || status=$?
echo >&2
cat "$table" >&2
echo "bench.sh: results appended to $OUT; the comparison saved as $table" >&2
exit "$status"
