#!/usr/bin/env python3
"""A Modbus device for tests and the demo, served by pymodbus.

Each unit has 2000 coils, 2000 discrete inputs, 1000 input registers and
1000 holding registers (addresses 0 up); any other address is answered with
exception 0x02. Initial contents come from a JSON file:
  {"1": {"coils": {"0": true}, "holding": {"0": 2965}, ...}, "2": {...}}
(tables: coils, discrete, input, holding), and optionally addresses the
unit does not have: "holes": {"holding": [[10, 12]]} (first and last).
A top-level "identity" names the server to Read Device Identification
(function 43/14): {"identity": {"VendorName": "Acme", "ProductCode":
"PM-200", "MajorMinorRevision": "1.4", "ProductName": ..., "ModelName": ...}}.
With --fail-while FILE every
request is answered with exception 0x04 (server device failure) while FILE
exists, so a test can switch a device's failure on and off. With
--wander ADDRESS the input register at ADDRESS drifts by a few counts on
each read, as a live sensor's would (for the demo).
"""

import argparse
import asyncio
import json
import logging
import os
import random

from pymodbus.constants import ExcCodes
from pymodbus.pdu.device import ModbusDeviceIdentification
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

REGISTERS = 1000
BITS = 2000


def table(initial, size, bits, holes=()):
    values = [False if bits else 0] * size
    for address, value in (initial or {}).items():
        values[int(address)] = bool(value) if bits else int(value) & 0xFFFF
    kind = DataType.BITS if bits else DataType.REGISTERS
    blocks, start = [], 0
    for first, last in sorted(holes):
        if first > start:
            blocks.append(SimData(address=start, values=values[start:first], datatype=kind))
        blocks.append(SimData(address=first, count=last - first + 1, datatype=DataType.INVALID))
        start = last + 1
    if start < size:
        blocks.append(SimData(address=start, values=values[start:], datatype=kind))
    return blocks


def device(unit, contents, fail_while, wander):
    async def action(fc, start, _address, _count, registers, _values):
        if fail_while and os.path.exists(fail_while):
            return ExcCodes.DEVICE_FAILURE
        if wander is not None and fc == 4 and 0 <= wander - start < len(registers):
            i = wander - start
            step = random.randint(-2, 2)
            registers[i] = max(0, min(0xFFFF, registers[i] + step))
        return None

    holes = contents.get("holes", {})
    return SimDevice(
        id=unit,
        simdata=(
            table(contents.get("coils"), BITS, True, holes.get("coils", ())),
            table(contents.get("discrete"), BITS, True, holes.get("discrete", ())),
            table(contents.get("holding"), REGISTERS, False, holes.get("holding", ())),
            table(contents.get("input"), REGISTERS, False, holes.get("input", ())),
        ),
        action=action,
    )


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", type=int, metavar="PORT", help="serve Modbus TCP on HOST:PORT")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve Modbus TCP on")
    where.add_argument("--rtu", metavar="DEVICE", help="serve Modbus RTU on this serial device")
    parser.add_argument("--baud", type=int, default=19200)
    parser.add_argument("--parity", default="E", choices=["N", "E", "O"])
    parser.add_argument("--stopbits", type=int, default=1)
    parser.add_argument("--units", default="1", help="comma-separated unit ids")
    parser.add_argument("--contents", help="JSON file of initial contents by unit")
    parser.add_argument("--fail-while", help="answer exception 0x04 while this file exists")
    parser.add_argument("--wander", type=int, metavar="ADDRESS", help="input register that drifts on each read")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    contents = {}
    if args.contents:
        with open(args.contents, encoding="utf-8") as f:
            contents = json.load(f)
    devices = [
        device(int(unit), contents.get(unit.strip(), {}), args.fail_while, args.wander)
        for unit in args.units.split(",")
    ]
    identity = None
    if "identity" in contents:
        identity = ModbusDeviceIdentification(info_name=contents["identity"])
    if args.tcp:
        server = ModbusTcpServer(devices, address=(args.host, args.tcp), identity=identity)
    else:
        server = ModbusSerialServer(
            devices,
            port=args.rtu,
            baudrate=args.baud,
            parity=args.parity,
            stopbits=args.stopbits,
            bytesize=8,
        )
    print("serving", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
