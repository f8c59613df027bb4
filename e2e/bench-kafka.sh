#!/usr/bin/env bash
# Benchmark of the Kafka bridge (not a test): builds in release mode, starts
# a control plane of its own, mosquitto and Kafka, and prints a table for
# docs/benchmarks.md. Arguments go to the benchmark, e.g.
#   bash e2e/bench-kafka.sh --rate 10000 --devices 1000 --seconds 30
source "$(dirname "$0")/common.sh"
cd "$root"
cargo build --release --locked -p devicelink-bridge -p devicelink-e2e \
  --bin devicelink-bridge --bin kafka-bench
start_control_plane edge-worker
DEVICELINK_BIN_DIR="$CARGO_TARGET_DIR/release" "$CARGO_TARGET_DIR/release/kafka-bench" "$@"
