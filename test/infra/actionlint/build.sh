#!/usr/bin/env bash
# Builds actionlint (github.com/rhysd/actionlint/cmd/actionlint) from the Go
# module proxy into $OZ_TEST_CACHE/actionlint/bin/actionlint, for the workflow
# lint in test/integration/workflows.test.ts and .ci/run. Cached: a second run
# with the binary present does nothing. Exits non-zero, with one line why, when
# it cannot be built (no Go, no module proxy).
set -euo pipefail

ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
CACHE="${OZ_TEST_CACHE:-/root/.cache/oz-worker-test}/actionlint"
BIN="$CACHE/bin/actionlint"

mkdir -p "$CACHE/bin"
if [ -x "$BIN" ] && [ "$(cat "$CACHE/version" 2>/dev/null)" = "$ACTIONLINT_VERSION" ]; then
  echo "actionlint: $ACTIONLINT_VERSION already built at $BIN"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  [ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { echo "actionlint: no Go toolchain on PATH to build $ACTIONLINT_VERSION" >&2; exit 1; }

echo "actionlint: building github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION with $(go version | cut -d' ' -f3)"
timeout 900 env GOBIN="$CACHE/bin" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
  go install -trimpath -ldflags "-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
"$BIN" -version >/dev/null
printf '%s\n' "$ACTIONLINT_VERSION" >"$CACHE/version"
echo "actionlint: built $ACTIONLINT_VERSION at $BIN"
