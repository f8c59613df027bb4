//! Saves numbered messages into a File store as fast as the disk takes
//! them, until killed: the other half of `tests/store_killed_mid_write.rs`.
//!
//! `store_writer DIR`: message n has topic `t/n` and a payload of n's
//! decimal digits repeated to 64 KiB, so a reader can tell each one whole.

use std::{
    sync::{Arc, mpsc},
    time::Duration,
};

use devicelink_mqtt::{FileStore, outbox::Message};
use rumqttc::QoS;

fn main() {
    let dir = std::env::args().nth(1).expect("usage: store_writer DIR");
    let store = FileStore::open(dir.into()).expect("open the store");
    for n in 1u64.. {
        let (done, saved) = mpsc::channel();
        store.save(
            n,
            &message(n),
            Arc::new(move |r: std::io::Result<()>| {
                let _ = done.send(r);
            }),
        );
        saved
            .recv_timeout(Duration::from_secs(30))
            .expect("the writer thread answers")
            .expect("saved");
    }
}

/// Message `n` as the writer makes it.
pub fn message(n: u64) -> Message {
    let digits = n.to_string();
    Message {
        topic: format!("t/{n}"),
        qos: QoS::AtLeastOnce,
        retain: false,
        payload: digits.bytes().cycle().take(64 * 1024).collect(),
        correlation: None,
    }
}
