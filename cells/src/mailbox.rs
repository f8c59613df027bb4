//! A bounded queue with one reader at a time: a device's writes from MQTT.
//! Empty, it holds no room for what it may queue (tokio's `mpsc` holds a
//! block of 32 slots from the start).

use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard, OnceLock},
};

use tokio::sync::Notify;

/// Takes up to `bound` items; [`Mailbox::next`] waits for the oldest.
pub struct Mailbox<T> {
    queue: Mutex<VecDeque<T>>,
    bound: usize,
    arrived: Notify,
    /// Rung after an item is queued, for a reader of many mailboxes that
    /// waits on none of them ([`Mailbox::set_doorbell`]).
    doorbell: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl<T> Mailbox<T> {
    pub fn new(bound: usize) -> Self {
        Mailbox {
            queue: Mutex::new(VecDeque::new()),
            bound,
            arrived: Notify::new(),
            doorbell: OnceLock::new(),
        }
    }

    /// Queues `item`, or gives it back if `bound` items wait already.
    pub fn offer(&self, item: T) -> Result<(), T> {
        let mut queue = self.queue();
        if queue.len() >= self.bound {
            return Err(item);
        }
        queue.push_back(item);
        drop(queue);
        // Kept as a permit if the reader is not waiting yet.
        self.arrived.notify_one();
        if let Some(ring) = self.doorbell.get() {
            ring();
        }
        Ok(())
    }

    /// Calls `ring` after every item queued from now on, so that one task
    /// can read many mailboxes with [`Mailbox::try_next`] instead of a
    /// future waiting on each. Set once; later calls change nothing.
    pub fn set_doorbell(&self, ring: impl Fn() + Send + Sync + 'static) {
        let _ = self.doorbell.set(Box::new(ring));
    }

    /// The oldest item, if one waits.
    pub fn try_next(&self) -> Option<T> {
        self.take()
    }

    /// The oldest item, once there is one. Cancel-safe: an item is taken
    /// only by a call that returns it. Meant for one reader at a time.
    pub async fn next(&self) -> T {
        loop {
            if let Some(item) = self.take() {
                return item;
            }
            self.arrived.notified().await;
        }
    }

    fn take(&self) -> Option<T> {
        let mut queue = self.queue();
        let item = queue.pop_front();
        if queue.is_empty() {
            // Gives back the room a burst grew.
            *queue = VecDeque::new();
        }
        item
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<T>> {
        // A queue is whole between two calls, whoever panicked.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{sync::Arc, time::Duration};

    const WAIT: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn items_come_out_in_order_up_to_the_bound() {
        let mailbox = Mailbox::new(2);
        assert_eq!(mailbox.offer(1), Ok(()));
        assert_eq!(mailbox.offer(2), Ok(()));
        assert_eq!(mailbox.offer(3), Err(3), "a third does not fit");
        assert_eq!(mailbox.next().await, 1);
        assert_eq!(mailbox.offer(4), Ok(()));
        assert_eq!(mailbox.next().await, 2);
        assert_eq!(mailbox.next().await, 4);
        assert!(mailbox.queue().is_empty());
        assert_eq!(mailbox.queue().capacity(), 0, "no room kept once empty");
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken_by_an_offer() {
        let mailbox = Arc::new(Mailbox::new(16));
        let reader = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { mailbox.next().await }
        });
        tokio::task::yield_now().await;
        mailbox.offer("write").unwrap();
        let got = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
        assert_eq!(got, "write");
    }

    #[tokio::test]
    async fn a_cancelled_wait_takes_nothing() {
        let mailbox = Mailbox::new(16);
        let waited = tokio::time::timeout(Duration::from_millis(10), mailbox.next()).await;
        assert!(waited.is_err());
        mailbox.offer(7).unwrap();
        assert_eq!(mailbox.next().await, 7);
    }

    #[test]
    fn the_doorbell_rings_for_each_item_queued_and_not_for_refused_ones() {
        let mailbox = Mailbox::new(1);
        let rung = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = rung.clone();
        mailbox.set_doorbell(move || {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        assert_eq!(mailbox.offer(1), Ok(()));
        assert_eq!(mailbox.offer(2), Err(2));
        assert_eq!(rung.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(mailbox.try_next(), Some(1));
        assert_eq!(mailbox.try_next(), None);
    }
}
