#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests: 127.0.0.1 only, a free port, no
# fsync, the cluster in a temp dir, trust auth for the `postgres` role.
#   eval "$(bash scripts/postgres.sh start)"  # prints POSTGRES_URL=postgres://postgres@127.0.0.1:PORT/postgres
#   npm test
#   bash scripts/postgres.sh stop
# `start` installs Debian's postgresql if missing (root, apt) without starting
# the system cluster. initdb refuses to run as root, so as root the cluster
# belongs to `nobody`. Logs go to stderr; stdout is the URL line only.
set -euo pipefail

STATE="${INTERLOCK_POSTGRES_STATE:-${TMPDIR:-/tmp}/interlock-postgres-$(id -u).dir}"

source "$(dirname "${BASH_SOURCE[0]}")/lib-server.sh"

log() { echo "postgres.sh: $*" >&2; }

bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n $dir && -x $dir/initdb ]] || return 1
  echo "$dir"
}

install_postgres() { install_quietly postgresql 'bindir'; }

# Runs a command as the cluster's owner: ourselves, or nobody when we are root.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u nobody -- "$@"
  else
    "$@"
  fi
}

running() { running_from data/postmaster.pid postgres; }

start() {
  if running; then
    log "already running (state in $(cat "$STATE")); run '$0 stop' first"
    exit 1
  fi
  [[ -f $STATE ]] && forget_stale
  install_postgres
  local bin dir port
  bin=$(bindir)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/interlock-postgres.XXXXXX")
  [[ $(id -u) -eq 0 ]] && chown nobody: "$dir"
  chmod 700 "$dir"
  echo "$dir" >"$STATE"
  as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
    {
      cat "$dir/initdb.log" >&2
      stop
      log "initdb failed"
      exit 1
    }
  for _ in 1 2 3; do # the free port may be taken before postgres binds it
    port=$(free_port)
    if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 start \
      -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off -c max_connections=200" >&2; then
      echo "$port" >"$dir/port"
      log "postgres $("$bin/postgres" --version | awk "{print \$3}") on 127.0.0.1:$port (data in $dir)"
      echo "POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres"
      return
    fi
    log "could not start on port $port; retrying"
  done
  cat "$dir/postgres.log" >&2 2>/dev/null || true
  stop
  log "could not start postgres"
  exit 1
}

stop() {
  if [[ ! -f $STATE ]]; then
    log "not running"
    return
  fi
  local dir bin
  dir=$(cat "$STATE")
  bin=$(bindir) || true
  if [[ -n $bin && -f $dir/data/postmaster.pid ]]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 10 stop >&2 || true
    log "stopped postgres ($dir)"
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
