#!/usr/bin/env bash
# Benchmark of the OPC-UA adaptor (not a test): builds in release mode,
# starts a control plane of its own, asyncua servers and mosquitto, and
# prints a table for docs/benchmarks.md. Arguments go to the benchmark, e.g.
#   bash e2e/bench-opcua.sh --devices 200 --items 50 --millis 100 --servers 4 --seconds 60
source "$(dirname "$0")/common.sh"
cd "$root"
cargo build --release --locked -p devicelink-operator -p devicelink-adaptor-opcua -p devicelink-e2e \
  --bin devicelink-operator --bin devicelink-adaptor-opcua --bin opcua-bench
start_control_plane edge-worker
DEVICELINK_BIN_DIR="$CARGO_TARGET_DIR/release" "$CARGO_TARGET_DIR/release/opcua-bench" "$@"
