#!/usr/bin/env python3
"""A BLE peripheral for tests, benchmarks and the demo: a GATT application
and an LE advertisement registered with BlueZ over D-Bus (dbus-fast), on an
adapter of BlueZoo, the user-space emulation of BlueZ's D-Bus API. The bus
is the system bus that DBUS_SYSTEM_BUS_ADDRESS names.

--config FILE is JSON:
  {"name": "MJ_HT_V1",
   "services": [{"uuid": "226c0000-6476-4566-7562-66734470666d",
                 "characteristics": [
                   {"uuid": "226caa55-6476-4566-7562-66734470666d",
                    "flags": ["read", "notify"],
                    "value": "0a0b",              # hex
                    "notify": ["0a0b", "0c0d"],   # hex values notified in turn
                    "every": 1.0}]}]}            # seconds between them
With --count N it registers N such peripherals (names and service UUIDs
get {n} replaced by 0..N-1), for benchmarks: BlueZoo gives each adapter one
address, so peripheral n advertises on the adapter numbered n after
--adapter (hci1, hci2, ...).

Control, one JSON object per line on stdin, answered with one line:
  {"get": UUID}                  -> {"value": HEX}
  {"set": UUID, "value": HEX}    -> {"ok": true}  (notified if subscribed)
  {"fail_reads": UUID, "on": B}  -> {"ok": true}  (reads answer an error)
Writes from a central are printed as {"written": UUID, "value": HEX}.
"ready" is printed once registered.
"""

import argparse
import asyncio
import json
import sys

from dbus_fast import BusType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, dbus_property, method, PropertyAccess
from dbus_fast.errors import DBusError


def say(obj):
    print(json.dumps(obj), flush=True)


class Characteristic(ServiceInterface):
    def __init__(self, path, service_path, spec):
        super().__init__("org.bluez.GattCharacteristic1")
        self.path = path
        self.service_path = service_path
        self.uuid = spec["uuid"]
        self.flags = spec.get("flags", ["read"])
        self.value = bytes.fromhex(spec.get("value", ""))
        self.notify_values = [bytes.fromhex(v) for v in spec.get("notify", [])]
        self.every = spec.get("every", 1.0)
        self.notifying = False
        self.fail_reads = False

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> "o":
        return self.service_path

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> "as":
        return self.flags

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> "ay":
        return self.value

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> "b":
        return self.notifying

    @method()
    def ReadValue(self, options: "a{sv}") -> "ay":
        if self.fail_reads:
            raise DBusError("org.bluez.Error.Failed", "read failed (simulated)")
        return self.value

    @method()
    def WriteValue(self, value: "ay", options: "a{sv}"):
        self.value = bytes(value)
        say({"written": self.uuid, "value": self.value.hex()})
        self.changed()

    @method()
    def StartNotify(self):
        self.notifying = True

    @method()
    def StopNotify(self):
        self.notifying = False

    @method()
    def Confirm(self):
        pass

    def set(self, value):
        self.value = value
        self.changed()

    def changed(self):
        if self.notifying:
            self.emit_properties_changed({"Value": self.value})

    async def notify_loop(self):
        i = 0
        while self.notify_values:
            await asyncio.sleep(self.every)
            self.set(self.notify_values[i % len(self.notify_values)])
            i += 1

    def properties(self):
        return {
            "UUID": Variant("s", self.uuid),
            "Service": Variant("o", self.service_path),
            "Flags": Variant("as", self.flags),
            "Value": Variant("ay", self.value),
            "Notifying": Variant("b", self.notifying),
        }


class Service(ServiceInterface):
    def __init__(self, path, uuid):
        super().__init__("org.bluez.GattService1")
        self.path = path
        self.uuid = uuid

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return self.uuid

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> "b":
        return True

    def properties(self):
        return {"UUID": Variant("s", self.uuid), "Primary": Variant("b", True)}


class Application(ServiceInterface):
    def __init__(self, services, characteristics):
        super().__init__("org.freedesktop.DBus.ObjectManager")
        self.services = services
        self.characteristics = characteristics

    @method()
    def GetManagedObjects(self) -> "a{oa{sa{sv}}}":
        objects = {}
        for s in self.services:
            objects[s.path] = {"org.bluez.GattService1": s.properties()}
        for c in self.characteristics:
            objects[c.path] = {"org.bluez.GattCharacteristic1": c.properties()}
        return objects


class Advertisement(ServiceInterface):
    def __init__(self, local_name, uuids):
        super().__init__("org.bluez.LEAdvertisement1")
        self.local_name = local_name
        self.uuids = uuids

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> "s":
        return "peripheral"

    @dbus_property(access=PropertyAccess.READ)
    def LocalName(self) -> "s":
        return self.local_name

    @dbus_property(access=PropertyAccess.READ)
    def ServiceUUIDs(self) -> "as":
        return self.uuids

    @dbus_property(access=PropertyAccess.READ)
    def Discoverable(self) -> "b":
        return True

    @method()
    def Release(self):
        pass


async def register(bus, adapter, config, n, by_uuid):
    root = f"/devicelink/p{n}"
    name = config["name"].replace("{n}", str(n))
    services, characteristics = [], []
    for i, s in enumerate(config["services"]):
        service = Service(f"{root}/service{i}", s["uuid"].replace("{n}", str(n)))
        bus.export(service.path, service)
        services.append(service)
        for j, c in enumerate(s.get("characteristics", [])):
            ch = Characteristic(f"{service.path}/char{j}", service.path, c)
            bus.export(ch.path, ch)
            characteristics.append(ch)
            by_uuid.setdefault(ch.uuid.lower(), []).append(ch)
    app = Application(services, characteristics)
    bus.export(root, app)
    advertisement = Advertisement(name, [s.uuid for s in services])
    bus.export(f"{root}/advertisement", advertisement)
    introspection = await introspect_when_there(bus, f"/org/bluez/{adapter}")
    proxy = bus.get_proxy_object("org.bluez", f"/org/bluez/{adapter}", introspection)
    await proxy.get_interface("org.bluez.GattManager1").call_register_application(root, {})
    await proxy.get_interface("org.bluez.LEAdvertisingManager1").call_register_advertisement(
        f"{root}/advertisement", {}
    )
    return characteristics


async def introspect_when_there(bus, path):
    """BlueZoo may still be starting: its adapter's object appears later."""
    for _ in range(200):
        try:
            introspection = await bus.introspect("org.bluez", path)
            if any(i.name == "org.bluez.GattManager1" for i in introspection.interfaces):
                return introspection
        except DBusError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"no BlueZ adapter at {path} after 20 s")


async def control(by_uuid):
    loop = asyncio.get_running_loop()
    while True:
        # A thread reads: stdin may be a file, which an event loop cannot watch.
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            await asyncio.Event().wait()  # stdin closed: keep serving
        try:
            command = json.loads(line)
            if "get" in command:
                say({"value": by_uuid[command["get"].lower()][0].value.hex()})
            elif "set" in command:
                for ch in by_uuid[command["set"].lower()]:
                    ch.set(bytes.fromhex(command["value"]))
                say({"ok": True})
            elif "fail_reads" in command:
                for ch in by_uuid[command["fail_reads"].lower()]:
                    ch.fail_reads = bool(command.get("on", True))
                say({"ok": True})
            else:
                say({"error": "unknown command"})
        except (ValueError, KeyError) as e:
            say({"error": str(e)})


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", default="hci1")
    parser.add_argument("--config", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--every", type=float, help="seconds between notifications, for every characteristic")
    args = parser.parse_args()
    with open(args.config, encoding="utf-8") as f:
        config = json.load(f)
    if args.every:
        for service in config["services"]:
            for characteristic in service.get("characteristics", []):
                characteristic["every"] = args.every
    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    by_uuid = {}
    notifiers = []
    prefix = args.adapter.rstrip("0123456789")
    first = int(args.adapter[len(prefix):] or 0)
    for n in range(args.count):
        adapter = f"{prefix}{first + n}"
        for ch in await register(bus, adapter, config, n, by_uuid):
            notifiers.append(asyncio.create_task(ch.notify_loop()))
    print("ready", flush=True)
    await control(by_uuid)


if __name__ == "__main__":
    asyncio.run(main())
