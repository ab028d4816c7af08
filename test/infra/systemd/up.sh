#!/usr/bin/env bash
# Prepares what test/real/systemd-service.test.ts boots: systemd-nspawn on this machine (Debian's
# systemd-container) and a Debian bookworm root filesystem with systemd in it (debootstrap, minbase
# plus systemd), kept under $OZ_TEST_CACHE/systemd. Writes $OZ_TEST_CACHE/systemd/env with
# OZ_SYSTEMD_ROOTFS, or OZ_SYSTEMD_UNAVAILABLE=<why> (the suite prints that line and runs its closest
# check instead). Idempotent: when the root filesystem is built from this script's version it returns
# at once. apt-get waits for other apt users (bounded) instead of failing on their lock.
set -uo pipefail
OZ_TEST_CACHE="${OZ_TEST_CACHE:-/root/.cache/oz-worker-test}"
STATE="$OZ_TEST_CACHE/systemd"
ENV_FILE="$STATE/env"
ROOTFS="$STATE/rootfs"
STAMP="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
started=$(date +%s)
mkdir -p "$STATE"

log() { echo "systemd-infra: $*" >&2; }
fail() {
  printf 'OZ_SYSTEMD_UNAVAILABLE=%q\n' "$1" >"$ENV_FILE"
  echo "real systemd suite will run its closest check only: $1"
  exit 1
}

[ "$(id -u)" -eq 0 ] || fail "booting systemd in a container (systemd-nspawn) needs root"

# One build at a time (CI and a developer's run may overlap).
exec 9>"$STATE/.lock"
flock -w 1200 9 || fail "another run held $STATE/.lock for 20 minutes"

apt_install() { # packages…
  export DEBIAN_FRONTEND=noninteractive
  local apt=(timeout 600 apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300)
  "${apt[@]}" "$@" >/dev/null 2>&1 && return 0
  # Package lists missing or stale (a fresh machine): update once, then try again.
  timeout 300 apt-get update -qq -o DPkg::Lock::Timeout=300 >/dev/null 2>&1 || true
  "${apt[@]}" "$@" >/dev/null
}

need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} (apt-get)"
  apt_install "${need[@]}" || fail "apt-get install ${need[*]} failed"
fi

debian_mirror() {
  local m
  m="$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
    | grep -v security | head -1 | awk '{print $2}')"
  echo "${m:-http://deb.debian.org/debian}"
}

if [ "$(cat "$ROOTFS/.oz-test-stamp" 2>/dev/null)" != "$STAMP" ]; then
  mirror="$(debian_mirror)"
  log "debootstrap bookworm (minbase + systemd) from $mirror"
  rm -rf "$ROOTFS.tmp"
  # passwd (useradd) and util-linux (runuser) are part of minbase; systemd-sysv makes systemd the init.
  timeout 900 debootstrap --variant=minbase --include=systemd,systemd-sysv bookworm "$ROOTFS.tmp" "$mirror" >"$STATE/debootstrap.log" 2>&1 \
    || { tail -5 "$STATE/debootstrap.log" >&2; fail "debootstrap failed (see $STATE/debootstrap.log)"; }
  rm -rf "$ROOTFS.tmp"/var/cache/apt/archives/*.deb "$ROOTFS.tmp"/var/lib/apt/lists/* "$ROOTFS.tmp"/usr/share/doc/* "$ROOTFS.tmp"/usr/share/man/*
  echo "$STAMP" >"$ROOTFS.tmp/.oz-test-stamp"
  rm -rf "$ROOTFS" && mv "$ROOTFS.tmp" "$ROOTFS"
fi

printf 'OZ_SYSTEMD_ROOTFS=%q\n' "$ROOTFS" >"$ENV_FILE"
log "ready in $(( $(date +%s) - started ))s; env in $ENV_FILE"
