//! Finding BLE peripherals (docs/discovery.md): the adaptor listens to
//! advertisements through the node's adapter for a while; each peripheral
//! whose name or services the discovery asks for is a find, with what it
//! advertised and, when the discovery browses, the characteristics of its
//! GATT services, learned over one connection at a time that is closed
//! again.

use std::collections::{BTreeMap, BTreeSet};

use btleplug::{
    api::{CharPropFlags, Peripheral as _, PeripheralProperties},
    platform::Peripheral,
};
use devicelink_adaptor_runtime::{Discoverer, Found, References, Scan};
use devicelink_api::discovery::{
    BleDiscovery, DeviceDiscoverySpec, DiscoveredProtocol, GattCharacteristic,
};
use futures::{FutureExt, future::BoxFuture};
use tokio::time::{Instant, timeout};
use tracing::debug;

use crate::central::Central;

/// Looks for the BLE sections of discoveries.
#[derive(Default)]
pub struct BleDiscoverer;

impl Discoverer for BleDiscoverer {
    fn protocol(&self) -> DiscoveredProtocol {
        DiscoveredProtocol::Ble
    }

    fn scan<'a>(
        &'a self,
        spec: &'a DeviceDiscoverySpec,
        _sign_in: &'a References,
    ) -> BoxFuture<'a, Scan> {
        async move {
            match &spec.ble {
                Some(ble) => look(ble).await,
                None => Scan::default(),
            }
        }
        .boxed()
    }
}

/// One scan: listen, keep the peripherals asked for, browse each.
async fn look(settings: &BleDiscovery) -> Scan {
    let unreached = |why: String| Scan {
        unreached: vec![format!("the Bluetooth adapter: {why}")],
        ..Scan::default()
    };
    let central = match Central::get().await {
        Ok(central) => central,
        Err(e) => return unreached(e),
    };
    let since = Instant::now();
    central.scan().await;
    tokio::time::sleep(settings.listen()).await;
    let heard = match central.advertised_since(since).await {
        Ok(heard) => heard,
        Err(e) => {
            central.forget().await;
            return unreached(e);
        }
    };
    let addresses = heard.len() as u64;
    let mut wanted: Vec<(Peripheral, Found)> = heard
        .into_iter()
        .filter_map(|(peripheral, props)| {
            let found = advertised(&props);
            let services = services_of(&props);
            settings
                .wants(props.local_name.as_deref(), &services)
                .then_some((peripheral, found))
        })
        .collect();
    // The same ones on every scan when more are in reach than it keeps.
    wanted.sort_by(|a, b| a.1.address.cmp(&b.1.address));
    wanted.truncate(settings.max_devices());
    let mut requests = 0;
    let mut finds = Vec::new();
    for (peripheral, mut found) in wanted {
        if settings.browse() {
            requests += 1;
            match browse(&peripheral, settings.timeout()).await {
                Ok(characteristics) => found.characteristics = characteristics,
                Err(why) => found.not_browsed = Some(why),
            }
        } else {
            found.not_browsed = Some("the discovery does not browse (browse: false)".into());
        }
        finds.push(found);
    }
    Scan {
        finds,
        addresses,
        requests,
        unreached: Vec::new(),
    }
}

/// A find of what a peripheral advertised: its address, and as its
/// identity its name, services and manufacturer.
fn advertised(props: &PeripheralProperties) -> Found {
    let address = props.address.to_string();
    let mut identity = BTreeMap::from([("address".to_string(), address.clone())]);
    if let Some(name) = &props.local_name {
        identity.insert("localName".into(), name.clone());
    }
    let services = services_of(props);
    if !services.is_empty() {
        identity.insert("services".into(), services.join(","));
    }
    if let Some(id) = props.manufacturer_data.keys().min() {
        identity.insert("manufacturerId".into(), format!("0x{id:04x}"));
    }
    Found {
        address,
        identity,
        ..Found::default()
    }
}

/// The service UUIDs a peripheral advertised, sorted, as BlueZ writes
/// them.
fn services_of(props: &PeripheralProperties) -> Vec<String> {
    let set: BTreeSet<String> = props.services.iter().map(|u| u.to_string()).collect();
    set.into_iter().collect()
}

/// The characteristics of a peripheral's services. A peripheral a device
/// of this adaptor is connected to is read over that connection and left
/// connected; any other is connected to for this and disconnected after.
async fn browse(
    peripheral: &Peripheral,
    within: std::time::Duration,
) -> Result<Vec<GattCharacteristic>, String> {
    let already = peripheral.is_connected().await.unwrap_or(false);
    if !already {
        match timeout(within, peripheral.connect()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("connecting: {e}")),
            Err(_) => {
                let _ = peripheral.disconnect().await;
                return Err(format!("no connection within {within:?}"));
            }
        }
    }
    let listed = match timeout(within, peripheral.discover_services()).await {
        Ok(Ok(())) => Ok(peripheral
            .characteristics()
            .into_iter()
            .map(|c| GattCharacteristic {
                service: c.service_uuid.to_string(),
                uuid: c.uuid.to_string(),
                properties: flag_names(c.properties),
            })
            .collect()),
        Ok(Err(e)) => Err(format!("discovering its services: {e}")),
        Err(_) => Err(format!("its services were not listed within {within:?}")),
    };
    if !already && let Err(e) = peripheral.disconnect().await {
        debug!(error = %e, "disconnecting after browsing");
    }
    listed
}

/// A characteristic's properties as GATT (and BlueZ) names them.
fn flag_names(flags: CharPropFlags) -> Vec<String> {
    [
        (CharPropFlags::BROADCAST, "broadcast"),
        (CharPropFlags::READ, "read"),
        (
            CharPropFlags::WRITE_WITHOUT_RESPONSE,
            "write-without-response",
        ),
        (CharPropFlags::WRITE, "write"),
        (CharPropFlags::NOTIFY, "notify"),
        (CharPropFlags::INDICATE, "indicate"),
        (
            CharPropFlags::AUTHENTICATED_SIGNED_WRITES,
            "authenticated-signed-writes",
        ),
        (CharPropFlags::EXTENDED_PROPERTIES, "extended-properties"),
    ]
    .into_iter()
    .filter(|(flag, _)| flags.contains(*flag))
    .map(|(_, name)| name.to_string())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_find_says_what_was_advertised() {
        let props = PeripheralProperties {
            address: "10:00:00:00:00:01".parse().unwrap(),
            local_name: Some("MJ_HT_V1".into()),
            services: vec![
                devicelink_api::ble::uuid_value("180F")
                    .map(uuid::Uuid::from_u128)
                    .unwrap(),
                devicelink_api::ble::uuid_value("180A")
                    .map(uuid::Uuid::from_u128)
                    .unwrap(),
            ],
            manufacturer_data: HashMap::from([(0x0157, vec![1, 2])]),
            ..PeripheralProperties::default()
        };
        let found = advertised(&props);
        assert_eq!(found.address, "10:00:00:00:00:01");
        assert_eq!(
            found.identity,
            BTreeMap::from([
                ("address".into(), "10:00:00:00:00:01".into()),
                ("localName".into(), "MJ_HT_V1".into()),
                (
                    "services".into(),
                    "0000180a-0000-1000-8000-00805f9b34fb,0000180f-0000-1000-8000-00805f9b34fb"
                        .into()
                ),
                ("manufacturerId".into(), "0x0157".into()),
            ])
        );
    }

    #[test]
    fn flags_are_named_as_gatt_names_them() {
        assert_eq!(
            flag_names(CharPropFlags::READ | CharPropFlags::NOTIFY | CharPropFlags::WRITE),
            ["read", "write", "notify"]
        );
    }
}
