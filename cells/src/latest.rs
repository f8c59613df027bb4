//! The latest value of something, with notice to its readers when it
//! changes: the subset of `tokio::sync::watch` the adaptors use, the same
//! way round (a reader sees the newest value, not every one), in about 100
//! bytes plus the value instead of about 340.

use std::{
    ops::Deref,
    sync::{
        Arc, OnceLock, RwLock, RwLockReadGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use tokio::sync::Notify;

/// The sender has gone: no value will change any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the sender of the value has gone")
    }
}

impl std::error::Error for Closed {}

struct Shared<T> {
    value: RwLock<T>,
    /// Raised under the value's write lock, so that a reader that holds the
    /// read lock sees the version of the value it reads.
    version: AtomicU64,
    closed: AtomicBool,
    changed: Notify,
    /// Called after each change, for a reader of many values that waits on
    /// none of them ([`Receiver::on_change`]).
    doorbell: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// Changes the value; dropping it tells the readers ([`Receiver::changed`]
/// gives [`Closed`]).
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// Reads the value and waits for it to change. Each receiver has its own
/// idea of which version it has seen.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    seen: u64,
}

/// A value and one receiver of it.
pub fn channel<T>(value: T) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        value: RwLock::new(value),
        version: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        changed: Notify::new(),
        doorbell: OnceLock::new(),
    });
    let receiver = Receiver {
        shared: shared.clone(),
        seen: 0,
    };
    (Sender { shared }, receiver)
}

/// The value, read-locked while this is held.
pub struct Ref<'a, T>(RwLockReadGuard<'a, T>);

impl<T> Deref for Ref<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Shared<T> {
    fn read(&self) -> RwLockReadGuard<'_, T> {
        // A reader or a modifier that panicked left a whole value behind
        // (modifications are in place but never half a value's write).
        self.value.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> Sender<T> {
    /// Changes the value in place if `modify` says it did, and tells the
    /// readers then only.
    pub fn send_if_modified(&self, modify: impl FnOnce(&mut T) -> bool) -> bool {
        let modified = {
            let mut value = self.shared.value.write().unwrap_or_else(|e| e.into_inner());
            let modified = modify(&mut value);
            if modified {
                self.shared.version.fetch_add(1, Ordering::Release);
            }
            modified
        };
        if modified {
            self.shared.changed.notify_waiters();
            if let Some(ring) = self.shared.doorbell.get() {
                ring();
            }
        }
        modified
    }

    /// Changes the value in place and tells the readers.
    pub fn send_modify(&self, modify: impl FnOnce(&mut T)) {
        self.send_if_modified(|value| {
            modify(value);
            true
        });
    }

    /// Replaces the value, tells the readers, and gives the one before.
    pub fn send_replace(&self, value: T) -> T {
        let mut before = None;
        self.send_modify(|now| before = Some(std::mem::replace(now, value)));
        before.expect("send_modify runs its closure")
    }

    /// The value now.
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref(self.shared.read())
    }

    /// A new receiver that has seen the value as it is now.
    pub fn subscribe(&self) -> Receiver<T> {
        let _value = self.shared.read();
        Receiver {
            shared: self.shared.clone(),
            seen: self.shared.version.load(Ordering::Acquire),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.changed.notify_waiters();
    }
}

impl<T> Receiver<T> {
    /// Calls `ring` after every change from now on (outside the value's
    /// lock), so that one task can follow many values without a future
    /// waiting on each. Set once, for all receivers; later calls change
    /// nothing. `ring` should not hold what holds a receiver (a cycle of
    /// `Arc`s is never freed): hold a `Weak`.
    pub fn on_change(&self, ring: impl Fn() + Send + Sync + 'static) {
        let _ = self.shared.doorbell.set(Box::new(ring));
    }

    /// The value now, without marking it seen.
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref(self.shared.read())
    }

    /// The value now, marked seen.
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let value = self.shared.read();
        self.seen = self.shared.version.load(Ordering::Acquire);
        Ref(value)
    }

    /// Whether the value changed since it was last seen; [`Closed`] once
    /// the sender has gone and no unseen change is left.
    pub fn has_changed(&self) -> Result<bool, Closed> {
        if self.shared.version.load(Ordering::Acquire) != self.seen {
            Ok(true)
        } else if self.shared.closed.load(Ordering::Acquire) {
            Err(Closed)
        } else {
            Ok(false)
        }
    }

    /// Waits for a value not seen yet and marks it seen; [`Closed`] once
    /// the sender has gone and no unseen change is left. Cancel-safe.
    pub async fn changed(&mut self) -> Result<(), Closed> {
        loop {
            // Listening before looking: a change made between the look and
            // the wait still wakes it.
            let notified = self.shared.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.has_changed()? {
                self.seen = self.shared.version.load(Ordering::Acquire);
                return Ok(());
            }
            notified.await;
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver {
            shared: self.shared.clone(),
            seen: self.seen,
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("value", &*self.borrow())
            .field("seen", &self.seen)
            .finish()
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("value", &*self.borrow())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_reader_waits_for_the_newest_value_and_sees_it_once() {
        let (tx, mut rx) = channel(0);
        let reader = tokio::spawn(async move {
            rx.changed().await.unwrap();
            let first = *rx.borrow_and_update();
            (first, rx)
        });
        tx.send_replace(1);
        let (first, mut rx) = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
        assert_eq!(first, 1);
        assert_eq!(rx.has_changed(), Ok(false));
        // Two changes while nobody waits are one change to the reader.
        tx.send_modify(|v| *v += 1);
        tx.send_modify(|v| *v += 1);
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow(), 3);
        assert_eq!(rx.has_changed(), Ok(false));
    }

    #[tokio::test]
    async fn an_unmodified_value_wakes_nobody() {
        let (tx, rx) = channel(5);
        assert!(!tx.send_if_modified(|_| false));
        assert_eq!(rx.has_changed(), Ok(false));
        assert!(tx.send_if_modified(|v| {
            *v = 6;
            true
        }));
        assert_eq!(rx.has_changed(), Ok(true));
    }

    #[tokio::test]
    async fn readers_learn_the_sender_is_gone_after_its_last_change() {
        let (tx, mut rx) = channel("a");
        let mut other = tx.subscribe();
        let waiting = tokio::spawn(async move { other.changed().await });
        tokio::task::yield_now().await;
        tx.send_replace("b");
        drop(tx);
        assert_eq!(rx.changed().await, Ok(()));
        assert_eq!(*rx.borrow(), "b");
        assert_eq!(rx.changed().await, Err(Closed));
        let woken = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
        assert_eq!(woken, Ok(()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_change_is_missed_by_a_reader_racing_the_writer() {
        let (tx, mut rx) = channel(0u32);
        let reader = tokio::spawn(async move {
            while *rx.borrow_and_update() < 10_000 {
                rx.changed().await.unwrap();
            }
        });
        for i in 1..=10_000 {
            tx.send_replace(i);
        }
        tokio::time::timeout(WAIT, reader)
            .await
            .expect("the reader saw the last value")
            .unwrap();
    }

    #[test]
    fn on_change_rings_after_each_change_and_not_for_none() {
        let (tx, rx) = channel(0);
        let rung = Arc::new(AtomicU64::new(0));
        let count = rung.clone();
        rx.on_change(move || {
            count.fetch_add(1, Ordering::SeqCst);
        });
        tx.send_replace(1);
        tx.send_modify(|v| *v += 1);
        assert!(!tx.send_if_modified(|_| false));
        assert_eq!(rung.load(Ordering::SeqCst), 2);
        assert_eq!(*rx.borrow(), 2);
    }
}
