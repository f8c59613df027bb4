//! The Modbus scanner of discovery against device servers written by
//! others, on loopback addresses the test chooses (127.0.0.0/29, never any
//! other): pymodbus answers Read Device Identification (43/14), libmodbus
//! does not (exception 01), one address accepts connections and never
//! answers, the others refuse them. No cluster: this is the scan alone;
//! e2e/tests/modbus_discovery.rs drives it through the API.

use std::{net::SocketAddr, time::Duration};

use devicelink_adaptor_modbus::{
    discovery::{
        identification::Identity,
        probe::{Find, ProbeSettings},
        scan::{Range, ScanSettings, scan},
    },
    metrics::ModbusMetrics,
};
use devicelink_api::modbus::RegisterKind;
use devicelink_e2e::{
    modbus::{Implementation, ModbusServer, Plant},
    process::free_port,
};
use serde_json::json;

fn at(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], port))
}

fn settings(port: u16, units: &[u8]) -> ScanSettings {
    ScanSettings {
        ranges: vec![Range {
            net: "127.0.0.0/29".parse().unwrap(),
            ports: vec![port],
        }],
        units: units.to_vec(),
        requests_per_second: 100,
        probe: ProbeSettings {
            timeout: Duration::from_millis(500),
            start_addresses: vec![0],
        },
    }
}

fn find(scanned: &[Find], address: SocketAddr, unit: u8) -> &Find {
    scanned
        .iter()
        .find(|f| f.address == address && f.unit == unit)
        .unwrap_or_else(|| panic!("{address} unit {unit} was not found: {scanned:#?}"))
}

#[tokio::test]
async fn a_scan_finds_each_answering_unit_once_with_what_it_says() {
    let port = free_port();
    let _plant = Plant::start(port).await;

    let scanned = scan(&settings(port, &[1, 2]), &ModbusMetrics::default()).await;
    let shown: Vec<String> = scanned
        .finds
        .iter()
        .map(|f| format!("{} unit {}", f.address, f.unit))
        .collect();
    assert_eq!(
        shown,
        [
            format!("127.0.0.2:{port} unit 1"),
            format!("127.0.0.3:{port} unit 1"),
            format!("127.0.0.3:{port} unit 2"),
            format!("127.0.0.4:{port} unit 1"),
        ],
        "units that do not answer, the silent address and the refusing ones are no finds"
    );
    // 127.0.0.1 to .6 on one port (a /29's hosts).
    assert_eq!(scanned.addresses, 6);

    let meter = find(&scanned.finds, at(2, port), 1);
    assert_eq!(meter.identity.get(Identity::VENDOR_NAME), Some("Acme"));
    assert_eq!(meter.identity.get(Identity::PRODUCT_CODE), Some("PM-200"));
    assert_eq!(meter.identity.get(Identity::REVISION), Some("1.4"));
    assert_eq!(
        meter.identity.get(Identity::PRODUCT_NAME),
        Some("Power meter"),
        "the regular stream was read too: {:?}",
        meter.identity
    );
    // The simulator holds 1000 registers and 2000 bits per table: each
    // ladder's top answers.
    let tables: Vec<(RegisterKind, u16, u16)> = meter
        .answered
        .iter()
        .map(|a| (a.table, a.start, a.count))
        .collect();
    assert_eq!(
        tables,
        [
            (RegisterKind::HoldingRegister, 0, 125),
            (RegisterKind::InputRegister, 0, 125),
            (RegisterKind::CoilRegister, 0, 2000),
            (RegisterKind::DiscreteInputRegister, 0, 2000),
        ]
    );

    let drive = find(&scanned.finds, at(3, port), 2);
    assert_eq!(drive.identity.get(Identity::PRODUCT_CODE), Some("VFD-7"));

    // libmodbus refuses function 43: no identity, but its tables answer.
    let plain = find(&scanned.finds, at(4, port), 1);
    assert!(plain.identity.is_empty(), "{:?}", plain.identity);
    assert_eq!(plain.answered.len(), 4, "{:?}", plain.answered);
}

#[tokio::test]
async fn a_scan_keeps_to_its_pace() {
    let port = free_port();
    let _meter = ModbusServer::tcp_as(Implementation::Pymodbus, at(2, port), &[1], json!({})).await;
    let mut gentle = settings(port, &[1]);
    gentle.requests_per_second = 20;
    let started = std::time::Instant::now();
    let scanned = scan(&gentle, &ModbusMetrics::default()).await;
    let took = started.elapsed();
    assert_eq!(scanned.finds.len(), 1);
    // Every request waits for its turn: n requests at 20 a second take at
    // least (n - 1) / 20 seconds, however fast the device answers.
    let least = Duration::from_secs_f64((scanned.requests - 1) as f64 / 20.0);
    assert!(
        took >= least,
        "{} requests in {took:?}, faster than 20 a second",
        scanned.requests
    );
}
