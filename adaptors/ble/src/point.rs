//! A property of a BluetoothDevice made ready: which characteristic holds
//! it, when it is read, notified and written, how its bytes make a value
//! and how a value makes bytes. Problems with the spec are named by field.

use std::collections::BTreeMap;

use ::uuid::Uuid;
use base64::Engine as _;
use devicelink_adaptor_runtime::{
    Accepts, Property, Writes,
    access::{self, ReadMode, WriteMode},
    arithmetic,
    bytes::{self, Layout, Reading},
    value::{TextForm, desired, text_as_bytes},
};
use devicelink_api::{
    ble::{BluetoothAccessMode, BluetoothDataConverter, BluetoothProperty},
    property::{AccessMode, ArithmeticOperation, ContentType, Endianness, ValueType},
};
use serde_json::Value;

use crate::{converter, uuid};

/// How a characteristic's bytes make the property's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoding {
    /// Octopus's dataConverter: an unsigned number from some bytes.
    Converter(BluetoothDataConverter),
    /// The bytes as the type says, in the byte order given.
    Typed(Layout, Endianness),
    /// UTF-8 text holding the value (contentType text on a number type).
    TextNumber(Layout),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    /// The spec's `type`, as the status shows it.
    pub type_: Option<ValueType>,
    pub service: Option<Uuid>,
    pub characteristic: Uuid,
    /// Subscribed to: every notification is taken in.
    pub notify: bool,
    pub read: ReadMode,
    pub write: WriteMode,
    pub decoding: Decoding,
    /// Octopus's dataWrite: the values that may be written, by name.
    pub named: BTreeMap<String, Vec<u8>>,
    /// What the spec writes (`value`, else `defaultValue`), if anything.
    pub desired: Option<Value>,
    pub operations: Vec<ArithmeticOperation>,
    pub precision: u32,
}

impl Point {
    pub fn new(p: &BluetoothProperty, index: usize) -> Result<Point, String> {
        let field = format!("spec.properties[{index}] ({})", p.name);
        let visitor = &p.visitor;
        let characteristic = visitor
            .characteristic
            .as_deref()
            .or(visitor.characteristic_uuid.as_deref())
            .ok_or_else(|| format!("{field}.visitor: no characteristic"))?;
        let characteristic =
            uuid::parse(characteristic).map_err(|e| format!("{field}.visitor: {e}"))?;
        let service = visitor
            .service
            .as_deref()
            .map(uuid::parse)
            .transpose()
            .map_err(|e| format!("{field}.visitor.service: {e}"))?;
        let (notify, read, write) = modes(p);
        let decoding = match (&visitor.data_converter, p.type_) {
            (Some(converter), _) => Decoding::Converter(converter.clone()),
            (None, Some(type_)) => {
                let layout = layout_of(type_);
                match (visitor.content_type, layout) {
                    (
                        Some(ContentType::Text),
                        Layout::Signed(_) | Layout::Unsigned(_) | Layout::Float(_),
                    ) => Decoding::TextNumber(layout),
                    // Text and raw bytes are a sequence, in the order sent;
                    // byte order is a matter of numbers.
                    (_, Layout::Text(_)) => Decoding::Typed(layout, Endianness::BigEndian),
                    _ => Decoding::Typed(
                        layout,
                        visitor.endianness.unwrap_or(Endianness::LittleEndian),
                    ),
                }
            }
            (None, None) => Decoding::Typed(Layout::Text(TextForm::Hex), Endianness::BigEndian),
        };
        let mut named = BTreeMap::new();
        for (key, bytes) in visitor.data_write.iter().flatten() {
            let bytes =
                named_bytes(bytes).map_err(|e| format!("{field}.visitor.dataWrite[{key}]: {e}"))?;
            named.insert(key.clone(), bytes);
        }
        let desired = p
            .value
            .as_ref()
            .map(desired)
            .or_else(|| visitor.default_value.clone().map(Value::String));
        let mut point = Point {
            name: p.name.clone(),
            type_: p.type_,
            service,
            characteristic,
            notify,
            read,
            write,
            decoding,
            named,
            desired: None,
            operations: match &visitor.data_converter {
                Some(c) => c.order_of_operations.clone(),
                None => visitor.arithmetic_operations.clone(),
            },
            precision: visitor
                .arithmetic_operation_precision
                .map(|n| n.clamp(0, 24) as u32)
                .unwrap_or(arithmetic::DEFAULT_PRECISION),
        };
        if let Some(v) = desired.filter(|_| write != WriteMode::Never) {
            point
                .encode(&v)
                .map_err(|e| format!("{field}: the value to write {e}"))?;
            point.desired = Some(v);
        }
        Ok(point)
    }

    /// The value the bytes hold, as a reading (or why not): the name
    /// dataWrite gives these bytes, if any, else the value they decode to.
    pub fn decode(&self, bytes: &[u8]) -> Result<Reading, String> {
        if let Some((name, _)) = self.named.iter().find(|(_, b)| b.as_slice() == bytes) {
            return Ok(Reading::Text(name.clone()));
        }
        match &self.decoding {
            Decoding::Converter(c) => converter::convert(c, bytes).map(Reading::Unsigned),
            Decoding::TextNumber(layout) => {
                let text = String::from_utf8_lossy(bytes);
                let text = text.trim_end_matches('\0').trim();
                match layout {
                    Layout::Float(_) => text.parse().map(Reading::Float64).ok(),
                    Layout::Unsigned(_) => text.parse().map(Reading::Unsigned).ok(),
                    _ => text.parse().map(Reading::Signed).ok(),
                }
                .ok_or_else(|| format!("{text:?} is not a number"))
            }
            Decoding::Typed(layout, endianness) => {
                if let Some(size) = size_of(*layout)
                    && bytes.len() != size
                {
                    return Err(format!(
                        "the characteristic gave {} byte(s); the type takes {size}",
                        bytes.len()
                    ));
                }
                Ok(bytes::decode(*layout, bytes.to_vec(), *endianness))
            }
        }
    }

    /// The bytes that write `value`: a name in dataWrite, or the value as
    /// the type says (or why not).
    pub fn encode(&self, value: &Value) -> Result<Vec<u8>, String> {
        if !self.named.is_empty() {
            let name = value.as_str().unwrap_or_default();
            return self.named.get(name).cloned().ok_or_else(|| {
                format!(
                    "{value} is not one of dataWrite's names ({})",
                    self.named.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            });
        }
        match &self.decoding {
            Decoding::Typed(layout, endianness) => match size_of(*layout) {
                Some(size) => bytes::encode(*layout, value, size, *endianness),
                None => {
                    let Layout::Text(form) = layout else {
                        unreachable!("only text has no size")
                    };
                    let text = value
                        .as_str()
                        .ok_or_else(|| format!("expects a string, not {value}"))?;
                    text_as_bytes(text, *form)
                }
            },
            Decoding::TextNumber(_) => Ok(devicelink_adaptor_runtime::value::number(value)?
                .to_string()
                .into_bytes()),
            Decoding::Converter(_) => {
                Err("cannot be written: its value is made by dataConverter; give dataWrite".into())
            }
        }
    }

    /// The property as writes from MQTT see it.
    pub fn as_property(&self) -> Property {
        let accepts = if !self.named.is_empty() {
            Accepts::OneOf(self.named.keys().cloned().collect())
        } else {
            match &self.decoding {
                Decoding::Typed(layout, _) | Decoding::TextNumber(layout) => layout.accepts(),
                Decoding::Converter(_) => Accepts::Number,
            }
        };
        Property {
            name: self.name.clone(),
            accepts,
            // A converter without named values cannot be turned back.
            writes: if matches!(self.decoding, Decoding::Converter(_) if self.named.is_empty()) {
                Writes::No
            } else {
                access::mqtt_writes(self.write, self.desired.is_some())
            },
        }
    }

    /// The access modes in effect, as the status shows them.
    pub fn access_modes(&self) -> Vec<AccessMode> {
        let mut modes = access::effective(self.read, self.write, AccessMode::ReadMany);
        if self.notify {
            modes.insert(0, AccessMode::Notify);
        }
        modes
    }
}

/// Subscribe, read and write, from Octopus's accessMode or our accessModes
/// (neither: NotifyOnly, Octopus's default).
fn modes(p: &BluetoothProperty) -> (bool, ReadMode, WriteMode) {
    if !p.access_modes.is_empty() {
        let notify = p.access_modes.contains(&AccessMode::Notify);
        let (_, write) = access::modes(&p.access_modes, None, true);
        // Polled only when asked: Notify alone is a subscription.
        let read = if p.access_modes.contains(&AccessMode::ReadMany) {
            ReadMode::Every
        } else if p.access_modes.contains(&AccessMode::ReadOnce) {
            ReadMode::Once
        } else {
            ReadMode::Never
        };
        return (notify, read, write);
    }
    match p.access_mode.unwrap_or(BluetoothAccessMode::NotifyOnly) {
        BluetoothAccessMode::NotifyOnly => (true, ReadMode::Never, WriteMode::Never),
        BluetoothAccessMode::ReadOnly => (false, ReadMode::Every, WriteMode::Never),
        BluetoothAccessMode::ReadWrite => (false, ReadMode::Every, WriteMode::OnChange),
    }
}

/// How a type sits in a characteristic's bytes.
fn layout_of(type_: ValueType) -> Layout {
    use ValueType::*;
    match type_ {
        Int8 => Layout::Signed(1),
        Uint8 => Layout::Unsigned(1),
        Int16 => Layout::Signed(2),
        Uint16 => Layout::Unsigned(2),
        Int | Int32 => Layout::Signed(4),
        Uint | Uint32 => Layout::Unsigned(4),
        Int64 => Layout::Signed(8),
        Uint64 => Layout::Unsigned(8),
        Float | Float32 => Layout::Float(4),
        Double | Float64 => Layout::Float(8),
        Boolean => Layout::Bool,
        HexString => Layout::Text(TextForm::Hex),
        BinaryString => Layout::Text(TextForm::Binary),
        Base64String => Layout::Text(TextForm::Base64),
        // The API server refuses OPC-UA's datetime and byteString here.
        String | ByteString | Datetime => Layout::Text(TextForm::Utf8),
    }
}

/// The bytes a layout takes, for numbers and booleans.
fn size_of(layout: Layout) -> Option<usize> {
    match layout {
        Layout::Signed(n) | Layout::Unsigned(n) | Layout::Float(n) => Some(n),
        Layout::Bool => Some(1),
        Layout::Text(_) => None,
    }
}

/// A dataWrite value: a list of bytes (`[1]`), or base64 text (how Go's
/// JSON writes bytes).
fn named_bytes(value: &Value) -> Result<Vec<u8>, String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|b| {
                b.as_u64()
                    .filter(|b| *b <= 255)
                    .map(|b| b as u8)
                    .ok_or_else(|| format!("{b} is not a byte (0 to 255)"))
            })
            .collect(),
        Value::String(text) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("{text:?} is neither a list of bytes nor base64: {e}")),
        other => Err(format!("{other} is neither a list of bytes nor base64")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn property(value: Value) -> BluetoothProperty {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn octopus_fields_resolve() {
        let power = Point::new(
            &property(
                json!({"name": "power", "accessMode": "ReadWrite", "visitor": {
                    "characteristicUUID": "f000aa0104514000b000000000000001",
                    "defaultValue": "OFF", "dataWrite": {"ON": [1], "OFF": "AA=="},
                }}),
            ),
            0,
        )
        .unwrap();
        assert_eq!(
            power.characteristic.to_string(),
            "f000aa01-0451-4000-b000-000000000001"
        );
        assert_eq!(
            (power.notify, power.read, power.write),
            (false, ReadMode::Every, WriteMode::OnChange)
        );
        assert_eq!(power.desired, Some(json!("OFF")));
        assert_eq!(power.encode(&json!("ON")).unwrap(), [1]);
        assert_eq!(power.encode(&json!("OFF")).unwrap(), [0]);
        assert!(
            power
                .encode(&json!("HALF"))
                .unwrap_err()
                .contains("OFF, ON")
        );
        assert_eq!(
            power.as_property().accepts,
            Accepts::OneOf(vec!["OFF".into(), "ON".into()])
        );
        // Read back, known bytes show their name; others their hex.
        assert_eq!(power.decode(&[1]).unwrap(), Reading::Text("ON".into()));
        assert_eq!(power.decode(&[7]).unwrap(), Reading::Text("07".into()));

        let data = Point::new(
            &property(json!({"name": "data", "visitor": {"characteristicUUID": "2a19"}})),
            1,
        )
        .unwrap();
        assert_eq!(
            (data.notify, data.read, data.write),
            (true, ReadMode::Never, WriteMode::Never)
        );
        assert_eq!(
            data.decode(&[0xab, 0x01]).unwrap(),
            Reading::Text("ab01".into())
        );
    }

    #[test]
    fn typed_values_in_little_endian_by_default_and_text_numbers() {
        let t = Point::new(&property(json!({"name": "t", "type": "int16", "accessModes": ["Notify"],
            "visitor": {"characteristic": "2A6E", "arithmeticOperations": [{"type": "Divide", "value": "100"}]}})), 0).unwrap();
        assert_eq!(t.decode(&[0x34, 0x08]).unwrap(), Reading::Signed(2100));
        assert!(
            t.decode(&[1, 2, 3])
                .unwrap_err()
                .contains("gave 3 byte(s); the type takes 2")
        );
        assert_eq!(t.access_modes(), [AccessMode::Notify]);
        let s = Point::new(&property(json!({"name": "s", "type": "float", "accessModes": ["ReadMany", "WriteOnce"], "value": "21.5",
            "visitor": {"characteristic": "2A6E", "contentType": "text"}})), 0).unwrap();
        assert_eq!(s.decode(b"21.5").unwrap(), Reading::Float64(21.5));
        assert_eq!(s.encode(&json!(22)).unwrap(), b"22");
        let m = Point::new(&property(json!({"name": "m", "type": "string", "accessModes": ["WriteMany"], "value": "hello",
            "visitor": {"characteristic": "2A6E"}})), 0).unwrap();
        assert_eq!(m.encode(&json!("hi")).unwrap(), b"hi");
        assert_eq!(m.decode(b"hi").unwrap(), Reading::Text("hi".into()));
        let h = Point::new(
            &property(
                json!({"name": "h", "type": "hexString", "accessModes": ["ReadMany"],
            "visitor": {"characteristic": "2A6E", "endianness": "LittleEndian"}}),
            ),
            0,
        )
        .unwrap();
        assert_eq!(h.decode(&[1, 2]).unwrap(), Reading::Text("0102".into()));
    }

    #[test]
    fn bad_specs_are_named() {
        let e = Point::new(
            &property(json!({"name": "p", "accessMode": "ReadWrite", "visitor": {
            "characteristicUUID": "2a19", "dataWrite": {"ON": [256]}}})),
            3,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "spec.properties[3] (p).visitor.dataWrite[ON]: 256 is not a byte (0 to 255)"
        );
        let e = Point::new(
            &property(json!({"name": "p", "accessMode": "ReadWrite", "visitor": {
            "characteristicUUID": "2a19", "defaultValue": "HALF", "dataWrite": {"ON": [1]}}})),
            0,
        )
        .unwrap_err();
        assert!(
            e.contains("the value to write \"HALF\" is not one of dataWrite's names (ON)"),
            "{e}"
        );
    }
}
