#!/usr/bin/env bash
# Local stand-ins for the public base images the Dockerfile starts from, so
# that `docker build` as a user runs it can be tried here, where nothing is
# pulled from a registry:
#
#   debian:bookworm-slim      Debian bookworm, minbase, from Debian's
#                             packages (debootstrap), without apt's lists
#   rust:<v>-slim-bookworm    the same, plus what the official slim Rust
#                             image adds (ca-certificates, gcc, libc6-dev)
#                             and this machine's Rust toolchain in its
#                             places (/usr/local/rustup, /usr/local/cargo)
#
# Each is made once and kept in the Dockerfile path's buildah store
# (store.sh), and made again when this script changes. Prints the two
# image names, one per line: Debian first. The toolchain must be the Rust
# the Dockerfile names.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/store.sh"
cache=$store/standins

rust_tag=$(sed -n 's|^ARG RUST_IMAGE=.*/rust:\(.*\)$|\1|p' "$root/Dockerfile")
rust_version=${rust_tag%%-*}
[ -n "$rust_version" ] || { echo "standins: no ARG RUST_IMAGE=.../rust:<version>-... in the Dockerfile" >&2; exit 1; }
host_version=$(rustc --version | sed -n 's/^rustc \([0-9]*\.[0-9]*\).*/\1/p')
[ "$host_version" = "$rust_version" ] || {
  echo "standins: the Dockerfile builds with Rust $rust_version, this machine has $host_version: a stand-in must be the same Rust" >&2
  exit 1
}
# Named for what they stand in for, under localhost/ so they are never
# mistaken for the public images.
debian=localhost/devicelink-standin/debian:bookworm-slim
rust=localhost/devicelink-standin/rust:$rust_tag
stamp=$(sha256sum <"$0" | cut -c1-16)-$(rustc --version | tr -c 'a-z0-9.\n' -)

have() { "${buildah[@]}" inspect --type image "$1" >/dev/null 2>&1; }
if [ "$(cat "$cache/stamp" 2>/dev/null)" = "$stamp" ] && have "$debian" && have "$rust"; then
  printf '%s\n%s\n' "$debian" "$rust"
  exit 0
fi

command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] ||
  { echo "standins: debootstrap is missing (e2e/prereqs.sh installs it)" >&2; exit 1; }
echo "standins: making $debian from Debian's packages" >&2
rm -rf "$cache"
mkdir -p "$cache"
mirror=${DEVICELINK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PATH=$PATH:/usr/sbin debootstrap --variant=minbase bookworm "$cache/rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
  { tail -n 20 "$cache/debootstrap.log" >&2; echo "standins: debootstrap failed (log above)" >&2; exit 1; }
# As the slim images are: no downloaded packages, no package lists.
rm -rf "$cache"/rootfs/var/cache/apt/archives/*.deb "$cache"/rootfs/var/lib/apt/lists/*
# This machine reaches the registries through a proxy that signs with CAs
# of its own: the certificates it trusts beyond Debian's go where Debian's
# ca-certificates takes local ones, so the images' apt, cargo and pip
# trust them as a build host behind such a proxy would be set up to.
mkdir -p "$cache/rootfs/usr/local/share/ca-certificates" "$cache/split"
awk -v dir="$cache/split" '/BEGIN CERTIFICATE/ { n++ } n { print > (dir "/" n ".pem") }' /etc/ssl/certs/ca-certificates.crt
for known in /usr/share/ca-certificates/*/*.crt; do
  openssl x509 -noout -fingerprint -sha256 -in "$known"
done | sort -u >"$cache/debian-fingerprints"
for cert in "$cache"/split/*.pem; do
  fingerprint=$(openssl x509 -noout -fingerprint -sha256 -in "$cert" 2>/dev/null) || continue
  grep -qxF "$fingerprint" "$cache/debian-fingerprints" ||
    cp "$cert" "$cache/rootfs/usr/local/share/ca-certificates/this-machine-$(basename "$cert" .pem).crt"
done
rm -rf "$cache/split" "$cache/debian-fingerprints"
tar -C "$cache/rootfs" -cf "$cache/rootfs.tar" .
rm -rf "$cache/rootfs"
container=$("${buildah[@]}" from scratch)
"${buildah[@]}" add "$container" "$cache/rootfs.tar" / >/dev/null
"${buildah[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd bash "$container"
"${buildah[@]}" commit --quiet --rm "$container" "$debian" >/dev/null
rm -f "$cache/rootfs.tar"

echo "standins: making $rust with this machine's Rust $(rustc --version)" >&2
# The toolchain without its documentation (share/doc is most of its size).
sysroot=$(rustc --print sysroot)
mkdir -p "$cache/context/toolchain"
for part in bin lib libexec etc; do
  [ -e "$sysroot/$part" ] && cp -a "$sysroot/$part" "$cache/context/toolchain/"
done
toolchain=$(rustc --version | cut -d' ' -f2)-x86_64-unknown-linux-gnu
cat >"$cache/context/Containerfile" <<EOF
FROM $debian
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \\
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY toolchain /usr/local/rustup/toolchains/$toolchain
RUN mkdir -p /usr/local/cargo/bin \\
 && for tool in /usr/local/rustup/toolchains/$toolchain/bin/*; do ln -s "\$tool" /usr/local/cargo/bin/; done \\
 && cargo --version && rustc --version
EOF
"${buildah[@]}" bud --quiet --network host --isolation chroot --layers=false --pull=never \
  --tag "$rust" "$cache/context" >/dev/null
rm -rf "$cache/context"
echo "$stamp" >"$cache/stamp"
printf '%s\n%s\n' "$debian" "$rust"
