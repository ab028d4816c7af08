# Sourced by test/infra/docker/images.sh and test/infra/kube/images.sh: helpers
# for building minimal image root filesystems from this machine's own binaries
# (no registry is reachable). Part of both scripts' image stamps.

# copy_with_libs <rootfs> <binary>...: binaries and the shared libraries they load, at the same paths.
copy_with_libs() {
  local root="$1"; shift
  local f lib
  for f in "$@"; do
    mkdir -p "$root$(dirname "$f")"; cp -L "$f" "$root$f"
    for lib in $(ldd "$f" 2>/dev/null | grep -oE '/[^ ]+\.so[^ ]*' | sort -u); do
      [ -e "$root$lib" ] || { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
    done
  done
}
