//! GATT UUIDs as specs write them: 16-bit (`2A19`), 32-bit, 128-bit with
//! or without dashes (Octopus writes 32 hex digits).

use uuid::Uuid;

/// The Bluetooth base UUID, which 16- and 32-bit UUIDs are short for.
const BASE: u128 = 0x0000_0000_0000_1000_8000_0080_5f9b_34fb;

pub fn parse(text: &str) -> Result<Uuid, String> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let bad = || format!("{text:?} is not a UUID (4, 8 or 32 hex digits, or the dashed form)");
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    match hex.len() {
        4 | 8 => {
            let short = u128::from_str_radix(&hex, 16).map_err(|_| bad())?;
            Ok(Uuid::from_u128(BASE | (short << 96)))
        }
        32 => Ok(Uuid::from_u128(
            u128::from_str_radix(&hex, 16).map_err(|_| bad())?,
        )),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_names_the_same_uuid() {
        let battery = "00002a19-0000-1000-8000-00805f9b34fb";
        assert_eq!(parse("2A19").unwrap().to_string(), battery);
        assert_eq!(parse("00002a19").unwrap().to_string(), battery);
        assert_eq!(
            parse("00002A1900001000800000805F9B34FB")
                .unwrap()
                .to_string(),
            battery
        );
        assert_eq!(parse(battery).unwrap().to_string(), battery);
        assert!(parse("battery").is_err());
        assert!(parse("2A1").is_err());
    }
}
