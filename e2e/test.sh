#!/usr/bin/env bash
# Runs every test: unit tests, the CRD drift check, and the end-to-end tests
# on a real control plane and real mosquitto (started here, stopped at exit).
source "$(dirname "$0")/common.sh"
cd "$root"

# Each phase is announced with the time since the start, so a slow run
# shows where its time went.
phase() { echo "== [$((SECONDS / 60))m$((SECONDS % 60))s] $*" >&2; }

# The fast tier first: a change that is not formatted, or that clippy
# faults, fails in seconds (minutes on a fresh machine),
# not after the end-to-end suite.
phase "format (cargo fmt --check)"
cargo fmt --all -- --check || {
  echo "== the code is not formatted as rustfmt would: run cargo fmt --all" >&2
  exit 1
}
phase "lint (cargo clippy, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings || {
  echo "== clippy found the problems above: fix them (an allow needs a comment saying why)" >&2
  exit 1
}
phase "module structure (no import circles in the runtime and the MQTT library)"
python3 "$root/e2e/import-cycles.py" "$root/adaptors/runtime/src" "$root/mqtt/src" "$root/cells/src" || {
  echo "== move what both modules need into a module of its own (see docs/architecture.md)" >&2
  exit 1
}
phase "function length (at most 80 lines in the runtime and the MQTT library)"
python3 "$root/e2e/long-functions.py" "$root/adaptors/runtime/src" "$root/mqtt/src" "$root/cells/src" || {
  echo "== split the functions above into parts with names that say what each does" >&2
  exit 1
}
phase "the Helm chart: lint, and deploy/manifests/ rendered from it"
"$("$root/e2e/helm.sh")" lint --strict "$root/charts/devicelink"
"$root/e2e/manifests.sh" --check
phase "building (cached in $CARGO_TARGET_DIR)"
cargo build --workspace --all-targets --locked
# Incremental state of crate builds no longer made piles up (tens of GiB
# over weeks on a shared cache); what was not touched for two days goes.
find "$CARGO_TARGET_DIR"/*/incremental -mindepth 1 -maxdepth 1 -mtime +2 -exec rm -rf {} + 2>/dev/null || true
# So do builds no longer used (each change leaves a copy of every binary
# and library depending on it): not read or written for two days.
find "$CARGO_TARGET_DIR"/*/deps -maxdepth 1 -type f -atime +2 -mtime +2 -delete 2>/dev/null || true
# And within the day, older builds of the workspace's own crates.
python3 "$root/e2e/prune-builds.py" "$CARGO_TARGET_DIR"
phase "unit and crate tests (no cluster)"
cargo test --workspace --exclude devicelink-e2e --locked --lib --bins --tests --no-fail-fast
phase "images (make images; cached in $DEVICELINK_CACHE/images)"
images=$("$root/deploy/images/build.sh")
phase "the Dockerfile as users build it (docker stood in for by buildah; cached in $DEVICELINK_CACHE/dockerfile-images)"
"$root/e2e/images/dockerfile.sh" registry.example.com/devicelink
phase "starting the control planes: one with the real node and the images, one beside it"
# The end-to-end tests run two test files at a time, each on a control
# plane of its own, so that they never see each other's objects.
control_planes+=("$DEVICELINK_CACHE/cluster-2|17443|13379")
(
  export DEVICELINK_CLUSTER_DIR=$DEVICELINK_CACHE/cluster-2 DEVICELINK_APISERVER_PORT=17443 DEVICELINK_ETCD_PORT=13379
  start_control_plane edge-worker
)
second_kubeconfig=$DEVICELINK_CACHE/cluster-2/kubeconfig
start_control_plane --real-node real-node edge-worker
"$root/e2e/controlplane/node.sh" import "$images"/*.tar
phase "the chart's objects, as the API server sees them (server-side dry run)"
"$("$root/e2e/helm.sh")" template devicelink "$root/charts/devicelink" --namespace devicelink-system \
  --set 'adaptors.settings.adaptors.dummy.resources.limits.memory=48Mi' \
  --set broker.enabled=true --set broker.persistence.enabled=true --set broker.passwordSecret=mqtt-users --set broker.aclSecret=mqtt-users \
  --set console.enabled=true 2>/dev/null |
  kubectl apply --dry-run=server -f - >/dev/null
phase "end-to-end tests (the passes and which files each runs: e2e/run-e2e.py)"
# Every pass runs whatever fails, so one failure does not hide another;
# each test file's output is kept, and the run ends by naming every failed
# test (CI shows only the end of the output).
rm -rf "$CARGO_TARGET_DIR"/e2e-logs*
results="$CARGO_TARGET_DIR/e2e-results"
rm -rf "$results"
if ! python3 "$root/e2e/run-e2e.py" "$results" "1=$KUBECONFIG:real-node" "2=$second_kubeconfig"; then
  # The last lines of each process the tests started say why.
  for log in "$CARGO_TARGET_DIR"/e2e-logs-*/*.log; do
    echo "== last lines of $log" >&2
    tail -n 40 "$log" >&2
  done
  python3 "$root/e2e/run-e2e.py" --summary "$results"
  echo "== some end-to-end tests failed: the 'failures:' lists above say why" >&2
  exit 1
fi
phase "all passed"
