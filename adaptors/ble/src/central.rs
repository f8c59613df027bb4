//! The node's Bluetooth adapter, shared by every device of the adaptor:
//! chosen once, by name (`hci0`) or address from DEVICELINK_BLE_ADAPTER,
//! else the first powered one by name (never by list position: BlueZ lists
//! them in no fixed order); scanning while a device looks for its
//! peripheral; and telling device tasks when a peripheral disconnects.
//!
//! A peripheral counts as found only if it advertised recently: BlueZ keeps
//! devices it once saw, long after they are gone.

use std::{collections::HashMap, sync::Arc, time::Duration};

use btleplug::{
    api::{
        Central as _, CentralEvent, CentralState, Manager as _, Peripheral as _,
        PeripheralProperties, ScanFilter,
    },
    platform::{Adapter, Manager, Peripheral, PeripheralId},
};
use futures::StreamExt;
use tokio::{
    sync::{Mutex, broadcast},
    time::Instant,
};
use tracing::{info, warn};

/// How recently a peripheral must have advertised to count as there.
const FRESH: Duration = Duration::from_secs(30);
/// How often a device looking for its peripheral looks again.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// Why a peripheral was not found.
#[derive(Debug)]
pub enum NotFound {
    /// BlueZ did not answer (it stopped, or the bus is gone).
    BlueZ(String),
    /// Nothing advertised as the target while scanning.
    Absent(String),
}

pub struct Central {
    adapter: Adapter,
    /// When each peripheral last advertised (or was updated) while
    /// scanning.
    seen: Arc<std::sync::Mutex<HashMap<PeripheralId, Instant>>>,
    disconnects: broadcast::Sender<PeripheralId>,
}

/// The open adapter, if any.
static CENTRAL: Mutex<Option<Arc<Central>>> = Mutex::const_new(None);

impl Central {
    /// The adapter, opened on first use (and tried again on the next use
    /// if that failed: BlueZ may start after the adaptor).
    pub async fn get() -> Result<Arc<Central>, String> {
        let mut central = CENTRAL.lock().await;
        if let Some(c) = central.as_ref() {
            return Ok(c.clone());
        }
        let opened = Arc::new(Central::open().await?);
        *central = Some(opened.clone());
        Ok(opened)
    }

    /// Drops the adapter when BlueZ stopped answering, so that the next
    /// `get` opens it again (a new D-Bus connection, a new event stream).
    pub async fn forget(&self) {
        let mut central = CENTRAL.lock().await;
        if central
            .as_ref()
            .is_some_and(|c| std::ptr::eq(c.as_ref(), self))
        {
            warn!("BlueZ stopped answering; the adapter will be opened again");
            *central = None;
        }
    }

    async fn open() -> Result<Central, String> {
        let manager = Manager::new()
            .await
            .map_err(|e| format!("BlueZ over D-Bus: {e}"))?;
        let wanted = std::env::var("DEVICELINK_BLE_ADAPTER")
            .ok()
            .filter(|w| !w.is_empty());
        let mut candidates = Vec::new();
        for adapter in manager
            .adapters()
            .await
            .map_err(|e| format!("BlueZ adapters: {e}"))?
        {
            let info = adapter.adapter_info().await.unwrap_or_default();
            let name = info
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            let address = adapter
                .adapter_address()
                .await
                .ok()
                .flatten()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let powered = matches!(adapter.adapter_state().await, Ok(CentralState::PoweredOn));
            candidates.push((name, address, powered, adapter));
        }
        candidates.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<String> = candidates
            .iter()
            .map(|c| format!("{} ({})", c.0, c.1))
            .collect();
        let chosen = match &wanted {
            Some(w) => candidates
                .into_iter()
                .find(|c| c.0 == *w || c.1.eq_ignore_ascii_case(w)),
            None => candidates.into_iter().find(|c| c.2),
        };
        let Some((name, address, _, adapter)) = chosen else {
            return Err(match wanted {
                Some(w) => format!(
                    "no Bluetooth adapter {w} (DEVICELINK_BLE_ADAPTER); there are: {}",
                    names.join(", ")
                ),
                None => format!(
                    "no powered Bluetooth adapter; there are: {}",
                    names.join(", ")
                ),
            });
        };
        info!(adapter = %name, %address, "using Bluetooth adapter");
        let mut events = adapter
            .events()
            .await
            .map_err(|e| format!("BlueZ events: {e}"))?;
        let (disconnects, _) = broadcast::channel(64);
        let central = Central {
            adapter,
            seen: Arc::default(),
            disconnects: disconnects.clone(),
        };
        let table = central.seen.clone();
        // One event stream for the process: each adds D-Bus match rules.
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    CentralEvent::DeviceDisconnected(id) => {
                        let _ = disconnects.send(id);
                    }
                    CentralEvent::DeviceDiscovered(id)
                    | CentralEvent::DeviceUpdated(id)
                    | CentralEvent::RssiUpdate { id, .. }
                    | CentralEvent::ServicesAdvertisement { id, .. }
                    | CentralEvent::ServiceDataAdvertisement { id, .. }
                    | CentralEvent::ManufacturerDataAdvertisement { id, .. } => {
                        table.lock().unwrap().insert(id, Instant::now());
                    }
                    _ => {}
                }
            }
            warn!("the adapter's event stream ended");
        });
        Ok(central)
    }

    /// The peripheral advertising as `target` (its name, or its address,
    /// in any case), found by scanning for up to `within`. Filtered here,
    /// not by a BlueZ scan filter: BlueZ merges the filters of all its
    /// clients, so what it reports is not only what was asked for.
    pub async fn find(&self, target: &str, within: Duration) -> Result<Peripheral, NotFound> {
        self.scan().await;
        let deadline = Instant::now() + within;
        loop {
            let peripherals = self
                .adapter
                .peripherals()
                .await
                .map_err(|e| NotFound::BlueZ(format!("BlueZ peripherals: {e}")))?;
            for p in peripherals {
                let Ok(Some(props)) = p.properties().await else {
                    continue;
                };
                let named = props
                    .local_name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(target));
                let addressed = props.address.to_string().eq_ignore_ascii_case(target);
                if (named || addressed) && (props.rssi.is_some() || self.fresh(&p.id())) {
                    return Ok(p);
                }
            }
            if Instant::now() >= deadline {
                return Err(NotFound::Absent(format!(
                    "nothing advertises as {target:?} (a name or address) within {within:?}"
                )));
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }

    /// Makes sure the adapter scans. Scanning may have stopped (BlueZ
    /// restarted); starting it again while it runs is refused, which is
    /// fine.
    pub async fn scan(&self) {
        if let Err(e) = self.adapter.start_scan(ScanFilter::default()).await {
            tracing::debug!(error = %e, "start scan");
        }
    }

    /// The peripherals that advertised since `since` (or that BlueZ holds
    /// a signal strength of: it drops that when it stops hearing one),
    /// with what they advertised.
    pub async fn advertised_since(
        &self,
        since: Instant,
    ) -> Result<Vec<(Peripheral, PeripheralProperties)>, String> {
        let mut heard = Vec::new();
        for p in self
            .adapter
            .peripherals()
            .await
            .map_err(|e| format!("BlueZ peripherals: {e}"))?
        {
            let seen = self.seen.lock().unwrap().get(&p.id()).copied();
            if let Ok(Some(props)) = p.properties().await
                && (props.rssi.is_some() || seen.is_some_and(|at| at >= since))
            {
                heard.push((p, props));
            }
        }
        Ok(heard)
    }

    fn fresh(&self, id: &PeripheralId) -> bool {
        self.seen
            .lock()
            .unwrap()
            .get(id)
            .is_some_and(|at| at.elapsed() < FRESH)
    }

    /// Peripherals that disconnect, as BlueZ says.
    pub fn disconnects(&self) -> broadcast::Receiver<PeripheralId> {
        self.disconnects.subscribe()
    }
}
