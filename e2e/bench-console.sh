#!/usr/bin/env bash
# Benchmark of the console (not a test): builds in release mode, starts a
# control plane of its own, and streams D devices publishing once a second
# to C WebSocket clients; prints a table for docs/benchmarks.md. Arguments
# go to the benchmark, e.g.
#   bash e2e/bench-console.sh --devices 1000 --clients 50 --seconds 60
source "$(dirname "$0")/common.sh"
cd "$root"
cargo build --release --locked -p devicelink-console -p devicelink-e2e --bin devicelink-console --bin console-bench
start_control_plane edge-worker
# The harness finds the repository (the chart's rendered RBAC) as cargo test would tell it.
CARGO_MANIFEST_DIR="$root/e2e" DEVICELINK_BIN_DIR="$CARGO_TARGET_DIR/release" "$CARGO_TARGET_DIR/release/console-bench" "$@"
