#!/usr/bin/env bash
# Benchmark of a discovery scan (not a test): three pymodbus devices on a
# /24 of loopback addresses, scanned at the default pace; prints a table
# for docs/benchmarks.md. No control plane: the scanner alone.
source "$(dirname "$0")/common.sh"
cd "$root"
cargo run --locked -p devicelink-e2e --bin discovery-bench
