# Shared settings for the private test Docker engine (sourced, not run).
# Everything lives under $OZ_TEST_CACHE/docker; the system's default socket is never used.
OZ_TEST_CACHE="${OZ_TEST_CACHE:-/root/.cache/oz-worker-test}"
DOCKER_STATE="$OZ_TEST_CACHE/docker"
DOCKER_SOCK="$DOCKER_STATE/docker.sock"
DOCKER_PIDFILE="$DOCKER_STATE/dockerd.pid"
DOCKER_LOG="$DOCKER_STATE/dockerd.log"
DOCKER_ENV_FILE="$DOCKER_STATE/env"
IMAGES_DIR="$OZ_TEST_CACHE/images"
# Image names the suites (Docker here, Kubernetes elsewhere) refer to.
AGENT_IMAGE="oz-agent-standin:local"
SIDECAR_IMAGE="oz-sidecar-standin:local"
VOLUME_IMAGE="oz-agent-volume:local"
NODE_BASE_IMAGE="node:24-slim"
WORKER_IMAGE="oz-worker:local"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"

# The Debian CLI matches the Debian engine (API 1.41) and still has the legacy builder.
dk() { DOCKER_BUILDKIT=0 /usr/bin/docker -H "unix://$DOCKER_SOCK" "$@"; }

log() { echo "docker-infra: $*" >&2; }

engine_pid() {
  [ -s "$DOCKER_PIDFILE" ] || return 1
  local pid; pid="$(cat "$DOCKER_PIDFILE")"
  [ -d "/proc/$pid" ] && grep -q dockerd "/proc/$pid/comm" 2>/dev/null && echo "$pid"
}

engine_ping() { curl -fsS --max-time 2 --unix-socket "$DOCKER_SOCK" http://d/_ping >/dev/null 2>&1; }
