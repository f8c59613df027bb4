//! The task of one BLE device: finds its peripheral, connects, writes what
//! the spec asks, subscribes to what it notifies, reads what is polled,
//! takes writes from MQTT, and on any loss says why, backs off and starts
//! over with a new connection and new subscriptions.
//!
//! btleplug does not notice a peripheral that vanished mid-stream (its
//! notification stream just goes silent): every sync interval the task
//! reads a characteristic (a polled property, else any readable one of the
//! peripheral), or, on a peripheral with nothing readable, counts a silence
//! of three intervals without a notification as a loss.

use std::{collections::BTreeMap, time::Duration};

use btleplug::{
    api::{CharPropFlags, Characteristic, Peripheral as _, WriteType},
    platform::Peripheral,
};
use devicelink_adaptor_runtime::{
    Backoff, Change, DeviceContext, Property, Reason, Refusal, access::ReadMode, access::WriteMode,
    observed::Observed,
};
use devicelink_api::{
    Outcome,
    ble::{BluetoothDevice, BluetoothDeviceSpec, BluetoothParameters},
    duration::sync_interval,
    property::DeviceStatus,
};
use futures::StreamExt;
use serde_json::{Map, Value};
use tokio::time::{Instant, MissedTickBehavior, interval_at};
use tracing::{info, warn};

use crate::{
    central::{Central, NotFound},
    metrics::BleMetrics,
    point::Point,
};

/// How a device is reached, from its spec.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    target: String,
    scan: Duration,
    connect: Duration,
    sync: Duration,
    reconnect: bool,
    max_backoff: Duration,
    without_response: bool,
}

impl Settings {
    fn new(spec: &BluetoothDeviceSpec) -> Result<Settings, String> {
        let protocol = &spec.protocol;
        let parameters = spec.parameters.clone().unwrap_or_default();
        let pick = |ours: &Option<devicelink_api::duration::Duration>,
                    octopus: &Option<devicelink_api::duration::Duration>,
                    default: Duration| {
            ours.as_ref()
                .or(octopus.as_ref())
                .and_then(|d| d.to_std())
                .filter(|d| !d.is_zero())
                .unwrap_or(default)
        };
        Ok(Settings {
            target: protocol
                .target()
                .ok_or("spec.protocol: no endpoint (name or MAC address)")?
                .to_string(),
            scan: pick(&protocol.scan_timeout, &None, Duration::from_secs(15)),
            connect: pick(
                &protocol.connect_timeout,
                &parameters.timeout,
                Duration::from_secs(10),
            ),
            sync: sync_interval(
                &[
                    protocol.sync_interval.as_ref(),
                    parameters.sync_interval.as_ref(),
                ],
                BluetoothParameters::DEFAULT_SYNC_INTERVAL,
            ),
            reconnect: protocol.auto_reconnect.unwrap_or(true),
            max_backoff: pick(
                &protocol.max_reconnect_interval,
                &None,
                Duration::from_secs(600),
            ),
            without_response: protocol.only_write_value_without_response.unwrap_or(false),
        })
    }
}

/// The device's properties, resolved, and what is known of them.
struct Properties {
    points: Vec<Point>,
    /// Each point's last reading; the rest of its status comes from the
    /// point.
    observed: Vec<Observed>,
    /// Property name -> what is wrong with it now.
    problems: BTreeMap<String, (Reason, String)>,
    /// The spec's values last written, by property name.
    written: Map<String, Value>,
}

impl Properties {
    fn new(spec: &BluetoothDeviceSpec) -> Result<Properties, String> {
        let points: Vec<Point> = spec
            .properties
            .iter()
            .enumerate()
            .map(|(i, p)| Point::new(p, i))
            .collect::<Result<_, _>>()?;
        Ok(Properties {
            observed: vec![Observed::default(); points.len()],
            points,
            problems: BTreeMap::new(),
            written: Map::new(),
        })
    }

    /// Records bytes from the device for property `i`; whether the status
    /// changed.
    fn take(&mut self, i: usize, bytes: &[u8]) -> bool {
        let point = &self.points[i];
        match point.decode(bytes) {
            Ok(reading) => {
                let cleared = self.problems.remove(&point.name).is_some();
                let recorded = self.observed[i].record(
                    &point.name,
                    reading.render(),
                    reading.number(),
                    &point.operations,
                    point.precision,
                );
                cleared || recorded
            }
            Err(why) => self.problem(i, Reason::BadValue, why),
        }
    }

    fn problem(&mut self, i: usize, reason: Reason, why: String) -> bool {
        let name = self.points[i].name.clone();
        if self.problems.get(&name) == Some(&(reason, why.clone())) {
            return false;
        }
        warn!(property = %name, %reason, message = %why, "property has a problem");
        self.problems.insert(name, (reason, why));
        true
    }

    fn outcome(&self) -> Outcome {
        match self.problems.values().next() {
            None => Reason::Healthy.outcome(""),
            Some((reason, _)) => reason.outcome(
                self.problems
                    .iter()
                    .map(|(name, (_, why))| format!("property {name}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }

    fn report(&self, ctx: &DeviceContext<BluetoothDevice>) {
        ctx.report(&DeviceStatus {
            properties: (self.points.iter().zip(&self.observed))
                .map(|(point, seen)| seen.status(&point.name, point.type_, point.access_modes()))
                .collect(),
            extension: None,
        });
        ctx.set_connected(self.outcome());
    }

    fn as_properties(&self) -> Vec<Property> {
        self.points.iter().map(Point::as_property).collect()
    }
}

/// Why a connected spell ended.
enum Exit {
    Removed,
    /// The spec changed in a way that needs a new connection.
    Respec,
    Lost(Outcome),
}

/// Runs one device until it is removed.
pub async fn run(mut ctx: DeviceContext<BluetoothDevice>, metrics: BleMetrics) {
    let mut backoff = Backoff::new();
    let mut backoff_for = None;
    loop {
        let spec = ctx.device().spec.clone();
        let resolved = Settings::new(&spec).and_then(|s| Ok((s, Properties::new(&spec)?)));
        let failure = match resolved {
            Err(why) => {
                // Only the spec can mend it.
                let outcome = Reason::InvalidProperty.outcome(why);
                ctx.set_connected(outcome.clone());
                match wait(&mut ctx, None, &outcome).await {
                    Some(_) => continue,
                    None => return,
                }
            }
            Ok((settings, mut properties)) => {
                // A new bound starts a new backoff; failures in a row keep it.
                if backoff_for != Some(settings.max_backoff) {
                    backoff = Backoff::up_to(settings.max_backoff);
                    backoff_for = Some(settings.max_backoff);
                }
                match connect(&settings).await {
                    Err(outcome) => outcome,
                    Ok(peripheral) => {
                        metrics.connection("ok");
                        backoff.reset();
                        info!(device = %ctx.key(), target = %settings.target, "connected");
                        let exit =
                            serve(&mut ctx, &settings, &peripheral, &mut properties, &metrics)
                                .await;
                        let _ = peripheral.disconnect().await;
                        match exit {
                            Exit::Removed => return,
                            Exit::Respec => continue,
                            Exit::Lost(outcome) => {
                                if !settings.reconnect {
                                    let outcome = Outcome {
                                        message: format!(
                                            "{}; autoReconnect is false, so it stays down until the spec changes",
                                            outcome.message
                                        ),
                                        ..outcome
                                    };
                                    ctx.set_connected(outcome.clone());
                                    match wait(&mut ctx, None, &outcome).await {
                                        Some(_) => continue,
                                        None => return,
                                    }
                                }
                                outcome
                            }
                        }
                    }
                }
            }
        };
        metrics.connection(&failure.reason);
        warn!(device = %ctx.key(), reason = %failure.reason, message = %failure.message, "not connected");
        ctx.set_connected(failure.clone());
        if wait(&mut ctx, Some(backoff.after_failure()), &failure)
            .await
            .is_none()
        {
            return;
        }
    }
}

/// Waits `wait` (forever with None) or for the spec to change (true);
/// None when the device is removed. Writes meanwhile are refused saying why.
async fn wait(
    ctx: &mut DeviceContext<BluetoothDevice>,
    wait: Option<Duration>,
    failure: &Outcome,
) -> Option<bool> {
    let deadline = wait.map(|w| Instant::now() + w);
    loop {
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => return Some(false),
            changed = ctx.changed() => match changed? {
                Change::Spec(_) => return Some(true),
                Change::Write(request) => {
                    let why = format!("the device is not connected ({}: {})", failure.reason, failure.message);
                    ctx.answer_write(&request, Err(&[Refusal::whole(why)]));
                }
            },
        }
    }
}

/// Finds the peripheral and connects to it, each bounded in time.
async fn connect(settings: &Settings) -> Result<Peripheral, Outcome> {
    let central = Central::get()
        .await
        .map_err(|e| Reason::Unreachable.outcome(e))?;
    let found = central.find(&settings.target, settings.scan).await;
    let peripheral = match found {
        Ok(p) => p,
        Err(NotFound::BlueZ(why)) => {
            central.forget().await;
            return Err(Reason::Unreachable.outcome(why));
        }
        Err(NotFound::Absent(why)) => return Err(Reason::NotFound.outcome(why)),
    };
    // A connect left half-done (a crashed adaptor) would refuse this one.
    if peripheral.is_connected().await.unwrap_or(false) {
        let _ = peripheral.disconnect().await;
    }
    match tokio::time::timeout(settings.connect, peripheral.connect()).await {
        Err(_) => {
            let _ = peripheral.disconnect().await;
            return Err(Reason::Timeout.outcome(format!(
                "no connection to {} within {:?}",
                settings.target, settings.connect
            )));
        }
        Ok(Err(e)) => {
            return Err(
                Reason::Unreachable.outcome(format!("connecting to {}: {e}", settings.target))
            );
        }
        Ok(Ok(())) => {}
    }
    match tokio::time::timeout(settings.connect, peripheral.discover_services()).await {
        Ok(Ok(())) => Ok(peripheral),
        Ok(Err(e)) => Err(Reason::ConnectionLost
            .outcome(format!("discovering {}'s services: {e}", settings.target))),
        Err(_) => Err(Reason::Timeout.outcome(format!(
            "{} did not list its services within {:?}",
            settings.target, settings.connect
        ))),
    }
}

/// Serves an open connection until it is lost, the spec needs a new one,
/// or the device is removed.
async fn serve(
    ctx: &mut DeviceContext<BluetoothDevice>,
    settings: &Settings,
    peripheral: &Peripheral,
    properties: &mut Properties,
    metrics: &BleMetrics,
) -> Exit {
    let characteristics = peripheral.characteristics();
    let found: Vec<Option<Characteristic>> = properties
        .points
        .iter()
        .map(|p| {
            characteristics
                .iter()
                .find(|c| {
                    c.uuid == p.characteristic && p.service.is_none_or(|s| s == c.service_uuid)
                })
                .cloned()
        })
        .collect();
    // What is read to learn that the link is up when no property is polled.
    let probe = characteristics
        .iter()
        .find(|c| c.properties.contains(CharPropFlags::READ))
        .cloned();
    for (i, c) in found.iter().enumerate() {
        if c.is_none() {
            let p = &properties.points[i];
            let service = p
                .service
                .map(|s| format!(" in service {s}"))
                .unwrap_or_default();
            properties.problem(
                i,
                Reason::CharacteristicMissing,
                format!(
                    "the device has no characteristic {}{service}",
                    p.characteristic
                ),
            );
        }
    }
    // One notification stream for the connection: each call adds D-Bus
    // match rules.
    let mut notifications = match peripheral.notifications().await {
        Ok(n) => n,
        Err(e) => return Exit::Lost(Reason::ConnectionLost.outcome(format!("notifications: {e}"))),
    };
    for (i, c) in found.iter().enumerate() {
        if let (true, Some(c)) = (properties.points[i].notify, c)
            && let Err(e) = peripheral.subscribe(c).await
        {
            properties.problem(i, Reason::ReadFailed, format!("subscribing: {e}"));
        }
    }
    // The spec's values, written on connecting.
    let values: Map<String, Value> = properties
        .points
        .iter()
        .filter(|p| p.write != WriteMode::Never)
        .filter_map(|p| Some((p.name.clone(), p.desired.clone()?)))
        .collect();
    if let Err(lost) = write(peripheral, settings, properties, &found, &values, metrics).await {
        return Exit::Lost(lost);
    }
    properties.written = values;
    if let Err(lost) = read(
        peripheral,
        properties,
        &found,
        probe.as_ref(),
        true,
        metrics,
    )
    .await
    {
        return Exit::Lost(lost);
    }
    properties.report(ctx);

    let mut disconnects = match Central::get().await {
        Ok(c) => c.disconnects(),
        Err(e) => return Exit::Lost(Reason::Unreachable.outcome(e)),
    };
    let mut ticks = interval_at(Instant::now() + settings.sync, settings.sync);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            changed = ctx.changed() => match changed {
                None => return Exit::Removed,
                Some(Change::Spec(device)) => {
                    let Ok(new_settings) = Settings::new(&device.spec) else { return Exit::Respec };
                    let Ok(mut new) = Properties::new(&device.spec) else { return Exit::Respec };
                    let same_points = new.points.iter().map(|p| (&p.name, p.characteristic, p.service, p.notify))
                        .eq(properties.points.iter().map(|p| (&p.name, p.characteristic, p.service, p.notify)));
                    if new_settings != *settings || !same_points {
                        return Exit::Respec;
                    }
                    // Only values: write the ones set or changed.
                    let values: Map<String, Value> = new
                        .points
                        .iter()
                        .filter(|p| p.write != WriteMode::Never)
                        .filter_map(|p| Some((p.name.clone(), p.desired.clone()?)))
                        .filter(|(n, v)| properties.written.get(n) != Some(v))
                        .collect();
                    new.observed = std::mem::take(&mut properties.observed);
                    new.problems = std::mem::take(&mut properties.problems);
                    new.written = std::mem::take(&mut properties.written);
                    *properties = new;
                    if let Err(lost) = write(peripheral, settings, properties, &found, &values, metrics).await {
                        return Exit::Lost(lost);
                    }
                    properties.written.extend(values);
                    properties.report(ctx);
                }
                Some(Change::Write(request)) => {
                    let Some(values) = ctx.decode_write(&request, &properties.as_properties()) else {
                        continue;
                    };
                    match write(peripheral, settings, properties, &found, &values, metrics).await {
                        Ok(()) => ctx.answer_write(&request, Ok(&values)),
                        Err(lost) => {
                            ctx.answer_write(&request, Err(&[Refusal::whole(lost.message.clone())]));
                            return Exit::Lost(lost);
                        }
                    }
                    properties.report(ctx);
                }
            },
            notification = notifications.next() => {
                let Some(n) = notification else {
                    return Exit::Lost(Reason::ConnectionLost.outcome("the notification stream ended"));
                };
                last_heard = Instant::now();
                metrics.notifications.inc();
                let mut changed = false;
                for (i, c) in found.iter().enumerate() {
                    if c.as_ref().is_some_and(|c| c.uuid == n.uuid && c.service_uuid == n.service_uuid)
                        && properties.points[i].notify
                    {
                        changed |= properties.take(i, &n.value);
                    }
                }
                if changed {
                    properties.report(ctx);
                }
            }
            Ok(id) = disconnects.recv() => {
                if id == peripheral.id() {
                    return Exit::Lost(Reason::ConnectionLost.outcome(format!("{} disconnected", settings.target)));
                }
            }
            _ = ticks.tick() => {
                if let Err(lost) = read(peripheral, properties, &found, probe.as_ref(), false, metrics).await {
                    return Exit::Lost(lost);
                }
                let many: Map<String, Value> = properties
                    .points
                    .iter()
                    .filter(|p| p.write == WriteMode::Every)
                    .filter_map(|p| Some((p.name.clone(), p.desired.clone()?)))
                    .collect();
                if let Err(lost) = write(peripheral, settings, properties, &found, &many, metrics).await {
                    return Exit::Lost(lost);
                }
                // A peripheral that went away silently: reads fail (above),
                // or with nothing to read, notifications stop.
                if probe.is_none() && last_heard.elapsed() > settings.sync * 3 {
                    return Exit::Lost(Reason::ConnectionLost.outcome(format!(
                        "nothing heard from {} in {:?}",
                        settings.target,
                        settings.sync * 3
                    )));
                }
                properties.report(ctx);
            }
        }
    }
}

/// Reads the polled properties (with `first`, the ReadOnce ones too); and
/// with none polled, `probe` to learn the link is up.
async fn read(
    peripheral: &Peripheral,
    properties: &mut Properties,
    found: &[Option<Characteristic>],
    probe: Option<&Characteristic>,
    first: bool,
    metrics: &BleMetrics,
) -> Result<(), Outcome> {
    let mut probed = false;
    for (i, c) in found.iter().enumerate() {
        let Some(c) = c else { continue };
        let read = properties.points[i].read;
        if !(read == ReadMode::Every || (first && read == ReadMode::Once)) {
            continue;
        }
        probed = true;
        read_one(peripheral, properties, i, c, metrics).await?;
    }
    if !probed
        && let Some(c) = probe
        && let Err(e) = peripheral.read(c).await
        && lost(peripheral, &e).await
    {
        return Err(Reason::ConnectionLost.outcome(format!("reading: {e}")));
    }
    Ok(())
}

/// Reads property `i` into the status. A failed read is the property's
/// problem; a lost connection is the caller's.
async fn read_one(
    peripheral: &Peripheral,
    properties: &mut Properties,
    i: usize,
    c: &Characteristic,
    metrics: &BleMetrics,
) -> Result<(), Outcome> {
    match peripheral.read(c).await {
        Ok(bytes) => {
            metrics.read(true);
            properties.take(i, &bytes);
        }
        Err(e) if lost(peripheral, &e).await => {
            return Err(Reason::ConnectionLost.outcome(format!("reading: {e}")));
        }
        Err(e) => {
            metrics.read(false);
            properties.problem(i, Reason::ReadFailed, format!("reading: {e}"));
        }
    }
    Ok(())
}

/// Writes `values` (already checked against the properties) to their
/// characteristics. A failed write is the property's problem; a lost
/// connection is the caller's.
async fn write(
    peripheral: &Peripheral,
    settings: &Settings,
    properties: &mut Properties,
    found: &[Option<Characteristic>],
    values: &Map<String, Value>,
    metrics: &BleMetrics,
) -> Result<(), Outcome> {
    for (name, value) in values {
        let Some(i) = properties.points.iter().position(|p| &p.name == name) else {
            continue;
        };
        let Some(c) = &found[i] else { continue };
        let bytes = match properties.points[i].encode(value) {
            Ok(b) => b,
            Err(why) => {
                properties.problem(i, Reason::WriteRefused, format!("writing {value}: {why}"));
                continue;
            }
        };
        let flags = c.properties;
        let kind = if flags.contains(CharPropFlags::WRITE)
            && !(settings.without_response && flags.contains(CharPropFlags::WRITE_WITHOUT_RESPONSE))
        {
            WriteType::WithResponse
        } else if flags.contains(CharPropFlags::WRITE_WITHOUT_RESPONSE) {
            WriteType::WithoutResponse
        } else {
            properties.problem(
                i,
                Reason::WriteRefused,
                format!("the characteristic cannot be written (its flags: {flags:?})"),
            );
            continue;
        };
        match peripheral.write(c, &bytes, kind).await {
            Ok(()) => {
                metrics.write(true);
                if properties
                    .problems
                    .get(name)
                    .is_some_and(|p| p.0 == Reason::WriteRefused)
                {
                    properties.problems.remove(name);
                }
                // Read back what the device made of it, for the status.
                if properties.points[i].read != ReadMode::Never
                    && c.properties.contains(CharPropFlags::READ)
                {
                    read_one(peripheral, properties, i, c, metrics).await?;
                }
            }
            Err(e) if lost(peripheral, &e).await => {
                return Err(Reason::ConnectionLost.outcome(format!("writing: {e}")));
            }
            Err(e) => {
                metrics.write(false);
                properties.problem(i, Reason::WriteRefused, format!("writing {value}: {e}"));
            }
        }
    }
    Ok(())
}

/// Whether an error means the connection is gone (rather than that one
/// characteristic refused): btleplug says so; D-Bus says the object or the
/// name behind it is gone (what a vanished peripheral gives, while BlueZ
/// still calls it connected); or BlueZ no longer calls it connected, or
/// does not answer at all.
async fn lost(peripheral: &Peripheral, e: &btleplug::Error) -> bool {
    if matches!(
        e,
        btleplug::Error::NotConnected | btleplug::Error::DeviceNotFound
    ) {
        return true;
    }
    let text = e.to_string();
    const GONE: [&str; 4] = [
        "ServiceUnknown",
        "was not provided by any .service files",
        "UnknownObject",
        "Not connected",
    ];
    GONE.iter().any(|s| text.contains(s)) || !matches!(peripheral.is_connected().await, Ok(true))
}
