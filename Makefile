.PHONY: demo test crds

# The whole system with live MQTT output; Ctrl-C stops it.
demo:
	bash e2e/demo.sh

# Every test, on a real control plane and a real broker.
test:
	bash e2e/test.sh

# Regenerate the CRD YAML from the Rust types.
crds:
	cargo run -p devicelink-api --bin crdgen
