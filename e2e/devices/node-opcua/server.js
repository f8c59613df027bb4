#!/usr/bin/env node
// An OPC-UA server for the tests on node-opcua: a second OPC-UA stack beside
// asyncua (e2e/devices/opcua_server.py), taking the same command line and
// the same control lines, so every OPC-UA test runs unchanged against
// either (DEVICELINK_E2E_OPCUA_SERVER=node-opcua; docs/interop.md).
//
// Variables live in namespace 2 (ns=2;s=<name>) in a folder "devicelink",
// from the JSON file given by --variables: [{"name": .., "type": "Int32",
// "value": ..}], types by their OPC-UA names; ByteString values in hex,
// DateTime values in ISO 8601. Each is writable unless it says "writable":
// false, and "unit" gives it an EngineeringUnits property. --app-uri and
// --product-uri name the server. --policies lists endpoints as asyncua names them
// (None, Basic256Sha256_Sign, Aes256Sha256RsaPss_SignAndEncrypt, ...).
// The certificate and key are read from --cert/--key; when they do not
// exist yet, node-opcua makes its own certificate (its own layout of the
// subjectAltName) and the pair is written there for the next start.
//
// On stdin, one JSON object per line, answered with one line on stdout:
//   {"get": "the.answer"}                  -> {"value": 42, "type": "Int32"}
//   {"set": "the.answer", "value": 43}     -> {"ok": true}
// "ready" is printed once the server listens.

"use strict";

// Stdout carries the control answers only: node-opcua's own messages
// (it writes some with console.log) go to stderr, the server's log.
const answer = (line) => process.stdout.write(`${line}\n`);
console.log = console.error;
console.info = console.error;

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");
const crypto = require("node:crypto");
const {
  OPCUAServer,
  OPCUACertificateManager,
  MessageSecurityMode,
  SecurityPolicy,
  DataType,
  StatusCodes,
  Variant,
  makeEUInformation,
} = require("node-opcua");

const NAMESPACE = "urn:devicelink:test";
const APP_URI = "urn:devicelink:test:opcua-server";

function parseArgs(argv) {
  const args = { host: "127.0.0.1", policies: "None" };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "").replace(/-(.)/g, (_, c) => c.toUpperCase());
    args[key] = argv[i + 1];
  }
  if (!args.port) throw new Error("--port is required");
  return args;
}

// JSON numbers beyond 2^53 (Int64 and UInt64 values) would lose their low
// digits in JSON.parse: they are read as strings, and written out as digits.
function parseJson(text) {
  return JSON.parse(text.replace(/([:[,]\s*)(-?\d{16,})(?=\s*[,\]}])/g, '$1"$2"'));
}

function toJson(value) {
  return JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `@big:${v}@` : v)).replace(
    /"@big:(-?\d+)@"/g,
    "$1",
  );
}

// A DateTime as Python's isoformat writes it (what the asyncua server
// answers): a fraction only when there is one, in microseconds.
function isoformat(date) {
  const text = date.toISOString();
  const millis = date.getUTCMilliseconds();
  const fraction = millis ? `.${String(millis * 1000).padStart(6, "0")}` : "";
  return `${text.slice(0, 19)}${fraction}+00:00`;
}

function fromJson(type, value) {
  switch (type) {
    case "ByteString":
      return Buffer.from(value, "hex");
    case "DateTime":
      return new Date(value);
    case "Int64":
    case "UInt64":
      return String(value);
    default:
      return value;
  }
}

function toJsonValue(type, value) {
  switch (type) {
    case "ByteString":
      return value ? value.toString("hex") : "";
    case "DateTime":
      return isoformat(value);
    case "Int64":
    case "UInt64": {
      const [high, low] = value;
      let n = (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
      if (type === "Int64" && n >= 1n << 63n) n -= 1n << 64n;
      return n;
    }
    default:
      return value;
  }
}

// "Basic256Sha256_SignAndEncrypt" -> (policy, mode); node-opcua offers
// every mode with every policy listed, a superset of the pairs asked for.
function endpoints(policies) {
  const modes = new Set();
  const securityPolicies = new Set();
  for (const entry of policies.split(",")) {
    if (entry === "None") {
      modes.add(MessageSecurityMode.None);
      securityPolicies.add(SecurityPolicy.None);
      continue;
    }
    const [policy, mode] = entry.split("_");
    // asyncua's names are the policy URIs' fragments without underscores.
    const uri = Object.values(SecurityPolicy).find(
      (u) => u.split("#")[1]?.replaceAll("_", "") === policy,
    );
    if (!uri || !(mode in MessageSecurityMode)) throw new Error(`unknown policy ${entry}`);
    securityPolicies.add(uri);
    modes.add(MessageSecurityMode[mode]);
  }
  return { securityModes: [...modes], securityPolicies: [...securityPolicies] };
}

function derOf(pemFile) {
  return new crypto.X509Certificate(fs.readFileSync(pemFile)).raw;
}

// The holder of exactly this certificate signs in, as with the asyncua
// server: node-opcua would also want the certificate's issuer and that
// issuer's revocation list in its user PKI (docs/interop.md), which is the
// server's trust policy, not what the adaptor is tested for. node-opcua
// still verifies the token's signature (proof of possession of the key).
async function userCertificates(dir, trusted) {
  const manager = new OPCUACertificateManager({
    rootFolder: dir,
    automaticallyAcceptUnknownCertificate: false,
  });
  await manager.initialize();
  manager.checkCertificate = (certificate, callback) => {
    const status =
      trusted && Buffer.compare(certificate, trusted) === 0
        ? StatusCodes.Good
        : StatusCodes.BadCertificateUntrusted;
    if (callback) return callback(null, status);
    return Promise.resolve(status);
  };
  return manager;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const passwords = new Map(
    (args.users ? args.users.split(",") : []).map((u) => {
      const at = u.indexOf(":");
      return [u.slice(0, at), u.slice(at + 1)];
    }),
  );
  const userCert = args.userCert ? derOf(args.userCert) : null;
  const secured = passwords.size > 0 || userCert !== null;
  // Each server its own PKI, beside its certificate: clients' certificates
  // are accepted (as the asyncua server does), users' only when trusted.
  const pki = args.cert ? `${args.cert}.pki` : fs.mkdtempSync(path.join(os.tmpdir(), "node-opcua-"));
  const ownKey = args.key && fs.existsSync(args.key) && fs.existsSync(args.cert);
  const serverCertificateManager = new OPCUACertificateManager({
    rootFolder: path.join(pki, "server"),
    automaticallyAcceptUnknownCertificate: true,
  });
  const server = new OPCUAServer({
    port: Number(args.port),
    host: args.host,
    // node-opcua's own certificate names this machine's host name and
    // addresses, not loopback: named here, as its users do for an address
    // clients reach it by (docs/interop.md).
    alternateHostname: [args.host],
    resourcePath: "/devicelink/",
    serverInfo: {
      applicationUri: args.appUri ?? APP_URI,
      productUri: args.productUri ?? "urn:devicelink:test:node-opcua",
      applicationName: { text: "devicelink test server", locale: "en" },
    },
    buildInfo: { productName: "devicelink test server (node-opcua)" },
    ...endpoints(args.policies),
    allowAnonymous: !secured,
    userManager: {
      isValidUser: (user, password) => passwords.has(user) && passwords.get(user) === password,
    },
    serverCertificateManager,
    userCertificateManager: await userCertificates(path.join(pki, "users"), userCert),
    certificateFile: args.cert,
    privateKeyFile: ownKey ? args.key : undefined,
  });
  await server.initialize();
  if (args.key && !ownKey) {
    fs.copyFileSync(serverCertificateManager.privateKey, args.key);
  }

  const addressSpace = server.engine.addressSpace;
  const namespace = addressSpace.registerNamespace(NAMESPACE);
  const folder = namespace.addFolder(addressSpace.rootFolder.objects, { browseName: "devicelink" });
  const nodes = new Map();
  const add = (name, type, value, unit, writable = true) => {
    const access = writable ? "CurrentRead | CurrentWrite" : "CurrentRead";
    const variable = namespace.addVariable({
      componentOf: folder,
      browseName: name,
      nodeId: `s=${name}`,
      dataType: type,
      accessLevel: access,
      userAccessLevel: access,
      value: new Variant({ dataType: DataType[type], value }),
    });
    if (unit) {
      namespace.addVariable({
        propertyOf: variable,
        browseName: "EngineeringUnits",
        dataType: "EUInformation",
        value: new Variant({ dataType: DataType.ExtensionObject, value: makeEUInformation(unit, unit, unit) }),
      });
    }
    nodes.set(name, { variable, type });
  };
  if (args.variables) {
    for (const v of parseJson(fs.readFileSync(args.variables, "utf8"))) {
      if (!(v.type in DataType)) throw new Error(`unknown type ${v.type}`);
      add(v.name, v.type, fromJson(v.type, v.value), v.unit, v.writable ?? true);
    }
  }
  let bench = null;
  if (args.bench) {
    const [devices, items, millis] = args.bench.split(",").map(Number);
    for (let d = 0; d < devices; d++) {
      for (let i = 0; i < items; i++) add(`dev${d}.v${i}`, "Double", 0);
    }
    bench = { devices, items, millis };
  }

  await server.start();
  answer("ready");

  if (bench) {
    // One item of each device set to the time in ms, in turn, on a fixed
    // schedule, so a subscriber can tell how late a change reaches it.
    let turn = 0;
    setInterval(() => {
      const now = Date.now();
      for (let d = 0; d < bench.devices; d++) {
        nodes
          .get(`dev${d}.v${turn % bench.items}`)
          .variable.setValueFromSource(new Variant({ dataType: DataType.Double, value: now }));
      }
      turn++;
    }, bench.millis);
  }

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    let reply;
    try {
      const command = parseJson(line);
      const node = nodes.get(command.get ?? command.set);
      if (!node) {
        reply = { error: "no such variable" };
      } else if ("get" in command) {
        const value = node.variable.readValue().value.value;
        reply = { value: toJsonValue(node.type, value), type: node.type };
      } else {
        node.variable.setValueFromSource(
          new Variant({ dataType: DataType[node.type], value: fromJson(node.type, command.value) }),
        );
        reply = { ok: true };
      }
    } catch (e) {
      reply = { error: String(e) }; // an answer, not a dead server
    }
    answer(toJson(reply));
  }
  // stdin closed (the demo): serve on.
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
