#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian machine, only
# if it is missing: mosquitto (broker and clients), openssl, socat, Go,
# Rust, containerd, runc, CNI plugins, iptables, buildah and debootstrap (the real node
# and the images), libdbus and dbus-daemon (BLE), chromium (the console
# page), and pymodbus, asyncua,
# paho-mqtt and BlueZoo (in a virtualenv under the cache), node-opcua and
# HiveMQ (the second OPC-UA stack and MQTT broker, under the cache), and
# Apache Kafka (under the cache).
set -euo pipefail
missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
command -v openssl >/dev/null || missing+=(openssl)
command -v go >/dev/null || missing+=(golang-go)
command -v socat >/dev/null || missing+=(socat)
# The real node (e2e/controlplane/node.sh) and the images (deploy/images/).
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing+=(runc)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || missing+=(iptables)
command -v conntrack >/dev/null || [ -x /usr/sbin/conntrack ] || missing+=(conntrack)
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || missing+=(iproute2)
command -v buildah >/dev/null || missing+=(buildah)
# Local stand-ins for the Dockerfile's public base images (e2e/images/).
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v gcc >/dev/null || missing+=(gcc)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -n "$(ls /usr/lib/*/libc.a 2>/dev/null)" ] || missing+=(libc6-dev)
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
python3 -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)
# The BLE adaptor links libdbus (btleplug talks to BlueZ over D-Bus); its
# tests run BlueZoo on a private bus of their own.
[ -n "$(ls /usr/lib/*/pkgconfig/dbus-1.pc 2>/dev/null)" ] || missing+=(libdbus-1-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
# The bridge's librdkafka does TLS and SASL SCRAM with OpenSSL; its
# configure script insists on a C++ compiler.
[ -n "$(ls /usr/lib/*/pkgconfig/openssl.pc 2>/dev/null)" ] || missing+=(libssl-dev)
command -v c++ >/dev/null || missing+=(g++)
command -v dbus-daemon >/dev/null || missing+=(dbus-daemon)
# The second Modbus implementation the adaptor is tested against (C).
[ -f /usr/include/modbus/modbus.h ] || missing+=(libmodbus-dev)
# The second OPC-UA stack (node-opcua, from npm) runs on Node.js.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# The second MQTT broker (HiveMQ CE) and Kafka, from Maven Central, run on Java.
command -v javac >/dev/null || missing+=(default-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
# The console page is tried in a real browser (e2e/src/browser.rs).
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "prereqs: installing ${missing[*]}" >&2
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "prereqs: Rust (cargo) is required; install it with rustup" >&2; exit 1; }
# The format and lint checks of make test's fast tier.
for component in rustfmt clippy; do
  command=${component/rustfmt/fmt}
  if ! cargo "$command" --version >/dev/null 2>&1; then
    command -v rustup >/dev/null && rustup component add "$component" >&2 ||
      { echo "prereqs: $component is required (rustup component add $component)" >&2; exit 1; }
  fi
done
# Device servers written by others (pymodbus, asyncua), the MQTT client
# MQTT-native device programs use (paho-mqtt), and BlueZoo (BlueZ's D-Bus
# API emulated, with dbus-fast for the BLE peripheral program), in a
# virtualenv of their own.
venv=${DEVICELINK_CACHE:-$HOME/.cache/devicelink}/venv
requirements=$(dirname "$0")/devices/requirements.txt
pin() { sed -n "s/^$1==//p" "$requirements"; }
pymodbus_version=$(pin pymodbus)
asyncua_version=$(pin asyncua)
paho_version=$(pin paho-mqtt)
bluezoo_version=1.0.2
dbus_fast_version=5.2.0
if ! "$venv/bin/python" -c "
import sys, importlib.metadata as m, serial
sys.exit(m.version('pymodbus') != '$pymodbus_version' or m.version('asyncua') != '$asyncua_version'
         or m.version('paho-mqtt') != '$paho_version' or m.version('bluezoo') != '$bluezoo_version'
         or m.version('dbus-fast') != '$dbus_fast_version')" 2>/dev/null; then
  echo "prereqs: installing pymodbus $pymodbus_version, asyncua $asyncua_version, paho-mqtt $paho_version, bluezoo $bluezoo_version and dbus-fast $dbus_fast_version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "pymodbus[serial]==$pymodbus_version" "asyncua==$asyncua_version" "paho-mqtt==$paho_version" \
    "bluezoo==$bluezoo_version" "dbus-fast==$dbus_fast_version"
fi
# The second OPC-UA stack the adaptor is tested against: node-opcua, at the
# versions e2e/devices/node-opcua/package-lock.json pins, installed again
# only when that file changes.
node_opcua=${DEVICELINK_CACHE:-$HOME/.cache/devicelink}/node-opcua
node_opcua_source=$(cd "$(dirname "$0")/devices/node-opcua" && pwd)
if ! cmp -s "$node_opcua_source/package-lock.json" "$node_opcua/package-lock.json"; then
  echo "prereqs: installing node-opcua (e2e/devices/node-opcua/package-lock.json) into $node_opcua" >&2
  # Installed aside and moved in whole: an interrupted install is not taken
  # for a finished one.
  rm -rf "$node_opcua" "$node_opcua.partial"
  mkdir -p "$node_opcua.partial"
  cp "$node_opcua_source/package.json" "$node_opcua_source/package-lock.json" "$node_opcua.partial/"
  (cd "$node_opcua.partial" && npm ci --no-audit --no-fund --loglevel=error >&2)
  mv "$node_opcua.partial" "$node_opcua"
fi
# Java programs the tests run, each from e2e/devices/NAME: a pom.xml naming
# the jars from Maven Central, and sources compiled against them, built into
# the cache (lib/, classes/, and the files as they were in source/) again
# only when a file there changes.
java_program() { # NAME
  local target=${DEVICELINK_CACHE:-$HOME/.cache/devicelink}/$1
  local source
  source=$(cd "$(dirname "$0")/devices/$1" && pwd)
  diff -rq "$source" "$target/source" >/dev/null 2>&1 && return
  echo "prereqs: building e2e/devices/$1 into $target" >&2
  rm -rf "$target" "$target.partial"
  mkdir -p "$target.partial/classes"
  cp -r "$source" "$target.partial/source"
  (cd "$target.partial" &&
    mvn -q -B -f source/pom.xml dependency:copy-dependencies -DoutputDirectory="$target.partial/lib" >&2 &&
    javac -cp 'lib/*' -d classes source/*.java >&2)
  mv "$target.partial" "$target"
}
# The second MQTT broker the adaptors are tested against: HiveMQ Community
# Edition, embedded by Broker.java.
java_program hivemq
# Apache Kafka (KRaft), which the bridge delivers to, and Consume.java, an
# independent reader of what arrived.
java_program kafka
