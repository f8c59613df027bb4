//! What DeviceConnected says, and how long a device task waits before
//! trying again: shared by every adaptor, so that the same trouble has the
//! same name and the same pace whatever the protocol.

use std::time::Duration;

use devicelink_api::{Outcome, property::MqttStatus};

/// Why a device is, or is not, connected: the reasons of DeviceConnected.
/// docs/api.md lists which adaptor gives which, with examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Talking to the device works.
    Healthy,
    /// Nothing answers at the device's address.
    Unreachable,
    /// The device did not answer in time.
    Timeout,
    /// Connected, but the device has not been heard from yet.
    Silent,
    /// The device was not found (BLE: nothing advertises as its endpoint).
    NotFound,
    /// A property's place on the device does not exist (BLE: no such
    /// characteristic).
    CharacteristicMissing,
    /// Reading a property failed (the device answered with an error).
    ReadFailed,
    /// The connection was lost and is being made again.
    ConnectionLost,
    /// The device answered a request with a protocol error (a Modbus exception).
    ExceptionResponse,
    /// The spec's connection settings cannot be used; waits for the spec.
    InvalidSettings,
    /// A property of the spec cannot be used; waits for the spec.
    InvalidProperty,
    /// OPC-UA: the session was lost.
    SessionLost,
    /// OPC-UA: the server certificate is not trusted.
    UntrustedServerCertificate,
    /// OPC-UA: the server certificate is not valid for the server.
    InvalidServerCertificate,
    /// The device refused the identity given.
    AuthenticationFailed,
    /// OPC-UA: the server refused the security of the connection.
    SecurityRejected,
    /// OPC-UA: no endpoint offers the policy and mode asked for.
    NoMatchingEndpoint,
    /// OPC-UA: a session could not be created or activated.
    SessionFailed,
    /// OPC-UA: a property's node does not exist.
    BadNodeId,
    /// A property's value was refused by the device or cannot be shown.
    BadValue,
    /// A property's value has another type than the spec says.
    TypeMismatch,
    /// A write of a property was refused by the device.
    WriteRefused,
    /// The device is fine, but its status does not reach its MQTT broker.
    MqttUndelivered,
    /// The adaptor's own task for the device failed (a bug); it is started
    /// again.
    InternalError,
}

impl Reason {
    /// The reason as DeviceConnected and metrics show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Healthy => "Healthy",
            Reason::Unreachable => "Unreachable",
            Reason::Timeout => "Timeout",
            Reason::Silent => "Silent",
            Reason::NotFound => "NotFound",
            Reason::CharacteristicMissing => "CharacteristicMissing",
            Reason::ReadFailed => "ReadFailed",
            Reason::ConnectionLost => "ConnectionLost",
            Reason::ExceptionResponse => "ExceptionResponse",
            Reason::InvalidSettings => "InvalidSettings",
            Reason::InvalidProperty => "InvalidProperty",
            Reason::SessionLost => "SessionLost",
            Reason::UntrustedServerCertificate => "UntrustedServerCertificate",
            Reason::InvalidServerCertificate => "InvalidServerCertificate",
            Reason::AuthenticationFailed => "AuthenticationFailed",
            Reason::SecurityRejected => "SecurityRejected",
            Reason::NoMatchingEndpoint => "NoMatchingEndpoint",
            Reason::SessionFailed => "SessionFailed",
            Reason::BadNodeId => "BadNodeId",
            Reason::BadValue => "BadValue",
            Reason::TypeMismatch => "TypeMismatch",
            Reason::WriteRefused => "WriteRefused",
            Reason::MqttUndelivered => "MQTTUndelivered",
            Reason::InternalError => "InternalError",
        }
    }

    /// Whether only a change of the spec can mend it: trying again
    /// unchanged would fail the same way.
    pub fn waits_for_the_spec(self) -> bool {
        matches!(self, Reason::InvalidSettings | Reason::InvalidProperty)
    }

    /// DeviceConnected with this reason: True for Healthy, False otherwise,
    /// with `message` saying what happened.
    pub fn outcome(self, message: impl Into<String>) -> Outcome {
        match self {
            Reason::Healthy => Outcome::ok(self.as_str()),
            _ => Outcome::fail(self.as_str(), message),
        }
    }
}

/// DeviceConnected as the device task reports it, unless the device's
/// status cannot reach its MQTT extension's broker (connecting failed, or
/// a status was too large or refused): a device whose messages go nowhere
/// is not Healthy. Trouble with the device itself comes first.
pub fn with_delivery(device: Outcome, mqtt: Option<&MqttStatus>) -> Outcome {
    let Some(mqtt) = mqtt.filter(|_| device.is_true()) else {
        return device;
    };
    let why = mqtt
        .undelivered
        .as_ref()
        .or(mqtt.last_error.as_ref().filter(|_| !mqtt.connected));
    // What the buffer loses meanwhile (a bound it reached, such as its
    // share of the adaptor's budget) is part of the story.
    let buffer = mqtt
        .buffer
        .as_ref()
        .map(|b| format!("; buffer: {b}"))
        .unwrap_or_default();
    match why {
        Some(why) => Reason::MqttUndelivered.outcome(format!(
            "the device answers, but its status does not reach MQTT ({}): {why}{buffer}",
            mqtt.server.as_deref().unwrap_or("no server")
        )),
        None => device,
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The wait between attempts to reach a device: 1 s after the first
/// failure, doubling on each failure in a row up to 10 s, back to 1 s after
/// a success. Short enough that a device that comes back is seen at once,
/// long enough that one that is gone costs next to nothing.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(10);

    pub fn new() -> Backoff {
        Backoff {
            next: Self::FIRST,
            max: Self::MAX,
        }
    }

    /// Doubling up to `max` instead (a spec's maxReconnectInterval).
    pub fn up_to(max: Duration) -> Backoff {
        Backoff {
            next: Self::FIRST,
            max: max.max(Self::FIRST),
        }
    }

    /// How long to wait after a failure; the next failure waits longer.
    pub fn after_failure(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// The device answered (or its spec changed): start again from 1 s.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_and_starts_over_after_a_success() {
        let mut backoff = Backoff::new();
        let waits: Vec<u64> = (0..6).map(|_| backoff.after_failure().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        backoff.reset();
        assert_eq!(backoff.after_failure(), Duration::from_secs(1));
    }

    #[test]
    fn healthy_is_true_and_every_other_reason_false() {
        assert!(Reason::Healthy.outcome("").is_true());
        let lost = Reason::SessionLost.outcome("the server went away");
        assert_eq!(
            (lost.status, lost.reason.as_str(), lost.message.as_str()),
            (
                devicelink_api::ConditionStatus::False,
                "SessionLost",
                "the server went away"
            )
        );
        assert!(Reason::InvalidProperty.waits_for_the_spec());
        assert!(!Reason::Timeout.waits_for_the_spec());
    }

    #[test]
    fn a_healthy_device_whose_status_goes_nowhere_is_not_healthy() {
        let healthy = || Reason::Healthy.outcome("");
        let mqtt = |connected: bool, error: Option<&str>, undelivered: Option<&str>| MqttStatus {
            server: Some("tcp://broker:1883".into()),
            connected,
            last_error: error.map(Into::into),
            undelivered: undelivered.map(Into::into),
            ..Default::default()
        };
        // No extension, or one that works (an old error does not count).
        assert_eq!(with_delivery(healthy(), None), healthy());
        let fine = mqtt(true, Some("connection refused"), None);
        assert_eq!(with_delivery(healthy(), Some(&fine)), healthy());
        // Not connected yet, nothing failed: still connecting.
        assert_eq!(
            with_delivery(healthy(), Some(&mqtt(false, None, None))),
            healthy()
        );

        let down = with_delivery(
            healthy(),
            Some(&mqtt(false, Some("connection refused"), None)),
        );
        assert_eq!(down.reason, "MQTTUndelivered");
        assert!(!down.is_true());
        assert!(
            down.message.contains("tcp://broker:1883"),
            "{}",
            down.message
        );
        assert!(
            down.message.ends_with("connection refused"),
            "{}",
            down.message
        );
        let big = with_delivery(healthy(), Some(&mqtt(true, None, Some("too large"))));
        assert!(big.message.ends_with("too large"), "{}", big.message);

        // The device's own trouble is what it shows.
        let lost = Reason::ConnectionLost.outcome("gone");
        assert_eq!(
            with_delivery(lost.clone(), Some(&mqtt(false, Some("x"), None))),
            lost
        );
    }
}
