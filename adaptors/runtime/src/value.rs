//! Values as the spec and MQTT writes give them, read the same way by every
//! adaptor: whole numbers, numbers and booleans from JSON (or their decimal
//! strings, as `value: "42"` in a spec), and raw bytes shown as text.

use base64::Engine as _;
use devicelink_api::property::ValueType;
use serde_json::Value;

/// How raw bytes are shown as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextForm {
    /// UTF-8, trailing NUL padding removed.
    Utf8,
    /// Lowercase hexadecimal, two digits per byte.
    Hex,
    /// `0` and `1`, most significant bit first.
    Binary,
    /// Standard base64.
    Base64,
}

/// Bytes as text in `form` (invalid UTF-8 is replaced, not refused: a
/// reading is shown whatever it holds).
pub fn bytes_as_text(bytes: &[u8], form: TextForm) -> String {
    match form {
        TextForm::Utf8 => {
            let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            String::from_utf8_lossy(&bytes[..end]).into_owned()
        }
        TextForm::Hex => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        TextForm::Binary => bytes.iter().map(|b| format!("{b:08b}")).collect(),
        TextForm::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

/// Text in `form` back to its bytes; the error says what was expected.
pub fn text_as_bytes(text: &str, form: TextForm) -> Result<Vec<u8>, String> {
    match form {
        TextForm::Utf8 => Ok(text.as_bytes().to_vec()),
        TextForm::Hex => {
            let digits = text.strip_prefix("0x").unwrap_or(text);
            if !digits.len().is_multiple_of(2) || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("expects hexadecimal digits in pairs, not {text:?}"));
            }
            Ok((0..digits.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("checked hex"))
                .collect())
        }
        TextForm::Binary => {
            if !text.len().is_multiple_of(8) || !text.bytes().all(|b| b == b'0' || b == b'1') {
                return Err(format!(
                    "expects binary digits in groups of 8, not {text:?}"
                ));
            }
            Ok((0..text.len())
                .step_by(8)
                .map(|i| u8::from_str_radix(&text[i..i + 8], 2).expect("checked binary"))
                .collect())
        }
        TextForm::Base64 => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("is not base64: {e}")),
    }
}

/// A whole number from a JSON number or a decimal string.
pub fn integer(value: &Value) -> Result<i128, String> {
    let parsed = match value {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e20)
                    .map(|f| f as i128)
            }),
        Value::String(s) => s.trim().parse::<i128>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| format!("expects a whole number, not {value}"))
}

/// A finite number from a JSON number or a decimal string.
pub fn number(value: &Value) -> Result<f64, String> {
    let parsed = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    parsed
        .filter(|f| f.is_finite())
        .ok_or_else(|| format!("expects a number, not {value}"))
}

/// true/false, also as the strings "true"/"false" or the numbers 1/0.
pub fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" || s == "1" => Ok(true),
        Value::String(s) if s == "false" || s == "0" => Ok(false),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        _ => Err(format!("expects true or false, not {value}")),
    }
}

/// The type as the spec spells it (`int32`, `byteString`).
pub fn type_name(type_: ValueType) -> String {
    serde_json::to_value(type_)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{type_:?}"))
}

/// A spec `value` (an integer or a string) as JSON, as writes carry it.
pub fn desired(value: &devicelink_api::property::PropertyValue) -> Value {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match value {
        IntOrString::Int(i) => Value::from(*i),
        IntOrString::String(s) => Value::from(s.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_forms_round_trip() {
        let bytes = [0u8, 1, 0x7f, 0xff];
        for form in [TextForm::Hex, TextForm::Binary, TextForm::Base64] {
            assert_eq!(
                text_as_bytes(&bytes_as_text(&bytes, form), form).unwrap(),
                bytes
            );
        }
        assert_eq!(bytes_as_text(b"ab\0\0", TextForm::Utf8), "ab");
        assert!(
            text_as_bytes("abc", TextForm::Hex)
                .unwrap_err()
                .contains("pairs")
        );
    }

    #[test]
    fn numbers_come_as_json_or_decimal_strings() {
        assert_eq!(integer(&json!("-42")).unwrap(), -42);
        assert_eq!(integer(&json!(3.0)).unwrap(), 3);
        assert!(integer(&json!(3.5)).is_err());
        assert_eq!(number(&json!("2.5")).unwrap(), 2.5);
        assert!(boolean(&json!("yes")).is_err());
        assert_eq!(type_name(ValueType::ByteString), "byteString");
    }
}
