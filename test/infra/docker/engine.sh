#!/usr/bin/env bash
# Start or stop the private test dockerd: `engine.sh start` | `engine.sh stop` | `engine.sh status`.
# start installs Debian's docker.io when missing (apt-get update once), starts dockerd with its own
# data/exec roots, pidfile and socket, and waits for _ping (bounded). Idempotent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

install_engine() {
  command -v dockerd >/dev/null 2>&1 && [ -x /usr/bin/docker ] && command -v curl >/dev/null 2>&1 && return 0
  log "installing docker.io (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq >/dev/null
  timeout 600 apt-get install -y -qq --no-install-recommends docker.io curl >/dev/null
}

start() {
  if engine_pid >/dev/null && engine_ping; then log "engine already running on $DOCKER_SOCK"; return 0; fi
  install_engine || { echo "dockerd could not be installed (apt-get install docker.io failed)"; return 1; }
  mkdir -p "$DOCKER_STATE"
  stop_quiet
  local driver
  for driver in overlay2 vfs; do
    rm -f "$DOCKER_SOCK"
    # A bounded lifetime: a forgotten engine ends by itself after 3 h.
    setsid timeout 3h dockerd --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
      --storage-driver="$driver" --data-root "$DOCKER_STATE/data-$driver" --exec-root "$DOCKER_STATE/exec" \
      --pidfile "$DOCKER_PIDFILE" -H "unix://$DOCKER_SOCK" >"$DOCKER_LOG" 2>&1 </dev/null 9>&- &
    local bg=$! i
    for i in $(seq 1 60); do
      if engine_ping; then log "engine up ($driver) on $DOCKER_SOCK"; return 0; fi
      kill -0 "$bg" 2>/dev/null || break
      sleep 0.5
    done
    log "dockerd with $driver did not answer: $(grep -m1 -iE 'level=(fatal|error)' "$DOCKER_LOG" || tail -1 "$DOCKER_LOG")"
    stop_quiet
    kill "$bg" 2>/dev/null || true
  done
  local reason
  reason="$(grep -v 'level=info' "$DOCKER_LOG" | grep . | tail -1 | sed 's/.*msg=//' | cut -c1-240)"
  echo "dockerd could not start (${reason:-see $DOCKER_LOG})"
  return 1
}

stop_quiet() {
  local pid
  pid="$(engine_pid)" || { rm -f "$DOCKER_PIDFILE"; unmount_leftovers; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do [ -d "/proc/$pid" ] || break; sleep 0.25; done
  [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$DOCKER_PIDFILE"
  unmount_leftovers
}

# A stopped (or early-dead) dockerd can leave mounts under its roots (the data root bound onto
# itself, exec/netns/default); only ours, deepest first.
unmount_leftovers() {
  local mount
  for mount in $(awk -v root="$DOCKER_STATE/" 'index($2, root) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null || true
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop_quiet; log "engine stopped" ;;
  status) engine_pid >/dev/null && engine_ping ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
