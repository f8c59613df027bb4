//! Values in raw bytes, as devices hold them: how a type and a byte order
//! map to bytes, in both directions, for every adaptor whose device speaks
//! in bytes (Modbus registers, BLE characteristics).
//!
//! Bytes come in wire order; the endianness says how they make the value
//! (A is the value's most significant byte): BigEndian ABCD, BigEndianSwap
//! BADC (bytes swapped within each 16-bit word), LittleEndian DCBA (all
//! bytes reversed), LittleEndianSwap CDAB (word order reversed). Each is
//! its own inverse, so one function reorders both ways.

use devicelink_api::property::Endianness;
use devicelink_mqtt::write::Accepts;
use serde_json::Value;

use crate::value::{TextForm, boolean, bytes_as_text, integer, number, text_as_bytes};

/// How a value sits in its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A two's-complement integer of 1, 2, 4 or 8 bytes.
    Signed(usize),
    /// An unsigned integer of 1, 2, 4 or 8 bytes.
    Unsigned(usize),
    /// IEEE 754, 4 or 8 bytes.
    Float(usize),
    /// True when any byte is not zero.
    Bool,
    /// All the bytes as text.
    Text(TextForm),
}

impl Layout {
    /// What writes from MQTT may give for it.
    pub fn accepts(self) -> Accepts {
        match self {
            Layout::Signed(n) => {
                let (min, max) = signed_range(n);
                Accepts::Integer { min, max }
            }
            Layout::Unsigned(n) => Accepts::Integer {
                min: 0,
                max: unsigned_max(n),
            },
            Layout::Float(_) => Accepts::Number,
            Layout::Bool => Accepts::Boolean,
            Layout::Text(_) => Accepts::Text,
        }
    }
}

/// A value read from a device.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Signed(i64),
    Unsigned(u64),
    Float32(f32),
    Float64(f64),
    Bool(bool),
    Text(String),
}

impl Reading {
    /// The value as the status shows it.
    pub fn render(&self) -> String {
        match self {
            Reading::Signed(v) => v.to_string(),
            Reading::Unsigned(v) => v.to_string(),
            // f32's own shortest form: 23.4, not 23.399999618530273.
            Reading::Float32(v) => v.to_string(),
            Reading::Float64(v) => v.to_string(),
            Reading::Bool(v) => v.to_string(),
            Reading::Text(v) => v.clone(),
        }
    }

    /// The value as a number, for arithmetic.
    pub fn number(&self) -> Option<f64> {
        match self {
            Reading::Signed(v) => Some(*v as f64),
            Reading::Unsigned(v) => Some(*v as f64),
            Reading::Float32(v) => Some(f64::from(*v)),
            Reading::Float64(v) => Some(*v),
            Reading::Bool(v) => Some(f64::from(u8::from(*v))),
            Reading::Text(_) => None,
        }
    }
}

/// Puts bytes in value order from wire order, or back (each order is its
/// own inverse).
pub fn reorder(bytes: &mut [u8], endianness: Endianness) {
    match endianness {
        Endianness::BigEndian => {}
        Endianness::BigEndianSwap => bytes.chunks_exact_mut(2).for_each(|w| w.swap(0, 1)),
        Endianness::LittleEndian => bytes.reverse(),
        Endianness::LittleEndianSwap => {
            // Reverse the words, keep the bytes within each.
            bytes.reverse();
            bytes.chunks_exact_mut(2).for_each(|w| w.swap(0, 1));
        }
    }
}

/// The value held in `bytes` (wire order). A number narrower than the
/// bytes (an 8-bit value in a 16-bit register) is in the last ones.
pub fn decode(layout: Layout, mut bytes: Vec<u8>, endianness: Endianness) -> Reading {
    reorder(&mut bytes, endianness);
    let tail = |n: usize| &bytes[bytes.len().saturating_sub(n)..];
    match layout {
        Layout::Signed(n) => {
            let raw = tail(n);
            let mut wide = [if raw.first().is_some_and(|b| b & 0x80 != 0) {
                0xff
            } else {
                0
            }; 8];
            wide[8 - raw.len()..].copy_from_slice(raw);
            Reading::Signed(i64::from_be_bytes(wide))
        }
        Layout::Unsigned(n) => {
            let raw = tail(n);
            let mut wide = [0u8; 8];
            wide[8 - raw.len()..].copy_from_slice(raw);
            Reading::Unsigned(u64::from_be_bytes(wide))
        }
        Layout::Float(8) => Reading::Float64(f64::from_be_bytes(array(tail(8)))),
        Layout::Float(_) => Reading::Float32(f32::from_be_bytes(array(tail(4)))),
        Layout::Bool => Reading::Bool(bytes.iter().any(|b| *b != 0)),
        Layout::Text(form) => Reading::Text(bytes_as_text(&bytes, form)),
    }
}

/// The `size` bytes (wire order) that hold `value`: a JSON number, boolean
/// or string (numbers may also come as decimal strings, as the spec's
/// `value` does). A number narrower than `size` is widened, sign included.
pub fn encode(
    layout: Layout,
    value: &Value,
    size: usize,
    endianness: Endianness,
) -> Result<Vec<u8>, String> {
    let mut bytes = vec![0u8; size];
    match layout {
        Layout::Signed(n) => {
            let v = integer(value)?;
            let (min, max) = signed_range(n);
            if v < min || v > max {
                return Err(format!("{v} does not fit a signed {}-bit integer", n * 8));
            }
            let wide = (v as i64).to_be_bytes();
            bytes.copy_from_slice(&wide[8 - size..]);
        }
        Layout::Unsigned(n) => {
            let v = integer(value)?;
            let max = unsigned_max(n);
            if v < 0 || v > max {
                return Err(format!(
                    "{v} does not fit an unsigned {}-bit integer",
                    n * 8
                ));
            }
            let wide = (v as u64).to_be_bytes();
            bytes.copy_from_slice(&wide[8 - size..]);
        }
        Layout::Float(n) => {
            let v = number(value)?;
            let raw: Vec<u8> = if n == 8 {
                v.to_be_bytes().to_vec()
            } else {
                let narrow = v as f32;
                if v.is_finite() && !narrow.is_finite() {
                    // As it was sent: 1e+300, not three hundred digits.
                    return Err(format!("{value} does not fit a 32-bit float"));
                }
                narrow.to_be_bytes().to_vec()
            };
            bytes[size - raw.len()..].copy_from_slice(&raw);
        }
        Layout::Bool => {
            let on = boolean(value)?;
            bytes[size - 1] = u8::from(on);
        }
        Layout::Text(form) => {
            let text = value
                .as_str()
                .ok_or_else(|| format!("expects a string, not {value}"))?;
            bytes = text_as_sized_bytes(text, form, size)?;
        }
    }
    reorder(&mut bytes, endianness);
    Ok(bytes)
}

/// Text back to exactly `size` bytes. UTF-8 may be shorter (NUL-padded);
/// the raw forms must give every byte, so nothing is guessed.
pub fn text_as_sized_bytes(text: &str, form: TextForm, size: usize) -> Result<Vec<u8>, String> {
    let mut bytes = text_as_bytes(text, form)?;
    if form == TextForm::Utf8 {
        if bytes.len() > size {
            return Err(format!(
                "is {} bytes of UTF-8; the property holds at most {size}",
                bytes.len()
            ));
        }
        bytes.resize(size, 0);
    } else if bytes.len() != size {
        return Err(format!(
            "gives {} bytes; the property holds exactly {size}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out[N - bytes.len().min(N)..].copy_from_slice(&bytes[bytes.len().saturating_sub(N)..]);
    out
}

fn signed_range(bytes: usize) -> (i128, i128) {
    let bits = bytes as u32 * 8;
    (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
}

fn unsigned_max(bytes: usize) -> i128 {
    (1i128 << (bytes as u32 * 8)) - 1
}
