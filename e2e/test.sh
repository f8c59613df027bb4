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
python3 "$root/e2e/import-cycles.py" "$root/adaptors/runtime/src" "$root/mqtt/src" || {
  echo "== move what both modules need into a module of its own (see docs/architecture.md)" >&2
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
phase "unit and crate tests (no cluster)"
cargo test --workspace --exclude devicelink-e2e --locked --lib --bins --tests --no-fail-fast
phase "images (make images; cached in $DEVICELINK_CACHE/images)"
images=$("$root/deploy/images/build.sh")
phase "the Dockerfile as users build it (docker stood in for by buildah; cached in $DEVICELINK_CACHE/dockerfile-images)"
"$root/e2e/images/dockerfile.sh" registry.example.com/devicelink
phase "starting the control plane, and the real node with the images"
start_control_plane --real-node real-node edge-worker
"$root/e2e/controlplane/node.sh" import "$images"/*.tar
phase "the chart's objects, as the API server sees them (server-side dry run)"
"$("$root/e2e/helm.sh")" template devicelink "$root/charts/devicelink" --namespace devicelink-system \
  --set 'adaptors.settings.adaptors.dummy.resources.limits.memory=48Mi' \
  --set broker.enabled=true --set broker.persistence.enabled=true --set broker.passwordSecret=mqtt-users --set broker.aclSecret=mqtt-users \
  --set console.enabled=true 2>/dev/null |
  kubectl apply --dry-run=server -f - >/dev/null
phase "end-to-end tests"
rm -rf "$CARGO_TARGET_DIR/e2e-logs"
# On failure, the last lines of each process the tests started say why.
# The MQTT extension's tests, and the MQTT-native devices', run again with
# the adaptors' shared connections off: sharing must not change what a
# device does. (mqtt_timeouts and mqtt_transports drive the MQTT library
# directly, not through an adaptor: sharing does not reach them.) Every
# pass runs whatever fails (--no-fail-fast), so one failure does not hide
# another.
failed=0
# Each pass's output is kept too, so the run can end by naming every failed
# test: CI shows only the end of the output.
results="$CARGO_TARGET_DIR/e2e-results"
rm -rf "$results" && mkdir -p "$results"
pass() { # NAME COMMAND...: runs one pass of end-to-end tests
  local name=$1
  shift
  phase "end-to-end pass: $name"
  "$@" 2>&1 | tee "$results/$name.txt" || failed=1
}
pass default cargo test -p devicelink-e2e --locked --no-fail-fast --test '*'
pass sharing-off env DEVICELINK_E2E_MQTT_SHARING=off cargo test -p devicelink-e2e --locked --no-fail-fast \
  --test mqtt_outage --test mqtt_sizes \
  --test mqtt_will --test mqtt_write_modes --test mqtt_writes --test mqtt_devices
# The Modbus tests again against a second implementation of Modbus TCP:
# libmodbus (C) instead of pymodbus (docs/interop.md).
pass libmodbus env DEVICELINK_E2E_MODBUS_SERVER=libmodbus cargo test -p devicelink-e2e --locked --no-fail-fast \
  --test modbus_registers --test modbus_recovery --test modbus_thermometer
# The MQTT tests again against a second broker: HiveMQ Community Edition
# (Java) instead of mosquitto; tests that need mosquitto's own features
# still get mosquitto (docs/interop.md). The bridge's TLS and SASL to Kafka
# do not touch the MQTT side: that test runs once.
pass hivemq env DEVICELINK_E2E_MQTT_BROKER=hivemq cargo test -p devicelink-e2e --locked --no-fail-fast \
  --test mqtt_outage --test mqtt_sizes --test mqtt_timeouts --test mqtt_transports \
  --test mqtt_will --test mqtt_write_modes --test mqtt_writes --test mqtt_devices \
  --test kafka_bridge -- --skip the_sink_speaks_tls_and_sasl
# The OPC-UA tests again against a second stack: node-opcua (JavaScript)
# instead of asyncua (docs/interop.md).
pass node-opcua env DEVICELINK_E2E_OPCUA_SERVER=node-opcua cargo test -p devicelink-e2e --locked --no-fail-fast \
  --test opcua_example --test opcua_recovery --test opcua_security --test opcua_types
if [ "$failed" = 1 ]; then
  for log in "$CARGO_TARGET_DIR"/e2e-logs/*.log; do
    echo "== last lines of $log" >&2
    tail -n 40 "$log" >&2
  done
  # On both streams: whichever one the reader keeps ends with the names.
  summary=$(for out in "$results"/*.txt; do
    awk -v pass="$(basename "$out" .txt)" '$1 == "Running" { file = $2 }
      /^test .* FAILED$/ { print "   " pass "  " file "  " $2 }' "$out"
  done)
  printf '== failed (pass, test file, test):\n%s\n' "$summary"
  printf '== failed (pass, test file, test):\n%s\n' "$summary" >&2
  echo "== some end-to-end tests failed: the 'failures:' lists above say why" >&2
  exit 1
fi
phase "all passed"
