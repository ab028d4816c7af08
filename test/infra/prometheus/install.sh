#!/usr/bin/env bash
# Fetches Debian's prometheus package and unpacks its two binaries (prometheus, promtool) into
# $OZ_TEST_CACHE/prometheus/bin, then writes $OZ_TEST_CACHE/prometheus/env for
# test/real/prometheus-monitoring.test.ts. Nothing is installed system-wide: no package
# registered with dpkg, no service started, no dpkg lock taken, so it runs beside the other
# peers' apt-get. Cached: a second run with the binaries present does nothing. Bounded in
# time; exits non-zero (with one line why) on failure.
set -euo pipefail

CACHE="${OZ_TEST_CACHE:-/root/.cache/oz-worker-test}/prometheus"
BIN="$CACHE/bin"
ENV_FILE="$CACHE/env"

say() { echo "prometheus: $*"; }
write_env() {
  printf 'PROMETHEUS_BIN=%s\nPROMTOOL_BIN=%s\nPROMETHEUS_VERSION=%s\n' "$BIN/prometheus" "$BIN/promtool" "$(cat "$CACHE/version")" >"$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

mkdir -p "$BIN"
if [ -x "$BIN/prometheus" ] && [ -x "$BIN/promtool" ] && [ -s "$CACHE/version" ]; then
  write_env
  say "$(cat "$CACHE/version") already unpacked in $BIN"
  exit 0
fi
rm -f "$ENV_FILE"
command -v apt-get >/dev/null 2>&1 || { say "no apt-get here to fetch Debian's prometheus package" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
# -o APT::Sandbox::User=root: the download lands in this private directory, which apt's own user cannot write.
download() { timeout 300 apt-get download -qq -o APT::Sandbox::User=root prometheus >/dev/null 2>&1; }
if ! download; then
  # A fresh machine has no package lists yet. Another peer's apt-get update may hold the lists lock: wait and retry.
  say "fetching the package lists (apt-get update)"
  for attempt in 1 2 3 4 5 6; do
    if timeout 300 apt-get update -qq >/dev/null 2>&1; then break; fi
    [ "$attempt" -eq 6 ] && { say "apt-get update kept failing" >&2; exit 1; }
    sleep 10
  done
  download || { say "apt-get download prometheus failed (is Debian's archive reachable?)" >&2; exit 1; }
fi
deb="$(ls prometheus_*.deb)"
dpkg-deb -x "$deb" unpacked
install -m 0755 unpacked/usr/bin/prometheus "$BIN/prometheus.tmp"
install -m 0755 unpacked/usr/bin/promtool "$BIN/promtool.tmp"
mv "$BIN/prometheus.tmp" "$BIN/prometheus"
mv "$BIN/promtool.tmp" "$BIN/promtool"
"$BIN/prometheus" --version 2>&1 | head -n1 | awk '{print $3}' >"$CACHE/version"
write_env
say "unpacked $(cat "$CACHE/version") from $deb into $BIN"
