//! Leader election over a coordination.k8s.io Lease, so that two or more
//! replicas can run and exactly one reconciles.
//!
//! The lease lasts 10 s and is renewed 3 s before it ends: a leader that dies
//! without releasing it is replaced within about 10 s; one that shuts down
//! cleanly releases it and is replaced at once.

use std::future::Future;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tracing::info;

const LEASE_NAME: &str = "devicelink-operator";
const LEASE_SECONDS: u64 = 10;
const RENEW_BEFORE_END_SECONDS: u64 = 3;

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("leader lease {namespace}/{LEASE_NAME}: {source}")]
    Lease {
        namespace: String,
        #[source]
        source: LeaseManagerError,
    },
    #[error("lost the leader lease to another replica; stopping so that only one reconciles")]
    Lost,
}

/// Waits for the lease, then runs `work` while holding it. Returns when
/// `work` ends (the lease is released) or fails when the lease is lost.
pub async fn while_leading<F, Fut>(
    client: Client,
    namespace: &str,
    identity: &str,
    shutdown: impl Future<Output = ()>,
    on_change: impl Fn(bool),
    work: F,
) -> Result<(), LeaderError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let lease_error = |source| LeaderError::Lease {
        namespace: namespace.to_string(),
        source,
    };
    let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(RENEW_BEFORE_END_SECONDS)
        .with_field_manager(format!("devicelink-operator-lease-{identity}"))
        .build()
        .await
        .map_err(lease_error)?;
    let (mut leading, task) = manager.watch().await;

    info!(lease = %format!("{namespace}/{LEASE_NAME}"), %identity, "waiting for the leader lease");
    let acquired = async {
        while !*leading.borrow_and_update() {
            if leading.changed().await.is_err() {
                return false;
            }
        }
        true
    };
    tokio::select! {
        acquired = acquired => if !acquired {
            // The lease task ended on its own: report why.
            return Err(match task_result(task).await {
                Err(source) => lease_error(source),
                Ok(()) => LeaderError::Lost,
            });
        },
        () = shutdown => {
            drop(leading);
            return task_result(task).await.map_err(lease_error);
        }
    }
    info!(%identity, "acquired the leader lease; reconciling");
    on_change(true);

    let lost = async {
        loop {
            if leading.changed().await.is_err() || !*leading.borrow_and_update() {
                return;
            }
        }
    };
    let outcome = tokio::select! {
        () = work() => Ok(()),
        () = lost => Err(LeaderError::Lost),
    };
    on_change(false);
    // Dropping the receiver makes the lease task release the lease and end.
    drop(leading);
    task_result(task).await.map_err(lease_error)?;
    outcome
}

async fn task_result(
    task: tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
) -> Result<(), LeaseManagerError> {
    match task.await {
        Ok(result) => result.map(|_| ()),
        // The lease task panicked or was cancelled; the lease then simply expires.
        Err(_) => Ok(()),
    }
}
