# Shared by scripts/redis.sh and scripts/postgres.sh (sourced): the parts of
# starting a throwaway server that do not depend on which server it is.

# Installs Debian package $1 (root, apt) if the command check $2 fails,
# without letting its init script start a system-wide instance.
install_quietly() {
  local pkg=$1 check=$2
  eval "$check" >/dev/null 2>&1 && return
  log "installing $pkg"
  local policy=/usr/sbin/policy-rc.d added=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg" >&2 || rc=$?
  ((added)) && rm -f "$policy"
  return "$rc"
}

# A loopback port free right now (the server may still lose it: retry).
free_port() {
  node -e "const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); });"
}

# True if $STATE names a dir whose pid file $1 (relative to it; the pid on
# its first line) names a live process running command $2.
running_from() {
  [[ -f $STATE ]] || return 1
  local pid
  pid=$(head -n 1 "$(cat "$STATE")/$1" 2>/dev/null) || return 1
  alive "$pid" "$2"
}

# True if pid $1 is alive and runs command $2. The name check matters because
# a state file can outlive its server (a reboot, a copied /tmp, a killed run)
# and its pid be reused by something else.
alive() {
  local pid=$1 name=$2
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name"* ]]
}

# Drops a state file, and the temp dir it names, left by a server that is
# gone: starting again must not fail because an earlier run did not stop.
forget_stale() {
  local dir
  dir=$(cat "$STATE" 2>/dev/null || true)
  log "removing stale state $STATE ($dir): its server is not running"
  [[ -n $dir && $dir == "${TMPDIR:-/tmp}"/interlock-* ]] && rm -rf "$dir"
  rm -f "$STATE"
}
