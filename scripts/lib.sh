# shellcheck shell=bash
# Shared helpers for scripts/setup, scripts/dev, scripts/test and scripts/stack: logging, waiting for
# ports, and starting/stopping each local service (redis-server, upstash-local, nginx, xpublish,
# wrangler dev) in its own process group so that stopping it stops its children too.

ZEC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ZEC_ROOT
export WRANGLER_SEND_METRICS=false
# wrangler writes a debug log of every inspector message (~50 MB per load run) to ~/.config:
# keep it inside the checkout, where a fresh clone starts empty.
export WRANGLER_LOG_PATH="${WRANGLER_LOG_PATH:-$ZEC_ROOT/.local/wrangler-logs}"
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1m[%s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# wait_for_http URL SECONDS NAME [LOGFILE]: polls until URL answers any HTTP status.
wait_for_http() {
  local url=$1 seconds=$2 name=$3 logfile=${4:-} i
  for ((i = 0; i < seconds * 5; i++)); do
    if curl -s -o /dev/null --max-time 2 "$url"; then return 0; fi
    sleep 0.2
  done
  [ -n "$logfile" ] && [ -f "$logfile" ] && tail -n 40 "$logfile" >&2
  die "$name did not answer at $url within ${seconds}s${logfile:+ (log: $logfile)}"
}

# wait_for_redis PORT SECONDS
wait_for_redis() {
  local port=$1 seconds=$2 i
  for ((i = 0; i < seconds * 5; i++)); do
    if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then return 0; fi
    sleep 0.2
  done
  die "redis-server did not answer PING on port $port within ${seconds}s"
}

# port_free PORT: true when nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

require_free_ports() {
  local port
  for port in "$@"; do
    port_free "$port" || die "port $port is already in use (another stack running? stop it, or set the ZEC_*_PORT variables)"
  done
}

# spawn STATE NAME CMD...: runs CMD in a new session (its own process group), logs to STATE/logs/NAME.log.
spawn() {
  local state=$1 name=$2; shift 2
  mkdir -p "$state/logs" "$state/pids"
  setsid "$@" >"$state/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$state/pids/$name.pid"
}

# stop STATE NAME: stops the process group started by spawn, waiting up to 10 s.
stop() {
  local state=$1 name=$2 pid i
  [ -f "$state/pids/$name.pid" ] || return 0
  pid=$(cat "$state/pids/$name.pid")
  kill -TERM -- "-$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$state/pids/$name.pid"
}

stop_all() {
  local state=$1 name file
  # The workers first (they write back to the others), then every other process spawned.
  for name in worker4 worker3 worker2 worker faultproxy s3proxy slowproxy origin s3 upstash redis; do
    stop "$state" "$name"
  done
  for file in "$state"/pids/*.pid; do
    [ -e "$file" ] || continue
    name=$(basename "$file" .pid)
    stop "$state" "$name"
  done
}

# start_redis STATE PORT [persist]: throwaway unless "persist" (then RDB snapshots in STATE/redis).
start_redis() {
  local state=$1 port=$2 mode=${3:-}
  mkdir -p "$state/redis"
  local save=(--save "" --appendonly no)
  [ "$mode" = persist ] && save=(--save "60 1" --appendonly no)
  spawn "$state" redis redis-server --bind 127.0.0.1 --port "$port" --dir "$state/redis" \
    "${save[@]}" --daemonize no --protected-mode yes
  wait_for_redis "$port" 15
}

# start_upstash STATE PORT REDIS_PORT TOKEN
start_upstash() {
  local state=$1 port=$2 redis_port=$3 token=$4
  local bin="$ZEC_ROOT/target/release/upstash-local"
  [ -x "$bin" ] || die "$bin is missing; run scripts/setup"
  spawn "$state" upstash "$bin" --listen "127.0.0.1:$port" --redis-url "redis://127.0.0.1:$redis_port" --token "$token"
  wait_for_http "http://127.0.0.1:$port/" 15 upstash-local "$state/logs/upstash.log"
}

# start_s3 STATE PORT BUCKET ACCESS_KEY SECRET_KEY: s3s-fs (a local S3 server that checks SigV4
# signatures and refuses unsigned requests) on PORT, storing under STATE/s3, with BUCKET made.
start_s3() {
  local state=$1 port=$2 bucket=$3 access_key=$4 secret_key=$5
  command -v s3s-fs >/dev/null || die "s3s-fs is missing; run scripts/setup"
  mkdir -p "$state/s3/$bucket"
  spawn "$state" s3 s3s-fs --host 127.0.0.1 --port "$port" --access-key "$access_key" \
    --secret-key "$secret_key" "$state/s3"
  # Unsigned requests are refused (403), which is an answer: the server is up.
  wait_for_http "http://127.0.0.1:$port/" 15 s3s-fs "$state/logs/s3.log"
}

# start_fault_proxy STATE PORT UPSTREAM_PORT: scripts/fault_proxy.py on PORT in front of
# 127.0.0.1:UPSTREAM_PORT, in the mode written in STATE/fault_proxy.mode (pass when missing).
# A further proxy takes a NAME (default faultproxy) and its mode file is STATE/NAME.mode.
start_fault_proxy() {
  local state=$1 port=$2 upstream=$3 name=${4:-faultproxy} mode_file
  mode_file="$state/$name.mode"
  [ "$name" = faultproxy ] && mode_file="$state/fault_proxy.mode"
  echo pass >"$mode_file"
  spawn "$state" "$name" "$ZEC_ROOT/.local/venv/bin/python" "$ZEC_ROOT/scripts/fault_proxy.py" \
    --listen "127.0.0.1:$port" --upstream "127.0.0.1:$upstream" --mode-file "$mode_file"
  wait_for_http "http://127.0.0.1:$port/" 15 "fault_proxy ($name)" "$state/logs/$name.log"
}

# start_origin STATE PORT ROOT: nginx serving ROOT with byte ranges; access log records the Range header.
start_origin() {
  local state=$1 port=$2 docroot=$3
  mkdir -p "$state/nginx/tmp"
  sed -e "s|@STATE@|$state/nginx|g" -e "s|@PORT@|$port|g" -e "s|@ROOT@|$docroot|g" \
    "$ZEC_ROOT/scripts/nginx-origin.conf" >"$state/nginx/nginx.conf"
  spawn "$state" origin nginx -p "$state/nginx" -c "$state/nginx/nginx.conf" -g "daemon off;"
  wait_for_http "http://127.0.0.1:$port/" 15 nginx "$state/logs/origin.log"
}

# spawn_xpublish STATE PORT [ARGS...]: scripts/xpublish_origin.py (a real xpublish serving the
# dataset /datasets/air as Zarr v3 and OGC EDR) under uvicorn on 127.0.0.1:PORT, without waiting
# for it; ARGS go to the script (--data-version N, --values-offset X, --test-routes).
# ZEC_XPUBLISH_NAME names a further instance (default xpublish): its pid file, and its log
# STATE/logs/NAME.log, which holds uvicorn's access log (one line per request, path and query).
spawn_xpublish() {
  local state=$1 port=$2 name=${ZEC_XPUBLISH_NAME:-xpublish}; shift 2
  spawn "$state" "$name" "$ZEC_ROOT/.local/venv/bin/python" "$ZEC_ROOT/scripts/xpublish_origin.py" \
    --port "$port" "$@"
}

# wait_for_xpublish STATE PORT: until the instance on PORT answers (up in ~3 s).
wait_for_xpublish() {
  local state=$1 port=$2 name=${ZEC_XPUBLISH_NAME:-xpublish}
  wait_for_http "http://127.0.0.1:$port/datasets" 30 "xpublish ($name)" "$state/logs/$name.log"
}

# start_xpublish STATE PORT [ARGS...]: spawn_xpublish, then wait_for_xpublish.
start_xpublish() {
  spawn_xpublish "$@"
  wait_for_xpublish "$1" "$2"
}

# write_worker_vars FILE UPSTASH_PORT TOKEN DEMO_DIR ORIGIN_URL [EXTRA_JSON]: the worker's secrets
# and the DATASETS variable (one dataset per entry of DEMO_DIR/datasets.json, refs served by the
# origin), merged with EXTRA_JSON (more datasets, e.g. for tests). Optional settings come from the
# environment when set: ZEC_ADMIN_TOKEN (ADMIN_TOKEN), ZEC_ORPHAN_GRACE_SECONDS,
# ZEC_DATASETS_REFRESH_SECONDS, ZEC_CACHE_CAPACITY_BYTES, ZEC_CACHE_EVICTION, ZEC_ORIGIN_TIMEOUT_MS,
# ZEC_REFS_MAX_BYTES, and ZEC_TEST_ROUTES (the test-only routes of src/glue/test_routes.rs; only
# scripts/test sets it, for its own stack).
write_worker_vars() {
  local file=$1 upstash_port=$2 token=$3 demo=$4 origin=$5 extra=${6:-"{}"} datasets
  datasets=$(python3 - "$demo/datasets.json" "$origin" "$extra" <<'PY'
import json, sys
entries = json.load(open(sys.argv[1]))
origin = sys.argv[2].rstrip("/")
# The origin is on loopback: such hosts are fetched only when a dataset lists them explicitly.
host = origin.split("://", 1)[1].split("/", 1)[0]
datasets = {e["id"]: {"refs": f"{origin}/{e['refs']}", "description": e["description"],
                      "allowed_hosts": [host]} for e in entries}
datasets.update(json.loads(sys.argv[3]))
print(json.dumps(datasets))
PY
)
  {
    echo "# Generated by scripts/lib.sh; not committed. Secrets and local settings for wrangler dev."
    echo "UPSTASH_REDIS_REST_URL=http://127.0.0.1:$upstash_port"
    echo "UPSTASH_REDIS_REST_TOKEN=$token"
    echo "DATASETS='$datasets'"
    [ -n "${ZEC_ADMIN_TOKEN:-}" ] && echo "ADMIN_TOKEN=$ZEC_ADMIN_TOKEN"
    [ -n "${ZEC_ORPHAN_GRACE_SECONDS:-}" ] && echo "ORPHAN_GRACE_SECONDS=$ZEC_ORPHAN_GRACE_SECONDS"
    [ -n "${ZEC_DATASETS_REFRESH_SECONDS:-}" ] && echo "DATASETS_REFRESH_SECONDS=$ZEC_DATASETS_REFRESH_SECONDS"
    [ -n "${ZEC_CACHE_CAPACITY_BYTES:-}" ] && echo "CACHE_CAPACITY_BYTES=$ZEC_CACHE_CAPACITY_BYTES"
    [ -n "${ZEC_CACHE_EVICTION:-}" ] && echo "CACHE_EVICTION=$ZEC_CACHE_EVICTION"
    [ -n "${ZEC_ORIGIN_TIMEOUT_MS:-}" ] && echo "ORIGIN_TIMEOUT_MS=$ZEC_ORIGIN_TIMEOUT_MS"
    [ -n "${ZEC_REFS_MAX_BYTES:-}" ] && echo "REFS_MAX_BYTES=$ZEC_REFS_MAX_BYTES"
    [ -n "${ZEC_TEST_ROUTES:-}" ] && echo "ZEC_TEST_ROUTES=$ZEC_TEST_ROUTES"
    [ -n "${ZEC_KEY_PREFIX:-}" ] && echo "KEY_PREFIX=$ZEC_KEY_PREFIX"
    [ -n "${ZEC_STORAGE_TIMEOUT_MS:-}" ] && echo "STORAGE_TIMEOUT_MS=$ZEC_STORAGE_TIMEOUT_MS"
    # The secrets a private origin's datasets name in s3_credentials (the test stack's t-private).
    if [ -n "${ZEC_ORIGIN_S3_SECRET:-}" ]; then
      echo "ORIGIN_S3_KEY_ID=$ZEC_ORIGIN_S3_KEY_ID"
      echo "ORIGIN_S3_SECRET=$ZEC_ORIGIN_S3_SECRET"
    fi
    # An S3-compatible chunk store instead of the R2 binding (ZEC_S3_URL set: s3s-fs locally).
    if [ -n "${ZEC_S3_URL:-}" ]; then
      echo "CHUNK_STORE=s3"
      echo "S3_ENDPOINT=$ZEC_S3_URL"
      echo "S3_BUCKET=$ZEC_S3_BUCKET"
      echo "S3_REGION=us-east-1"
      echo "S3_ACCESS_KEY_ID=$ZEC_S3_ACCESS_KEY"
      echo "S3_SECRET_ACCESS_KEY=$ZEC_S3_SECRET_KEY"
    fi
    true
  } >"$file"
}

# start_worker STATE PORT ENV_FILE: wrangler dev in local mode (the build runs before it starts),
# with --test-scheduled so that GET /__scheduled?cron=... runs the cron trigger.
# ZEC_WORKER_NAME names a further instance (same --persist-to: it shares local R2).
start_worker() {
  local state=$1 port=$2 env_file=$3 name=${ZEC_WORKER_NAME:-worker}
  local inspector=$((port + 1000))
  spawn "$state" "$name" "$ZEC_ROOT/node_modules/.bin/wrangler" dev --local --ip 127.0.0.1 \
    --port "$port" --inspector-port "$inspector" --persist-to "$state/wrangler" \
    --env-file "$env_file" --show-interactive-dev-session=false --log-level info --test-scheduled
  wait_for_http "http://127.0.0.1:$port/api/health" 300 "wrangler dev ($name)" "$state/logs/$name.log"
}
