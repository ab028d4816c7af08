#!/usr/bin/env bash
# Builds the Helm CLI (helm.sh/helm/v3 cmd/helm) from the Go module proxy into
# $OZ_TEST_CACHE/helm/bin/helm and writes $OZ_TEST_CACHE/helm/env for the
# test/real/helm*.test.ts suites. Cached: a second run with the binary present
# does nothing. Bounded in time; exits non-zero (with one line why) on failure.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE="${OZ_TEST_CACHE:-/root/.cache/oz-worker-test}/helm"
BIN="$CACHE/bin/helm"
ENV_FILE="$CACHE/env"

write_env() {
  printf 'HELM_BIN=%s\nHELM_VERSION=%s\n' "$BIN" "$HELM_VERSION" >"$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

mkdir -p "$CACHE/bin"
if [ -x "$BIN" ] && [ "$(cat "$CACHE/version" 2>/dev/null)" = "$HELM_VERSION" ]; then
  write_env
  echo "helm: $HELM_VERSION already built at $BIN"
  exit 0
fi
rm -f "$ENV_FILE"

if ! command -v go >/dev/null 2>&1; then
  [ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { echo "helm: no Go toolchain on PATH to build $HELM_VERSION" >&2; exit 1; }

echo "helm: building helm.sh/helm/v3/cmd/helm@$HELM_VERSION with $(go version | cut -d' ' -f3) (a few minutes the first time)"
# The version is stamped the way Helm's own Makefile does, so `helm version` tells the truth.
timeout 1500 env GOBIN="$CACHE/bin" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
  go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
"$BIN" version --short >/dev/null
printf '%s\n' "$HELM_VERSION" >"$CACHE/version"
write_env
echo "helm: built $("$BIN" version --short) at $BIN"
