//! What a discovery scan costs: a /24 of loopback addresses (three of
//! them pymodbus devices, the rest refusing connections) scanned at the
//! default pace, and the requests one device gets from a scan. The scan is
//! bound by its pace, not by the build, so a debug build measures the same.
//!
//!   bash e2e/bench-discovery.sh        # or: make bench-discovery
//!
//! Loopback refuses a connection to an address with nothing on it at once;
//! on a plant network an absent host is silent, and each silent address
//! holds one of the 16 probes at a time for the connect timeout (the
//! numbers printed say what that adds).

use std::{net::SocketAddr, time::Instant};

use devicelink_adaptor_modbus::{discovery, metrics::ModbusMetrics};
use devicelink_api::discovery::{ModbusDiscovery, ModbusTarget};
use devicelink_e2e::{
    modbus::{Implementation, ModbusServer},
    process::free_port,
};
use serde_json::json;

#[tokio::main]
async fn main() {
    let port = free_port();
    let mut servers = Vec::new();
    for last in [10u8, 20, 30] {
        let address = SocketAddr::from(([127, 0, 1, last], port));
        let identity = json!({"VendorName": "Acme", "ProductCode": format!("PM-{last}"),
                              "MajorMinorRevision": "1.0", "ProductName": "Meter"});
        servers.push(
            ModbusServer::tcp_as(
                Implementation::Pymodbus,
                address,
                &[1],
                json!({"identity": identity}),
            )
            .await,
        );
    }
    let metrics = ModbusMetrics::default();
    let defaults = |cidr: &str| ModbusDiscovery {
        targets: vec![ModbusTarget {
            cidr: cidr.into(),
            ports: vec![i32::from(port)],
        }],
        ..Default::default()
    };

    let whole = defaults("127.0.1.0/24");
    let settings = discovery::settings(&whole);
    let started = Instant::now();
    let scanned = discovery::scan::scan(&settings, &metrics).await;
    let took = started.elapsed().as_secs_f64();

    let one = discovery::settings(&defaults("127.0.1.10/32"));
    let started = Instant::now();
    let device = discovery::scan::scan(&one, &metrics).await;
    let device_took = started.elapsed().as_secs_f64();

    let rate = whole.requests_per_second();
    let timeout = whole.timeout().as_secs_f64();
    println!(
        "| a /24 of Modbus TCP addresses, defaults ({rate} requests/s, {timeout} s timeout, unit 1) | |"
    );
    println!("|---|---|");
    println!("| addresses tried | {} |", scanned.addresses);
    println!("| devices found | {} |", scanned.finds.len());
    println!("| requests, connects included | {} |", scanned.requests);
    println!("| time | {took:.1} s |");
    println!(
        "| requests a second, measured | {:.1} |",
        scanned.requests as f64 / took
    );
    println!(
        "| one device's share: requests to it, and over how long | {} in {device_took:.1} s |",
        device.requests
    );
    println!(
        "| on a network where the {} absent hosts are silent, at least | {:.1} s |",
        scanned.addresses - scanned.finds.len(),
        ((scanned.addresses - scanned.finds.len()) as f64 * timeout / 16.0)
            .max(scanned.requests as f64 / f64::from(rate))
    );
    drop(servers);
}
