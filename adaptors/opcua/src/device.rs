//! The task of one OPC-UA device: opens a session, takes in what the
//! subscription sends, writes the spec's values and MQTT writes, and on any
//! failure says why, backs off and opens a new session with a new
//! subscription.

use std::time::Duration;

use devicelink_adaptor_runtime::{
    Backoff, Change, DeviceContext, Reason, Refusal, WriteRequest, access::ReadMode,
};
use devicelink_api::opcua::OPCUADevice;
use opcua::crypto::X509;
use serde_json::{Map, Value};
use tokio::time::{Instant, sleep_until};
use tracing::{info, warn};

use crate::{
    metrics::OpcuaMetrics,
    properties::Properties,
    session::{Failure, Session},
    settings::Settings,
    trust::Pki,
};

/// How a connected spell ended.
enum Exit {
    /// The device was removed.
    Removed,
    /// The spec changed in a way that needs a new session.
    Respec,
    Lost(Failure),
}

/// Runs one device until it is removed.
pub async fn run(mut ctx: DeviceContext<OPCUADevice>, metrics: OpcuaMetrics, pki: Pki) {
    let mut properties = Properties::new(&ctx.device().spec);
    // The server certificate trusted on first use, for this process's life.
    let mut pinned: Option<X509> = None;
    let mut backoff = Backoff::new();
    loop {
        if ctx.references().pending() {
            // Secrets and ConfigMaps are still being read: not a failure.
            let why = "the referenced Secrets and ConfigMaps are still being read";
            match wait_for_retry(&mut ctx, &mut properties, Duration::MAX, why).await {
                None => return,
                Some(_) => continue,
            }
        }
        let settings = Settings::new(&ctx.device().spec, &ctx.references());
        let opened = match (&settings, properties.invalid()) {
            (Err(e), _) => Err(Failure::settings(e.clone())),
            (_, Some(invalid)) => Err(Failure::new(Reason::InvalidProperty, invalid)),
            (Ok(s), None) => {
                Session::open(s, &properties.items, &pki, &ctx.key(), &mut pinned).await
            }
        };
        let failure = match opened {
            Ok((session, problems)) => {
                metrics.session("ok");
                backoff.reset();
                properties.set_problems(problems);
                let settings = settings.expect("a session needs settings");
                match connected(&mut ctx, session, &mut properties, &settings, &metrics).await {
                    Exit::Removed => return,
                    Exit::Respec => continue,
                    Exit::Lost(failure) => failure,
                }
            }
            Err(failure) => failure,
        };
        metrics.session(failure.reason.as_str());
        warn!(device = %ctx.key(), reason = %failure.reason, message = %failure.message, "no session");
        ctx.set_connected(failure.outcome());
        // Settings the spec gets wrong wait for the spec to change.
        let wait = if failure.reason.waits_for_the_spec() {
            Duration::MAX
        } else {
            backoff.after_failure()
        };
        let why = format!(
            "the device is not connected ({}: {})",
            failure.reason, failure.message
        );
        match wait_for_retry(&mut ctx, &mut properties, wait, &why).await {
            Some(true) => backoff.reset(),
            Some(false) => {}
            None => return,
        }
    }
}

/// Waits `wait` or for a spec change (`Some(true)`); `None` when the device
/// is removed. Writes meanwhile are refused, saying `why`.
async fn wait_for_retry(
    ctx: &mut DeviceContext<OPCUADevice>,
    properties: &mut Properties,
    wait: Duration,
    why: &str,
) -> Option<bool> {
    let deadline = Instant::now().checked_add(wait).unwrap_or_else(far_future);
    loop {
        tokio::select! {
            _ = sleep_until(deadline) => return Some(false),
            changed = ctx.changed() => match changed? {
                Change::Spec(device) => {
                    properties.apply(&device.spec);
                    return Some(true);
                }
                Change::Write(request) => {
                    if ctx.decode_write(&request, &properties.as_properties()).is_some() {
                        ctx.answer_write(&request, Err(&[Refusal::whole(why)]));
                    }
                }
            },
        }
    }
}

/// Serves an open session until it is lost, the spec needs a new one, or
/// the device is removed.
async fn connected(
    ctx: &mut DeviceContext<OPCUADevice>,
    mut session: Session,
    properties: &mut Properties,
    settings: &Settings,
    metrics: &OpcuaMetrics,
) -> Exit {
    let outcome = properties.outcome();
    info!(device = %ctx.key(), endpoint = %settings.endpoint, identity = settings.identity.kind(), problems = %outcome.message, "session open");
    if let Err(failure) = read_once(&session, properties).await {
        return Exit::Lost(failure);
    }
    if let Err(failure) = write(&session, properties, &properties.desired(true), metrics).await {
        return Exit::Lost(failure);
    }
    ctx.set_connected(properties.outcome());
    ctx.report(&properties.status());
    let write_many = !properties.desired(false).is_empty();
    let mut next_write = Instant::now() + settings.sync_interval;
    loop {
        tokio::select! {
            failure = session.events.lost() => return Exit::Lost(failure),
            Some((handle, value)) = session.notifications.recv() => {
                // Take in everything that arrived together, then report once.
                let mut changed = properties.take(handle as usize - 1, &value);
                let mut count = 1;
                while let Ok((handle, value)) = session.notifications.try_recv() {
                    changed |= properties.take(handle as usize - 1, &value);
                    count += 1;
                }
                metrics.data_changes.inc_by(count);
                ctx.report(&properties.status());
                if changed {
                    ctx.set_connected(properties.outcome());
                }
            }
            _ = sleep_until(next_write), if write_many => {
                next_write += settings.sync_interval;
                if let Err(failure) = write(&session, properties, &properties.desired(false), metrics).await {
                    return Exit::Lost(failure);
                }
                ctx.set_connected(properties.outcome());
            }
            changed = ctx.changed() => match changed {
                None => {
                    session.close().await;
                    return Exit::Removed;
                }
                Some(Change::Spec(device)) => {
                    let updated = Properties::new(&device.spec);
                    let same_session = Settings::new(&device.spec, &ctx.references()).as_ref() == Ok(settings);
                    if !(same_session && properties.same_watch(&updated)) {
                        properties.apply(&device.spec);
                        session.close().await;
                        return Exit::Respec;
                    }
                    let changes = updated.desired_changes(properties);
                    properties.take_desired(&updated);
                    if let Err(failure) = write(&session, properties, &changes, metrics).await {
                        return Exit::Lost(failure);
                    }
                    ctx.set_connected(properties.outcome());
                }
                Some(Change::Write(request)) => {
                    if let Err(failure) = write_from_mqtt(ctx, &session, properties, &request, metrics).await {
                        return Exit::Lost(failure);
                    }
                }
            },
        }
    }
}

/// Reads the ReadOnce properties.
async fn read_once(session: &Session, properties: &mut Properties) -> Result<(), Failure> {
    for (i, value) in session.read(&properties.read_by(ReadMode::Once)).await? {
        properties.take(i, &value);
    }
    Ok(())
}

/// Writes spec values: each one that encodes (the API server checks them
/// only as text), and each result shown on DeviceConnected. The session
/// failing is the error.
async fn write(
    session: &Session,
    properties: &mut Properties,
    values: &Map<String, Value>,
    metrics: &OpcuaMetrics,
) -> Result<(), Failure> {
    if values.is_empty() {
        return Ok(());
    }
    let (encoded, refused) = properties.encode(values);
    for r in refused {
        properties.written(&r.property.unwrap_or_default(), Err(r.reason));
    }
    let results = session.write(&encoded).await?;
    for ((i, _), result) in encoded.iter().zip(results) {
        metrics.write(result.is_ok());
        let name = properties.item_name(*i).to_string();
        properties.written(&name, result);
    }
    Ok(())
}

/// Applies a write from MQTT and answers it.
async fn write_from_mqtt(
    ctx: &DeviceContext<OPCUADevice>,
    session: &Session,
    properties: &Properties,
    request: &WriteRequest,
    metrics: &OpcuaMetrics,
) -> Result<(), Failure> {
    let Some(values) = ctx.decode_write(request, &properties.as_properties()) else {
        return Ok(());
    };
    // A write from MQTT is taken whole or not at all.
    let (encoded, refused) = properties.encode(&values);
    if !refused.is_empty() {
        ctx.answer_write(request, Err(&refused));
        return Ok(());
    }
    let results = session.write(&encoded).await?;
    let refused: Vec<_> = encoded
        .iter()
        .zip(results)
        .filter_map(|((i, _), r)| {
            metrics.write(r.is_ok());
            r.err()
                .map(|why| Refusal::of(properties.item_name(*i), why))
        })
        .collect();
    if refused.is_empty() {
        ctx.answer_write(request, Ok(&values));
    } else {
        ctx.answer_write(request, Err(&refused));
    }
    Ok(())
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}
