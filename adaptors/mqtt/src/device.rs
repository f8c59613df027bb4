//! The task of one MQTT device: connects to its broker, takes in what it
//! publishes, publishes the spec's values and MQTT writes to it, and says
//! how it is doing.
//!
//! DeviceConnected: `Unreachable` while the broker cannot be reached,
//! `Silent` while connected but the device has published nothing on its
//! topics since the adaptor connected (a retained message counts), the
//! reason of a property's problem (`TypeMismatch`, `BadValue`) while its
//! last message had one, `Healthy` otherwise.

use std::sync::Arc;

use devicelink_adaptor_runtime::{
    Change, DeviceConnection, DeviceContext, Reason, References, Refusal, access::WriteMode,
};
use devicelink_api::{
    Outcome,
    mqtt_device::{MQTTDevice, MqttDevicePattern, MqttDeviceSpec},
};
use devicelink_mqtt::Publisher;
use serde_json::{Map, Value};
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};
use tracing::{info, warn};

use crate::{
    codec,
    metrics::MqttDeviceMetrics,
    plan::{Plan, Point},
    state::State,
};

/// Why a connected spell ended.
enum Exit {
    Removed,
    /// The spec (or a credential it refers to) changed the connection.
    Respec,
}

/// Runs one device until it is removed.
pub async fn run(mut ctx: DeviceContext<MQTTDevice>, metrics: MqttDeviceMetrics) {
    loop {
        let device = ctx.device();
        let references = ctx.references();
        let problem = if references.pending() {
            // Secrets and ConfigMaps are still being read: not a failure.
            None
        } else {
            match Plan::new(&device.spec, &ctx.topic_context()) {
                Err(problems) => Some(Reason::InvalidProperty.outcome(problems.join("; "))),
                Ok(plan) => match ctx.connect_device(&device.spec.protocol.options, plan.filters())
                {
                    Err(e) => Some(Reason::InvalidSettings.outcome(format!("spec.protocol.{e}"))),
                    Ok(connection) => {
                        info!(device = %ctx.key(), topics = ?plan.filters(), "connecting to the device's broker");
                        match serve(&mut ctx, plan, connection, references, &metrics).await {
                            Exit::Removed => return,
                            Exit::Respec => continue,
                        }
                    }
                },
            }
        };
        if let Some(outcome) = &problem {
            warn!(device = %ctx.key(), reason = %outcome.reason, message = %outcome.message, "the device cannot be reached");
            ctx.set_connected(outcome.clone());
        }
        // Only a change of the spec (or of what it refers to) mends it.
        loop {
            match ctx.changed().await {
                None => return,
                Some(Change::Spec(_)) => break,
                Some(Change::Write(request)) => {
                    let why = match &problem {
                        Some(o) => {
                            format!("the device is not connected ({}: {})", o.reason, o.message)
                        }
                        None => "the referenced Secrets and ConfigMaps are still being read".into(),
                    };
                    ctx.answer_write(&request, Err(&[Refusal::whole(why)]));
                }
            }
        }
    }
}

/// Serves an open connection until the device is removed or its spec
/// needs another connection.
async fn serve(
    ctx: &mut DeviceContext<MQTTDevice>,
    mut plan: Plan,
    mut connection: DeviceConnection,
    references: Arc<References>,
    metrics: &MqttDeviceMetrics,
) -> Exit {
    let mut spec = ctx.device().spec.clone();
    let mut state = State::new(&plan);
    let mut ever_connected = false;
    let mut written = spec_values(&plan, None);
    publish(&connection.publisher, &plan, &written, metrics);
    let mut write_many = interval_at(Instant::now() + plan.sync, plan.sync);
    write_many.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The status goes out at once, then at most every syncInterval.
    let mut report_at = Instant::now();
    let mut dirty = true;
    loop {
        tokio::select! {
            changed = ctx.changed() => match changed {
                None => {
                    connection.publisher.close().await;
                    return Exit::Removed;
                }
                Some(Change::Spec(device)) => {
                    let new = match Plan::new(&device.spec, &ctx.topic_context()) {
                        Ok(new) => new,
                        Err(_) => return Exit::Respec,
                    };
                    let same_connection = device.spec.protocol.options == spec.protocol.options
                        && new.filters() == plan.filters()
                        && *ctx.references() == *references;
                    if !same_connection {
                        connection.publisher.close().await;
                        return Exit::Respec;
                    }
                    // Only values set or changed since are published.
                    let values = spec_values(&new, Some(&written));
                    publish(&connection.publisher, &new, &values, metrics);
                    written = spec_values(&new, None);
                    spec = device.spec.clone();
                    plan = new;
                    state.apply(&plan);
                    dirty = true;
                }
                Some(Change::Write(request)) => {
                    let Some(values) = ctx.decode_write(&request, &plan.properties()) else {
                        continue;
                    };
                    let decoded = decoded(&plan, &values);
                    publish(&connection.publisher, &plan, &decoded, metrics);
                    ctx.answer_write(&request, Ok(&values));
                }
            },
            Some(message) = connection.received.recv() => {
                metrics.message();
                dirty |= state.take(&plan, &message);
            }
            Ok(()) = connection.state.changed() => {}
            _ = write_many.tick() => {
                let every: Map<String, Value> = written
                    .iter()
                    .filter(|(name, _)| plan.points.iter().any(|p| &p.name == *name && p.write == WriteMode::Every))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect();
                publish(&connection.publisher, &plan, &every, metrics);
            }
            () = sleep_until(report_at), if dirty => {
                ctx.report(&state.status());
                dirty = false;
                report_at = Instant::now() + plan.sync;
            }
        }
        let (connected, error) = connection
            .state
            .borrow()
            .as_ref()
            .map(|s| (s.connected, s.last_error.clone()))
            .unwrap_or_default();
        ever_connected |= connected;
        ctx.set_connected(outcome(
            &spec,
            &plan,
            &state,
            connected,
            ever_connected,
            error,
        ));
    }
}

/// DeviceConnected from the connection and what the device said.
fn outcome(
    spec: &MqttDeviceSpec,
    plan: &Plan,
    state: &State,
    connected: bool,
    ever_connected: bool,
    error: Option<String>,
) -> Outcome {
    let server = &spec.protocol.options.client.server;
    if !connected {
        let why = error.unwrap_or_else(|| "connecting".into());
        let reason = if ever_connected {
            Reason::ConnectionLost
        } else {
            Reason::Unreachable
        };
        return reason.outcome(format!("the broker {server}: {why}"));
    }
    if !state.heard() {
        let topics: Vec<String> = plan.filters().into_iter().map(|(t, _)| t).collect();
        return Reason::Silent.outcome(format!(
            "connected to {server}; the device has published nothing yet on {}",
            topics.join(", ")
        ));
    }
    match state.problems() {
        Some((reason, why)) => reason.outcome(why),
        None => Reason::Healthy.outcome(""),
    }
}

/// The spec's values of writable properties; with `before`, only those
/// that differ from it.
fn spec_values(plan: &Plan, before: Option<&Map<String, Value>>) -> Map<String, Value> {
    plan.points
        .iter()
        .filter_map(|p| Some((p.name.clone(), p.value.clone()?)))
        .filter(|(name, value)| before.is_none_or(|b| b.get(name) != Some(value)))
        .collect()
}

/// Values of a write from MQTT, as their types hold them (already checked).
fn decoded(plan: &Plan, values: &Map<String, Value>) -> Map<String, Value> {
    values
        .iter()
        .filter_map(|(name, value)| {
            let p = plan.points.iter().find(|p| &p.name == name)?;
            Some((name.clone(), codec::decode(p.type_, value).ok()?))
        })
        .collect()
}

/// Publishes values to the device: one JSON object on its command topic
/// (AttributedMessage), or each value on its property's topic.
fn publish(
    publisher: &Publisher,
    plan: &Plan,
    values: &Map<String, Value>,
    metrics: &MqttDeviceMetrics,
) {
    if values.is_empty() {
        return;
    }
    let points: Vec<(&Point, &Value)> = values
        .iter()
        .filter_map(|(name, v)| Some((plan.points.iter().find(|p| &p.name == name)?, v)))
        .collect();
    match plan.pattern {
        MqttDevicePattern::AttributedMessage => {
            let Some(topic) = plan.command_topic.clone() else {
                return;
            };
            let mut message = Map::new();
            for (p, v) in &points {
                if let Some(path) = &p.json_path {
                    path.set(&mut message, (*v).clone());
                }
            }
            // One property alone keeps its own qos and retained.
            let (qos, retain) = match points.as_slice() {
                [(p, _)] => (p.qos, p.retain),
                _ => (plan.qos, plan.retain),
            };
            let payload = serde_json::to_vec(&Value::Object(message)).expect("JSON");
            publisher.publish_to(topic, qos, retain, payload);
        }
        MqttDevicePattern::AttributedTopic => {
            for (p, v) in &points {
                if let Some(topic) = p.command_topic.clone() {
                    publisher.publish_to(topic, p.qos, p.retain, codec::to_payload(v));
                }
            }
        }
    }
    metrics.written(points.len() as u64);
}
