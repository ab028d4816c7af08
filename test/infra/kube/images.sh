#!/usr/bin/env bash
# Builds the images the real-cluster tests run, as docker-archive tarballs under $OZ_TEST_CACHE/kube/images
# (up.sh imports them into the cluster's containerd; no registry is involved):
#   oz-test/pause:local     the pod sandbox: a static Go binary that sleeps until SIGTERM and reaps children
#   oz-agent-standin:local  sh, tar and Node with test/support/fake-oz.mjs as /agent/entrypoint.sh
#   oz-worker:local         the worker image: the Docker-built one ($OZ_TEST_CACHE/images/oz-worker.tar) when
#                           present, else the bundle in dist/ with Node on a minimal rootfs
# Inputs are hashed: a second run rebuilds only what changed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../rootfs.sh"
mkdir -p "$KUBE_IMAGES"
WORK="$KUBE_IMAGES/build"
mkdir -p "$WORK"

# archive <rootfs> <name:tag> <config-json> <out.tar>: a one-layer `docker save` tarball.
archive() {
  local root="$1" tag="$2" config="$3" out="$4" dir
  dir="$(mktemp -d "$WORK/archive.XXXX")"
  tar -C "$root" --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -cf "$dir/layer.tar" .
  local diff; diff="$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)"
  mkdir -p "$dir/$diff"; mv "$dir/layer.tar" "$dir/$diff/layer.tar"
  printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$config" "$diff" >"$dir/config.json"
  local cid; cid="$(sha256sum "$dir/config.json" | cut -d' ' -f1)"
  mv "$dir/config.json" "$dir/$cid.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cid" "$tag" "$diff" >"$dir/manifest.json"
  tar -C "$dir" -cf "$out.tmp" manifest.json "$cid.json" "$diff" && mv "$out.tmp" "$out"
  rm -rf "$dir"
}

up_to_date() { [[ -s "$1" && "$(cat "$1.inputs" 2>/dev/null)" == "$2" ]]; }
stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

node_elf() { node -p process.execPath; }

build_pause() {
  local out="$KUBE_IMAGES/pause.tar" inputs; inputs="$(stamp "$0" "$(command -v go)")"
  up_to_date "$out" "$inputs" && return 0
  klog "building $PAUSE_IMAGE"
  local src="$WORK/pause-src" root="$WORK/pause-root"
  rm -rf "$src" "$root"; mkdir -p "$src" "$root"
  cat >"$src/main.go" <<'GO'
// The pod sandbox process: holds the pod's namespaces, reaps orphans, exits on SIGINT/SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s == syscall.SIGCHLD {
			for {
				var status syscall.WaitStatus
				if pid, _ := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
GO
  printf 'module pause\n\ngo 1.22\n' >"$src/go.mod"
  (cd "$src" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -trimpath -ldflags '-s -w' -o "$root/pause" .)
  archive "$root" "$PAUSE_IMAGE" '{"Entrypoint":["/pause"]}' "$out"
  echo "$inputs" >"$out.inputs"
  rm -rf "$src" "$root"
}

build_agent() {
  local out="$KUBE_IMAGES/agent.tar" node inputs
  node="$(node_elf)"
  inputs="$(stamp "$0" "$REPO_ROOT/test/infra/rootfs.sh" "$node" "$REPO_ROOT/test/support/fake-oz.mjs")"
  up_to_date "$out" "$inputs" && return 0
  klog "building $AGENT_IMAGE"
  local root="$WORK/agent-root"
  rm -rf "$root"; mkdir -p "$root"/{tmp,workspace,opt/fake-oz,agent,usr/local/bin,etc,proc,sys,dev}
  chmod 1777 "$root/tmp"
  copy_with_libs "$root" /bin/sh /bin/tar /bin/sleep /bin/cat /bin/ls /bin/rm /bin/mkdir /usr/bin/id /usr/bin/env /bin/true /bin/echo
  copy_with_libs "$root" "$node"
  [[ "$node" == /usr/local/bin/node ]] || mv "$root$node" "$root/usr/local/bin/node"
  cp "$REPO_ROOT/test/support/fake-oz.mjs" "$root/opt/fake-oz/fake-oz.mjs"
  printf '#!/bin/sh\nexec /usr/local/bin/node /opt/fake-oz/fake-oz.mjs "$@"\n' >"$root/agent/entrypoint.sh"
  chmod 755 "$root/agent/entrypoint.sh"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"; echo 'root:x:0:' >"$root/etc/group"
  archive "$root" "$AGENT_IMAGE" '{"Env":["PATH=/usr/local/bin:/usr/bin:/bin"],"WorkingDir":"/workspace","Cmd":["/agent/entrypoint.sh"]}' "$out"
  echo "$inputs" >"$out.inputs"
  rm -rf "$root"
}

build_worker() {
  local out="$KUBE_IMAGES/worker.tar" docker_built="$OZ_TEST_CACHE/images/oz-worker.tar"
  if [[ -s "$docker_built" ]]; then
    # The image the project's Dockerfile makes (built by test/infra/docker/images.sh).
    if ! up_to_date "$out" "docker:$(cat "$docker_built.id" 2>/dev/null)"; then
      cp "$docker_built" "$out.tmp" && mv "$out.tmp" "$out"
      echo "docker:$(cat "$docker_built.id" 2>/dev/null)" >"$out.inputs"
    fi
    return 0
  fi
  [[ -f "$REPO_ROOT/dist/cli/main.js" || -d "$REPO_ROOT/dist" ]] || { klog "no dist/: run npm run build first"; return 1; }
  local node inputs
  node="$(node_elf)"
  inputs="$(stamp "$0" "$REPO_ROOT/test/infra/rootfs.sh" "$node" $(find "$REPO_ROOT/dist" "$REPO_ROOT/bin" -type f | sort))"
  up_to_date "$out" "$inputs" && return 0
  klog "building $WORKER_IMAGE from dist/ (no Docker-built worker image in $docker_built)"
  local root="$WORK/worker-root"
  rm -rf "$root"; mkdir -p "$root"/{tmp,app,usr/local/bin,etc,proc,sys,dev,home/oz}
  chmod 1777 "$root/tmp"
  copy_with_libs "$root" /bin/sh "$node"
  [[ "$node" == /usr/local/bin/node ]] || mv "$root$node" "$root/usr/local/bin/node"
  cp -r "$REPO_ROOT/dist" "$REPO_ROOT/bin" "$REPO_ROOT/package.json" "$root/app/"
  [[ -d "$REPO_ROOT/examples" ]] && cp -r "$REPO_ROOT/examples" "$root/app/"
  printf 'root:x:0:0:root:/root:/bin/sh\noz:x:10001:10001::/home/oz:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\noz:x:10001:\n' >"$root/etc/group"
  archive "$root" "$WORKER_IMAGE" '{"Env":["PATH=/usr/local/bin:/usr/bin:/bin","NODE_ENV=production","NODE_COMPILE_CACHE=/tmp/node-compile-cache"],"WorkingDir":"/app","User":"10001","Entrypoint":["/usr/local/bin/node","/app/bin/oz-worker.js"]}' "$out"
  echo "$inputs" >"$out.inputs"
  rm -rf "$root"
}

build_pause
build_agent
if [[ "${1:-}" != test ]]; then build_worker || klog "worker image not built"; fi
ls "$KUBE_IMAGES"/*.tar
