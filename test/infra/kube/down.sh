#!/usr/bin/env bash
# Stops everything up.sh started (by the pids it recorded), removes the pods' containers, network
# namespaces, mounts and the bridge, and deletes the cluster's state. Safe to run twice or with nothing up.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
PIDS="$KUBE_RUN/pids"
rm -f "$KUBE_ENV_DIR/env"
[[ -d "$KUBE_RUN" ]] || exit 0

# stop <name>: SIGTERM, up to 10 s, then SIGKILL; only the pid up.sh recorded.
stop() {
  local file="$PIDS/$1.pid" pid
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$file"
}

stop kubelet
# The pods' containers outlive kubelet and containerd (their shims are separate processes): kill and remove
# them through containerd, and remember the sandboxes' network namespaces.
netns=()
if pid_alive "$PIDS/containerd.pid"; then
  ctr_() { timeout 20 ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
  for c in $(ctr_ containers ls -q 2>/dev/null); do
    while read -r path; do netns+=("$path"); done < <(ctr_ containers info "$c" 2>/dev/null | grep -oE '"/var/run/netns/cni-[0-9a-f-]+"' | tr -d '"' | sort -u)
    ctr_ tasks kill -s SIGKILL "$c" >/dev/null 2>&1
  done
  sleep 0.5
  for c in $(ctr_ containers ls -q 2>/dev/null); do
    ctr_ tasks delete -f "$c" >/dev/null 2>&1
    ctr_ containers delete "$c" >/dev/null 2>&1
  done
fi
for name in containerd kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$name"; done
for path in $(printf '%s\n' "${netns[@]}" | sort -u); do
  umount "$path" 2>/dev/null; rm -f "$path"
done
ip link delete oztest0 2>/dev/null
# Mounts kubelet and containerd left under the state directory (secrets, projected tokens, rootfs).
for _ in 1 2 3; do
  mounts="$(awk -v root="$KUBE_RUN" 'index($2, root) == 1 { print $2 }' /proc/self/mounts | sort -r)"
  [[ -n "$mounts" ]] || break
  while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done <<<"$mounts"
done
rm -rf "$KUBE_RUN"
klog "cluster stopped"
