//! The File store: one device's unacknowledged messages on disk, so that an
//! adaptor restart during a broker outage loses none.
//!
//! One file per message, named by its sequence number, written to a
//! temporary name, synced, renamed into place, and the directory synced:
//! a crash leaves either the whole message or none of it. Each record says
//! its lengths and ends with a CRC-32C of the rest, so a file cut short or
//! damaged on disk is not taken for a message. A file is removed when the
//! broker acknowledges its message. Temporary files a crash left are
//! removed on loading; other files this version cannot read are left alone
//! and logged, never deleted.
//!
//! Saving and removing happen on one writer thread shared by every store,
//! in the order asked, so that a slow or full disk never stalls the async
//! threads that run devices and connections; a failed save is reported to
//! the store's owner, which keeps the message in memory.

use std::{
    fs, io,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock, mpsc},
    time::Duration,
};

use rumqttc::QoS;
use tracing::warn;

use crate::message::Message;

/// Records with lengths and a checksum.
const MAGIC: &[u8; 4] = b"DLM2";
/// The first version's records (no payload length, no checksum), still read.
const MAGIC_V1: &[u8; 4] = b"DLM1";
const SUFFIX: &str = ".msg";
const TEMPORARY: &str = "tmp";
const CHECKSUM: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

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
            if path.extension().is_some_and(|e| e == TEMPORARY) {
                // A write a crash cut short: its message was never stored.
                let _ = fs::remove_file(&path);
                continue;
            }
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

    /// Saves `message` as number `seq`, on the writer thread; `saved` hears
    /// how it went.
    pub fn save(&self, seq: u64, message: &Message, saved: Saved) {
        writer().send(Job::Save {
            dir: self.dir.clone(),
            path: self.path(seq),
            record: encode(message),
            saved,
        });
    }

    /// Removes message `seq` (after any save of it asked before).
    pub fn remove(&self, seq: u64) {
        writer().send(Job::Remove(self.path(seq)));
    }

    /// Removes the directory and everything in it (the device is gone),
    /// after everything asked before.
    pub fn destroy(&self) {
        writer().send(Job::Destroy(self.dir.clone()));
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}{SUFFIX}"))
    }
}

/// Told the outcome of a save.
pub type Saved = Arc<dyn Fn(io::Result<()>) + Send + Sync>;

enum Job {
    Save {
        dir: PathBuf,
        path: PathBuf,
        record: Vec<u8>,
        saved: Saved,
    },
    Remove(PathBuf),
    Destroy(PathBuf),
    Flush(mpsc::Sender<()>),
}

struct Writer(mpsc::Sender<Job>);

impl Writer {
    fn send(&self, job: Job) {
        // The thread lives as long as the process.
        let _ = self.0.send(job);
    }
}

fn writer() -> &'static Writer {
    static WRITER: OnceLock<Writer> = OnceLock::new();
    WRITER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("mqtt-file-store".into())
            .spawn(move || {
                for job in queue {
                    // One job's panic must not stop every store's writes.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(job))).is_err()
                    {
                        warn!("a File store job panicked; the writer goes on");
                    }
                }
            })
            .expect("start the File store writer thread");
        Writer(jobs)
    })
}

fn run(job: Job) {
    match job {
        Job::Save {
            dir,
            path,
            record,
            saved,
        } => saved(write_durably(&dir, &path, &record)),
        Job::Remove(path) => {
            if let Err(e) = fs::remove_file(&path)
                && e.kind() != io::ErrorKind::NotFound
            {
                warn!(path = %path.display(), error = %e, "stored MQTT message not removed");
            }
        }
        Job::Destroy(dir) => {
            if let Err(e) = fs::remove_dir_all(&dir)
                && e.kind() != io::ErrorKind::NotFound
            {
                warn!(dir = %dir.display(), error = %e, "MQTT store not removed");
            }
        }
        Job::Flush(done) => {
            let _ = done.send(());
        }
    }
}

fn write_durably(dir: &Path, path: &Path, record: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension(TEMPORARY);
    let written = (|| {
        let mut file = match fs::File::create(&temporary) {
            // The directory went with a deleted device whose successor of
            // the same name opened it again before the removal ran.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dir)?;
                fs::File::create(&temporary)?
            }
            other => other?,
        };
        file.write_all(record)?;
        file.sync_data()?;
        fs::rename(&temporary, path)?;
        // The rename is durable once the directory is.
        fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        // A full disk leaves a part written: do not let it take more room.
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Waits until every save and removal asked so far is done, at most
/// `timeout`; false if they were not (a disk that stopped answering).
pub fn flush(timeout: Duration) -> bool {
    let (done, finished) = mpsc::channel();
    writer().send(Job::Flush(done));
    finished.recv_timeout(timeout).is_ok()
}

fn sequence_of(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(SUFFIX)?
        .parse()
        .ok()
}

/// `DLM2`, qos, retain, topic length and payload length (u32, big
/// endian), topic, payload, CRC-32C of everything before it.
fn encode(message: &Message) -> Vec<u8> {
    let topic = message.topic.as_bytes();
    let mut out = Vec::with_capacity(18 + topic.len() + message.payload.len());
    out.extend_from_slice(MAGIC);
    out.push(message.qos as u8);
    out.push(message.retain as u8);
    out.extend_from_slice(&(topic.len() as u32).to_be_bytes());
    out.extend_from_slice(&(message.payload.len() as u32).to_be_bytes());
    out.extend_from_slice(topic);
    out.extend_from_slice(&message.payload);
    out.extend_from_slice(&CHECKSUM.checksum(&out).to_be_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<Message> {
    if let Some(rest) = bytes.strip_prefix(MAGIC_V1) {
        return decode_v1(rest);
    }
    let (record, sum) = bytes.split_last_chunk::<4>()?;
    if CHECKSUM.checksum(record) != u32::from_be_bytes(*sum) {
        return None;
    }
    let rest = record.strip_prefix(MAGIC)?;
    let (&[qos, retain], rest) = rest.split_first_chunk::<2>()?;
    let (topic_length, rest) = rest.split_first_chunk::<4>()?;
    let (payload_length, rest) = rest.split_first_chunk::<4>()?;
    let topic_length = u32::from_be_bytes(*topic_length) as usize;
    if rest.len() != topic_length.checked_add(u32::from_be_bytes(*payload_length) as usize)? {
        return None;
    }
    let (topic, payload) = rest.split_at(topic_length);
    from_parts(qos, retain, topic, payload)
}

/// A first-version record (after its magic): qos, retain, topic length,
/// topic, payload.
fn decode_v1(rest: &[u8]) -> Option<Message> {
    let (&[qos, retain], rest) = rest.split_first_chunk::<2>()?;
    let (length, rest) = rest.split_first_chunk::<4>()?;
    let length = u32::from_be_bytes(*length) as usize;
    if rest.len() < length {
        return None;
    }
    let (topic, payload) = rest.split_at(length);
    from_parts(qos, retain, topic, payload)
}

fn from_parts(qos: u8, retain: u8, topic: &[u8], payload: &[u8]) -> Option<Message> {
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

    /// A save that must work.
    fn must_work() -> Saved {
        Arc::new(|r: io::Result<()>| r.expect("saved"))
    }

    fn settle() {
        assert!(flush(Duration::from_secs(30)), "the writer thread is stuck");
    }

    #[test]
    fn saved_messages_load_back_in_order_and_removed_ones_stay_gone() {
        let dir = std::env::temp_dir().join(format!("devicelink-store-{}", std::process::id()));
        let store = FileStore::open(dir.clone()).unwrap();
        for seq in [3u64, 1, 20, 7] {
            store.save(seq, &message(seq as u8), must_work());
        }
        store.remove(7);
        settle();
        fs::write(dir.join("notes.txt"), "someone else's").unwrap();
        fs::write(dir.join("00000000000000000099.msg"), "garbage").unwrap();
        let loaded = store.load().unwrap();
        let seqs: Vec<u64> = loaded.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [1, 3, 20]);
        assert_eq!(loaded[2].1, message(20));
        store.destroy();
        settle();
        assert!(!dir.exists());
    }

    #[test]
    fn a_store_opened_again_while_its_old_one_is_being_removed_keeps_its_saves() {
        let dir =
            std::env::temp_dir().join(format!("devicelink-store-again-{}", std::process::id()));
        let old = FileStore::open(dir.clone()).unwrap();
        old.save(1, &message(1), must_work());
        // The device is deleted, and one of the same name comes at once.
        old.destroy();
        let again = FileStore::open(dir.clone()).unwrap();
        again.save(1, &message(2), must_work());
        settle();
        let loaded = again.load().unwrap();
        assert_eq!(loaded, [(1, message(2))]);
        again.destroy();
        settle();
    }

    #[test]
    fn a_file_cut_short_or_damaged_is_not_a_message() {
        let bytes = encode(&message(9));
        assert_eq!(decode(&bytes), Some(message(9)));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert_eq!(decode(&damaged), None, "a bit flipped at {at}");
        }
    }

    #[test]
    fn records_of_the_first_version_are_still_read() {
        let mut v1 = b"DLM1".to_vec();
        v1.extend_from_slice(&[1, 0, 0, 0, 0, 3]);
        v1.extend_from_slice(b"a/bhello");
        let m = decode(&v1).unwrap();
        assert_eq!(
            (m.topic.as_str(), m.payload.as_slice()),
            ("a/b", &b"hello"[..])
        );
    }

    #[test]
    fn a_write_a_crash_cut_short_is_cleared_on_loading() {
        let dir = std::env::temp_dir().join(format!("devicelink-store-tmp-{}", std::process::id()));
        let store = FileStore::open(dir.clone()).unwrap();
        store.save(1, &message(1), must_work());
        settle();
        fs::write(dir.join("00000000000000000002.tmp"), b"DLM2\x01").unwrap();
        let mut damaged = encode(&message(3));
        damaged.truncate(damaged.len() - 2);
        fs::write(dir.join("00000000000000000003.msg"), damaged).unwrap();
        let loaded: Vec<u64> = store.load().unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(loaded, [1], "the whole message only");
        assert!(!dir.join("00000000000000000002.tmp").exists());
        assert!(
            dir.join("00000000000000000003.msg").exists(),
            "left alone for a person to look at"
        );
        store.destroy();
    }

    proptest::proptest! {
        /// Any bytes in a store file: a message or none, never a panic.
        #[test]
        fn any_file_is_read_or_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
