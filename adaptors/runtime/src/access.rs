//! When a property is read and written, from its `accessModes` and
//! `readOnly`, the same for every adaptor.

use devicelink_api::property::AccessMode;

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
    /// The spec's value is written when it is set or changed, and writes
    /// from MQTT are applied (WriteOnce, or writable without access modes).
    OnChange,
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
    } else if modes.is_empty() || modes.contains(&AccessMode::WriteOnce) {
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
        WriteMode::OnChange => Some(AccessMode::WriteOnce),
        WriteMode::Every => Some(AccessMode::WriteMany),
    };
    read.into_iter().chain(write).collect()
}
