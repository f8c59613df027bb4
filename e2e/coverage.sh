#!/usr/bin/env bash
# Line coverage of the operator's code by its own tests: the stage tables
# and the reconcile scenarios against a mocked API server, no control plane
# (the end-to-end suite covers the rest). cargo-llvm-cov and the LLVM tools
# are installed here when missing; the report goes to docs/testing.md by hand.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/devicelink/target}
rustup component add llvm-tools-preview >/dev/null 2>&1
if ! cargo llvm-cov --version >/dev/null 2>&1; then
  echo "== installing cargo-llvm-cov" >&2
  cargo install cargo-llvm-cov --locked
fi
cd "$root"
cargo llvm-cov -p devicelink-operator --lib --summary-only "$@"
