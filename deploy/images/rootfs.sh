#!/bin/sh
# Lays out what one image needs at run time, from the machine it runs on
# (a Debian builder: the Dockerfile's build stage, or the host for
# `make images`):
#
#   rootfs.sh base DEST                the files every image shares: CA
#                                      bundle, users (nonroot = 65532),
#                                      name service switch
#   rootfs.sh program DEST BINARY...   each BINARY in DEST/usr/bin (without
#                                      debug info), with the shared libraries
#                                      its loader resolves (as ldd lists
#                                      them), at their paths
#   rootfs.sh plugin DEST DIR LIB...   each LIB (a plugin a program loads
#                                      by path) in DEST/DIR, with the
#                                      libraries it needs in turn
#
# No shell, package manager or maintainer script ends up in an image: only
# the files listed here.
set -eu

base() {
  dest=$1
  mkdir -p "$dest/etc/ssl/certs" "$dest/tmp" "$dest/home/nonroot"
  # The bundle update-ca-certificates made from Debian's ca-certificates;
  # rustls-native-certs and OpenSSL both read it.
  bundle=/etc/ssl/certs/ca-certificates.crt
  [ -s "$bundle" ] || { echo "rootfs.sh: $bundle is missing: install Debian's ca-certificates" >&2; exit 1; }
  cp "$bundle" "$dest/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$dest/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$dest/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$dest/etc/nsswitch.conf"
  chmod 1777 "$dest/tmp"
  chown 65532:65532 "$dest/home/nonroot" 2>/dev/null || true
}

program() {
  dest=$1; shift
  mkdir -p "$dest/usr/bin"
  for binary in "$@"; do
    [ -x "$binary" ] || { echo "rootfs.sh: $binary is not an executable" >&2; exit 1; }
    # Debug info off (a release build keeps line tables for profiling), the
    # symbols kept so that a backtrace still names functions.
    strip --strip-debug -o "$dest/usr/bin/$(basename "$binary")" "$binary"
    needed "$dest" "$binary"
  done
}

plugin() {
  dest=$1; dir=$2; shift 2
  mkdir -p "$dest$dir"
  for lib in "$@"; do
    [ -f "$lib" ] || { echo "rootfs.sh: $lib does not exist" >&2; exit 1; }
    strip --strip-debug -o "$dest$dir/$(basename "$lib")" "$lib"
    needed "$dest" "$lib"
  done
}

# The shared libraries the loader resolves for $2, into $1 at their paths.
needed() {
  # ldd prints "name => /path (addr)" for libraries and "/path (addr)"
  # for the loader; the vDSO has no path.
  ldd "$2" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
    while read -r lib; do
      mkdir -p "$1$(dirname "$lib")"
      cp -L "$lib" "$1$lib"
    done
}

what=${1:-}
[ $# -ge 2 ] || { echo "usage: rootfs.sh base DEST | program DEST BINARY... | plugin DEST DIR LIB..." >&2; exit 2; }
shift
case "$what" in
  base) base "$@" ;;
  program) program "$@" ;;
  plugin) plugin "$@" ;;
  *) echo "rootfs.sh: unknown part '$what'" >&2; exit 2 ;;
esac
