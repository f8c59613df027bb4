# syntax=docker/dockerfile:1
# The images of devicelink, one target each:
#
#   operator          the operator
#   console           the live console (off in the chart unless console.enabled)
#   bridge            the Kafka bridge (off in the chart unless bridge.enabled)
#   adaptor-dummy     the dummy adaptor (simulated devices)
#   adaptor-modbus    the Modbus adaptor (TCP and RTU)
#   adaptor-opcua     the OPC-UA adaptor
#   adaptor-mqtt      the MQTT adaptor (devices that speak MQTT)
#   adaptor-ble       the BLE adaptor (talks to the node's BlueZ over D-Bus)
#   mosquitto         Debian's mosquitto (with mosquitto_ctrl and the dynamic
#                     security plugin), for the chart's optional broker
#   device-simulators a Modbus thermometer, an OPC-UA server and an MQTT
#                     device, to try devicelink with no hardware
#                     (docs/quickstart.md); Python, not FROM scratch
#
# With registry access (docker, podman or buildah):
#   docker build --target operator -t ghcr.io/devicelink/operator:0.1.0 .
# Without it, `make images` builds the same targets with buildah and no
# pull: it compiles on the host and hands the result in as the `build`
# stage (--build-context build=DIR), so only the FROM scratch stages run.
#
# Every image but the simulators is FROM scratch: the program, the shared
# libraries it loads, the CA bundle and a nonroot user (65532). No shell,
# no package manager.

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# make: jemalloc's and librdkafka's builds run it (librdkafka, for the
# bridge, is built from the source its crate bundles; its configure also
# insists on a C++ compiler, g++). libdbus: the BLE adaptor. libssl: the
# bridge's TLS and SASL SCRAM to Kafka.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates make g++ pkg-config libdbus-1-dev libssl-dev mosquitto \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Every program (the operator and the adaptors) is a target below; the
# list of them is those targets.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    programs=$(sed -n 's/^FROM runtime AS \(operator\|console\|bridge\|adaptor-[a-z0-9-]*\)$/\1/p' Dockerfile) \
 && cargo build --release --locked $(for p in $programs; do echo --bin devicelink-$p; done) \
 && sh deploy/images/rootfs.sh base /out/base \
 && for program in $programs; do \
      sh deploy/images/rootfs.sh program /out/$program target/release/devicelink-$program; \
    done \
 && sh deploy/images/rootfs.sh program /out/mosquitto /usr/sbin/mosquitto /usr/bin/mosquitto_ctrl \
 && sh deploy/images/rootfs.sh plugin /out/mosquitto /usr/lib/mosquitto "$(dpkg -L mosquitto | grep '/mosquitto_dynamic_security\.so$')"

FROM scratch AS runtime
COPY --from=build /out/base/ /
ENV PATH=/usr/bin
USER 65532:65532

FROM runtime AS operator
COPY --from=build /out/operator/ /
ENTRYPOINT ["/usr/bin/devicelink-operator"]

FROM runtime AS console
COPY --from=build /out/console/ /
ENTRYPOINT ["/usr/bin/devicelink-console"]

FROM runtime AS bridge
COPY --from=build /out/bridge/ /
ENTRYPOINT ["/usr/bin/devicelink-bridge"]

FROM runtime AS adaptor-dummy
COPY --from=build /out/adaptor-dummy/ /
ENTRYPOINT ["/usr/bin/devicelink-adaptor-dummy"]

FROM runtime AS adaptor-modbus
COPY --from=build /out/adaptor-modbus/ /
ENTRYPOINT ["/usr/bin/devicelink-adaptor-modbus"]

FROM runtime AS adaptor-opcua
COPY --from=build /out/adaptor-opcua/ /
ENTRYPOINT ["/usr/bin/devicelink-adaptor-opcua"]

FROM runtime AS adaptor-mqtt
COPY --from=build /out/adaptor-mqtt/ /
ENTRYPOINT ["/usr/bin/devicelink-adaptor-mqtt"]

FROM runtime AS adaptor-ble
COPY --from=build /out/adaptor-ble/ /
ENTRYPOINT ["/usr/bin/devicelink-adaptor-ble"]

FROM runtime AS mosquitto
COPY --from=build /out/mosquitto/ /
EXPOSE 1883
ENTRYPOINT ["/usr/bin/mosquitto"]
CMD ["-c", "/mosquitto/config/mosquitto.conf"]

FROM ${DEBIAN_IMAGE} AS device-simulators
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY e2e/devices/requirements.txt /opt/devicelink/requirements.txt
# pip trusts the system's CAs, as apt and cargo do, so a build behind a
# proxy that signs with a CA of its own works as the other stages do.
RUN python3 -m venv /opt/devicelink/venv \
 && PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/devicelink/venv/bin/pip install \
      --no-cache-dir --disable-pip-version-check -r /opt/devicelink/requirements.txt
COPY e2e/devices/modbus_server.py e2e/devices/opcua_server.py e2e/devices/mqtt_device.py /opt/devicelink/devices/
WORKDIR /opt/devicelink/devices
ENV PATH=/opt/devicelink/venv/bin:/usr/bin:/bin PYTHONUNBUFFERED=1
USER 65532:65532
# The program and its flags come from the pod: python3 modbus_server.py ...
ENTRYPOINT ["python3"]
