#!/usr/bin/env python3
"""An OPC-UA server for tests, benchmarks and the demo, served by asyncua.

Variables live in namespace 2 (ns=2;s=<name>) in a folder "devicelink". They
come from a JSON file (--variables): [{"name": "the.answer", "type": "Int32",
"value": 42}, ...], types as asyncua's VariantType names; ByteString values
are given in hex, DateTime values in ISO 8601. Each is writable unless it says
"writable": false, and "unit": "°C" gives it an EngineeringUnits property.

Discovery: --app-uri and --product-uri name the server; --role discovery
makes it a local discovery server, with which others --register-to.

Security: --policies lists the endpoints offered (None, or a policy and
mode as asyncua names them: Basic256Sha256_Sign,
Aes256Sha256RsaPss_SignAndEncrypt, ...); the server's
certificate and key are read from --cert/--key, or generated there (PEM,
for 127.0.0.1 and localhost) when the files do not exist. With --users
user:password,... only those users may sign in (plus, with --user-cert, the
holder of that certificate); otherwise anonymous users are welcome.

--bench DEVICES,ITEMS,MILLIS adds DEVICES x ITEMS Double variables
dev<d>.v<i> and, every MILLIS ms, sets one item of each device (in turn) to
the current Unix time in milliseconds, so a subscriber can tell how late a
change reaches it.

Control on stdin, one JSON object per line, answered with one line on stdout:
  {"get": "the.answer"}                  -> {"value": 42, "type": "Int32"}
  {"set": "the.answer", "value": 43}     -> {"ok": true}
"ready" is printed once the server listens.
"""

import argparse
import asyncio
import datetime
import json
import logging
import sys
import time
from pathlib import Path

from asyncua import Server, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
import ipaddress

NAMESPACE = "urn:devicelink:test"
APP_URI = "urn:devicelink:test:opcua-server"

# Every policy asyncua offers, by its name there (NoSecurity as None).
POLICIES = {"None": ua.SecurityPolicyType.NoSecurity} | {
    p.name: p for p in ua.SecurityPolicyType if p.name != "NoSecurity"
}


class Users(UserManager):
    """Signs in the listed users by password, and the holder of one certificate."""

    def __init__(self, passwords, certificate):
        self.passwords = passwords
        self.certificate = certificate

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if certificate is not None and self.certificate is not None:
            der = certificate if isinstance(certificate, bytes) else certificate.public_bytes(serialization.Encoding.DER)
            if der == self.certificate:
                return User(role=UserRole.User, name="x509")
            return None
        if username is not None and self.passwords.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


def ensure_certificate(cert_path: Path, key_path: Path):
    if cert_path.exists() and key_path.exists():
        return
    key = cert_gen.generate_private_key()
    names = [
        x509.UniformResourceIdentifier(APP_URI),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        APP_URI,
        {"commonName": "devicelink test server", "organizationName": "devicelink"},
        names,
        extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        days=30,
    )
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def to_python(type_name, value):
    if type_name == "ByteString":
        return bytes.fromhex(value)
    if type_name == "DateTime":
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def to_json(value):
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.isoformat()
    return value


async def control(server, nodes):
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            command = json.loads(line)
            node = nodes.get(command.get("get") or command.get("set"))
            if node is None:
                answer = {"error": "no such variable"}
            elif "get" in command:
                dv = await node.read_data_value()
                answer = {"value": to_json(dv.Value.Value), "type": dv.Value.VariantType.name}
            else:
                vtype = (await node.read_data_value()).Value.VariantType
                value = to_python(vtype.name, command["value"])
                await node.write_value(ua.DataValue(ua.Variant(value, vtype)))
                answer = {"ok": True}
        except Exception as e:  # an answer, not a dead server
            answer = {"error": str(e)}
        print(json.dumps(answer), flush=True)
    await asyncio.Event().wait()  # stdin closed (the demo): serve on


async def bench(nodes, devices, items, millis):
    # On a fixed schedule (not a pause after each round), so the rate holds
    # as long as a round takes less than the interval.
    loop = asyncio.get_running_loop()
    start, turn = loop.time(), 0
    while True:
        now = float(int(time.time() * 1000))
        for d in range(devices):
            await nodes[f"dev{d}.v{turn % items}"].write_value(
                ua.DataValue(ua.Variant(now, ua.VariantType.Double))
            )
        turn += 1
        behind = loop.time() - (start + turn * millis / 1000)
        if behind > 1:
            print(f"bench: {behind:.1f} s behind schedule", file=sys.stderr, flush=True)
        await asyncio.sleep(max(0.0, -behind))


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every one)")
    parser.add_argument("--policies", default="None")
    parser.add_argument("--cert", type=Path, help="server certificate, PEM (generated if missing)")
    parser.add_argument("--key", type=Path, help="server private key, PEM (generated if missing)")
    parser.add_argument("--users", help="user:password,... allowed to sign in")
    parser.add_argument("--user-cert", type=Path, help="a user certificate (PEM) allowed to sign in")
    parser.add_argument("--variables", type=Path)
    parser.add_argument("--bench", help="DEVICES,ITEMS,MILLIS")
    parser.add_argument("--app-uri", default=APP_URI, help="the server's application URI")
    parser.add_argument("--product-uri", default="urn:devicelink:test:asyncua")
    parser.add_argument("--role", default="server", choices=["server", "discovery"],
                        help="discovery: a local discovery server (ApplicationType DiscoveryServer)")
    parser.add_argument("--register-to", help="a discovery server's URL to register with (every 10 s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    passwords = dict(u.split(":", 1) for u in args.users.split(",")) if args.users else {}
    user_cert = None
    if args.user_cert:
        user_cert = x509.load_pem_x509_certificate(args.user_cert.read_bytes()).public_bytes(
            serialization.Encoding.DER
        )
    secured = passwords or user_cert
    server = Server(user_manager=Users(passwords, user_cert) if secured else None)
    await server.init()
    server.set_endpoint(f"opc.tcp://{args.host}:{args.port}/devicelink/")
    server.set_server_name("devicelink test server")
    await server.set_application_uri(args.app_uri)
    server.product_uri = args.product_uri
    if args.role == "discovery":
        server.application_type = ua.ApplicationType.DiscoveryServer
    server.set_security_policy([POLICIES[p] for p in args.policies.split(",")])
    tokens = []
    if passwords:
        tokens.append(ua.UserNameIdentityToken)
    if user_cert:
        tokens.append(ua.X509IdentityToken)
    server.set_identity_tokens(tokens or [ua.AnonymousIdentityToken])
    if args.cert:
        ensure_certificate(args.cert, args.key)
        await server.load_certificate(str(args.cert), format="pem")
        await server.load_private_key(str(args.key), format="pem")

    idx = await server.register_namespace(NAMESPACE)
    folder = await server.nodes.objects.add_folder(idx, "devicelink")
    nodes = {}

    async def add(name, vtype, value, unit=None, writable=True):
        node = await folder.add_variable(
            ua.NodeId(name, idx), name, ua.Variant(value, vtype)
        )
        if writable:
            await node.set_writable()
        if unit:
            eu = ua.EUInformation(DisplayName=ua.LocalizedText(unit), Description=ua.LocalizedText(unit))
            await node.add_property(idx, "EngineeringUnits", ua.Variant(eu, ua.VariantType.ExtensionObject))
        nodes[name] = node

    if args.variables:
        for v in json.loads(args.variables.read_text()):
            vtype = ua.VariantType[v["type"]]
            await add(v["name"], vtype, to_python(v["type"], v["value"]), v.get("unit"), v.get("writable", True))
    if args.bench:
        devices, items, millis = (int(x) for x in args.bench.split(","))
        for d in range(devices):
            for i in range(items):
                await add(f"dev{d}.v{i}", ua.VariantType.Double, 0.0)

    async with server:
        if args.register_to:
            await server.register_to_discovery(args.register_to, period=10)
        print("ready", flush=True)
        tasks = [asyncio.create_task(control(server, nodes))]
        if args.bench:
            tasks.append(asyncio.create_task(bench(nodes, devices, items, millis)))
        await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main())
