#!/usr/bin/env bash
# `make images`: builds every target of the Dockerfile with buildah, with no
# daemon and no pull. The programs are compiled here (release profile) and
# laid out by rootfs.sh, and handed to the Dockerfile as its `build` stage;
# only the FROM scratch stages run. Each image is also written as a
# docker-archive, ready for `ctr -n k8s.io images import` or `docker load`.
#
#   build.sh            build, print the archive directory
#
# Images are tagged ghcr.io/devicelink/<target>:<the chart's appVersion>.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${DEVICELINK_CACHE:-$HOME/.cache/devicelink}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
registry=${DEVICELINK_IMAGE_REGISTRY:-ghcr.io/devicelink}
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$root/charts/devicelink/Chart.yaml")
[ -n "$version" ] || { echo "images: no appVersion in charts/devicelink/Chart.yaml" >&2; exit 1; }
# Every target of the Dockerfile; each but mosquitto is one of our programs
# (devicelink-<target>).
mapfile -t targets < <(sed -n 's/^FROM runtime AS \([a-z0-9-]*\)$/\1/p' "$root/Dockerfile")
programs=()
for t in "${targets[@]}"; do [ "$t" = mosquitto ] || programs+=("$t"); done
out=$cache/images
stage=$out/stage
# buildah keeps its own storage in the cache, apart from any on this host.
buildah=(buildah --root "$out/storage" --runroot "$out/run" --storage-driver vfs)

for tool in buildah ldd strip mosquitto mosquitto_ctrl; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
    { echo "images: $tool is missing (e2e/prereqs.sh installs it)" >&2; exit 1; }
done

echo "images: compiling (release)" >&2
bins=()
for p in "${programs[@]}"; do bins+=(--bin "devicelink-$p"); done
(cd "$root" && cargo build --release --locked "${bins[@]}" >&2)

rm -rf "$stage"
mkdir -p "$stage"
sh "$root/deploy/images/rootfs.sh" base "$stage/out/base"
for p in "${programs[@]}"; do
  sh "$root/deploy/images/rootfs.sh" program "$stage/out/$p" "$CARGO_TARGET_DIR/release/devicelink-$p"
done
sh "$root/deploy/images/rootfs.sh" program "$stage/out/mosquitto" "$(command -v mosquitto || echo /usr/sbin/mosquitto)" "$(command -v mosquitto_ctrl)"
sh "$root/deploy/images/rootfs.sh" plugin "$stage/out/mosquitto" /usr/lib/mosquitto "$(dpkg -L mosquitto | grep '/mosquitto_dynamic_security\.so$')"

for target in "${targets[@]}"; do
  image=$registry/$target:$version
  echo "images: $image" >&2
  "${buildah[@]}" bud --quiet --layers=false --build-context "build=$stage" \
    --target "$target" --tag "$image" --file "$root/Dockerfile" "$root" >/dev/null
  rm -f "$out/$target.tar"
  "${buildah[@]}" push --quiet "$image" "docker-archive:$out/$target.tar:$image" >&2
done
"${buildah[@]}" rmi --prune >/dev/null 2>&1 || true
echo "$out"
