//! Probing one address and unit: what it says it is (Read Device
//! Identification) and which of its tables answer, from where and how far.
//!
//! Every request, the connect included, waits for its turn of the scan's
//! [`Pace`], so a scan never asks more of the network or of a device than
//! the discovery allows.

use std::{net::SocketAddr, time::Duration};

use devicelink_adaptor_runtime::Pace;
use devicelink_api::modbus::RegisterKind;
use tokio_modbus::prelude::{ConformityLevel, ReadCode};

use super::identification::{self, Identity};
use crate::{
    connection::{Connection, Endpoint, Failure, Session},
    metrics::ModbusMetrics,
};

/// Where a table answered: `count` entries from `start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    pub table: RegisterKind,
    pub start: u16,
    pub count: u16,
}

/// A unit that answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Find {
    pub address: SocketAddr,
    pub unit: u8,
    /// Empty when the device does not answer function 43/14.
    pub identity: Identity,
    pub answered: Vec<Answered>,
}

/// What a probe asks, as the discovery says.
#[derive(Clone, Debug)]
pub struct ProbeSettings {
    pub timeout: Duration,
    /// Where each table is tried.
    pub start_addresses: Vec<u16>,
}

/// The tables in the order they are tried, and how far each is widened
/// once one entry answers (the most one read may ask for last).
const TABLES: [(RegisterKind, &[u16]); 4] = [
    (RegisterKind::HoldingRegister, &[8, 32, 125]),
    (RegisterKind::InputRegister, &[8, 32, 125]),
    (RegisterKind::CoilRegister, &[16, 128, 2000]),
    (RegisterKind::DiscreteInputRegister, &[16, 128, 2000]),
];

/// Most pages of one identification stream read: a device that keeps
/// saying "more follows" is not followed forever.
const MOST_PAGES: usize = 4;

/// Connects to `address` (one connection for all of its units) and probes
/// each unit. Nothing is found at an address that does not take the
/// connection.
pub async fn probe_address(
    address: SocketAddr,
    units: &[u8],
    settings: &ProbeSettings,
    pace: &Pace,
    metrics: &ModbusMetrics,
) -> Vec<Find> {
    let Some(&first) = units.first() else {
        return Vec::new();
    };
    let endpoint = Endpoint::Tcp {
        address: address.to_string(),
        unit: first,
    };
    let Ok(mut connection) = Connection::new(endpoint, settings.timeout, metrics.clone()) else {
        return Vec::new();
    };
    let mut finds = Vec::new();
    for &unit in units {
        connection.set_unit(unit);
        let Some(mut session) = open(&mut connection, pace).await else {
            // Nothing listens there (or it stopped): no unit will answer.
            break;
        };
        let identity = identify(&mut session, pace).await;
        let answered = tables(&mut connection, settings, pace).await;
        // A unit is a find when it has something to read. (Some servers
        // answer identification for every unit id, reads only for theirs.)
        if !answered.is_empty() {
            finds.push(Find {
                address,
                unit,
                identity,
                answered,
            });
        }
    }
    finds
}

/// A session on the connection, connecting (a request's turn) if a
/// timeout or the device closed it.
async fn open<'a>(connection: &'a mut Connection, pace: &Pace) -> Option<Session<'a>> {
    if !connection.is_open() {
        pace.turn().await;
    }
    connection.session().await.ok()
}

/// The basic stream, then the regular one if the device says it has it.
async fn identify(session: &mut Session<'_>, pace: &Pace) -> Identity {
    let mut identity = Identity::default();
    let Some(level) = read_stream(session, pace, ReadCode::Basic, 0, &mut identity).await else {
        return identity;
    };
    if identification::has_regular(level) {
        read_stream(
            session,
            pace,
            ReadCode::Regular,
            Identity::VENDOR_URL,
            &mut identity,
        )
        .await;
    }
    identity
}

/// Reads one stream's pages into `identity`; the device's conformity
/// level, or `None` if it does not answer the function.
async fn read_stream(
    session: &mut Session<'_>,
    pace: &Pace,
    stream: ReadCode,
    first: u8,
    identity: &mut Identity,
) -> Option<ConformityLevel> {
    let mut object = first;
    let mut level = None;
    for _ in 0..MOST_PAGES {
        pace.turn().await;
        let answer = session.identify(stream, object).await.ok()?;
        identity.add(&answer);
        level = Some(answer.conformity_level);
        match identification::next_object(&answer, object) {
            Some(next) => object = next,
            None => break,
        }
    }
    level
}

/// Each table at each start address: one entry, then as many as answer
/// along its ladder. A unit that does not answer a read at all (no
/// exception either: nobody is there, as a gateway does for a unit it
/// lacks) is not asked more.
async fn tables(
    connection: &mut Connection,
    settings: &ProbeSettings,
    pace: &Pace,
) -> Vec<Answered> {
    let mut answered = Vec::new();
    for (table, ladder) in TABLES {
        for &start in &settings.start_addresses {
            let Some(mut session) = open(connection, pace).await else {
                return answered;
            };
            match extent(&mut session, pace, table, start, ladder).await {
                Ok(Some(count)) => answered.push(Answered {
                    table,
                    start,
                    count,
                }),
                Ok(None) => {}
                Err(Silent) => return answered,
            }
        }
    }
    answered
}

/// A read got no answer at all.
struct Silent;

/// How many entries of `table` from `start` answer one read: `None` if
/// the device refuses even one.
async fn extent(
    session: &mut Session<'_>,
    pace: &Pace,
    table: RegisterKind,
    start: u16,
    ladder: &[u16],
) -> Result<Option<u16>, Silent> {
    let mut widest = None;
    for &count in std::iter::once(&1).chain(ladder) {
        if u32::from(start) + u32::from(count) > 0x1_0000 {
            break;
        }
        pace.turn().await;
        match session.read(table, start, count).await {
            Ok(_) => widest = Some(count),
            // A refusal (an illegal address) ends the ladder.
            Err(Failure::Exception { .. }) => break,
            Err(_) if widest.is_none() => return Err(Silent),
            // Lost under a wider read: what answered stands, and the
            // next table's read connects again.
            Err(_) => break,
        }
    }
    Ok(widest)
}
