#!/usr/bin/env bash
# A throwaway redis-server for the tests: 127.0.0.1 only, a free port, no
# persistence, state in a temp dir.
#   eval "$(bash scripts/redis.sh start)"   # prints REDIS_URL=redis://127.0.0.1:PORT
#   npm test
#   bash scripts/redis.sh stop
# `start` installs Debian's redis-server if missing (root, apt) without
# starting the system service. Logs go to stderr; stdout is the URL line only.
set -euo pipefail

STATE="${INTERLOCK_REDIS_STATE:-${TMPDIR:-/tmp}/interlock-redis-$(id -u).dir}"

source "$(dirname "${BASH_SOURCE[0]}")/lib-server.sh"

log() { echo "redis.sh: $*" >&2; }

install_redis() { install_quietly redis-server 'command -v redis-server'; }

running() { running_from redis.pid redis-server; }

start() {
  if running; then
    log "already running (state in $(cat "$STATE")); run '$0 stop' first"
    exit 1
  fi
  [[ -f $STATE ]] && forget_stale
  install_redis
  local dir port
  dir=$(mktemp -d "${TMPDIR:-/tmp}/interlock-redis.XXXXXX")
  for _ in 1 2 3; do # the free port may be taken before redis binds it
    port=$(free_port)
    if redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$dir" \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2; then
      for _ in $(seq 50); do
        if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
          echo "$port" >"$dir/port"
          echo "$dir" >"$STATE"
          log "redis-server $(redis-server --version | grep -o 'v=[^ ]*') on 127.0.0.1:$port (pid $(cat "$dir/redis.pid"))"
          echo "REDIS_URL=redis://127.0.0.1:$port"
          return
        fi
        sleep 0.1
      done
      [[ -f $dir/redis.pid ]] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    fi
    log "no answer on port $port; retrying"
  done
  cat "$dir/redis.log" >&2 2>/dev/null || true
  rm -rf "$dir"
  log "could not start redis-server"
  exit 1
}

stop() {
  if [[ ! -f $STATE ]]; then
    log "not running"
    return
  fi
  local dir pid
  dir=$(cat "$STATE")
  pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
  if [[ -n $pid ]] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    log "stopped redis-server (pid $pid)"
  fi
  rm -rf "$dir" "$STATE"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 64
  ;;
esac
