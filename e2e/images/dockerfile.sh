#!/usr/bin/env bash
# The Dockerfile as users run it: every target built through the
# Dockerfile's own stages (`docker build --target T .`, with docker stood in
# for by buildah and the public base images by local ones: e2e/images/docker),
# then each image's program run once, as the image starts it.
#
#   dockerfile.sh REGISTRY     build every target as REGISTRY/<target>:<version>
#
# `make images` is the fast path (the host's build handed in as the build
# stage); this is the path README.md's install steps take.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
registry=${1:?usage: dockerfile.sh REGISTRY}
source "$here/store.sh"
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$root/charts/devicelink/Chart.yaml")
mapfile -t targets < <(sed -n 's/^FROM .* AS \([a-z0-9-]*\)$/\1/p' "$root/Dockerfile" | grep -vx -e build -e runtime)

# Runs COMMAND in a container of IMAGE (as the image's user) and checks its
# output holds EXPECTED.
run_once() {
  local image=$1 expected=$2 container output
  shift 2
  container=$("${buildah[@]}" from --pull=never "$image")
  output=$("${buildah[@]}" run --isolation chroot "$container" -- "$@" 2>&1) || true
  "${buildah[@]}" rm "$container" >/dev/null
  grep -qF -- "$expected" <<<"$output" || {
    echo "dockerfile: $image: '$*' printed no '$expected':" >&2
    echo "$output" >&2
    exit 1
  }
}

for target in "${targets[@]}"; do
  image=$registry/$target:$version
  echo "dockerfile: docker build --target $target -t $image ." >&2
  (cd "$root" && "$here/docker" build --target "$target" -t "$image" . >"$store/build-$target.log" 2>&1) || {
    tail -n 40 "$store/build-$target.log" >&2
    echo "dockerfile: building $target failed (log above, whole in $store/build-$target.log)" >&2
    exit 1
  }
  case $target in
    mosquitto)
      run_once "$image" "mosquitto version" /usr/bin/mosquitto -h
      run_once "$image" "mosquitto_ctrl" /usr/bin/mosquitto_ctrl --help ;;
    device-simulators)
      for program in modbus_server.py opcua_server.py mqtt_device.py; do
        run_once "$image" "usage: $program" python3 "$program" --help
      done ;;
    *)
      run_once "$image" "devicelink-$target $version" "/usr/bin/devicelink-$target" --version ;;
  esac
  echo "dockerfile: $image runs" >&2
done
"${buildah[@]}" rm --all >/dev/null 2>&1 || true
# Each run leaves the layers of the one before it (a changed source tree
# makes a new build stage). Past a few gigabytes the store starts over: the
# stand-ins take a minute to make again, and the cargo cache (in TMPDIR)
# keeps the build itself incremental.
"${buildah[@]}" rmi --prune >/dev/null 2>&1 || true
if [ "$(du -sm "$store/storage" | cut -f1)" -gt 6000 ]; then
  echo "dockerfile: the image store is over 6 GB; it starts over next time" >&2
  "${buildah[@]}" rmi --all --force >/dev/null 2>&1 || true
  rm -rf "$store/storage" "$store/standins"
fi
if [ "$(du -sm "$store/tmp" | cut -f1)" -gt 8000 ]; then
  echo "dockerfile: the build stage's cargo cache is over 8 GB; it starts over next time" >&2
  rm -rf "$store/tmp"
fi
