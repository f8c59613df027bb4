//! Keeps a device's task running: a task that panics would otherwise stay
//! dead with its last condition (often Healthy) while the device goes
//! unread. The panic becomes DeviceConnected=False/InternalError (and its
//! Warning Event), a log line, and a new run after a backoff; a run that
//! returns (its device was removed) is done.
//!
//! The panic is caught in the device's own task rather than by a second
//! task watching it: one task less for each of thousands of devices.

use std::{any::Any, future::Future, panic::AssertUnwindSafe, sync::Arc};

use devicelink_api::Outcome;
use futures::FutureExt;
use tracing::error;

use crate::{Backoff, Reason};

/// Runs `drive(make())` until it returns; after each panic, waits (1 s,
/// doubling to 10 s) and starts it again with a new context. Aborting the
/// supervisor's task aborts the run.
pub(crate) async fn supervise<C, F, Fut>(
    device: impl std::fmt::Display,
    make: impl Fn() -> C,
    drive: Arc<F>,
    connected: impl Fn(Outcome),
) where
    F: Fn(C) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut backoff = Backoff::new();
    loop {
        // The context is made anew for each run, so nothing a panic left
        // half done is used again.
        let panic = match AssertUnwindSafe(drive(make())).catch_unwind().await {
            Ok(()) => return,
            Err(payload) => what(payload),
        };
        let wait = backoff.after_failure();
        error!(%device, %panic, retry_in = ?wait, "the device's task panicked; starting it again");
        connected(Reason::InternalError.outcome(format!(
            "the adaptor's task for this device failed ({panic}); started again in {}s",
            wait.as_secs()
        )));
        tokio::time::sleep(wait).await;
    }
}

/// The message a panic carried.
pub(crate) fn what(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast::<&'static str>()
            .map(|s| s.to_string())
            .unwrap_or_else(|_| "a panic without a message".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };
    use tokio::sync::watch;

    /// How long a test waits for what it asserts.
    const WAIT: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_panicking_task_is_reported_and_started_again() {
        let runs = Arc::new(AtomicUsize::new(0));
        let (connected, mut seen) = watch::channel(None);
        let counted = runs.clone();
        // Panics on its first two runs, then returns (its device removed).
        let drive = Arc::new(move |run: usize| async move {
            assert!(run >= 2, "bad value in run {run}");
        });
        let supervisor = tokio::spawn(supervise(
            "ns/fan",
            move || counted.fetch_add(1, Ordering::SeqCst),
            drive,
            move |outcome| {
                connected.send_replace(Some(outcome));
            },
        ));
        let outcome = tokio::time::timeout(WAIT, async {
            seen.changed().await.unwrap();
            seen.borrow_and_update().clone().unwrap()
        })
        .await
        .unwrap();
        assert_eq!(outcome.reason, "InternalError");
        assert!(
            outcome.message.contains("bad value in run 0")
                && outcome.message.contains("again in 1s"),
            "{}",
            outcome.message
        );
        tokio::time::timeout(WAIT, supervisor)
            .await
            .expect("the supervisor ends once the task returns")
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let last = seen.borrow().clone().unwrap();
        assert!(
            last.message.contains("run 1") && last.message.contains("again in 2s"),
            "{}",
            last.message
        );
    }

    #[tokio::test]
    async fn aborting_the_supervisor_aborts_its_task() {
        let (connected, _) = watch::channel(None);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let tx = std::sync::Mutex::new(Some(tx));
        let drive = Arc::new(move |_: ()| {
            // Holds the sender until aborted: dropping it is the sign.
            let held = tx.lock().unwrap().take();
            async move {
                let _held = held;
                std::future::pending::<()>().await
            }
        });
        let supervisor = tokio::spawn(supervise(
            "ns/fan",
            || (),
            drive,
            move |outcome| {
                connected.send_replace(Some(outcome));
            },
        ));
        tokio::task::yield_now().await;
        supervisor.abort();
        tokio::time::timeout(WAIT, rx)
            .await
            .expect("the task was aborted")
            .expect_err("the sender was dropped, not used");
    }
}
