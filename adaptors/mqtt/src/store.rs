//! The File store: one device's unacknowledged messages on disk, so that an
//! adaptor restart during a broker outage loses none.
//!
//! One file per message, named by its sequence number, written to a
//! temporary name, synced and renamed into place: a crash leaves either the
//! whole message or none of it. A file is removed when the broker
//! acknowledges its message. Files this version cannot read are left alone
//! and logged, never deleted.

use std::{
    fs, io,
    io::Write,
    path::{Path, PathBuf},
};

use rumqttc::QoS;
use tracing::warn;

use crate::outbox::Message;

const MAGIC: &[u8; 4] = b"DLM1";
const SUFFIX: &str = ".msg";

/// A directory of stored messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// Opens (creating) the directory.
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        Ok(FileStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every stored message, oldest first.
    pub fn load(&self) -> io::Result<Vec<(u64, Message)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(seq) = sequence_of(&path) else {
                continue;
            };
            match fs::read(&path).map(|bytes| decode(&bytes)) {
                Ok(Some(message)) => out.push((seq, message)),
                Ok(None) => warn!(path = %path.display(), "not a stored MQTT message; left alone"),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "stored MQTT message unreadable")
                }
            }
        }
        out.sort_by_key(|(seq, _)| *seq);
        Ok(out)
    }

    pub fn save(&self, seq: u64, message: &Message) -> io::Result<()> {
        let path = self.path(seq);
        let temporary = path.with_extension("tmp");
        let mut file = fs::File::create(&temporary)?;
        file.write_all(&encode(message))?;
        file.sync_data()?;
        fs::rename(&temporary, &path)
    }

    pub fn remove(&self, seq: u64) {
        if let Err(e) = fs::remove_file(self.path(seq))
            && e.kind() != io::ErrorKind::NotFound
        {
            warn!(dir = %self.dir.display(), seq, error = %e, "stored MQTT message not removed");
        }
    }

    /// Removes the directory and everything in it (the device is gone).
    pub fn destroy(&self) {
        if let Err(e) = fs::remove_dir_all(&self.dir)
            && e.kind() != io::ErrorKind::NotFound
        {
            warn!(dir = %self.dir.display(), error = %e, "MQTT store not removed");
        }
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}{SUFFIX}"))
    }
}

fn sequence_of(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(SUFFIX)?
        .parse()
        .ok()
}

/// `DLM1`, qos, retain, topic length (u32, big endian), topic, payload.
fn encode(message: &Message) -> Vec<u8> {
    let topic = message.topic.as_bytes();
    let mut out = Vec::with_capacity(10 + topic.len() + message.payload.len());
    out.extend_from_slice(MAGIC);
    out.push(message.qos as u8);
    out.push(message.retain as u8);
    out.extend_from_slice(&(topic.len() as u32).to_be_bytes());
    out.extend_from_slice(topic);
    out.extend_from_slice(&message.payload);
    out
}

fn decode(bytes: &[u8]) -> Option<Message> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (&[qos, retain], rest) = rest.split_first_chunk::<2>()?;
    let (length, rest) = rest.split_first_chunk::<4>()?;
    let length = u32::from_be_bytes(*length) as usize;
    if rest.len() < length {
        return None;
    }
    let (topic, payload) = rest.split_at(length);
    Some(Message {
        topic: String::from_utf8(topic.to_vec()).ok()?,
        qos: match qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            2 => QoS::ExactlyOnce,
            _ => return None,
        },
        retain: match retain {
            0 => false,
            1 => true,
            _ => return None,
        },
        payload: payload.to_vec(),
        correlation: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8) -> Message {
        Message {
            topic: format!("plant/fan/{n}"),
            qos: QoS::ExactlyOnce,
            retain: n.is_multiple_of(2),
            payload: vec![n; n as usize],
            correlation: None,
        }
    }

    #[test]
    fn saved_messages_load_back_in_order_and_removed_ones_stay_gone() {
        let dir = std::env::temp_dir().join(format!("devicelink-store-{}", std::process::id()));
        let store = FileStore::open(dir.clone()).unwrap();
        for seq in [3u64, 1, 20, 7] {
            store.save(seq, &message(seq as u8)).unwrap();
        }
        store.remove(7);
        fs::write(dir.join("notes.txt"), "someone else's").unwrap();
        fs::write(dir.join("00000000000000000099.msg"), "garbage").unwrap();
        let loaded = store.load().unwrap();
        let seqs: Vec<u64> = loaded.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [1, 3, 20]);
        assert_eq!(loaded[2].1, message(20));
        store.destroy();
        assert!(!dir.exists());
    }

    #[test]
    fn truncated_files_are_not_messages() {
        let bytes = encode(&message(9));
        for cut in 0..bytes.len() - 9 {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode(&bytes), Some(message(9)));
    }
}
