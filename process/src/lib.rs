//! What every devicelink program (operator, adaptors, console, bridge)
//! does alike: where its logs go, and how it stops when its pod is deleted.

use std::time::Duration;

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use tracing_subscriber::EnvFilter;

/// Logs to stdout as `RUST_LOG` says (the operator sets it on adaptor
/// pods), `info` by default; colours only for a person at a terminal, not
/// in container logs.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .try_init();
}

/// Resolves on SIGTERM (what a pod gets when it is deleted) or Ctrl-C.
pub async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("can install a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The stop signal, for every part of the program to wait on; once it
/// comes, the program ends if it has not stopped `within` (a pod's grace is
/// 30 s by default), whatever it still waits for. Needs a Tokio runtime.
pub fn bounded_stop(within: Duration) -> Shared<BoxFuture<'static, ()>> {
    let stop = stop_signal().boxed().shared();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            stop.await;
            exit_unless_stopped_within(within);
        }
    });
    stop
}

/// Ends the process if it is still running `within` from now. A thread of
/// its own, not a task: a runtime that cannot stop (a task that does not
/// yield, a blocking call that does not return) cannot stop it either.
fn exit_unless_stopped_within(within: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(within);
        tracing::warn!(?within, "not stopped in time; exiting");
        std::process::exit(1);
    });
}
