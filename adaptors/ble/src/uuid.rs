//! GATT UUIDs as specs write them: 16-bit (`2A19`), 32-bit, 128-bit with
//! or without dashes (Octopus writes 32 hex digits).

use uuid::Uuid;

pub fn parse(text: &str) -> Result<Uuid, String> {
    devicelink_api::ble::uuid_value(text).map(Uuid::from_u128)
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
