#!/usr/bin/env bash
# Starts a single-node Kubernetes cluster on loopback for the real-cluster tests, and prints the path of its
# admin kubeconfig (also written, with an env file, to $OZ_TEST_CACHE/kube/env/).
#
#   etcd (Debian's etcd-server)           http://127.0.0.1:$KUBE_ETCD_CLIENT_PORT
#   kube-apiserver                        https://127.0.0.1:$KUBE_APISERVER_PORT  (Node,RBAC; SA token signing)
#   kube-controller-manager, scheduler    (garbage collector, job, TTL-after-finished, serviceaccount-token, …)
#   containerd (Debian's; private socket, root and state) + runc + CNI bridge without a gateway
#   kubelet                               node $KUBE_NODE_NAME, images imported (no registry, pods never pull)
#
# Binaries are built once from the Go module proxy (build.sh) and cached. Idempotent: a healthy cluster is
# reused; a partial one is stopped and started again. Exit 3 means "cannot run here" (no Go, not root).
# Every wait is bounded; down.sh stops everything this started.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
# One start at a time per cache: two runs at once (parallel test jobs) would interleave key
# generation and process starts. The second waits (bounded), then finds the first's result.
mkdir -p "$KUBE_DIR"
exec 9>"$KUBE_DIR/up.lock"
flock -w 1800 9 || { echo "another up.sh held $KUBE_DIR/up.lock for 30 min; giving up" >&2; exit 1; }
HERE="$(cd "$(dirname "$0")" && pwd)"
LOGS="$KUBE_RUN/logs"
PIDS="$KUBE_RUN/pids"
CMDS="$KUBE_RUN/cmd"
KUBECONFIG_OUT="$KUBE_ENV_DIR/kubeconfig"
STARTED=$SECONDS

skip() { klog "cannot start the cluster: $*"; exit 3; }

[[ $(id -u) -eq 0 ]] || skip "needs root (containerd, kubelet, cgroups)"
command -v go >/dev/null || [[ -f "$KUBE_BIN/.built-${OZ_KUBE_VERSION:-v1.34.4}" ]] || skip "go is not installed and no cached Kubernetes binaries in $KUBE_BIN"

apiserver_ready() {
  curl -fsS --max-time 3 --cacert "$KUBE_PKI/ca.crt" --cert "$KUBE_PKI/admin.crt" --key "$KUBE_PKI/admin.key" \
    "https://127.0.0.1:$KUBE_APISERVER_PORT/readyz" >/dev/null
}
kc() { "$KUBE_BIN/kubectl" --kubeconfig "$KUBECONFIG_OUT" "$@"; }
node_ready() {
  [[ "$(kc get node "$KUBE_NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}
all_running() {
  local name
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet; do pid_alive "$PIDS/$name.pid" || return 1; done
}

if all_running && apiserver_ready && node_ready; then
  klog "cluster already running"
  echo "$KUBECONFIG_OUT"
  exit 0
fi

# ---- dependencies -------------------------------------------------------------------------------------------
need_debs=()
command -v etcd >/dev/null || need_debs+=(etcd-server)
command -v etcdctl >/dev/null || need_debs+=(etcd-client)
command -v containerd >/dev/null || need_debs+=(containerd)
command -v runc >/dev/null || need_debs+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need_debs+=(containernetworking-plugins)
command -v openssl >/dev/null || need_debs+=(openssl)
command -v curl >/dev/null || need_debs+=(curl)
if [[ ${#need_debs[@]} -gt 0 ]]; then
  klog "installing ${need_debs[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq >/dev/null || true
  timeout 600 apt-get install -y -qq -o DPkg::Lock::Timeout=120 "${need_debs[@]}" >/dev/null
fi
timeout "${OZ_KUBE_BUILD_TIMEOUT:-3000}" bash "$HERE/build.sh" >&2 || skip "the Kubernetes binaries could not be built (see above)"
bash "$HERE/pki.sh"
bash "$HERE/images.sh" >&2

# ---- a clean start --------------------------------------------------------------------------------------------
bash "$HERE/down.sh" >/dev/null 2>&1 || true
mkdir -p "$LOGS" "$PIDS" "$CMDS" "$KUBE_ENV_DIR" "$KUBE_RUN/etcd" "$KUBE_RUN/kubelet" "$KUBE_RUN/containerd" "$KUBE_RUN/cni/net.d"

# start <name> <command...>: runs it detached, logs to $LOGS/<name>.log; the command is kept for ctl.sh restart.
start() {
  local name="$1"; shift
  printf '%q ' "$@" >"$CMDS/$name"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$PIDS/$name.pid"
}
fail() {
  klog "$1; last lines of $LOGS/$2.log:"
  tail -n 25 "$LOGS/$2.log" >&2 || true
  bash "$HERE/down.sh" >&2 || true
  exit 1
}

# kubeconfig <file> <client cert name>: a self-contained kubeconfig (certificates embedded).
kubeconfig() {
  local file="$1" who="$2"
  cat >"$file" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: oz-test
  cluster:
    server: https://127.0.0.1:$KUBE_APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$KUBE_PKI/ca.crt")
users:
- name: $who
  user:
    client-certificate-data: $(base64 -w0 "$KUBE_PKI/$who.crt")
    client-key-data: $(base64 -w0 "$KUBE_PKI/$who.key")
contexts:
- name: oz-test
  context: {cluster: oz-test, user: $who}
current-context: oz-test
YAML
  chmod 600 "$file"
}
kubeconfig "$KUBECONFIG_OUT" admin
kubeconfig "$KUBE_RUN/controller-manager.kubeconfig" controller-manager
kubeconfig "$KUBE_RUN/scheduler.kubeconfig" scheduler
kubeconfig "$KUBE_RUN/kubelet.kubeconfig" kubelet-client

# ---- control plane ---------------------------------------------------------------------------------------------
start etcd etcd --name oz-test --data-dir "$KUBE_RUN/etcd" \
  --listen-client-urls "http://127.0.0.1:$KUBE_ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$KUBE_ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$KUBE_ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$KUBE_ETCD_PEER_PORT" \
  --initial-cluster "oz-test=http://127.0.0.1:$KUBE_ETCD_PEER_PORT" \
  --quota-backend-bytes=$((2 * 1024 * 1024 * 1024)) --snapshot-count=10000
wait_for 30 curl -fsS "http://127.0.0.1:$KUBE_ETCD_CLIENT_PORT/health" || fail "etcd did not become healthy in 30 s" etcd

start kube-apiserver "$KUBE_BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$KUBE_ETCD_CLIENT_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$KUBE_APISERVER_PORT" \
  --tls-cert-file="$KUBE_PKI/apiserver.crt" --tls-private-key-file="$KUBE_PKI/apiserver.key" \
  --client-ca-file="$KUBE_PKI/ca.crt" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --service-cluster-ip-range="$KUBE_SERVICE_CIDR" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$KUBE_PKI/sa.pub" --service-account-signing-key-file="$KUBE_PKI/sa.key" \
  --kubelet-client-certificate="$KUBE_PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$KUBE_PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$KUBE_PKI/ca.crt" --kubelet-preferred-address-types=Hostname \
  --allow-privileged=true --profiling=false --event-ttl=1h \
  --max-requests-inflight=800 --max-mutating-requests-inflight=400 \
  --v=1
wait_for 90 apiserver_ready || fail "kube-apiserver was not ready in 90 s" kube-apiserver

start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
  --kubeconfig="$KUBE_RUN/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$KUBE_RUN/controller-manager.kubeconfig" --authorization-kubeconfig="$KUBE_RUN/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="${OZ_KUBE_CM_PORT:-10357}" --leader-elect=false \
  --service-account-private-key-file="$KUBE_PKI/sa.key" --root-ca-file="$KUBE_PKI/ca.crt" \
  --use-service-account-credentials=true --controllers='*' \
  --concurrent-job-syncs=20 --concurrent-gc-syncs=40 --concurrent-ttl-after-finished-syncs=20 \
  --kube-api-qps=200 --kube-api-burst=400 --profiling=false --v=1
start kube-scheduler "$KUBE_BIN/kube-scheduler" \
  --kubeconfig="$KUBE_RUN/scheduler.kubeconfig" \
  --authentication-kubeconfig="$KUBE_RUN/scheduler.kubeconfig" --authorization-kubeconfig="$KUBE_RUN/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="${OZ_KUBE_SCHEDULER_PORT:-10359}" --leader-elect=false --profiling=false --v=1

# ---- the node: containerd + kubelet --------------------------------------------------------------------------------
cat >"$KUBE_RUN/cni/net.d/10-oz-test.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "oz-test",
  "plugins": [
    {"type": "bridge", "bridge": "oztest0", "isGateway": false, "ipMasq": false, "hairpinMode": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$KUBE_POD_CIDR"}]], "dataDir": "$KUBE_RUN/cni/ipam"}},
    {"type": "loopback"}
  ]
}
JSON
cat >"$KUBE_RUN/containerd/config.toml" <<TOML
version = 2
root = "$KUBE_RUN/containerd/root"
state = "$KUBE_RUN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$KUBE_RUN/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$KUBE_RUN/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # No CAP_SYS_RESOURCE here: never ask for an oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state directory: private, and removed with it.
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$KUBE_RUN/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$KUBE_RUN/containerd/certs.d"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$KUBE_RUN/cni/net.d"
TOML
# The tests' fake registry (test/support/fake-registry.ts) speaks plain HTTP on loopback; nothing else is reachable.
mkdir -p "$KUBE_RUN/containerd/certs.d/127.0.0.1:$KUBE_REGISTRY_PORT"
cat >"$KUBE_RUN/containerd/certs.d/127.0.0.1:$KUBE_REGISTRY_PORT/hosts.toml" <<TOML
server = "http://127.0.0.1:$KUBE_REGISTRY_PORT"
[host."http://127.0.0.1:$KUBE_REGISTRY_PORT"]
  capabilities = ["pull", "resolve"]
TOML
start containerd containerd --config "$KUBE_RUN/containerd/config.toml"
wait_for 30 ctr --address "$CONTAINERD_SOCK" version || fail "containerd did not start in 30 s" containerd
for image in pause agent worker; do
  tar="$KUBE_IMAGES/$image.tar"
  [[ -s "$tar" ]] || continue
  timeout 300 ctr --address "$CONTAINERD_SOCK" -n k8s.io images import --snapshotter overlayfs "$tar" >>"$LOGS/images.log" 2>&1 \
    || fail "could not import $tar into containerd" images
done

cat >"$KUBE_RUN/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBE_KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${OZ_KUBE_KUBELET_HEALTHZ_PORT:-10348}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$KUBE_PKI/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$KUBE_PKI/kubelet.crt"
tlsPrivateKeyFile: "$KUBE_PKI/kubelet.key"
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCK"
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podLogsDir: "$KUBE_RUN/kubelet/pod-logs"
volumePluginDir: "$KUBE_RUN/kubelet/volume-plugins"
# Imported images cannot be pulled again: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
maxPods: 110
serializeImagePulls: false
YAML
start kubelet "$KUBE_BIN/kubelet" --config="$KUBE_RUN/kubelet/config.yaml" --kubeconfig="$KUBE_RUN/kubelet.kubeconfig" \
  --root-dir="$KUBE_RUN/kubelet/root" --hostname-override="$KUBE_NODE_NAME" --v=1
wait_for 120 node_ready || fail "node $KUBE_NODE_NAME was not Ready in 120 s" kubelet
wait_for 60 kc get serviceaccount default -n default || fail "the default ServiceAccount did not appear in 60 s" kube-controller-manager

worker_image=""
[[ -s "$KUBE_IMAGES/worker.tar" ]] && worker_image="$WORKER_IMAGE"
cat >"$KUBE_ENV_DIR/env" <<ENV
OZ_KUBE_KUBECONFIG=$KUBECONFIG_OUT
OZ_KUBE_SERVER=https://127.0.0.1:$KUBE_APISERVER_PORT
OZ_KUBE_KUBECTL=$KUBE_BIN/kubectl
OZ_KUBE_CTL=$HERE/ctl.sh
OZ_KUBE_NODE_NAME=$KUBE_NODE_NAME
OZ_KUBE_NODE=kubelet
OZ_KUBE_AGENT_IMAGE=$AGENT_IMAGE
OZ_KUBE_WORKER_IMAGE=$worker_image
OZ_KUBE_REGISTRY_PORT=$KUBE_REGISTRY_PORT
OZ_KUBE_ETCD=http://127.0.0.1:$KUBE_ETCD_CLIENT_PORT
OZ_KUBE_VERSION=$("$KUBE_BIN/kubectl" version --client -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | head -1)
ENV
klog "cluster up in $((SECONDS - STARTED)) s (node $KUBE_NODE_NAME Ready); env in $KUBE_ENV_DIR/env"
echo "$KUBECONFIG_OUT"
