//! Cells an adaptor keeps for each of thousands of devices.
//!
//! tokio's channels are made for a few busy channels, not for ten thousand
//! quiet ones: an empty `mpsc` channel takes about 800 bytes (its halves
//! are padded to cache lines and its first block of 32 slots is allocated
//! up front), a `watch` channel about 340 bytes plus its value (eight
//! `Notify`s to spread its receivers). A device is written to a few times
//! a day and its spec changes rarely, so these cells keep one lock, one
//! `Notify` and nothing allocated while nothing waits in them.

pub mod latest;
pub mod mailbox;

pub use mailbox::Mailbox;
