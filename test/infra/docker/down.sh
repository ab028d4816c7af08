#!/usr/bin/env bash
# Stop the private test Docker engine started by up.sh (only that one, by its pidfile).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
bash "$(dirname "$0")/engine.sh" stop
rm -f "$DOCKER_ENV_FILE"
