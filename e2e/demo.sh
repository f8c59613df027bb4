#!/usr/bin/env bash
# The whole system on this machine: control plane, mosquitto, operator,
# adaptors (as local processes for the kwok node), the dummy fan and robot, an
# MQTT kitchen light (a paho-mqtt device program), the
# Modbus thermometer (a pymodbus device), the OPC-UA packaging line (an
# asyncua server, signed and encrypted) and the BLE thermometer and lamp
# (peripherals on BlueZoo, an emulation of BlueZ) examples, the console
# (a page at http://127.0.0.1:8090/), and their live MQTT messages. Ctrl-C
# stops everything.
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
  release_cache
}
trap cleanup EXIT

# The broker as the chart runs it (broker.auth=managed): no anonymous
# clients, the dynamic security plugin, whose admin the operator is. The
# operator gives the adaptors and the console their identities; the kitchen
# light (a device program) and you at this terminal get one each from the
# admin, as docs/operator.md shows.
managed=()
mqtt_user=()
if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  admin_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  # Not under the cache: mosquitto started as root drops to its own user,
  # which must be able to replace the plugin's file.
  dynsec=/tmp/devicelink-demo-dynsec
  rm -rf "$dynsec" && mkdir -p "$dynsec" && chmod 0777 "$dynsec"
  mosquitto_ctrl dynsec init "$dynsec/dynamic-security.json" devicelink-admin "$admin_password" >/dev/null
  chmod 0666 "$dynsec/dynamic-security.json"
  plugin=$(dpkg -L mosquitto | grep '/mosquitto_dynamic_security\.so$')
  printf 'listener %s 127.0.0.1\nallow_anonymous false\nplugin %s\nplugin_opt_config_file %s\n' \
    "$port" "$plugin" "$dynsec/dynamic-security.json" >"$logs/mosquitto.conf"
  mosquitto -c "$logs/mosquitto.conf" >"$logs/mosquitto.log" 2>&1 & pids+=($!)
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  kubectl -n devicelink-system create secret generic devicelink-mqtt-admin \
    --from-literal=username=devicelink-admin --from-literal=password="$admin_password" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  managed=(--managed-broker "tcp://127.0.0.1:$port,tcp://localhost:$port")
  dynsec_admin() { mosquitto_ctrl -p "$port" -u devicelink-admin -P "$admin_password" dynsec "$@" >/dev/null; }
  # client ROLE-ACLS...: a client and a role of one name, with these allows.
  client() {
    local name=$1 password=$2; shift 2
    dynsec_admin createClient "$name" -p "$password"
    dynsec_admin createRole "$name"
    while [ $# -gt 0 ]; do dynsec_admin addRoleACL "$name" "$1" "$2" allow; shift 2; done
    dynsec_admin addClientRole "$name" "$name"
  }
  light_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  client kitchen-light "$light_password" \
    publishClientSend 'cattle.io/octopus/home/status/kitchen/light/#' \
    subscribePattern 'cattle.io/octopus/home/set/kitchen/light/#'
  demo_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  client demo "$demo_password" \
    subscribePattern 'cattle.io/#' subscribePattern 'factory/#' \
    publishClientSend 'cattle.io/octopus/default/+/set' publishClientSend 'cattle.io/octopus/+/set' \
    publishClientSend 'cattle.io/octopus/default/+/$write' publishClientSend 'factory/default/+/$write'
  mqtt_user=(-u demo -P "$demo_password")
  light_user=(--username kitchen-light --password "$light_password")
else
  echo "demo: using the MQTT broker already listening on 127.0.0.1:$port (its own rules apply)" >&2
  light_user=()
fi
# The thermometer: 296.5 K and 45.5 % in input registers 0 and 1, the
# temperature drifting as it is read.
modbus_port=${DEVICELINK_DEMO_MODBUS_PORT:-5020}
echo '{"1": {"input": {"0": 2965, "1": 455}}}' >"$logs/thermometer.json"
"$DEVICELINK_CACHE/venv/bin/python" e2e/devices/modbus_server.py --tcp "$modbus_port" \
  --contents "$logs/thermometer.json" --wander 0 >"$logs/thermometer.log" 2>&1 & pids+=($!)
# The packaging line: an OPC-UA server with a Basic256Sha256 endpoint, one
# user, and the variables the example writes (its clock is the server's own).
opcua_port=${DEVICELINK_DEMO_OPCUA_PORT:-4840}
rm -f "$logs/packaging-line.cert.pem" "$logs/packaging-line.key.pem"  # a fresh certificate each run
echo '[{"name": "the.answer", "type": "Int32", "value": 0}, {"name": "myByteString", "type": "ByteString", "value": ""}]' >"$logs/packaging-line.json"
"$DEVICELINK_CACHE/venv/bin/python" e2e/devices/opcua_server.py --port "$opcua_port" \
  --policies Basic256Sha256_SignAndEncrypt --users operator:s3cret \
  --cert "$logs/packaging-line.cert.pem" --key "$logs/packaging-line.key.pem" \
  --variables "$logs/packaging-line.json" </dev/null >"$logs/packaging-line.log" 2>&1 & pids+=($!)
# The kitchen light: a device that speaks MQTT itself, a topic per property,
# on the same broker.
echo '{"switch": false, "gear": "low", "parameter_power": 3500, "manufacturer": "Rancher Octopus Fake Device"}' >"$logs/kitchen-light.json"
"$DEVICELINK_CACHE/venv/bin/python" e2e/devices/mqtt_device.py --port "$port" "${light_user[@]}" --pattern topic \
  --topic 'cattle.io/octopus/home/status/kitchen/light/{path}' \
  --command-topic 'cattle.io/octopus/home/set/kitchen/light/{path}' \
  --state "$logs/kitchen-light.json" --interval 5 >"$logs/kitchen-light.log" 2>&1 & pids+=($!)
# BLE without a radio: BlueZoo (BlueZ's D-Bus API, emulated) on a private bus
# standing in for the system bus; the thermometer and the lamp advertise on
# its adapters hci1 and hci2, and the BLE adaptor uses hci0.
ble_bus=unix:path=$logs/ble-bus.sock
rm -f "$logs/ble-bus.sock"
dbus-daemon --session --nofork --nopidfile --address="$ble_bus" >"$logs/ble-bus.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do [ -S "$logs/ble-bus.sock" ] && break; sleep 0.1; done
DBUS_SYSTEM_BUS_ADDRESS=$ble_bus "$DEVICELINK_CACHE/venv/bin/python" "$root/e2e/devices/bluezoo_reconnects.py" --auto-enable --scan-interval 1 \
  -a 10:00:00:00:00:00 -a 10:00:00:00:00:01 -a 10:00:00:00:00:02 >"$logs/bluezoo.log" 2>&1 & pids+=($!)
for device in thermometer:1 lamp:2; do
  DBUS_SYSTEM_BUS_ADDRESS=$ble_bus "$DEVICELINK_CACHE/venv/bin/python" e2e/devices/ble_peripheral.py \
    --adapter "hci${device#*:}" --config "e2e/devices/ble-${device%:*}.json" --every 5 \
    </dev/null >"$logs/ble-${device%:*}.log" 2>&1 & pids+=($!)
done
printf 'adaptors:\n  ble:\n    env:\n      - {name: DBUS_SYSTEM_BUS_ADDRESS, value: "%s"}\n      - {name: DEVICELINK_BLE_ADAPTER, value: hci0}\n' \
  "$ble_bus" >"$logs/adaptor-settings.yaml"
"$CARGO_TARGET_DIR/debug/devicelink-operator" --adaptor-settings-file "$logs/adaptor-settings.yaml" \
  --grant-console "${managed[@]}" >"$logs/operator.log" 2>&1 & pids+=($!)
DEVICELINK_BIN_DIR="$CARGO_TARGET_DIR/debug" "$CARGO_TARGET_DIR/debug/local-kubelet" >"$logs/local-kubelet.log" 2>&1 & pids+=($!)

# The console, as its ServiceAccount with the chart's rights (the RBAC of
# deploy/manifests/console/, without its Deployment), on this host.
"$DEVICELINK_CACHE/venv/bin/python" - "$root/deploy/manifests/console/console.yaml" <<'PY' | kubectl apply -f -
import re, sys
for doc in open(sys.argv[1]).read().split("\n---\n"):
    if re.search(r"^kind: (ServiceAccount|ClusterRole|ClusterRoleBinding)$", doc, re.M):
        print("---\n" + doc)
PY
# (8080 is the operator's metrics port.)
console_port=${DEVICELINK_DEMO_CONSOLE_PORT:-8090}
console_kubeconfig=$logs/console.kubeconfig
kubectl config view --raw --minify >"$console_kubeconfig"
KUBECONFIG=$console_kubeconfig kubectl config set-credentials devicelink-console \
  --token="$(kubectl -n devicelink-system create token devicelink-console --duration=24h)" >/dev/null
KUBECONFIG=$console_kubeconfig kubectl config set-context --current --user=devicelink-console >/dev/null
console_identity=()
if [ ${#managed[@]} -gt 0 ]; then
  # Its identity on the broker, which the operator makes (the chart grants
  # reading it the same way).
  kubectl apply -f - >/dev/null <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: devicelink-console-mqtt, namespace: devicelink-system}
rules:
  - {apiGroups: [""], resources: [secrets], resourceNames: [devicelink-console-mqtt], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devicelink-console-mqtt, namespace: devicelink-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: devicelink-console-mqtt}
subjects: [{kind: ServiceAccount, name: devicelink-console, namespace: devicelink-system}]
YAML
  console_identity=("${managed[@]}" --broker-identity devicelink-system/devicelink-console-mqtt)
fi
KUBECONFIG=$console_kubeconfig "$CARGO_TARGET_DIR/debug/devicelink-console" --listen "127.0.0.1:$console_port" \
  --allowed-brokers 127.0.0.1,localhost "${console_identity[@]}" >"$logs/console.log" 2>&1 & pids+=($!)
# Someone who may watch and write the examples' DeviceLinks through it.
kubectl apply -f - <<'YAML'
apiVersion: v1
kind: ServiceAccount
metadata: {name: demo-operator, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: demo-operator, namespace: default}
rules:
  - apiGroups: [edge.cattle.io]
    resources: [devicelinks]
    verbs: [get, list, watch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: demo-operator, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: demo-operator}
subjects: [{kind: ServiceAccount, name: demo-operator, namespace: default}]
YAML

for example in dummy-special-device dummy-protocol-device mqtt-device ble; do
  sed "s|tcp://devicelink-mqtt.devicelink-system:1883|tcp://127.0.0.1:$port|" "deploy/examples/$example.yaml" | kubectl apply -f -
done
sed -e "s|tcp://devicelink-mqtt.devicelink-system:1883|tcp://127.0.0.1:$port|" -e "s|192.0.2.10:502|127.0.0.1:$modbus_port|" \
  deploy/examples/modbus-thermometer.yaml | kubectl apply -f -
# The example's Secret (the user) and ConfigMap (the server certificate to
# trust), once the server has written its certificate.
for _ in $(seq 60); do [ -s "$logs/packaging-line.cert.pem" ] && break; sleep 1; done
kubectl create secret generic plc-credentials --from-literal=username=operator --from-literal=password=s3cret \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl create configmap plc-server-certificate --from-file=server.pem="$logs/packaging-line.cert.pem" \
  --dry-run=client -o yaml | kubectl apply -f -
sed -e "s|tcp://devicelink-mqtt.devicelink-system:1883|tcp://127.0.0.1:$port|" -e "s|192.0.2.20:4840|127.0.0.1:$opcua_port|" \
  deploy/examples/opcua.yaml | kubectl apply -f -
kubectl wait --for=condition=DeviceConnected dl/living-room-fan dl/localhost-robot dl/kitchen-light dl/thermometer \
  dl/packaging-line dl/xiaomi-thermometer dl/desk-lamp --timeout=120s
kubectl get dl
echo
echo "Live MQTT messages on cattle.io/# and factory/# (Ctrl-C to stop). In another shell (as the demo's" >&2
echo "broker user; the adaptors and the console have identities of their own the operator keeps):" >&2
echo "  eval \"\$(e2e/controlplane/cluster.sh env)\"; kubectl patch dl living-room-fan --type=merge -p '{\"spec\":{\"template\":{\"spec\":{\"gear\":\"fast\"}}}}'" >&2
echo "  mosquitto_pub -p $port ${mqtt_user[*]} -t cattle.io/octopus/default/thermometer/set -m '{\"high-temperature-limit\": 35}'" >&2
echo "  mosquitto_pub -p $port ${mqtt_user[*]} -t cattle.io/octopus/default/kitchen-light/set -m '{\"gear\": \"high\"}'" >&2
echo "  mosquitto_pub -p $port ${mqtt_user[*]} -t cattle.io/octopus/\$(kubectl get dl localhost-robot -o jsonpath='{.metadata.uid}')/set -m '{\"friends\": [\"ann\", \"bob\"]}'" >&2
echo "  mosquitto_pub -p $port ${mqtt_user[*]} -t 'factory/default/packaging-line/\$write' -m '{\"integer\": 7, \"bytes\": \"hello\"}'" >&2
echo "  mosquitto_pub -p $port ${mqtt_user[*]} -t 'cattle.io/octopus/default/desk-lamp/\$write' -m '{\"power\": \"ON\"}'" >&2
console_ready() {
  "$DEVICELINK_CACHE/venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://127.0.0.1:$console_port/readyz" 2>/dev/null
}
for _ in $(seq 30); do console_ready && break; sleep 1; done
console_ready || { echo "demo: the console did not start; see $logs/console.log" >&2; exit 1; }
echo "The console: http://127.0.0.1:$console_port/ (namespace default), with the token of" >&2
echo "  eval \"\$(e2e/controlplane/cluster.sh env)\"; kubectl create token demo-operator --audience devicelink-console" >&2
echo "Logs: $logs" >&2
mosquitto_sub -p "$port" "${mqtt_user[@]}" -t 'cattle.io/#' -t 'factory/#' -v
