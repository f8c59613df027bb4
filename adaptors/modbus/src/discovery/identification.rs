//! What a device says it is, from its Read Device Identification (43/14)
//! answers (tokio-modbus reads the frames).
//!
//! The standard leaves devices room: one answers only the basic stream,
//! another the regular one with the basic objects in it, a third splits
//! its answer over pages ("more follows"), and many answer the function
//! with exception 01 or not at all. The probe asks for the basic stream
//! first and for the regular one only when the conformity level says the
//! device has it.

use std::collections::BTreeMap;

use tokio_modbus::prelude::{ConformityLevel, ReadDeviceIdentificationResponse};

/// What a device says it is: every object read, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub objects: BTreeMap<u8, String>,
}

impl Identity {
    pub const VENDOR_NAME: u8 = 0x00;
    pub const PRODUCT_CODE: u8 = 0x01;
    pub const REVISION: u8 = 0x02;
    pub const VENDOR_URL: u8 = 0x03;
    pub const PRODUCT_NAME: u8 = 0x04;

    /// Takes in one answer's objects; empty ones and padding are dropped,
    /// text that is not UTF-8 is shown as well as it can be.
    pub fn add(&mut self, answer: &ReadDeviceIdentificationResponse) {
        for object in &answer.device_id_objects {
            let text = String::from_utf8_lossy(&object.value).trim().to_string();
            if !text.is_empty() {
                self.objects.insert(object.id, text);
            }
        }
    }

    pub fn get(&self, id: u8) -> Option<&str> {
        self.objects.get(&id).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// Whether a device at `level` has the regular stream.
pub fn has_regular(level: ConformityLevel) -> bool {
    !matches!(
        level,
        ConformityLevel::BasicIdentification | ConformityLevel::BasicIdentificationStreamOnly
    )
}

/// The object to ask for next, if the answer says more follow and names
/// one past those asked for (a device naming one already sent would loop).
pub fn next_object(answer: &ReadDeviceIdentificationResponse, asked: u8) -> Option<u8> {
    (answer.more_follows && answer.next_object_id > asked).then_some(answer.next_object_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_modbus::prelude::{DeviceIdObject, ReadCode};

    fn answer(more: bool, next: u8, objects: &[(u8, &str)]) -> ReadDeviceIdentificationResponse {
        ReadDeviceIdentificationResponse {
            read_code: ReadCode::Basic,
            conformity_level: ConformityLevel::BasicIdentification,
            more_follows: more,
            next_object_id: next,
            device_id_objects: objects
                .iter()
                .map(|(id, text)| DeviceIdObject {
                    id: *id,
                    value: text.as_bytes().to_vec().into(),
                })
                .collect(),
        }
    }

    #[test]
    fn objects_are_kept_by_id_without_padding_or_empty_ones() {
        let mut identity = Identity::default();
        identity.add(&answer(false, 0, &[(0, "Acme  "), (1, ""), (2, "v1.4")]));
        assert_eq!(identity.get(Identity::VENDOR_NAME), Some("Acme"));
        assert_eq!(identity.get(Identity::PRODUCT_CODE), None);
        assert_eq!(identity.get(Identity::REVISION), Some("v1.4"));
    }

    #[test]
    fn more_pages_are_followed_only_forward() {
        assert_eq!(next_object(&answer(true, 2, &[]), 0), Some(2));
        assert_eq!(next_object(&answer(false, 2, &[]), 0), None);
        assert_eq!(next_object(&answer(true, 0, &[]), 0), None, "a loop");
    }

    #[test]
    fn the_conformity_level_says_whether_the_regular_stream_is_there() {
        assert!(!has_regular(ConformityLevel::BasicIdentificationStreamOnly));
        assert!(!has_regular(ConformityLevel::BasicIdentification));
        assert!(has_regular(ConformityLevel::RegularIdentification));
        assert!(has_regular(
            ConformityLevel::ExtendedIdentificationStreamOnly
        ));
    }
}
