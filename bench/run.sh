#!/usr/bin/env bash
# Runs natter-bench's scenarios against natter and the baseline, and tabulates them.
#
#   bench/run.sh [--smoke] [--configs "sqlite pg pg2 baseline"] [--scenarios "fanout changes join-storm send-storm idle room-list"]
#                [--results FILE]
#
# Configurations (each on fresh servers, on free loopback ports):
#   sqlite    natter, embedded default: a fresh temp dir, DATABASE_URL=sqlite://…
#   pg        natter on PostgreSQL + Redis, one process: a fresh database (created and
#             dropped here) and a fresh REDIS_KEY_PREFIX (its keys deleted afterwards)
#   pg2       the same with two processes; the bench spreads users over both
#   baseline  ../shared/baseline (a bare broadcast server: the ceiling on this box)
# pg and pg2 are skipped, saying so, when PostgreSQL or Redis does not answer.
#
# Sizes (environment; small defaults):
#   FANOUT_ROOMS=1 FANOUT_MEMBERS=200 FANOUT_DURATION=10 FANOUT_WARMUP=2
#   CHANGES_ROOMS=1 CHANGES_MEMBERS=100 CHANGES_DURATION=10 CHANGES_WARMUP=4 (half the members
#     send, half edit their own messages and react/unreact to others', one change per 1.1 s;
#     message_updated delivery next to message delivery; a server without changes, the
#     baseline, is skipped, saying so)
#   IDLE_SOCKETS=1000 IDLE_USERS=100 IDLE_HOLD=3 IDLE_HISTORY=0 (messages seeded per room first;
#     needs IDLE_USERS ≥ 10 rooms × ⌈IDLE_HISTORY / 10⌉)
#   JOIN_JOINERS=200 JOIN_HISTORY=100 JOIN_SEED_PER_USER=10 JOIN_SEED_REPLIES=0 (1: the seeded
#     messages reply to their sender's previous one, so cached histories have replies)
#   LIST_ROOMS=5000 LIST_MEMBER_OF=200 LIST_REQUESTS=500 (room-list makes LIST_ROOMS rooms first)
#   SEND_ROOMS=10 SEND_SENDERS=200 SEND_DURATION=10 SEND_INTERVAL_MS=1050 (per sender; the
#     limiter is exact, so a server whose latency jitters refuses sends paced at 1.05 s:
#     leave margin for big runs)
#   BENCH_TIMEOUT=180 (seconds, per phase)
#   NATTER_BIN=path: run this natter binary instead of the checkout's release build (to
#     compare two commits on the same box: build each, copy it aside, run each in turn)
# --smoke: tiny sizes, a few seconds per scenario, embedded natter only (for CI).
#
# Every JSON line goes to the results file (default bench/results/<time>.jsonl), then a
# markdown table per scenario with natter ÷ baseline ratios is printed (and written
# next to it as .md). Every server started here is stopped on exit. Exit status: 0 when
# every scenario ran and passed its checks, 1 otherwise.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BASELINE_DIR="${BASELINE_DIR:-$ROOT/../shared/baseline}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}"
REDIS_URL_BASE="${REDIS_URL_BASE:-redis://127.0.0.1:6379}"
SECRET="natter-bench-secret-key-32-chars"   # 32 characters

SMOKE=0
CONFIGS="sqlite pg pg2 baseline"
SCENARIOS="fanout changes join-storm send-storm idle room-list"
RESULTS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --configs) CONFIGS="$2"; shift ;;
    --scenarios) SCENARIOS="$2"; shift ;;
    --results) RESULTS="$2"; shift ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 64 ;;
  esac
  shift
done

if [ "$SMOKE" = 1 ]; then
  CONFIGS="sqlite"
  : "${FANOUT_ROOMS:=2}" "${FANOUT_MEMBERS:=10}" "${FANOUT_DURATION:=3}" "${FANOUT_WARMUP:=1}"
  : "${CHANGES_ROOMS:=1}" "${CHANGES_MEMBERS:=6}" "${CHANGES_DURATION:=3}" "${CHANGES_WARMUP:=3}"
  : "${IDLE_SOCKETS:=50}" "${IDLE_USERS:=10}" "${IDLE_HOLD:=1}" "${IDLE_HISTORY:=2}"
  : "${JOIN_JOINERS:=20}" "${JOIN_HISTORY:=20}" "${JOIN_SEED_PER_USER:=2}"
  : "${SEND_ROOMS:=2}" "${SEND_SENDERS:=10}" "${SEND_DURATION:=3}"
  : "${LIST_ROOMS:=100}" "${LIST_MEMBER_OF:=20}" "${LIST_REQUESTS:=20}"
  : "${BENCH_TIMEOUT:=60}"
fi
: "${FANOUT_ROOMS:=1}" "${FANOUT_MEMBERS:=200}" "${FANOUT_DURATION:=10}" "${FANOUT_WARMUP:=2}"
: "${CHANGES_ROOMS:=1}" "${CHANGES_MEMBERS:=100}" "${CHANGES_DURATION:=10}" "${CHANGES_WARMUP:=4}"
: "${IDLE_SOCKETS:=1000}" "${IDLE_USERS:=100}" "${IDLE_HOLD:=3}" "${IDLE_HISTORY:=0}"
: "${JOIN_JOINERS:=200}" "${JOIN_HISTORY:=100}" "${JOIN_SEED_PER_USER:=10}"
: "${SEND_ROOMS:=10}" "${SEND_SENDERS:=200}" "${SEND_DURATION:=10}" "${SEND_INTERVAL_MS:=1050}"
: "${LIST_ROOMS:=5000}" "${LIST_MEMBER_OF:=200}" "${LIST_REQUESTS:=500}"
: "${BENCH_TIMEOUT:=180}"

RUN_ID="$(date +%Y%m%d-%H%M%S)-$$"
if [ -z "$RESULTS" ]; then
  mkdir -p "$ROOT/bench/results"
  RESULTS="$ROOT/bench/results/$RUN_ID.jsonl"
fi
: > "$RESULTS"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/natter-bench.XXXXXX")"
BENCH="$CARGO_TARGET_DIR/release/natter-bench"
NATTER="${NATTER_BIN:-$CARGO_TARGET_DIR/release/natter}"

say() { printf '\n==> %s\n' "$*" >&2; }

# --- cleanup: every server we started, the database, the Redis keys -----------------
PIDS=()
DBS=()
PREFIXES=()
stop_servers() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  PIDS=()
}
cleanup() {
  stop_servers
  local db prefix
  for db in "${DBS[@]}"; do
    psql "$PG_ADMIN_URL/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 \
      || echo "run.sh: could not drop database $db" >&2
  done
  for prefix in "${PREFIXES[@]}"; do
    redis-cli -u "$REDIS_URL_BASE" --scan --pattern "${prefix}*" 2>/dev/null \
      | xargs -r -n 500 redis-cli -u "$REDIS_URL_BASE" del >/dev/null 2>&1
  done
  DBS=()
  PREFIXES=()
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build ------------------------------------------------------------------------------
say "building natter and natter-bench (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
(cd "$ROOT" && cargo build --release -p natter -p natter-bench) || exit 1

BASELINE=""
case " $CONFIGS " in *" baseline "*)
  if ls "$BASELINE_DIR/target/release/baseline" >/dev/null 2>&1; then
    say "baseline: using the existing release build"
  else
    say "building the baseline (release) in $BASELINE_DIR"
    (cd "$BASELINE_DIR" && CARGO_TARGET_DIR="$BASELINE_DIR/target" cargo build --release) || exit 1
  fi
  BASELINE="$BASELINE_DIR/target/release/baseline"
  ;;
esac

# --- servers ------------------------------------------------------------------------------
free_port() {
  local port
  for port in $(shuf -i 20000-29999 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  echo "run.sh: no free port found" >&2; return 1
}

wait_ready() { # url pid
  for _ in $(seq 1 300); do
    kill -0 "$2" 2>/dev/null || return 1
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}

# start_natter NAME PORT [extra env…]: starts one process, appends its URL and PID.
TARGETS=()
SERVER_PIDS=()
start_natter() {
  local name="$1" port="$2"; shift 2
  local dir="$WORK/$name"
  mkdir -p "$dir"
  # Every bench user comes from 127.0.0.1: the per-address limits are for real clients.
  (cd "$dir" && exec env BIND="127.0.0.1:$port" SECRET_KEY="$SECRET" RUST_LOG=warn REGISTRATIONS_PER_ADDRESS_PER_HOUR=1000000 ROOM_CREATE_LIMIT=10000 MAX_CONNECTIONS_PER_ADDRESS=10000000 "$@" \
    "$NATTER" serve >"$dir.log" 2>&1) &
  local pid=$!
  PIDS+=("$pid")
  if ! wait_ready "http://127.0.0.1:$port" "$pid"; then
    echo "run.sh: natter ($name) did not become ready; its log:" >&2
    tail -20 "$dir.log" >&2
    return 1
  fi
  TARGETS+=("http://127.0.0.1:$port")
  SERVER_PIDS+=("$pid")
}

start_baseline() {
  local port; port="$(free_port)" || return 1
  "$BASELINE" --bind "127.0.0.1:$port" >"$WORK/baseline.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  if ! wait_ready "http://127.0.0.1:$port" "$pid"; then
    echo "run.sh: the baseline did not become ready" >&2; tail -20 "$WORK/baseline.log" >&2
    return 1
  fi
  TARGETS+=("http://127.0.0.1:$port")
  SERVER_PIDS+=("$pid")
}

services_up() {
  pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && redis-cli -u "$REDIS_URL_BASE" ping >/dev/null 2>&1
}

# start_config CONFIG: fresh servers for one configuration; sets TARGETS and SERVER_PIDS.
start_config() {
  TARGETS=()
  SERVER_PIDS=()
  case "$1" in
    sqlite)
      start_natter sqlite "$(free_port)" DATABASE_URL="sqlite://$WORK/sqlite/natter.db" ;;
    pg|pg2)
      local id="${RUN_ID//-/_}_$1"
      local db="natter_bench_$id" prefix="natter-bench-$id:"
      psql "$PG_ADMIN_URL/postgres" -qc "CREATE DATABASE \"$db\"" >/dev/null || return 1
      DBS+=("$db")
      PREFIXES+=("$prefix")
      local env=(DATABASE_URL="$PG_ADMIN_URL/$db" REDIS_URL="$REDIS_URL_BASE" REDIS_KEY_PREFIX="$prefix")
      start_natter "$1-a" "$(free_port)" "${env[@]}" || return 1
      if [ "$1" = pg2 ]; then
        start_natter "$1-b" "$(free_port)" "${env[@]}" || return 1
      fi
      ;;
    baseline) start_baseline ;;
    *) echo "run.sh: unknown configuration $1" >&2; return 1 ;;
  esac
}

label_of() {
  case "$1" in
    sqlite) echo natter-sqlite ;; pg) echo natter-pg ;; pg2) echo natter-pg-x2 ;; *) echo "$1" ;;
  esac
}

# --- scenarios ------------------------------------------------------------------------------
FAILED=()
run_scenario() { # config scenario
  local label; label="$(label_of "$1")"
  local targets; targets="$(IFS=,; echo "${TARGETS[*]}")"
  local common=(--target "$targets" --label "$label" --timeout "$BENCH_TIMEOUT")
  local args=()
  case "$2" in
    fanout) args=(--rooms "$FANOUT_ROOMS" --members "$FANOUT_MEMBERS" --duration "$FANOUT_DURATION" --warmup "$FANOUT_WARMUP") ;;
    changes) args=(--rooms "$CHANGES_ROOMS" --members "$CHANGES_MEMBERS" --duration "$CHANGES_DURATION" --warmup "$CHANGES_WARMUP") ;;
    idle)
      args=(--sockets "$IDLE_SOCKETS" --users "$IDLE_USERS" --hold "$IDLE_HOLD" --history "$IDLE_HISTORY")
      local pid; for pid in "${SERVER_PIDS[@]}"; do args+=(--server-pid "$pid"); done ;;
    join-storm) args=(--joiners "$JOIN_JOINERS" --history "$JOIN_HISTORY" --seed-per-user "$JOIN_SEED_PER_USER")
                [ "${JOIN_SEED_REPLIES:-0}" = 1 ] && args+=(--seed-replies) ;;
    room-list) args=(--rooms "$LIST_ROOMS" --member-of "$LIST_MEMBER_OF" --requests "$LIST_REQUESTS") ;;
    send-storm) args=(--rooms "$SEND_ROOMS" --senders "$SEND_SENDERS" --duration "$SEND_DURATION" --send-interval-ms "$SEND_INTERVAL_MS") ;;
    *) echo "run.sh: unknown scenario $2" >&2; FAILED+=("$label/$2"); return ;;
  esac
  say "$label: $2 ${args[*]}"
  # The JSON line (stdout) goes to the results file, the table (stderr) to the console.
  if ! "$BENCH" "$2" "${common[@]}" "${args[@]}" >>"$RESULTS"; then
    FAILED+=("$label/$2")
  fi
}

for config in $CONFIGS; do
  if [ "$config" = pg ] || [ "$config" = pg2 ]; then
    if ! services_up; then
      say "$(label_of "$config"): skipped (PostgreSQL on 127.0.0.1:5432 or Redis at $REDIS_URL_BASE does not answer)"
      continue
    fi
  fi
  say "$(label_of "$config"): starting"
  if ! start_config "$config"; then
    FAILED+=("$(label_of "$config")/start")
    stop_servers
    continue
  fi
  for scenario in $SCENARIOS; do
    run_scenario "$config" "$scenario"
  done
  stop_servers
done

say "results: $RESULTS"
"$BENCH" summary "$RESULTS" | tee "${RESULTS%.jsonl}.md"
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo >&2
  echo "run.sh: failed: ${FAILED[*]}" >&2
  exit 1
fi
