#!/usr/bin/env bash
# Benchmark of the operator at scale (not a test): builds in release mode,
# starts a control plane of its own, creates the DeviceLinks and prints a
# table for docs/benchmarks.md. Arguments go to the benchmark, e.g.
#   bash e2e/bench-operator.sh --links 5000 --nodes 50 --rest-seconds 60
source "$(dirname "$0")/common.sh"
cd "$root"
cargo build --release --locked -p devicelink-operator -p devicelink-e2e --bin devicelink-operator --bin operator-bench
start_control_plane edge-worker
DEVICELINK_BIN_DIR="$CARGO_TARGET_DIR/release" "$CARGO_TARGET_DIR/release/operator-bench" "$@"
