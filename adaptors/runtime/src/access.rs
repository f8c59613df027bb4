//! When a property is read and written, from its `accessModes` and
//! `readOnly`, the same for every adaptor.

use devicelink_api::property::AccessMode;
use devicelink_mqtt::write::Writes;

/// When a property is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// Every sync interval, or on every change where the protocol notifies
    /// (ReadMany, Notify, or no access modes).
    Every,
    /// Once after connecting (ReadOnce).
    Once,
    /// Never (only Write access modes).
    Never,
}

/// Whether and when a property is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Read-only: readOnly: true, access modes without a Write mode, or a
    /// place on the device that cannot be written.
    Never,
    /// The spec's value is written when it is set or changed, and every
    /// write from MQTT is applied (writable, without access modes).
    OnChange,
    /// Written once (WriteOnce): the spec's value when it is set or
    /// changed; without one, the first write from MQTT, until the
    /// property's spec changes.
    Once,
    /// The spec's value is written every sync interval (WriteMany).
    Every,
}

/// The read and write modes of a property; `writable` says whether the
/// place it lives can be written at all.
pub fn modes(
    modes: &[AccessMode],
    read_only: Option<bool>,
    writable: bool,
) -> (ReadMode, WriteMode) {
    let write = if !writable || read_only == Some(true) {
        WriteMode::Never
    } else if modes.contains(&AccessMode::WriteMany) {
        WriteMode::Every
    } else if modes.contains(&AccessMode::WriteOnce) {
        WriteMode::Once
    } else if modes.is_empty() {
        WriteMode::OnChange
    } else {
        WriteMode::Never
    };
    let read = if modes.is_empty()
        || modes.contains(&AccessMode::ReadMany)
        || modes.contains(&AccessMode::Notify)
    {
        ReadMode::Every
    } else if modes.contains(&AccessMode::ReadOnce) {
        ReadMode::Once
    } else {
        ReadMode::Never
    };
    (read, write)
}

/// The access modes in effect, as the status shows them (`read` Every is
/// `every_read`: ReadMany for polled protocols, Notify for subscriptions).
pub fn effective(read: ReadMode, write: WriteMode, every_read: AccessMode) -> Vec<AccessMode> {
    let read = match read {
        ReadMode::Every => Some(every_read),
        ReadMode::Once => Some(AccessMode::ReadOnce),
        ReadMode::Never => None,
    };
    let write = match write {
        WriteMode::Never => None,
        WriteMode::Once => Some(AccessMode::WriteOnce),
        // Written as often as asked, from MQTT.
        WriteMode::OnChange => Some(AccessMode::WriteMany),
        WriteMode::Every => Some(AccessMode::WriteMany),
    };
    read.into_iter().chain(write).collect()
}

/// How writes from MQTT treat a property written in `write` mode, whose
/// spec gives a value or not.
pub fn mqtt_writes(write: WriteMode, spec_value: bool) -> Writes {
    match (write, spec_value) {
        (WriteMode::Never, _) => Writes::No,
        (WriteMode::OnChange, _) | (WriteMode::Every, false) => Writes::Yes,
        (WriteMode::Once, false) => Writes::Once,
        (WriteMode::Once, true) => Writes::SpecOnce,
        (WriteMode::Every, true) => Writes::SpecEvery,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccessMode::*;

    #[test]
    fn write_once_is_its_own_mode_and_no_modes_write_freely() {
        assert_eq!(modes(&[ReadMany, WriteOnce], None, true).1, WriteMode::Once);
        assert_eq!(modes(&[], None, true).1, WriteMode::OnChange);
        assert_eq!(
            modes(&[WriteOnce, WriteMany], None, true).1,
            WriteMode::Every
        );
        assert_eq!(modes(&[WriteOnce], Some(true), true).1, WriteMode::Never);
        assert_eq!(
            effective(ReadMode::Every, WriteMode::OnChange, ReadMany),
            vec![ReadMany, WriteMany]
        );
        assert_eq!(
            effective(ReadMode::Never, WriteMode::Once, ReadMany),
            vec![WriteOnce]
        );
    }

    #[test]
    fn a_spec_value_that_holds_refuses_mqtt_writes() {
        assert_eq!(mqtt_writes(WriteMode::Once, false), Writes::Once);
        assert_eq!(mqtt_writes(WriteMode::Once, true), Writes::SpecOnce);
        assert_eq!(mqtt_writes(WriteMode::Every, true), Writes::SpecEvery);
        assert_eq!(mqtt_writes(WriteMode::Every, false), Writes::Yes);
        assert_eq!(mqtt_writes(WriteMode::OnChange, true), Writes::Yes);
        assert_eq!(mqtt_writes(WriteMode::Never, false), Writes::No);
    }
}
