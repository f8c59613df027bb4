#!/usr/bin/env python3
"""A device that speaks MQTT itself, for tests, benchmarks and the demo,
on paho-mqtt: it publishes its state, applies the commands it receives and
publishes its new state, as smart lights and sensors do.

Its state is a JSON object (--state FILE). Two layouts, as Octopus's
MQTTDevice patterns name them:

  --pattern message   the whole state as one JSON object on --topic,
                      commands as JSON objects on --command-topic, merged
                      into the state (nested objects field by field)
  --pattern topic     each entry of the (flat) state on its own topic,
                      --topic with {path} replaced by the entry's key (a key
                      may hold slashes): strings as text, anything else as
                      JSON; commands on --command-topic with {path}, same
                      encoding

It publishes the state when it connects, after each command, and every
--interval seconds (0: never by itself), retained unless --no-retain.
--tick KEY adds one to the number at KEY before each publication, as a
meter counts. With --count N it publishes N devices at once (topics get
{n} replaced by 0..N-1), for benchmarks.

Credentials: --username/--password; TLS: --ca FILE (server checked
against it). Prints "ready" once connected and subscribed.
"""

import argparse
import json
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt


def merge(old, new):
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(old.get(key), dict):
            merge(old[key], value)
        else:
            old[key] = value


def encode(value):
    return value if isinstance(value, str) else json.dumps(value)


def decode(payload):
    text = payload.decode("utf-8")
    try:
        return json.loads(text)
    except ValueError:
        return text


class Device:
    def __init__(self, args, n, state):
        self.args = args
        self.n = n
        self.state = state
        self.lock = threading.Lock()

    def topic(self, template, path=""):
        return template.replace("{n}", str(self.n)).replace("{path}", path)

    def publications(self):
        with self.lock:
            if self.args.tick:
                self.state[self.args.tick] = self.state.get(self.args.tick, 0) + 1
            if self.args.pattern == "message":
                return [(self.topic(self.args.topic), json.dumps(self.state))]
            return [(self.topic(self.args.topic, k), encode(v)) for k, v in self.state.items()]

    def command(self, topic, payload):
        with self.lock:
            if self.args.pattern == "message":
                try:
                    command = json.loads(payload)
                except ValueError:
                    return False
                if not isinstance(command, dict):
                    return False
                before = json.dumps(self.state, sort_keys=True)
                merge(self.state, command)
                # Its own publication heard back (one topic both ways) is no news.
                return json.dumps(self.state, sort_keys=True) != before
            prefix, _, suffix = self.topic(self.args.command_topic).partition("{path}")
            if not (topic.startswith(prefix) and topic.endswith(suffix)):
                return False
            key = topic[len(prefix): len(topic) - len(suffix)]
            if key not in self.state or self.state[key] == decode(payload):
                return False
            self.state[key] = decode(payload)
            return True

    def subscriptions(self):
        template = self.topic(self.args.command_topic)
        # A path may hold slashes: # where it ends the topic, + elsewhere.
        return [template.replace("{path}", "#" if template.endswith("{path}") else "+")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--pattern", choices=["message", "topic"], required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--command-topic", required=True)
    parser.add_argument("--state", required=True, help="JSON file with the initial state")
    parser.add_argument("--interval", type=float, default=0)
    parser.add_argument("--tick", help="number in the state that counts up before each publication")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--no-retain", action="store_true")
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--ca")
    args = parser.parse_args()
    with open(args.state, encoding="utf-8") as f:
        initial = json.load(f)
    devices = [Device(args, n, json.loads(json.dumps(initial))) for n in range(args.count)]

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"e2e-device-{args.topic}"[:64])
    if args.username:
        client.username_pw_set(args.username, args.password)
    if args.ca:
        client.tls_set(ca_certs=args.ca, cert_reqs=ssl.CERT_REQUIRED)
    retain = not args.no_retain

    def publish(device):
        for topic, payload in device.publications():
            client.publish(topic, payload, qos=1, retain=retain)

    def on_connect(client, _userdata, _flags, reason, _properties):
        if reason.is_failure:
            print(f"connect refused: {reason}", file=sys.stderr, flush=True)
            return
        for device in devices:
            for topic in device.subscriptions():
                client.subscribe(topic, qos=1)
            publish(device)
        print("ready", flush=True)

    def on_message(_client, _userdata, message):
        for device in devices:
            if device.command(message.topic, message.payload):
                publish(device)

    client.on_connect = on_connect
    client.on_message = on_message
    # Comes back by itself when the broker restarts.
    client.reconnect_delay_set(min_delay=1, max_delay=2)
    client.connect_async(args.host, args.port, keepalive=30)
    client.loop_start()
    try:
        # On a fixed schedule, so that publishing takes nothing off the pace.
        due = time.monotonic()
        while True:
            if args.interval > 0:
                due += args.interval
                time.sleep(max(0.0, due - time.monotonic()))
                if client.is_connected():
                    for device in devices:
                        publish(device)
            else:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        client.loop_stop()


if __name__ == "__main__":
    main()
