#!/usr/bin/env bash
# Bring up the private test Docker engine and its images, then write $OZ_TEST_CACHE/docker/env
# for test/real/*docker*.test.ts. On failure prints one line saying why, records the reason in
# the env file (the suites skip and say so) and exits 1. Idempotent; stop with down.sh.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
mkdir -p "$DOCKER_STATE"
# One start at a time per cache: two runs at once (parallel test jobs) would interleave key
# generation and process starts. The second waits (bounded), then finds the first's result.
mkdir -p "$DOCKER_STATE"
exec 9>"$DOCKER_STATE/up.lock"
flock -w 1800 9 || { echo "another up.sh held $DOCKER_STATE/up.lock for 30 min; giving up" >&2; exit 1; }
started=$(date +%s)

fail() {
  printf 'OZ_DOCKER_UNAVAILABLE=%q\n' "$1" >"$DOCKER_ENV_FILE"
  echo "real Docker suite will skip: $1"
  exit 1
}

why="$(bash "$(dirname "$0")/engine.sh" start 2>>"$DOCKER_STATE/up.log")" || fail "${why:-dockerd could not start (see $DOCKER_LOG)}"
bash "$(dirname "$0")/images.sh" test 2>>"$DOCKER_STATE/up.log" || fail "the test images could not be built (see $DOCKER_STATE/up.log)"
{
  echo "DOCKER_HOST=unix://$DOCKER_SOCK"
  echo "OZ_DOCKER_AGENT_IMAGE=$AGENT_IMAGE"
  echo "OZ_DOCKER_SIDECAR_IMAGE=$SIDECAR_IMAGE"
  echo "OZ_DOCKER_VOLUME_IMAGE=$VOLUME_IMAGE"
} >"$DOCKER_ENV_FILE"
if bash "$(dirname "$0")/images.sh" 2>>"$DOCKER_STATE/up.log"; then
  echo "OZ_DOCKER_WORKER_IMAGE=$WORKER_IMAGE" >>"$DOCKER_ENV_FILE"
else
  printf 'OZ_DOCKER_WORKER_IMAGE_UNAVAILABLE=%q\n' "the worker image could not be built (see $DOCKER_STATE/up.log)" >>"$DOCKER_ENV_FILE"
fi
log "ready in $(( $(date +%s) - started ))s; env in $DOCKER_ENV_FILE"
