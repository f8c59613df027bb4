//! Octopus's dataConverter, as its fields say: the bytes from startIndex
//! to endIndex make an unsigned number, most significant first (a range
//! given backwards, endIndex below startIndex, reads the bytes from the
//! end: little-endian), shifted left then right; orderOfOperations is
//! then applied to it like every property's arithmetic.
//!
//! Octopus's own converter turned the bytes into decimal digits and read
//! those as hex, so its results differ (and were 0 without a shift);
//! docs/api.md says how.

use devicelink_api::ble::BluetoothDataConverter;

/// The number the converter makes of `bytes`, or why it cannot.
pub fn convert(converter: &BluetoothDataConverter, bytes: &[u8]) -> Result<u64, String> {
    let start = converter.start_index.unwrap_or(0).max(0) as usize;
    // Omitted, an index is 0, as in Octopus.
    let end = converter.end_index.unwrap_or(0).max(0) as usize;
    let (low, high) = (start.min(end), start.max(end));
    if high >= bytes.len() {
        return Err(format!(
            "dataConverter takes bytes {start} to {end}, but the characteristic gave {} byte(s)",
            bytes.len()
        ));
    }
    if high - low >= 8 {
        return Err(format!(
            "dataConverter takes {} bytes; a number holds at most 8",
            high - low + 1
        ));
    }
    let mut taken: Vec<u8> = bytes[low..=high].to_vec();
    if end < start {
        taken.reverse();
    }
    let raw = taken.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
    let left = converter.shift_left.unwrap_or(0).clamp(0, 63) as u32;
    let right = converter.shift_right.unwrap_or(0).clamp(0, 63) as u32;
    Ok((raw << left) >> right)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn conv(start: i32, end: i32, left: i32, right: i32) -> BluetoothDataConverter {
        BluetoothDataConverter {
            start_index: Some(start),
            end_index: Some(end),
            shift_left: Some(left),
            shift_right: Some(right),
            order_of_operations: vec![],
        }
    }

    #[test]
    fn the_fields_do_what_they_say() {
        // Octopus's humidity sample: bytes 1 then 0, shifted right by 2.
        assert_eq!(
            convert(&conv(1, 0, 0, 2), &[0x34, 0x12]).unwrap(),
            0x1234 >> 2
        );
        assert_eq!(convert(&conv(0, 1, 0, 0), &[0x12, 0x34]).unwrap(), 0x1234);
        assert_eq!(convert(&conv(2, 2, 4, 0), &[0, 0, 0x0f]).unwrap(), 0xf0);
        // Without a shift the number is the bytes (Octopus gave 0).
        assert_eq!(
            convert(&BluetoothDataConverter::default(), &[42]).unwrap(),
            42
        );
    }

    #[test]
    fn out_of_range_indexes_are_named() {
        let e = convert(&conv(0, 3, 0, 0), &[1, 2]).unwrap_err();
        assert!(
            e.contains("bytes 0 to 3, but the characteristic gave 2"),
            "{e}"
        );
        assert!(
            convert(&conv(0, 9, 0, 0), &[0; 10])
                .unwrap_err()
                .contains("at most 8")
        );
    }

    proptest! {
        #[test]
        fn any_bytes_and_fields_convert_or_are_refused(
            bytes in prop::collection::vec(any::<u8>(), 0..12),
            start in 0..16i32, end in 0..16i32, left in 0..64i32, right in 0..64i32,
        ) {
            let _ = convert(&conv(start, end, left, right), &bytes);
        }
    }
}
