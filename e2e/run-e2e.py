#!/usr/bin/env python3
"""Runs the end-to-end test files, two at a time, one per control plane.

    run-e2e.py RESULTS WORKER...     WORKER is NAME=KUBECONFIG[:real-node]
    run-e2e.py --summary RESULTS     names every failed test of that run

Every test file of every pass below is a job. Each worker has a control
plane of its own (its own etcd, API server and kwok) and its own log
directory, so the operators, adaptors and brokers two tests start never
meet; jobs that need the real node go to the worker whose control plane
has it. Jobs start longest first, by the durations the last run recorded,
so the two workers end close together.

Each job's output is printed whole when it ends (two interleaved streams
would be unreadable) and kept in RESULTS/<pass>/<file>.txt. The exit
status is 1 if any test failed; `--summary` then names each failure (on
both streams: whichever one the reader keeps ends with the names).
"""

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MQTT_EXTENSION = ["mqtt_outage", "mqtt_sizes", "mqtt_will", "mqtt_write_modes", "mqtt_writes",
                  "mqtt_devices"]

# (name, environment, test files or None for all, arguments to the test binaries)
PASSES = [
    ("default", {}, None, []),
    # The MQTT extension's tests, and the MQTT-native devices', again with
    # the adaptors' shared connections off: sharing must not change what a
    # device does. (mqtt_timeouts and mqtt_transports drive the MQTT library
    # directly, not through an adaptor: sharing does not reach them.)
    ("sharing-off", {"DEVICELINK_E2E_MQTT_SHARING": "off"}, MQTT_EXTENSION, []),
    # The Modbus tests against a second implementation of Modbus TCP:
    # libmodbus (C) instead of pymodbus (docs/interop.md).
    ("libmodbus", {"DEVICELINK_E2E_MODBUS_SERVER": "libmodbus"},
     ["modbus_registers", "modbus_recovery", "modbus_thermometer"], []),
    # The MQTT tests against a second broker: HiveMQ Community Edition (Java)
    # instead of mosquitto; tests that need mosquitto's own features still
    # get mosquitto (docs/interop.md). The bridge's TLS and SASL to Kafka do
    # not touch the MQTT side: that test runs once.
    ("hivemq", {"DEVICELINK_E2E_MQTT_BROKER": "hivemq"},
     MQTT_EXTENSION + ["mqtt_timeouts", "mqtt_transports", "kafka_bridge"],
     ["--skip", "the_sink_speaks_tls_and_sasl"]),
    # The OPC-UA tests against a second stack: node-opcua (JavaScript)
    # instead of asyncua (docs/interop.md).
    ("node-opcua", {"DEVICELINK_E2E_OPCUA_SERVER": "node-opcua"},
     ["opcua_example", "opcua_recovery", "opcua_security", "opcua_types"], []),
]

# Test files that need the control plane with the real node (a kubelet
# running the chart's images).
NEEDS_REAL_NODE = {"helm_real_node"}

# Durations (seconds) for a machine with no record yet: the slow files, so
# that a fresh run starts them first too.
FIRST_GUESS = {"helm_real_node": 190, "kafka_bridge": 140, "broker_identities": 125,
               "mqtt_sharing": 125, "ble_devices": 110, "mqtt_outage": 100, "mqtt_devices": 50}


def log(message, started=time.monotonic()):
    elapsed = int(time.monotonic() - started)
    print(f"== [e2e {elapsed // 60}m{elapsed % 60}s] {message}", file=sys.stderr, flush=True)


def test_binaries():
    """Builds the end-to-end tests; returns {file name: executable}."""
    build = subprocess.run(
        ["cargo", "test", "-p", "devicelink-e2e", "--locked", "--no-run",
         "--message-format=json-render-diagnostics"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    if build.returncode != 0:
        sys.exit("== the end-to-end tests did not build (the errors are above)")
    binaries = {}
    for line in build.stdout.splitlines():
        message = json.loads(line)
        target = message.get("target", {})
        if message.get("reason") == "compiler-artifact" and target.get("kind") == ["test"]:
            binaries[target["name"]] = message["executable"]
    return binaries


class Job:
    def __init__(self, pass_name, environment, test, executable, arguments, expected):
        self.pass_name, self.environment, self.test = pass_name, environment, test
        self.executable, self.arguments, self.expected = executable, arguments, expected

    @property
    def key(self):
        return f"{self.pass_name}/{self.test}"


def plan(binaries, durations):
    jobs = []
    for pass_name, environment, tests, arguments in PASSES:
        for test in sorted(binaries) if tests is None else tests:
            if test not in binaries:
                sys.exit(f"== pass {pass_name} names {test}, which is not a test file in e2e/tests")
            key = f"{pass_name}/{test}"
            expected = durations.get(key, FIRST_GUESS.get(test, 30))
            jobs.append(Job(pass_name, environment, test, binaries[test], arguments, expected))
    return sorted(jobs, key=lambda job: -job.expected)


class Worker(threading.Thread):
    def __init__(self, spec, jobs, results, report):
        super().__init__(daemon=True)
        self.name, rest = spec.split("=", 1)
        self.kubeconfig, _, flag = rest.partition(":")
        self.real_node = flag == "real-node"
        self.jobs, self.results, self.report = jobs, results, report
        self.log_dir = Path(os.environ["CARGO_TARGET_DIR"]) / f"e2e-logs-{self.name}"

    def take(self):
        """The longest job left that this worker may run."""
        with self.jobs["lock"]:
            for index, job in enumerate(self.jobs["left"]):
                if self.real_node or job.test not in NEEDS_REAL_NODE:
                    return self.jobs["left"].pop(index)
        return None

    def run(self):
        while (job := self.take()) is not None:
            environment = dict(os.environ, **job.environment, KUBECONFIG=self.kubeconfig,
                               DEVICELINK_E2E_LOG_DIR=str(self.log_dir),
                               CARGO_MANIFEST_DIR=str(ROOT / "e2e"))
            began = time.monotonic()
            finished = subprocess.run([job.executable, *job.arguments], cwd=ROOT / "e2e",
                                      env=environment, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, errors="replace",
                                      check=False)
            seconds = time.monotonic() - began
            output = f"     Running tests/{job.test}.rs (pass {job.pass_name})\n{finished.stdout}"
            out = self.results / job.pass_name / f"{job.test}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(output)
            self.report(self, job, finished.returncode, seconds, output)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--summary":
        return summary(sys.argv[2])
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    results = Path(sys.argv[1])
    results.mkdir(parents=True, exist_ok=True)
    durations_file = Path(os.environ["CARGO_TARGET_DIR"]) / "e2e-durations.json"
    try:
        durations = json.loads(durations_file.read_text())
    except (OSError, ValueError):
        durations = {}
    jobs = plan(test_binaries(), durations)
    if not any(spec.endswith(":real-node") for spec in sys.argv[2:]) and any(
            job.test in NEEDS_REAL_NODE for job in jobs):
        sys.exit("== no worker has the real node, which " + ", ".join(NEEDS_REAL_NODE) + " need")
    log(f"{len(jobs)} test files over {len(sys.argv) - 2} control planes, longest first")

    failed, printing = [], threading.Lock()

    def report(worker, job, code, seconds, output):
        with printing:
            print(output, flush=True)
            durations[job.key] = round(seconds, 1)
            verdict = "ok" if code == 0 else f"FAILED (exit status {code})"
            log(f"{job.key}: {verdict} in {seconds:.0f} s, on control plane {worker.name}")
            if code != 0:
                failed.append(job)

    shared = {"lock": threading.Lock(), "left": jobs}
    workers = [Worker(spec, shared, results, report) for spec in sys.argv[2:]]
    for worker in workers:
        worker.log_dir.mkdir(parents=True, exist_ok=True)
        worker.start()
    for worker in workers:
        worker.join()
    durations_file.write_text(json.dumps(durations, indent=1, sort_keys=True))
    if failed:
        log(f"{len(failed)} test file(s) failed: " + ", ".join(job.key for job in failed))
        sys.exit(1)


def summary(results):
    """Names the failed tests of a run: pass, test file, test."""
    lines = []
    for out in sorted(Path(results).glob("*/*.txt")):
        text = out.read_text()
        names = [line.split()[1] for line in text.splitlines()
                 if line.startswith("test ") and line.endswith(" FAILED")]
        if not names and "test result: ok" not in text:
            names = ["(the test binary itself: see its output)"]
        lines += [f"   {out.parent.name}  tests/{out.stem}.rs  {name}" for name in names]
    for stream in (sys.stdout, sys.stderr):
        print("== failed (pass, test file, test):\n" + "\n".join(lines), file=stream, flush=True)


if __name__ == "__main__":
    main()
