.PHONY: demo test images crds manifests coverage bench bench-modbus bench-mqtt bench-opcua bench-mqtt-device bench-ble bench-console bench-kafka bench-discovery

# The whole system with live MQTT output; Ctrl-C stops it.
demo:
	bash e2e/demo.sh

# Every test, on a real control plane and a real broker.
test:
	bash e2e/test.sh

# The container images (operator, adaptors, broker), built with buildah from
# the Dockerfile with no daemon and no pull; see docs/operator.md.
images:
	bash deploy/images/build.sh

# Regenerate the CRD YAML and the chart's list of adaptor kinds from the Rust
# types (api/src/adaptor.rs), and deploy/manifests/crds.yaml with them.
crds:
	cargo run -p devicelink-api --bin crdgen
	bash e2e/manifests.sh

# Render deploy/manifests/ from the Helm chart.
manifests:
	bash e2e/manifests.sh

# Line coverage of operator/src by its unit tests (no cluster); see docs/testing.md.
coverage:
	bash e2e/coverage.sh

# The operator at scale (5,000 DeviceLinks over 50 kwok nodes); see docs/benchmarks.md.
bench:
	bash e2e/bench-operator.sh

# The Modbus adaptor polling 1,000 devices x 20 registers at 1 s; see docs/benchmarks.md.
bench-modbus:
	bash e2e/bench-modbus.sh

# What a discovery scan of a /24 costs; see docs/benchmarks.md.
bench-discovery:
	bash e2e/bench-discovery.sh

# One adaptor's MQTT path: 10,000 devices on shared connections next to bare rumqttc; see docs/benchmarks.md.
bench-mqtt:
	bash e2e/bench-mqtt.sh --devices 10000 --seconds 30

# The OPC-UA adaptor: 200 devices x 50 monitored items at 100 ms; see docs/benchmarks.md.
bench-opcua:
	bash e2e/bench-opcua.sh

# The MQTT adaptor: 1,000 devices that speak MQTT, one message/s each; see docs/benchmarks.md.
bench-mqtt-device:
	bash e2e/bench-mqtt-device.sh

# The BLE adaptor: 50 peripherals on BlueZoo, each notifying at 10 Hz; see docs/benchmarks.md.
bench-ble:
	bash e2e/bench-ble.sh

# The console: 1,000 devices publishing once a second streamed to 50 WebSocket clients; see docs/benchmarks.md.
bench-console:
	bash e2e/bench-console.sh

# The Kafka bridge: 10,000 MQTT messages/s into Kafka through one replica, next to a bare producer; see docs/benchmarks.md.
bench-kafka:
	bash e2e/bench-kafka.sh --rate 10000 --devices 1000 --seconds 30
