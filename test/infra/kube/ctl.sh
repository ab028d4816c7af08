#!/usr/bin/env bash
# Faults on demand for the real-cluster tests:
#   ctl.sh stop <component>      stops one component up.sh started (e.g. kube-apiserver)
#   ctl.sh start <component>     starts it again with the command up.sh used
#   ctl.sh restart <component>   both
#   ctl.sh kill <component>      SIGKILL (no graceful shutdown)
#   ctl.sh compact-etcd          compacts etcd to its current revision (older watches get 410 Gone)
#   ctl.sh wait-apiserver        waits (60 s at most) until the API server is ready
set -euo pipefail
. "$(dirname "$0")/lib.sh"
PIDS="$KUBE_RUN/pids"
CMDS="$KUBE_RUN/cmd"
LOGS="$KUBE_RUN/logs"

stop_component() {
  local file="$PIDS/$1.pid" pid signal="${2:-TERM}"
  [[ -f "$file" ]] || { klog "$1 is not running"; return 0; }
  pid="$(cat "$file")"
  kill -s "$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$file"
}
start_component() {
  [[ -f "$CMDS/$1" ]] || { klog "no recorded command for $1"; exit 1; }
  pid_alive "$PIDS/$1.pid" && return 0
  eval "setsid $(cat "$CMDS/$1") >>\"$LOGS/$1.log\" 2>&1 </dev/null 9>&- &"
  echo $! >"$PIDS/$1.pid"
}
apiserver_ready() {
  curl -fsS --max-time 3 --cacert "$KUBE_PKI/ca.crt" --cert "$KUBE_PKI/admin.crt" --key "$KUBE_PKI/admin.key" \
    "https://127.0.0.1:$KUBE_APISERVER_PORT/readyz" >/dev/null
}

case "${1:-}" in
  stop) stop_component "$2" ;;
  start) start_component "$2" ;;
  restart) stop_component "$2"; start_component "$2" ;;
  kill) stop_component "$2" KILL ;;
  wait-apiserver) wait_for 60 apiserver_ready ;;
  compact-etcd)
    endpoint="http://127.0.0.1:$KUBE_ETCD_CLIENT_PORT"
    rev="$(ETCDCTL_API=3 etcdctl --endpoints "$endpoint" endpoint status -w json | grep -oE '"revision":[0-9]+' | head -1 | cut -d: -f2)"
    ETCDCTL_API=3 etcdctl --endpoints "$endpoint" compact "$rev" --physical >/dev/null
    echo "$rev"
    ;;
  *) echo "usage: ctl.sh stop|start|restart|kill <component> | compact-etcd | wait-apiserver" >&2; exit 2 ;;
esac
