#!/usr/bin/env bash
# The whole system on this machine: control plane, mosquitto, operator,
# adaptors (as local processes for the kwok node), the dummy example, and
# its live MQTT messages. Ctrl-C stops everything.
source "$(dirname "$0")/common.sh"
cd "$root"
port=${DEVICELINK_DEMO_MQTT_PORT:-1883}
logs=$DEVICELINK_CACHE/demo-logs
mkdir -p "$logs"

cargo build --workspace --bins --locked
start_control_plane edge-worker
pids=()
cleanup() {
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  "$root/e2e/controlplane/cluster.sh" down
}
trap cleanup EXIT

if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  mosquitto -p "$port" >"$logs/mosquitto.log" 2>&1 & pids+=($!)
else
  echo "demo: using the MQTT broker already listening on 127.0.0.1:$port" >&2
fi
"$CARGO_TARGET_DIR/debug/devicelink-operator" >"$logs/operator.log" 2>&1 & pids+=($!)
DEVICELINK_BIN_DIR="$CARGO_TARGET_DIR/debug" "$CARGO_TARGET_DIR/debug/local-kubelet" >"$logs/local-kubelet.log" 2>&1 & pids+=($!)

sed "s|tcp://127.0.0.1:1883|tcp://127.0.0.1:$port|" deploy/examples/dummy-special-device.yaml | kubectl apply -f -
kubectl wait --for=condition=DeviceConnected dl/living-room-fan --timeout=120s
kubectl get dl
echo
echo "Live MQTT messages on cattle.io/# (Ctrl-C to stop). In another shell:" >&2
echo "  eval \"\$(e2e/controlplane/cluster.sh env)\"; kubectl patch dl living-room-fan --type=merge -p '{\"spec\":{\"template\":{\"spec\":{\"gear\":\"fast\"}}}}'" >&2
echo "Logs: $logs" >&2
mosquitto_sub -p "$port" -t 'cattle.io/#' -v
