//! Values of OPC-UA variables: how a property's type maps to the Variant a
//! node holds, in both directions.
//!
//! Writes are encoded exactly as the property's type says (servers refuse
//! a write of another built-in type). Readings are taken as they come: a
//! numeric property accepts any numeric Variant, so an `int32` property on
//! an Int16 node still shows its value.

use chrono::{SecondsFormat, Utc};
use devicelink_adaptor_runtime::{
    Accepts,
    value::{TextForm, boolean, bytes_as_text, integer, number, text_as_bytes},
};
use devicelink_api::property::ValueType;
use opcua::types::{ByteString, DateTime, UAString, Variant};
use serde_json::Value;

/// The OPC-UA built-in type a property's values take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Boolean,
    SByte,
    Byte,
    Int16,
    UInt16,
    Int32,
    UInt32,
    Int64,
    UInt64,
    Float,
    Double,
    String,
    /// A ByteString shown as text in this form (`byteString` is UTF-8, as
    /// Octopus took it; `hexString`, `base64String` and `binaryString`
    /// keep binary contents exact).
    ByteString(TextForm),
    /// Shown and written as RFC 3339 in UTC.
    DateTime,
}

/// A value read, as the status shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub text: String,
    /// For the property's arithmetic, when the value is a number.
    pub number: Option<f64>,
}

impl Encoding {
    pub fn of(type_: ValueType) -> Encoding {
        use ValueType::*;
        match type_ {
            Boolean => Encoding::Boolean,
            Int8 => Encoding::SByte,
            Uint8 => Encoding::Byte,
            Int16 => Encoding::Int16,
            Uint16 => Encoding::UInt16,
            Int | Int32 => Encoding::Int32,
            Uint | Uint32 => Encoding::UInt32,
            Int64 => Encoding::Int64,
            Uint64 => Encoding::UInt64,
            Float | Float32 => Encoding::Float,
            Double | Float64 => Encoding::Double,
            String => Encoding::String,
            ByteString => Encoding::ByteString(TextForm::Utf8),
            HexString => Encoding::ByteString(TextForm::Hex),
            Base64String => Encoding::ByteString(TextForm::Base64),
            BinaryString => Encoding::ByteString(TextForm::Binary),
            Datetime => Encoding::DateTime,
        }
    }

    /// What writes from MQTT may carry.
    pub fn accepts(self) -> Accepts {
        let int = |min: i128, max: i128| Accepts::Integer { min, max };
        match self {
            Encoding::Boolean => Accepts::Boolean,
            Encoding::SByte => int(i8::MIN.into(), i8::MAX.into()),
            Encoding::Byte => int(0, u8::MAX.into()),
            Encoding::Int16 => int(i16::MIN.into(), i16::MAX.into()),
            Encoding::UInt16 => int(0, u16::MAX.into()),
            Encoding::Int32 => int(i32::MIN.into(), i32::MAX.into()),
            Encoding::UInt32 => int(0, u32::MAX.into()),
            Encoding::Int64 => int(i64::MIN.into(), i64::MAX.into()),
            Encoding::UInt64 => int(0, u64::MAX.into()),
            Encoding::Float | Encoding::Double => Accepts::Number,
            Encoding::String | Encoding::ByteString(_) | Encoding::DateTime => Accepts::Text,
        }
    }

    /// A value from the spec or a write, as the Variant to write; the
    /// error says what was expected.
    pub fn encode(self, value: &Value) -> Result<Variant, String> {
        fn whole<T: TryFrom<i128>>(value: &Value, what: &str) -> Result<T, String> {
            let v = integer(value)?;
            T::try_from(v).map_err(|_| format!("{v} does not fit in {what}"))
        }
        Ok(match self {
            Encoding::Boolean => Variant::Boolean(boolean(value)?),
            Encoding::SByte => Variant::SByte(whole(value, "an int8")?),
            Encoding::Byte => Variant::Byte(whole(value, "a uint8")?),
            Encoding::Int16 => Variant::Int16(whole(value, "an int16")?),
            Encoding::UInt16 => Variant::UInt16(whole(value, "a uint16")?),
            Encoding::Int32 => Variant::Int32(whole(value, "an int32")?),
            Encoding::UInt32 => Variant::UInt32(whole(value, "a uint32")?),
            Encoding::Int64 => Variant::Int64(whole(value, "an int64")?),
            Encoding::UInt64 => Variant::UInt64(whole(value, "a uint64")?),
            Encoding::Float => {
                let v = number(value)?;
                let f = v as f32;
                if !f.is_finite() {
                    return Err(format!("{v} does not fit in a float"));
                }
                Variant::Float(f)
            }
            Encoding::Double => Variant::Double(number(value)?),
            Encoding::String => Variant::String(UAString::from(text(value)?)),
            Encoding::ByteString(form) => {
                Variant::ByteString(ByteString::from(text_as_bytes(text(value)?, form)?))
            }
            Encoding::DateTime => {
                let t = text(value)?;
                let parsed = chrono::DateTime::parse_from_rfc3339(t).map_err(|e| {
                    format!(
                        "expects a time in RFC 3339, e.g. 2024-05-01T12:00:00Z, not {t:?} ({e})"
                    )
                })?;
                Variant::DateTime(Box::new(DateTime::from(parsed.with_timezone(&Utc))))
            }
        })
    }

    /// A Variant from the server as the status shows it; `None` for an
    /// empty value. The error names what the node holds instead.
    pub fn decode(self, variant: &Variant) -> Result<Option<Reading>, String> {
        let number = |text: String, n: f64| Reading {
            text,
            number: Some(n),
        };
        let reading = match (self, variant) {
            (_, Variant::Empty) => return Ok(None),
            (Encoding::Boolean, Variant::Boolean(b)) => Reading {
                text: b.to_string(),
                number: Some(f64::from(u8::from(*b))),
            },
            (e, v) if e.is_numeric() => match v {
                Variant::SByte(n) => number(n.to_string(), (*n).into()),
                Variant::Byte(n) => number(n.to_string(), (*n).into()),
                Variant::Int16(n) => number(n.to_string(), (*n).into()),
                Variant::UInt16(n) => number(n.to_string(), (*n).into()),
                Variant::Int32(n) => number(n.to_string(), (*n).into()),
                Variant::UInt32(n) => number(n.to_string(), (*n).into()),
                Variant::Int64(n) => number(n.to_string(), *n as f64),
                Variant::UInt64(n) => number(n.to_string(), *n as f64),
                Variant::Float(n) => number(n.to_string(), (*n).into()),
                Variant::Double(n) => number(n.to_string(), *n),
                other => return Err(mismatch(self, other)),
            },
            (Encoding::String, Variant::String(s)) => Reading {
                text: s.as_ref().to_string(),
                number: None,
            },
            (Encoding::ByteString(form), Variant::ByteString(b)) => Reading {
                text: bytes_as_text(b.as_ref(), form),
                number: None,
            },
            (Encoding::DateTime, Variant::DateTime(t)) => Reading {
                text: t.as_chrono().to_rfc3339_opts(SecondsFormat::AutoSi, true),
                number: None,
            },
            (_, other) => return Err(mismatch(self, other)),
        };
        Ok(Some(reading))
    }

    fn is_numeric(self) -> bool {
        !matches!(
            self,
            Encoding::Boolean | Encoding::String | Encoding::ByteString(_) | Encoding::DateTime
        )
    }
}

fn text(value: &Value) -> Result<&str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("expects a string, not {value}"))
}

fn mismatch(encoding: Encoding, variant: &Variant) -> String {
    let held = match variant.type_id() {
        opcua::types::VariantTypeId::Scalar(t) => format!("a {t:?}"),
        opcua::types::VariantTypeId::Array(t, _) => format!("an array of {t:?}"),
        opcua::types::VariantTypeId::Empty => "nothing".into(),
    };
    let wanted = match encoding {
        Encoding::Boolean => "a Boolean",
        Encoding::String => "a String",
        Encoding::ByteString(_) => "a ByteString",
        Encoding::DateTime => "a DateTime",
        _ => "a number",
    };
    format!("the node holds {held}; the property's type needs {wanted}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn every_type_round_trips_through_its_variant() {
        let cases = [
            (ValueType::Boolean, json!(true), "true"),
            (ValueType::Int8, json!(-128), "-128"),
            (ValueType::Uint8, json!(255), "255"),
            (ValueType::Int16, json!(-32768), "-32768"),
            (ValueType::Uint16, json!(65535), "65535"),
            (ValueType::Int32, json!("-2147483648"), "-2147483648"),
            (ValueType::Uint32, json!(4294967295u32), "4294967295"),
            (ValueType::Int64, json!(i64::MIN), "-9223372036854775808"),
            (ValueType::Uint64, json!(u64::MAX), "18446744073709551615"),
            (ValueType::Float, json!(1.5), "1.5"),
            (ValueType::Double, json!(-0.125), "-0.125"),
            (ValueType::String, json!("grüße"), "grüße"),
            (ValueType::ByteString, json!("test123"), "test123"),
            (ValueType::HexString, json!("00ff10"), "00ff10"),
            (ValueType::Base64String, json!("AP8Q"), "AP8Q"),
            (
                ValueType::Datetime,
                json!("2024-05-01T12:00:00.25Z"),
                "2024-05-01T12:00:00.250Z",
            ),
        ];
        for (type_, value, shown) in cases {
            let e = Encoding::of(type_);
            let variant = e
                .encode(&value)
                .unwrap_or_else(|err| panic!("{type_:?}: {err}"));
            let reading = e.decode(&variant).unwrap().unwrap();
            assert_eq!(reading.text, shown, "{type_:?}");
        }
    }

    #[test]
    fn out_of_range_and_malformed_values_are_refused_with_the_reason() {
        let e = Encoding::of(ValueType::Int16)
            .encode(&json!(40000))
            .unwrap_err();
        assert_eq!(e, "40000 does not fit in an int16");
        let e = Encoding::of(ValueType::Datetime)
            .encode(&json!("yesterday"))
            .unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
        let e = Encoding::of(ValueType::HexString)
            .encode(&json!("abc"))
            .unwrap_err();
        assert!(e.contains("pairs"), "{e}");
        let e = Encoding::of(ValueType::Float)
            .encode(&json!(1e300))
            .unwrap_err();
        assert!(e.contains("float"), "{e}");
    }

    #[test]
    fn a_reading_of_another_numeric_type_is_shown_and_a_string_is_not() {
        let e = Encoding::of(ValueType::Int32);
        let r = e.decode(&Variant::Int16(-7)).unwrap().unwrap();
        assert_eq!((r.text.as_str(), r.number), ("-7", Some(-7.0)));
        let err = e.decode(&Variant::String("x".into())).unwrap_err();
        assert!(err.contains("String"), "{err}");
        assert_eq!(e.decode(&Variant::Empty).unwrap(), None);
    }

    proptest! {
        #[test]
        fn any_json_is_encoded_or_refused(n in any::<i64>(), f in any::<f64>(), s in ".{0,16}") {
            for type_ in [ValueType::Int16, ValueType::Uint64, ValueType::Float, ValueType::Datetime, ValueType::HexString, ValueType::Boolean] {
                let e = Encoding::of(type_);
                for v in [json!(n), json!(f), json!(s.clone())] {
                    if let Ok(variant) = e.encode(&v) {
                        prop_assert!(e.decode(&variant).is_ok());
                    }
                }
            }
        }
    }
}
