//! A property's last reading as a poller keeps it between reports: the
//! text read, the value after the property's arithmetic, and when it last
//! changed. The rest of the property's status (its name, type and access
//! modes) follows from its spec whenever the status is made, so it is not
//! kept a second time for every property of every device.

use devicelink_api::property::{AccessMode, ArithmeticOperation, PropertyStatus, ValueType};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::arithmetic;

/// The last reading of one property; empty until the first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    value: Option<Box<str>>,
    operated: Option<Box<str>>,
    updated_at: Option<Time>,
}

impl Observed {
    /// Takes in a reading of `property`: its text, and the arithmetic's
    /// result when there are operations and the reading is a number. The
    /// time moves only when the value changes; whether it did.
    pub fn record(
        &mut self,
        property: &str,
        text: String,
        number: Option<f64>,
        operations: &[ArithmeticOperation],
        precision: u32,
    ) -> bool {
        let operated = arithmetic::operated(property, number, operations, precision);
        let changed = self.value.as_deref() != Some(text.as_str())
            || self.operated.as_deref() != operated.as_deref();
        if changed {
            self.value = Some(text.into_boxed_str());
            self.operated = operated.map(String::into_boxed_str);
            self.updated_at = Some(devicelink_api::condition::now());
        }
        changed
    }

    /// The property's status: what the spec says of it, with this reading.
    pub fn status(
        &self,
        name: &str,
        type_: Option<ValueType>,
        access_modes: Vec<AccessMode>,
    ) -> PropertyStatus {
        PropertyStatus {
            name: name.to_string(),
            type_,
            access_modes,
            value: self.value.as_deref().map(Into::into),
            operated_value: self.operated.as_deref().map(Into::into),
            updated_at: self.updated_at.clone(),
            mqtt_write: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devicelink_api::property::ArithmeticOperationType;

    #[test]
    fn the_time_moves_only_when_the_value_changes() {
        let mut seen = Observed::default();
        assert_eq!(seen.status("t", Some(ValueType::Int16), vec![]).value, None);
        assert!(seen.record("t", "20".into(), Some(20.0), &[], 2));
        let first = seen.status("t", Some(ValueType::Int16), vec![AccessMode::ReadMany]);
        assert_eq!(first.value.as_deref(), Some("20"));
        assert_eq!(first.access_modes, [AccessMode::ReadMany]);
        assert!(first.updated_at.is_some());
        assert!(!seen.record("t", "20".into(), Some(20.0), &[], 2));
        assert!(seen.record("t", "21".into(), Some(21.0), &[], 2));
    }

    #[test]
    fn the_arithmetic_is_shown_beside_the_value_read() {
        let tenths = [ArithmeticOperation {
            type_: ArithmeticOperationType::Divide,
            value: "10".into(),
        }];
        let mut seen = Observed::default();
        seen.record("t", "215".into(), Some(215.0), &tenths, 2);
        let status = seen.status("t", Some(ValueType::Float), vec![]);
        assert_eq!(status.value.as_deref(), Some("215"));
        assert_eq!(status.operated_value.as_deref(), Some("21.5"));
        // Text has no arithmetic.
        seen.record("t", "n/a".into(), None, &tenths, 2);
        assert_eq!(
            seen.status("t", Some(ValueType::Float), vec![])
                .operated_value,
            None
        );
    }
}
