//! The File store on a disk that fills up (a 256 KiB tmpfs): saves fail
//! with the disk's own error, the failure is counted and shown in the
//! status, the messages stay in memory and still reach the broker, no
//! half-written file is left to take room, and once there is room again
//! saves work and the status clears.
//!
//! Mounting needs root, as `make test` runs here and in CI.

use std::{path::Path, process::Command, sync::Arc, time::Duration};

use devicelink_mqtt::{
    FileStore, MqttMetrics, Outbox,
    outbox::{DEFAULT_MAX_BYTES, Message},
    publisher::StatusSender,
    store,
};
use rumqttc::QoS;

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = std::env::temp_dir().join(format!("devicelink-full-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a small tmpfs at {} failed (this test needs root, as make test has): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn message(n: usize) -> Message {
    Message {
        topic: "plant/line-1/press".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        // 40 KiB each: six fit in 256 KiB, seven do not.
        payload: vec![b'0' + (n % 10) as u8; 40 * 1024],
        correlation: None,
    }
}

fn settle() {
    assert!(
        store::flush(Duration::from_secs(30)),
        "the writer thread is stuck"
    );
}

#[test]
fn a_full_disk_keeps_messages_in_memory_and_says_so() {
    let disk = Tmpfs::mount("256k");
    let dir = disk.0.join("mqtt/plant/press");
    let metrics = MqttMetrics::default();
    let outbox = Outbox::new(100, metrics.clone());
    let state: StatusSender =
        Arc::new(devicelink_cells::latest::channel(Some(Default::default())).0);
    outbox.report_to(state.clone());
    outbox.configure(
        100,
        DEFAULT_MAX_BYTES,
        Some(FileStore::open(dir.clone()).unwrap()),
    );

    for n in 1..=10 {
        outbox.push(message(n));
    }
    settle();
    assert_eq!(outbox.len(), 10, "every message is still held");
    let on_disk = files(&dir);
    assert!(
        (1..=6).contains(&on_disk.len()),
        "some fit, the rest did not: {on_disk:?}"
    );
    assert!(
        on_disk.iter().all(|f| f.ends_with(".msg")),
        "no half-written file takes room: {on_disk:?}"
    );
    let failed = metrics.failed.get();
    assert_eq!(
        failed as usize,
        10 - on_disk.len(),
        "each failed save counted"
    );
    let buffer = state.borrow().as_ref().unwrap().buffer.clone();
    assert_eq!(
        buffer.as_deref(),
        Some(
            "the File store cannot be written (No space left on device (os error 28)): messages are kept in memory only"
        )
    );

    // The broker takes everything, the files go, and the next save works.
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = sent.clone();
    let generation = outbox
        .connected(
            Box::new(move |m: &Message| {
                seen.lock().unwrap().push(m.payload[0]);
                true
            }),
            false,
            usize::MAX,
        )
        .0;
    for pkid in 1..=10 {
        outbox.sent(generation, pkid);
        outbox.acknowledged(generation, pkid);
    }
    assert_eq!(sent.lock().unwrap().len(), 10, "all ten reached the broker");
    assert!(outbox.is_empty());
    settle();
    assert_eq!(files(&dir), Vec::<String>::new());
    outbox.disconnected(generation);
    outbox.push(message(11));
    settle();
    assert_eq!(files(&dir).len(), 1);
    assert_eq!(state.borrow().as_ref().unwrap().buffer, None);
    outbox.destroy();
    settle();
}
