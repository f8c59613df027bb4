//! kill -9 in the middle of File store writes: what is on disk afterwards
//! loads as whole messages, numbered 1 to n without a gap, each exactly as
//! written, and the write the kill cut short leaves nothing behind once
//! the store is loaded.
//!
//! The writer is the `store_writer` example (built by `cargo test`), killed
//! after it has saved a few hundred messages, while it is saving more.

use std::{path::PathBuf, process::Command, time::Duration};

use devicelink_mqtt::FileStore;

fn writer() -> PathBuf {
    // target/<profile>/deps/<this test> → target/<profile>/examples/store_writer
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples/store_writer");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p devicelink-mqtt --examples` (make test builds all targets)",
        path.display()
    );
    path
}

fn stored(dir: &PathBuf) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[test]
fn messages_saved_before_a_kill_load_whole_and_in_order() {
    for round in 0..3 {
        let dir = std::env::temp_dir().join(format!(
            "devicelink-store-kill-{}-{round}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = Command::new(writer()).arg(&dir).spawn().unwrap();
        // Kill at a different moment each round.
        let wanted = 100 + 37 * round;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while stored(&dir) < wanted {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer saved only {} messages in 120 s",
                stored(&dir)
            );
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the writer stopped by itself: {status}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let store = FileStore::open(dir.clone()).unwrap();
        let loaded = store.load().unwrap();
        // The files counted may include the temporary one being written.
        assert!(loaded.len() + 1 >= wanted, "{} loaded", loaded.len());
        for (i, (seq, message)) in loaded.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1, "no gap before message {seq}");
            let digits = seq.to_string();
            assert_eq!(message.topic, format!("t/{seq}"));
            assert_eq!(message.payload.len(), 64 * 1024, "message {seq} whole");
            assert!(
                message.payload.starts_with(digits.as_bytes())
                    && message
                        .payload
                        .iter()
                        .all(|b| digits.as_bytes().contains(b)),
                "message {seq} as written"
            );
        }
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.ends_with(".msg"))
            .collect();
        assert_eq!(left, Vec::<String>::new(), "the cut-short write is gone");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
