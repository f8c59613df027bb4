//! Finding Modbus TCP devices: every address of the ranges a discovery
//! gives, probed gently for what each unit says it is and which of its
//! tables answer.
//!
//! `identification` reads Read Device Identification answers, `probe`
//! asks one address, `scan` all of them at the discovery's pace; this
//! module is the adaptor runtime's [`Discoverer`] for Modbus.

pub mod identification;
pub mod probe;
pub mod scan;

use devicelink_adaptor_runtime::{Discoverer, Found, References, Scan};
use devicelink_api::discovery::{
    AnsweredRange, DeviceDiscoverySpec, DiscoveredProtocol, MODBUS_IDENTITY_NAMES, ModbusDiscovery,
};
use futures::{FutureExt, future::BoxFuture};
use tracing::warn;

use crate::metrics::ModbusMetrics;

/// Scans for the Modbus sections of discoveries.
pub struct ModbusDiscoverer {
    metrics: ModbusMetrics,
}

impl ModbusDiscoverer {
    pub fn new(metrics: ModbusMetrics) -> ModbusDiscoverer {
        ModbusDiscoverer { metrics }
    }
}

impl Discoverer for ModbusDiscoverer {
    fn protocol(&self) -> DiscoveredProtocol {
        DiscoveredProtocol::Modbus
    }

    fn scan<'a>(
        &'a self,
        spec: &'a DeviceDiscoverySpec,
        _sign_in: &'a References,
    ) -> BoxFuture<'a, Scan> {
        async move {
            let Some(modbus) = &spec.modbus else {
                return Scan::default();
            };
            let scanned = scan::scan(&settings(modbus), &self.metrics).await;
            Scan {
                finds: scanned.finds.iter().map(found).collect(),
                addresses: scanned.addresses as u64,
                requests: scanned.requests,
                // A silent address of a range is no device, not a fault.
                unreached: Vec::new(),
            }
        }
        .boxed()
    }
}

/// What the discovery asks, as the scanner takes it. A range the API
/// server let through but that does not parse is left out, and said so.
pub fn settings(modbus: &ModbusDiscovery) -> scan::ScanSettings {
    let ranges = modbus
        .targets
        .iter()
        .filter_map(|t| match t.cidr.parse() {
            Ok(net) => Some(scan::Range {
                net,
                ports: t.ports(),
            }),
            Err(e) => {
                warn!(cidr = %t.cidr, error = %e, "not an address range; not scanned");
                None
            }
        })
        .collect();
    scan::ScanSettings {
        ranges,
        units: modbus.unit_ids(),
        requests_per_second: modbus.requests_per_second(),
        probe: probe::ProbeSettings {
            timeout: modbus.timeout(),
            start_addresses: modbus.start_addresses(),
        },
    }
}

/// A find as the runtime records it.
fn found(find: &probe::Find) -> Found {
    let identity = MODBUS_IDENTITY_NAMES
        .iter()
        .filter_map(|(id, name)| Some((name.to_string(), find.identity.get(*id)?.to_string())))
        .collect();
    let registers = find
        .answered
        .iter()
        .map(|a| AnsweredRange {
            register: a.table,
            offset: i32::from(a.start),
            count: i32::from(a.count),
        })
        .collect();
    Found {
        address: find.address.to_string(),
        unit_id: Some(i32::from(find.unit)),
        identity,
        registers,
        ..Found::default()
    }
}
