//! One Modbus device: its points, their last values, and the poll cycle
//! that writes what the spec asks and reads what is due.

use std::time::Duration;

use devicelink_adaptor_runtime::{
    Outcome, Reason, Refusal,
    access::{self, ReadMode, WriteMode},
    observed::Observed,
};
use devicelink_api::{
    duration::sync_interval,
    modbus::{ModbusDeviceSpec, ModbusParameters},
    property::{AccessMode, DeviceStatus},
};
use serde_json::{Map, Value};
use tracing::{debug, warn};

use crate::{
    codec,
    connection::{Connection, Data, Endpoint, Failure, Session},
    metrics::ModbusMetrics,
    plan::{Read, plan},
    point::{Point, is_bits},
};

/// Default `parameters.timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A device's points and what is known of them.
pub struct Poller {
    connection: Result<Connection, Failure>,
    points: Points,
    /// Properties that could not be used, each with the reason.
    invalid: Vec<String>,
    pub interval: Duration,
    /// The last cycle's trouble, if any.
    last_failure: Option<Failure>,
    metrics: ModbusMetrics,
}

/// The points and their state, apart from the connection so a session
/// can be held while values are taken in. Each list holds one entry per
/// point, made at the size of the spec: a device keeps them all its life.
#[derive(Default)]
struct Points {
    points: Vec<Point>,
    /// Each point's last reading; the rest of its status comes from the
    /// point when the status is made.
    observed: Vec<Observed>,
    /// Read alone: the device refused a coalesced read that spanned them.
    solo: Vec<bool>,
    /// ReadOnce points already read on this connection.
    read_once: Vec<bool>,
    /// Points whose spec value still has to be written.
    pending: Vec<bool>,
}

/// Bits or registers ready to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoded {
    Bits(Vec<bool>),
    Words(Vec<u16>),
}

impl Poller {
    pub fn new(spec: &ModbusDeviceSpec, metrics: ModbusMetrics) -> Poller {
        let mut poller = Poller {
            connection: Err(Failure::Settings("not configured".into())),
            points: Points::default(),
            invalid: vec![],
            interval: ModbusParameters::DEFAULT_SYNC_INTERVAL,
            last_failure: None,
            metrics,
        };
        poller.apply(spec);
        poller
    }

    /// Takes in a new spec: a new endpoint reconnects; a changed `value`
    /// is written in the next cycle; values of unchanged points are kept.
    pub fn apply(&mut self, spec: &ModbusDeviceSpec) {
        let parameters = spec.parameters.clone().unwrap_or_default();
        self.interval = sync_interval(
            &[parameters.sync_interval.as_ref()],
            ModbusParameters::DEFAULT_SYNC_INTERVAL,
        );
        let timeout = parameters
            .timeout
            .and_then(|d| d.to_std())
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_TIMEOUT);
        let endpoint = Endpoint::new(&spec.protocol);
        let same_endpoint =
            matches!((&endpoint, &self.connection), (Ok(e), Ok(c)) if c.endpoint() == e);
        if same_endpoint {
            if let Ok(c) = self.connection.as_mut() {
                c.set_timeout(timeout);
            }
        } else {
            // Drop the old connection (and its place on a serial line) first.
            self.connection = Err(Failure::Settings("reconnecting".into()));
            self.connection =
                endpoint.and_then(|e| Connection::new(e, timeout, self.metrics.clone()));
        }

        let old = std::mem::take(&mut self.points);
        self.points = Points::with_capacity(spec.properties.len());
        self.invalid.clear();
        for (i, property) in spec.properties.iter().enumerate() {
            let point = match Point::new(property) {
                Ok(p) => p,
                Err(reason) => {
                    self.invalid
                        .push(format!("properties[{i}] ({}): {reason}", property.name));
                    continue;
                }
            };
            let previous = old.points.iter().position(|p| p.name == point.name);
            let same_place = previous.is_some_and(|j| same_location(&old.points[j], &point));
            let value_unchanged = previous.is_some_and(|j| old.points[j].desired == point.desired);
            let p = &mut self.points;
            p.observed.push(match previous {
                Some(j) if same_place => old.observed[j].clone(),
                _ => Observed::default(),
            });
            p.solo
                .push(previous.is_some_and(|j| same_place && old.solo[j]));
            p.read_once
                .push(previous.is_some_and(|j| same_place && same_endpoint && old.read_once[j]));
            // New, changed, moved, or not written yet.
            let keep_pending = previous.is_some_and(|j| old.pending[j]);
            p.pending
                .push(point.desired.is_some() && (!value_unchanged || !same_place || keep_pending));
            p.points.push(point);
        }
        self.points.shrink_to_fit();
        if !self.invalid.is_empty() {
            warn!(problems = ?self.invalid, "properties left out");
        }
    }

    /// One poll: writes pending spec values, then reads what is due.
    pub async fn cycle(&mut self) -> Result<(), Failure> {
        self.metrics.polls.inc();
        let reused = self.connection.as_ref().is_ok_and(Connection::is_open);
        let mut result = self.try_cycle().await;
        if reused && result.as_ref().is_err_and(Failure::is_closed) {
            // Many devices close a connection left idle for a while; the
            // first request on it finds it gone. That is no fault: once
            // more, at once, on a new connection.
            debug!("the device closed the idle connection; connecting again");
            result = self.try_cycle().await;
        }
        if result.as_ref().is_err_and(|f| !f.is_exception()) {
            // The connection is gone: ReadOnce points are read again after
            // the next connect.
            self.points.read_once.iter_mut().for_each(|r| *r = false);
        }
        self.last_failure = result.as_ref().err().cloned();
        result
    }

    async fn try_cycle(&mut self) -> Result<(), Failure> {
        let connection = self.connection.as_mut().map_err(|f| f.clone())?;
        let mut session = connection.session().await?;
        let points = &mut self.points;
        let mut refused: Option<Failure> = None;

        for i in 0..points.points.len() {
            let point = &points.points[i];
            let due = points.pending[i] || point.write == WriteMode::Every;
            let Some(value) = point.desired.as_ref().filter(|_| due) else {
                continue;
            };
            match write(&mut session, point, value).await {
                Ok(()) => {
                    debug!(property = %point.name, "spec value written");
                    points.pending[i] = false;
                }
                // The device or the value says no: retrying the same value
                // will not help; it is reported until the spec changes.
                Err(f) if f.is_exception() || matches!(f, Failure::Settings(_)) => {
                    points.pending[i] = false;
                    refused.get_or_insert(f);
                }
                Err(f) => return Err(f),
            }
        }

        let wanted: Vec<usize> = (0..points.points.len())
            .filter(|&i| match points.points[i].read {
                ReadMode::Every => true,
                ReadMode::Once => !points.read_once[i],
                ReadMode::Never => false,
            })
            .collect();
        for read in plan(&points.points, &wanted, &points.solo) {
            match points.read(&mut session, &read).await {
                Ok(()) => {}
                Err(f) if f.is_illegal_address() && read.points.len() > 1 => {
                    // The span crossed addresses the device does not have:
                    // read these points one by one from now on.
                    debug!(request = %f, "coalesced read refused; reading its points alone");
                    for &i in &read.points {
                        points.solo[i] = true;
                    }
                    for &i in &read.points {
                        let alone = Read {
                            table: points.points[i].table,
                            start: points.points[i].start,
                            count: points.points[i].count,
                            points: vec![i],
                        };
                        match points.read(&mut session, &alone).await {
                            Ok(()) => {}
                            Err(f) if f.is_exception() => {
                                refused.get_or_insert(f);
                            }
                            Err(f) => return Err(f),
                        }
                    }
                }
                Err(f) if f.is_exception() => {
                    refused.get_or_insert(f);
                }
                Err(f) => return Err(f),
            }
        }
        refused.map_or(Ok(()), Err)
    }

    /// Applies a write from MQTT, already checked against
    /// [`Poller::properties`]: all values are encoded first (nothing is
    /// written if one does not fit), then written in order.
    pub async fn write(&mut self, values: &Map<String, Value>) -> Result<(), Vec<Refusal>> {
        let mut refused = Vec::new();
        let mut planned = Vec::new();
        for (name, value) in values {
            let Some(point) = self.points.points.iter().find(|p| &p.name == name) else {
                refused.push(Refusal::of(name, "is not a property of this device"));
                continue;
            };
            match encode(point, value) {
                Ok(_) => planned.push((point.clone(), value.clone())),
                Err(reason) => refused.push(Refusal::of(name, reason)),
            }
        }
        if !refused.is_empty() {
            return Err(refused);
        }
        let not_written = |f: &Failure| {
            planned
                .iter()
                .map(|(p, _)| Refusal::of(&p.name, format!("was not written: {f}")))
                .collect::<Vec<_>>()
        };
        let connection = match self.connection.as_mut() {
            Ok(c) => c,
            Err(f) => return Err(not_written(f)),
        };
        let mut reused = connection.is_open();
        let mut session = match connection.session().await {
            Ok(s) => s,
            Err(f) => return Err(not_written(&f)),
        };
        let mut broken: Option<Failure> = None;
        for (point, value) in &planned {
            if let Some(f) = &broken {
                refused.push(Refusal::of(&point.name, format!("was not written: {f}")));
                continue;
            }
            let mut written = write(&mut session, point, value).await;
            if reused && written.as_ref().is_err_and(Failure::is_closed) {
                // As in a poll: an idle connection the device closed.
                drop(session);
                session = match connection.session().await {
                    Ok(s) => s,
                    Err(f) => return Err(not_written(&f)),
                };
                written = write(&mut session, point, value).await;
            }
            reused = false;
            if let Err(f) = written {
                refused.push(Refusal::of(&point.name, format!("was not written: {f}")));
                if !f.is_exception() {
                    broken = Some(f);
                }
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(refused)
        }
    }

    /// The properties as writes from MQTT see them.
    pub fn properties(&self) -> Vec<devicelink_adaptor_runtime::Property> {
        self.points.points.iter().map(Point::as_property).collect()
    }

    /// The status to report: every property with its last value.
    pub fn status(&self) -> DeviceStatus {
        let points = &self.points;
        let properties = points.points.iter().zip(&points.observed);
        DeviceStatus {
            properties: properties
                .map(|(point, seen)| {
                    seen.status(&point.name, Some(point.type_), effective_modes(point))
                })
                .collect(),
            extension: None,
        }
    }

    /// The DeviceConnected condition after the last cycle.
    pub fn outcome(&self) -> Outcome {
        if !self.invalid.is_empty() {
            return Reason::InvalidProperty.outcome(self.invalid.join("; "));
        }
        match &self.last_failure {
            None => Reason::Healthy.outcome(""),
            Some(f) => f.reason().outcome(f.to_string()),
        }
    }

    /// Whether the last cycle lost (or never had) the connection, so the
    /// next try should back off.
    pub fn disconnected(&self) -> bool {
        self.last_failure
            .as_ref()
            .is_some_and(|f| !f.is_exception())
    }
}

impl Points {
    fn with_capacity(n: usize) -> Points {
        Points {
            points: Vec::with_capacity(n),
            observed: Vec::with_capacity(n),
            solo: Vec::with_capacity(n),
            read_once: Vec::with_capacity(n),
            pending: Vec::with_capacity(n),
        }
    }

    /// Gives back the room of properties left out.
    fn shrink_to_fit(&mut self) {
        self.points.shrink_to_fit();
        self.observed.shrink_to_fit();
        self.solo.shrink_to_fit();
        self.read_once.shrink_to_fit();
        self.pending.shrink_to_fit();
    }

    /// Reads one request and takes in the values of the points it serves.
    async fn read(&mut self, session: &mut Session<'_>, read: &Read) -> Result<(), Failure> {
        let data = session.read(read.table, read.start, read.count).await?;
        for &i in &read.points {
            let point = &self.points[i];
            let at = read.offset_of(point);
            let n = usize::from(point.count);
            let reading = match &data {
                Data::Bits(bits) => codec::decode_bits(point.layout, &bits[at..at + n]),
                Data::Words(words) => {
                    codec::decode_words(point.layout, &words[at..at + n], point.endianness)
                }
            };
            self.observed[i].record(
                &point.name,
                reading.render(),
                reading.number(),
                &point.operations,
                point.precision,
            );
            if point.read == ReadMode::Once {
                self.read_once[i] = true;
            }
        }
        Ok(())
    }
}

/// The bits or registers for a value of `point`.
pub fn encode(point: &Point, value: &Value) -> Result<Encoded, String> {
    if point.write == WriteMode::Never {
        return Err(format!(
            "is read-only{}",
            match point.table {
                devicelink_api::modbus::RegisterKind::InputRegister => " (an input register)",
                devicelink_api::modbus::RegisterKind::DiscreteInputRegister =>
                    " (a discrete input)",
                _ => "",
            }
        ));
    }
    if is_bits(point.table) {
        codec::encode_bits(point.layout, value, usize::from(point.count)).map(Encoded::Bits)
    } else {
        codec::encode_words(
            point.layout,
            value,
            usize::from(point.count),
            point.endianness,
        )
        .map(Encoded::Words)
    }
}

async fn write(session: &mut Session<'_>, point: &Point, value: &Value) -> Result<(), Failure> {
    match encode(point, value) {
        Ok(Encoded::Bits(bits)) => session.write_bits(point.start, &bits).await,
        Ok(Encoded::Words(words)) => session.write_words(point.start, &words).await,
        Err(reason) => Err(Failure::Settings(format!(
            "property {}: value {value} {reason}",
            point.name
        ))),
    }
}

/// Whether two points read the same thing the same way (and show it as
/// the same type).
fn same_location(a: &Point, b: &Point) -> bool {
    let key = |p: &Point| {
        (
            p.type_,
            p.table,
            p.start,
            p.count,
            p.layout,
            p.endianness,
            p.operations.clone(),
            p.precision,
        )
    };
    key(a) == key(b)
}

/// The access modes in effect, as the status shows them.
fn effective_modes(point: &Point) -> Vec<AccessMode> {
    access::effective(point.read, point.write, AccessMode::ReadMany)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(read_only: bool, offset: i32) -> ModbusDeviceSpec {
        serde_json::from_value(json!({
            "protocol": {"tcp": {"endpoint": "127.0.0.1:1", "workerID": 1}},
            "properties": [{"name": "t", "type": "uint16", "readOnly": read_only,
                            "visitor": {"register": "HoldingRegister", "offset": offset}}],
        }))
        .expect("a ModbusDevice spec")
    }

    #[test]
    fn a_new_spec_keeps_a_reading_where_the_value_still_lives() {
        let mut poller = Poller::new(&spec(true, 0), ModbusMetrics::default());
        poller.points.observed[0].record("t", "7".into(), Some(7.0), &[], 2);
        let before = poller.status().properties.remove(0);
        assert_eq!(before.access_modes, [AccessMode::ReadMany]);

        // Writable now, at the same address: the reading stays, and the
        // status shows the modes in force.
        poller.apply(&spec(false, 0));
        let after = poller.status().properties.remove(0);
        assert_eq!(after.value.as_deref(), Some("7"));
        assert_eq!(after.updated_at, before.updated_at);
        assert_eq!(
            after.access_modes,
            [AccessMode::ReadMany, AccessMode::WriteMany]
        );

        // Moved: what was read at the old address is not shown.
        poller.apply(&spec(false, 1));
        assert_eq!(poller.status().properties[0].value, None);
    }
}
