#!/usr/bin/env bash
# Build the images the real-engine suites use, on the private engine (started when needed), and
# save them as `docker save` tarballs under $OZ_TEST_CACHE/images for other runtimes to import:
#   oz-agent-standin:local  a Node binary and its libraries copied into a rootfs (docker import),
#                           running test/support/fake-oz.mjs as /agent/entrypoint.sh
#   oz-sidecar-standin:local FROM the stand-in, plus /sidecar-marker.txt (a sidecar volume source)
#   oz-agent-volume:local   FROM the stand-in, declaring VOLUME /scratch (an anonymous volume per container)
#   node:24-slim            a local stand-in built from Debian bookworm (debootstrap) + Node 24 + npm,
#                           carrying this host's CA bundle (for a TLS-intercepting egress proxy)
#   oz-worker:local         the project's Dockerfile, unchanged, built FROM that stand-in
# No registry is needed; Debian's mirror and the npm registry are. Inputs are cached: a second run
# only rebuilds what changed. `images.sh test` stops after the two test images.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../rootfs.sh"
mkdir -p "$IMAGES_DIR"
BUILD="$IMAGES_DIR/build"

bash "$(dirname "$0")/engine.sh" start >/dev/null

node_binary() {
  local bin="$OZ_TEST_CACHE/node24/node_modules/node/bin/node"
  if [ ! -x "$bin" ]; then
    log "fetching the Node 24 binary (npm node@24)"
    timeout 300 npm install --prefix "$OZ_TEST_CACHE/node24" --no-save --no-package-lock node@24 >/dev/null
  fi
  # node/bin/node may be a small launcher; the real ELF is in node-linux-<arch>.
  local elf; elf="$(find "$OZ_TEST_CACHE/node24/node_modules" -path '*node-linux-*/bin/node' -type f | head -1)"
  echo "${elf:-$bin}"
}

# The npm CLI package on PATH. Not `npm root -g`: with a Node provisioned from the npm registry first
# on PATH, that names the provisioned Node's prefix, which holds no npm.
npm_package_dir() {
  local cli; cli="$(readlink -f "$(command -v npm)")"
  local dir; dir="$(dirname "$(dirname "$cli")")"
  if [ -f "$dir/package.json" ] && [ -f "$dir/bin/npm-cli.js" ]; then echo "$dir"; else echo "$(npm root -g)/npm"; fi
}

image_has_stamp() { # image stamp
  [ "$(dk image inspect -f '{{ index .Config.Labels "dev.oz-worker.test.inputs" }}' "$1" 2>/dev/null)" = "$2" ]
}

build_agent_standin() {
  local node; node="$(node_binary)"
  local stamp
  stamp="$(cat "$node" "$REPO_ROOT/test/support/fake-oz.mjs" "${BASH_SOURCE[0]}" "$REPO_ROOT/test/infra/rootfs.sh" | sha256sum | cut -c1-16)"
  if image_has_stamp "$SIDECAR_IMAGE" "$stamp" && image_has_stamp "$AGENT_IMAGE" "$stamp" && image_has_stamp "$VOLUME_IMAGE" "$stamp"; then
    log "$AGENT_IMAGE and $SIDECAR_IMAGE up to date"; return 0
  fi
  log "building $AGENT_IMAGE"
  local root="$BUILD/agent-rootfs"
  rm -rf "$root"; mkdir -p "$root"/{tmp,workspace,opt/fake-oz,agent,usr/local/bin,etc}
  chmod 1777 "$root/tmp"
  copy_with_libs "$root" /bin/sh /bin/tar /bin/sleep /bin/cat /bin/ls /usr/bin/id /usr/bin/env /bin/mkdir
  cp "$node" "$root/usr/local/bin/node"
  for lib in $(ldd "$node" | grep -oE '/[^ ]+\.so[^ ]*' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
  done
  cp "$REPO_ROOT/test/support/fake-oz.mjs" "$root/opt/fake-oz/fake-oz.mjs"
  printf '#!/bin/sh\nexec /usr/local/bin/node /opt/fake-oz/fake-oz.mjs "$@"\n' >"$root/agent/entrypoint.sh"
  cp "$root/agent/entrypoint.sh" "$root/entrypoint.sh"
  chmod 755 "$root/agent/entrypoint.sh" "$root/entrypoint.sh"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"; echo 'root:x:0:' >"$root/etc/group"
  tar -C "$root" -c . | dk import - "$AGENT_IMAGE-rootfs" >/dev/null
  local ctx="$BUILD/agent-ctx"; rm -rf "$ctx"; mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $AGENT_IMAGE-rootfs
ENV PATH=/usr/local/bin:/usr/bin:/bin
LABEL dev.oz-worker.test.inputs=$stamp
WORKDIR /workspace
CMD ["/agent/entrypoint.sh"]
DOCKERFILE
  dk build -q -t "$AGENT_IMAGE" "$ctx" >/dev/null
  echo "sidecar content" >"$ctx/sidecar-marker.txt"
  printf 'FROM %s\nCOPY sidecar-marker.txt /sidecar-marker.txt\n' "$AGENT_IMAGE" >"$ctx/Dockerfile"
  dk build -q -t "$SIDECAR_IMAGE" "$ctx" >/dev/null
  printf 'FROM %s\nVOLUME /scratch\n' "$AGENT_IMAGE" >"$ctx/Dockerfile"
  dk build -q -t "$VOLUME_IMAGE" "$ctx" >/dev/null
  dk rmi "$AGENT_IMAGE-rootfs" >/dev/null 2>&1 || true
  dk image prune -f >/dev/null 2>&1 || true
}

debian_mirror() {
  local m
  m="$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
    | grep -v security | head -1 | awk '{print $2}')"
  echo "${m:-http://deb.debian.org/debian}"
}

build_node_base() {
  local node; node="$(node_binary)"
  local version; version="$("$node" --version)"
  local tarball="$IMAGES_DIR/node-24-slim-rootfs-$version.tar"
  local ca=/etc/ssl/certs/ca-certificates.crt stamp
  stamp="$version-$(cat "$ca" "${BASH_SOURCE[0]}" 2>/dev/null | sha256sum | cut -c1-12)"
  if image_has_stamp "$NODE_BASE_IMAGE" "$stamp"; then
    log "$NODE_BASE_IMAGE ($version) up to date"; return 0
  fi
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { export DEBIAN_FRONTEND=noninteractive; timeout 600 apt-get install -y -qq debootstrap >/dev/null; }
    local root="$BUILD/node-slim-rootfs" mirror; mirror="$(debian_mirror)"
    log "debootstrap bookworm (minbase) from $mirror"
    rm -rf "$root"
    timeout 900 debootstrap --variant=minbase bookworm "$root" "$mirror" >"$BUILD/debootstrap.log" 2>&1
    mkdir -p "$root/usr/local/bin" "$root/usr/local/lib/node_modules"
    cp "$node" "$root/usr/local/bin/node"
    cp -a "$(npm_package_dir)" "$root/usr/local/lib/node_modules/npm"
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  log "importing $NODE_BASE_IMAGE"
  dk import "$tarball" "$NODE_BASE_IMAGE-rootfs" >/dev/null
  # The host's CAs at a path apt's ca-certificates does not own, so npm ci (and Node at run
  # time) trust a TLS-intercepting egress proxy as the host does.
  local ctx="$BUILD/node-ctx"; rm -rf "$ctx"; mkdir -p "$ctx"
  if [ -s "$ca" ]; then cp "$ca" "$ctx/host-ca.crt"; else : >"$ctx/host-ca.crt"; fi
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $NODE_BASE_IMAGE-rootfs
COPY host-ca.crt /usr/local/share/oz-build-host-ca.crt
RUN printf 'cafile=/usr/local/share/oz-build-host-ca.crt\\n' >/usr/local/etc/npmrc
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin NODE_EXTRA_CA_CERTS=/usr/local/share/oz-build-host-ca.crt
LABEL dev.oz-worker.test.inputs=$stamp
CMD ["node"]
DOCKERFILE
  mkdir -p "$ctx"
  dk build -q --network none -t "$NODE_BASE_IMAGE" "$ctx" >/dev/null
  dk rmi "$NODE_BASE_IMAGE-rootfs" >/dev/null 2>&1 || true
}

build_worker_image() {
  log "building $WORKER_IMAGE from $REPO_ROOT/Dockerfile"
  # Host network: the engine has no bridge; npm ci and apt-get reach their registries from the host.
  timeout 1200 env DOCKER_BUILDKIT=0 /usr/bin/docker -H "unix://$DOCKER_SOCK" build --network host -t "$WORKER_IMAGE" "$REPO_ROOT" >"$BUILD/worker-build.log" 2>&1 \
    || { tail -20 "$BUILD/worker-build.log" >&2; return 1; }
}

save() { # image file
  local out="$IMAGES_DIR/$2"
  local id; id="$(dk image inspect -f '{{.Id}}' "$1")"
  if [ -s "$out" ] && [ "$(cat "$out.id" 2>/dev/null)" = "$id" ]; then return 0; fi
  dk save -o "$out.tmp" "$1" && chmod 644 "$out.tmp" && mv "$out.tmp" "$out" && echo "$id" >"$out.id"
  log "saved $1 to $out"
}

mkdir -p "$BUILD"
build_agent_standin
save "$AGENT_IMAGE" oz-agent-standin.tar
[ "${1:-}" = test ] && exit 0
build_node_base
build_worker_image
save "$WORKER_IMAGE" oz-worker.tar
