#!/usr/bin/env bash
# Builds the rustcd container image with no image registry at all: a
# FROM scratch image (packaging/Containerfile.local) around the host's
# release builds of rustcd and rustcdctl and exactly the shared libraries
# `ldd` lists for them. The image name defaults to rustcd:latest.
#
#   scripts/build-image.sh [IMAGE]
#
# Inside the image /usr/local/bin/etcd is rustcd and /usr/local/bin/etcdctl
# is rustcdctl (etcdctl 3.5's commands, flags and output), so etcd's
# container commands work with only the image name changed (README.md,
# "Containers").
#
# Environment:
#   CONTAINER_ENGINE  docker or podman (default: docker if installed, else podman)
#
# With registry access, the multi-stage ./Containerfile builds the same
# image from rust:1-bookworm and debian:bookworm-slim instead.
set -euo pipefail
cd "$(dirname "$0")/.."
image="${1:-rustcd:latest}"

engine="${CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
  if command -v docker >/dev/null; then engine=docker
  elif command -v podman >/dev/null; then engine=podman
  else echo "build-image.sh: neither docker nor podman is installed" >&2; exit 1
  fi
fi

cargo build --release --locked --bin rustcd --bin rustcdctl
bins="target/release/rustcd target/release/rustcdctl"

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp" "$root/var/lib/etcd"
chmod 1777 "$root/tmp"

# The binaries without their debug info (symbols stay, for readable
# backtraces).
for bin in $bins; do
  if command -v strip >/dev/null; then
    strip --strip-debug -o "$root/usr/local/bin/$(basename "$bin")" "$bin"
  else
    echo "build-image.sh: strip (binutils) not found, $bin keeps its debug info" >&2
    cp "$bin" "$root/usr/local/bin/"
  fi
done
ln -s rustcd "$root/usr/local/bin/etcd"
ln -s rustcdctl "$root/usr/local/bin/etcdctl"

# The dynamic loader and every library ldd resolves, at the same paths.
# shellcheck disable=SC2086
libs="$(ldd $bins | awk '
  /not found/        { print "MISSING " $1; next }
  $2 == "=>" && $3 ~ /^\// { print $3; next }
  $1 ~ /^\//         { print $1 }' | sort -u)"
if grep -q '^MISSING' <<<"$libs"; then
  echo "build-image.sh: ldd cannot resolve: $(grep '^MISSING' <<<"$libs")" >&2
  exit 1
fi
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
  # The Debian copyright file of the package that owns the library.
  if command -v dpkg >/dev/null; then
    pkg="$( (dpkg -S "$lib" || dpkg -S "$(readlink -f "$lib")") 2>/dev/null | head -1 | cut -d: -f1)" || true
    if [ -n "$pkg" ] && [ -f "/usr/share/doc/$pkg/copyright" ]; then
      mkdir -p "$root/usr/share/doc/$pkg"
      cp "/usr/share/doc/$pkg/copyright" "$root/usr/share/doc/$pkg/copyright"
    fi
  fi
done
# glibc without nsswitch.conf would ask DNS before /etc/hosts for "localhost".
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"

cp packaging/Containerfile.local "$ctx/Containerfile"
old="$("$engine" image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
"$engine" build -t "$image" -f "$ctx/Containerfile" "$ctx"
# The image this build replaced, if nothing else names it.
new="$("$engine" image inspect -f '{{.Id}}' "$image")"
if [ -n "$old" ] && [ "$old" != "$new" ]; then "$engine" rmi "$old" >/dev/null 2>&1 || true; fi
# Both binaries start inside the image (the loader finds every library).
"$engine" run --rm "$image" /usr/local/bin/etcd --version | sed -n 1p
"$engine" run --rm "$image" etcdctl version | sed -n 1p
echo "built $image ($engine): $("$engine" image inspect -f '{{.Size}}' "$image") bytes"
