#!/usr/bin/env bash
# Benchmark of the BLE adaptor (not a test): builds in release mode, starts a
# control plane of its own, mosquitto, BlueZoo on a private bus and one
# peripheral per device notifying every 100 ms, and prints a table for
# docs/benchmarks.md. Arguments go to the benchmark, e.g.
#   bash e2e/bench-ble.sh --devices 50 --every-ms 100 --seconds 60
source "$(dirname "$0")/common.sh"
cd "$root"
cargo build --release --locked -p devicelink-operator -p devicelink-adaptor-ble -p devicelink-e2e \
  --bin devicelink-operator --bin devicelink-adaptor-ble --bin ble-bench
start_control_plane edge-worker
DEVICELINK_BIN_DIR="$CARGO_TARGET_DIR/release" "$CARGO_TARGET_DIR/release/ble-bench" "$@"
