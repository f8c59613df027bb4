//! Values in coils and registers: how a property's type and byte order map
//! to the bits and 16-bit words Modbus carries, in both directions.
//!
//! Registers travel big-endian, so a property's wire bytes are its words'
//! bytes in address order. The endianness then says how those bytes make
//! the value (A is the value's most significant byte):
//! BigEndian ABCD, BigEndianSwap BADC (bytes swapped within each word),
//! LittleEndian DCBA (all bytes reversed), LittleEndianSwap CDAB (word order
//! reversed). Each of these is its own inverse, so one function reorders
//! both ways.
//!
//! Bits (coils, discrete inputs) as text: `binaryString` is one `0`/`1` per
//! bit in address order; `hexString` is the bits packed eight to a byte,
//! first address in the lowest bit, as Modbus packs them on the wire.

use devicelink_adaptor_runtime::{
    bytes::{self, text_as_sized_bytes},
    value::{boolean, bytes_as_text},
};
pub use devicelink_adaptor_runtime::{
    bytes::{Layout, Reading, reorder},
    value::TextForm,
};
use devicelink_api::property::Endianness;
use serde_json::Value;

/// The value held in `words` (exactly the property's registers).
pub fn decode_words(layout: Layout, words: &[u16], endianness: Endianness) -> Reading {
    bytes::decode(
        layout,
        words.iter().flat_map(|w| w.to_be_bytes()).collect(),
        endianness,
    )
}

/// The value held in `bits` (exactly the property's coils or inputs).
pub fn decode_bits(layout: Layout, bits: &[bool]) -> Reading {
    match layout {
        Layout::Text(TextForm::Binary) => {
            Reading::Text(bits.iter().map(|b| if *b { '1' } else { '0' }).collect())
        }
        Layout::Text(form) => Reading::Text(bytes_as_text(&pack_bits(bits), form)),
        _ => Reading::Bool(bits.first().copied().unwrap_or(false)),
    }
}

/// The registers to write for `value`: a JSON number, boolean or string
/// (numbers may also come as decimal strings, as the spec's `value` does).
pub fn encode_words(
    layout: Layout,
    value: &Value,
    words: usize,
    endianness: Endianness,
) -> Result<Vec<u16>, String> {
    let bytes = bytes::encode(layout, value, words * 2, endianness)?;
    Ok(bytes
        .chunks_exact(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]))
        .collect())
}

/// The coils to write for `value`.
pub fn encode_bits(layout: Layout, value: &Value, count: usize) -> Result<Vec<bool>, String> {
    match layout {
        Layout::Bool => Ok(vec![boolean(value)?]),
        Layout::Text(TextForm::Binary) => {
            let text = value
                .as_str()
                .ok_or_else(|| format!("expects a string of 0 and 1, not {value}"))?;
            if text.len() != count || !text.bytes().all(|b| b == b'0' || b == b'1') {
                return Err(format!(
                    "expects exactly {count} binary digits (one per coil), not {text:?}"
                ));
            }
            Ok(text.bytes().map(|b| b == b'1').collect())
        }
        Layout::Text(form) => {
            let text = value
                .as_str()
                .ok_or_else(|| format!("expects a string, not {value}"))?;
            let bytes = text_as_sized_bytes(text, form, count.div_ceil(8))?;
            Ok((0..count)
                .map(|i| bytes[i / 8] & (1 << (i % 8)) != 0)
                .collect())
        }
        _ => Err("coils hold booleans or bit strings only".into()),
    }
}

/// Bits packed eight to a byte, first bit lowest, as on the wire.
fn pack_bits(bits: &[bool]) -> Vec<u8> {
    bits.chunks(8)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .fold(0u8, |byte, (i, bit)| byte | (u8::from(*bit) << i))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Endianness::*;
    use proptest::prelude::*;
    use serde_json::json;

    const ORDERS: [Endianness; 4] = [BigEndian, BigEndianSwap, LittleEndian, LittleEndianSwap];

    #[test]
    fn the_four_orders_of_one_value() {
        // 0x11223344 as ABCD, BADC, DCBA, CDAB on the wire.
        let cases = [
            (BigEndian, [0x1122, 0x3344]),
            (BigEndianSwap, [0x2211, 0x4433]),
            (LittleEndian, [0x4433, 0x2211]),
            (LittleEndianSwap, [0x3344, 0x1122]),
        ];
        for (order, words) in cases {
            assert_eq!(
                decode_words(Layout::Unsigned(4), &words, order),
                Reading::Unsigned(0x1122_3344),
                "{order:?}"
            );
            assert_eq!(
                encode_words(Layout::Unsigned(4), &json!(0x1122_3344), 2, order).unwrap(),
                words,
                "{order:?}"
            );
        }
    }

    #[test]
    fn sixty_four_bit_word_swap_reverses_all_four_words() {
        let words = [0x7788, 0x5566, 0x3344, 0x1122];
        assert_eq!(
            decode_words(Layout::Unsigned(8), &words, LittleEndianSwap),
            Reading::Unsigned(0x1122_3344_5566_7788)
        );
    }

    #[test]
    fn narrow_values_widen_with_their_sign() {
        assert_eq!(
            decode_words(Layout::Signed(2), &[0xfffe], BigEndian),
            Reading::Signed(-2)
        );
        assert_eq!(
            decode_words(Layout::Signed(1), &[0x00ff], BigEndian),
            Reading::Signed(-1)
        );
        assert_eq!(
            encode_words(Layout::Signed(1), &json!(-1), 1, BigEndian).unwrap(),
            [0xffff]
        );
        assert_eq!(
            decode_words(Layout::Unsigned(1), &[0x12ab], BigEndian),
            Reading::Unsigned(0xab)
        );
    }

    #[test]
    fn floats_render_in_their_own_precision() {
        let words = encode_words(Layout::Float(4), &json!(23.4), 2, BigEndian).unwrap();
        assert_eq!(
            decode_words(Layout::Float(4), &words, BigEndian).render(),
            "23.4"
        );
        assert_eq!(words, [0x41bb, 0x3333]);
    }

    #[test]
    fn out_of_range_and_wrong_kinds_are_refused_with_the_reason() {
        let e = encode_words(Layout::Signed(2), &json!(40000), 1, BigEndian).unwrap_err();
        assert!(e.contains("signed 16-bit"), "{e}");
        let e = encode_words(Layout::Unsigned(2), &json!(-1), 1, BigEndian).unwrap_err();
        assert!(e.contains("unsigned 16-bit"), "{e}");
        let e = encode_words(
            Layout::Text(TextForm::Utf8),
            &json!("too long"),
            2,
            BigEndian,
        )
        .unwrap_err();
        assert!(e.contains("at most 4"), "{e}");
        let e = encode_words(Layout::Text(TextForm::Hex), &json!("abc"), 1, BigEndian).unwrap_err();
        assert!(e.contains("pairs"), "{e}");
        assert!(encode_words(Layout::Bool, &json!("maybe"), 1, BigEndian).is_err());
    }

    #[test]
    fn strings_drop_their_padding_and_get_it_back() {
        let words =
            encode_words(Layout::Text(TextForm::Utf8), &json!("abc"), 3, BigEndian).unwrap();
        assert_eq!(words, [0x6162, 0x6300, 0x0000]);
        assert_eq!(
            decode_words(Layout::Text(TextForm::Utf8), &words, BigEndian),
            Reading::Text("abc".into())
        );
    }

    #[test]
    fn bits_as_text() {
        let bits = [true, false, false, false, false, false, false, false, true];
        assert_eq!(
            decode_bits(Layout::Text(TextForm::Binary), &bits),
            Reading::Text("100000001".into())
        );
        assert_eq!(
            decode_bits(Layout::Text(TextForm::Hex), &bits),
            Reading::Text("0101".into())
        );
        assert_eq!(
            encode_bits(Layout::Text(TextForm::Hex), &json!("0101"), 9).unwrap(),
            bits
        );
    }

    fn layouts() -> impl Strategy<Value = (Layout, usize)> {
        prop_oneof![
            (prop::sample::select(vec![1usize, 2, 4, 8]))
                .prop_map(|n| (Layout::Signed(n), n.div_ceil(2))),
            (prop::sample::select(vec![1usize, 2, 4, 8]))
                .prop_map(|n| (Layout::Unsigned(n), n.div_ceil(2))),
            (prop::sample::select(vec![4usize, 8])).prop_map(|n| (Layout::Float(n), n / 2)),
            Just((Layout::Bool, 1)),
            (1usize..8).prop_map(|w| (Layout::Text(TextForm::Hex), w)),
            (1usize..8).prop_map(|w| (Layout::Text(TextForm::Binary), w)),
            (1usize..8).prop_map(|w| (Layout::Text(TextForm::Base64), w)),
        ]
    }

    proptest! {
        /// Whatever a register holds, decoding it and writing the value
        /// back gives the same registers (for every type and order whose
        /// value keeps all its bits).
        #[test]
        fn register_values_round_trip(
            (layout, words) in layouts(),
            order in prop::sample::select(ORDERS.to_vec()),
            raw in prop::collection::vec(any::<u16>(), 8),
        ) {
            let mut held = raw[..words].to_vec();
            // Narrow integers and booleans use only part of their register:
            // start from what writing them produces.
            match layout {
                Layout::Bool => held = encode_words(layout, &json!(raw[0] & 1 == 1), 1, order).unwrap(),
                Layout::Signed(1) | Layout::Unsigned(1) => {
                    let v = decode_words(layout, &held, order);
                    held = encode_words(layout, &serde_json::to_value(v.number().unwrap() as i64).unwrap(), 1, order).unwrap();
                }
                _ => {}
            }
            let reading = decode_words(layout, &held, order);
            if let Reading::Float32(f) = reading { prop_assume!(f.is_finite()); }
            if let Reading::Float64(f) = reading { prop_assume!(f.is_finite()); }
            let value = match &reading {
                Reading::Signed(v) => json!(v),
                Reading::Unsigned(v) => json!(v),
                Reading::Float32(v) => json!(f64::from(*v)),
                Reading::Float64(v) => json!(v),
                Reading::Bool(v) => json!(v),
                Reading::Text(v) => json!(v),
            };
            prop_assert_eq!(encode_words(layout, &value, words, order).unwrap(), held);
        }

        /// No JSON value makes the encoders panic.
        #[test]
        fn encoding_never_panics(
            (layout, words) in layouts(),
            text in ".{0,40}",
            n in any::<f64>(),
        ) {
            for value in [json!(text), json!(n), json!(null), json!([1]), json!(true)] {
                let _ = encode_words(layout, &value, words, BigEndian);
                let _ = encode_bits(layout, &value, words * 8);
            }
        }
    }
}
