#!/usr/bin/env bash
# Builds the Kubernetes control-plane and node binaries used by the real-cluster tests, once, from the
# Go module proxy, into $OZ_TEST_CACHE/kube/bin. Nothing here is shipped; the product stays TypeScript.
#
# k8s.io/kubernetes is consumed as a library through a throwaway module (outside the repo) that requires it and
# pins every staging module (k8s.io/api, k8s.io/client-go, …) to the matching v0.x release, because the
# kubernetes go.mod points them at ./staging/src/… which a module download does not have.
set -euo pipefail

KUBE_VERSION="${OZ_KUBE_VERSION:-v1.34.4}"          # 1.34 still accepts cgroup v1 without extra config
CACHE="${OZ_TEST_CACHE:-/root/.cache/oz-worker-test}/kube"
BIN="$CACHE/bin"
STAMP="$BIN/.built-$KUBE_VERSION"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

if [[ -f "$STAMP" ]] && for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || exit 1; done; then
  echo "kube binaries $KUBE_VERSION already built in $BIN"
  exit 0
fi
command -v go >/dev/null || { echo "kube build: go is not installed" >&2; exit 3; }

staging_version="v0.${KUBE_VERSION#v1.}"
mod="$CACHE/buildmod"
mkdir -p "$mod" "$BIN"
cd "$mod"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

# Read the staging module list from the published kubernetes go.mod, so a version bump needs no edit here.
gomod_file=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
# (the sample-* modules are examples nobody imports; the checksum database does not list them)
mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$gomod_file" | grep -v '^k8s.io/sample-' | sort -u)
[[ ${#staging[@]} -gt 10 ]] || { echo "kube build: could not read staging modules from $gomod_file" >&2; exit 1; }

{
  echo "module oz-worker-test/kubebuild"
  echo
  echo "go 1.24"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  for m in "${staging[@]}"; do echo "	$m => $m $staging_version"; done
  echo ")"
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package kubebuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
echo "kube build: resolving modules for k8s.io/kubernetes $KUBE_VERSION (${#staging[@]} staging modules at $staging_version)"
go mod tidy

minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
pkgs=()
for b in "${BINARIES[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
echo "kube build: go build ${BINARIES[*]} (this takes a long while on a small machine)"
start=$SECONDS
nice -n 10 go build -p "${OZ_KUBE_BUILD_JOBS:-2}" -trimpath -ldflags "$ldflags" -o "$BIN/" "${pkgs[@]}"
touch "$STAMP"
echo "kube build: done in $((SECONDS - start)) s -> $BIN"
