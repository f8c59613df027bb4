#!/usr/bin/env bash
# Runs every test: unit tests, the CRD drift check, and the end-to-end tests
# on a real control plane and real mosquitto (started here, stopped at exit).
source "$(dirname "$0")/common.sh"
cd "$root"

echo "== building (cached in $CARGO_TARGET_DIR)" >&2
cargo build --workspace --all-targets --locked
echo "== starting the control plane" >&2
start_control_plane edge-worker
echo "== running tests" >&2
rm -rf "$CARGO_TARGET_DIR/e2e-logs"
# Unit and crate tests first, then the end-to-end tests (whose summary closes the run).
cargo test --workspace --exclude devicelink-e2e --locked --lib --bins --tests
# On failure, the last lines of each process the tests started say why.
if ! cargo test -p devicelink-e2e --locked --test '*'; then
  for log in "$CARGO_TARGET_DIR"/e2e-logs/*.log; do
    echo "== last lines of $log" >&2
    tail -n 40 "$log" >&2
  done
  exit 1
fi
