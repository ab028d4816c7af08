# Shared paths and helpers of the real-cluster scripts (sourced, not run).
# shellcheck shell=bash
OZ_TEST_CACHE="${OZ_TEST_CACHE:-/root/.cache/oz-worker-test}"
KUBE_DIR="$OZ_TEST_CACHE/kube"
KUBE_BIN="$KUBE_DIR/bin"
KUBE_IMAGES="$KUBE_DIR/images"
KUBE_RUN="$KUBE_DIR/run"            # state of the running cluster (pids, logs, data); removed by down.sh
KUBE_ENV_DIR="$KUBE_DIR/env"        # what tests read: kubeconfig, env
KUBE_PKI="$KUBE_DIR/pki"            # CA and certificates, kept across runs
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"

# Loopback ports of the control plane (chosen away from common defaults to avoid clashes).
KUBE_APISERVER_PORT="${OZ_KUBE_APISERVER_PORT:-16443}"
KUBE_ETCD_CLIENT_PORT="${OZ_KUBE_ETCD_PORT:-12379}"
KUBE_ETCD_PEER_PORT=$((KUBE_ETCD_CLIENT_PORT + 1))
KUBE_KUBELET_PORT="${OZ_KUBE_KUBELET_PORT:-10250}"
KUBE_REGISTRY_PORT="${OZ_KUBE_REGISTRY_PORT:-15055}"   # where containerd looks for 127.0.0.1:<port>/… images (plain HTTP)
# The node is called localhost: kubelet refuses a loopback node IP, so the API server reaches it by its
# Hostname address (localhost:$KUBE_KUBELET_PORT) and every control-plane connection stays on loopback.
KUBE_NODE_NAME="localhost"
KUBE_POD_CIDR="10.244.0.0/24"
KUBE_SERVICE_CIDR="10.96.0.0/24"
CONTAINERD_SOCK="$KUBE_RUN/containerd/containerd.sock"

AGENT_IMAGE="oz-agent-standin:local"
WORKER_IMAGE="oz-worker:local"
PAUSE_IMAGE="oz-test/pause:local"

klog() { echo "kube: $*" >&2; }

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local seconds="$1"; shift
  local end=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [[ $SECONDS -lt $end ]] || return 1
    sleep 0.5
  done
}

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
