#!/usr/bin/env bash
# Benchmark of the MQTT adaptor (not a test): builds in release mode, starts
# a control plane of its own, mosquitto and a device program publishing for
# every device, and prints a table for docs/benchmarks.md. Arguments go to
# the benchmark, e.g.
#   bash e2e/bench-mqtt-device.sh --devices 1000 --seconds 60
source "$(dirname "$0")/common.sh"
cd "$root"
cargo build --release --locked -p devicelink-operator -p devicelink-adaptor-mqtt -p devicelink-e2e \
  --bin devicelink-operator --bin devicelink-adaptor-mqtt --bin mqtt-device-bench
start_control_plane edge-worker
DEVICELINK_BIN_DIR="$CARGO_TARGET_DIR/release" "$CARGO_TARGET_DIR/release/mqtt-device-bench" "$@"
