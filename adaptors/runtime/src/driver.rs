//! How the devices of a model are driven once the registry has made their
//! context: a task each running the protocol's `drive` (supervise.rs), or
//! the steps of one task for all of them (steps.rs).

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use devicelink_cells::latest;

use crate::{
    context::{DeviceContext, Handles, Spec},
    model::Model,
    steps::{self, Bell, Doorbell, Steps},
    supervise,
    writer::Report,
};

/// What a device's context is made of; kept by its driver to make a new
/// context for each run of its protocol code.
pub(crate) struct Parts<K> {
    pub(crate) spec: latest::Receiver<Spec<K>>,
    pub(crate) handles: Arc<Handles>,
    pub(crate) report: Arc<Report>,
}

impl<K: Model> Parts<K> {
    fn context(&self) -> DeviceContext<K> {
        DeviceContext::new(self.spec.clone(), self.handles.clone(), self.report.clone())
    }
}

/// Drives the devices of model `K`.
pub(crate) trait Driver<K: Model>: Send + 'static {
    /// Starts driving a device. A stepped device returns the bell to ring
    /// after each change of its spec, and when it is removed.
    fn begin(&self, parts: Parts<K>) -> Option<Bell>;
}

/// A task per device, running `drive` (supervised: a panic starts it
/// again).
pub(crate) struct Tasks<F>(pub(crate) Arc<F>);

impl<K, F, Fut> Driver<K> for Tasks<F>
where
    K: Model,
    F: Fn(DeviceContext<K>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn begin(&self, parts: Parts<K>) -> Option<Bell> {
        let report = parts.report.clone();
        let connected = {
            let report = report.clone();
            move |outcome| report.set_connected(outcome)
        };
        // Not kept: the task ends when the device's watch closes.
        tokio::spawn(supervise::supervise(
            // Names the device in a log line; its report knows the name, so
            // no copy is kept for it.
            report,
            move || parts.context(),
            self.0.clone(),
            connected,
        ));
        None
    }
}

/// One task stepping every device of the model.
pub(crate) struct Stepping<K: Model> {
    doorbell: Doorbell<K>,
    next: AtomicU64,
}

impl<K: Model> Stepping<K> {
    /// Starts the stepper of `S`, beating on `health`.
    pub(crate) fn start<S: Steps<Model = K>>(health: Arc<crate::health::LoopHealth>) -> Self {
        Stepping {
            doorbell: steps::start::<S>(health),
            next: AtomicU64::new(0),
        }
    }
}

impl<K: Model> Driver<K> for Stepping<K> {
    fn begin(&self, parts: Parts<K>) -> Option<Bell> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.doorbell.adopt(id, parts.context());
        Some(self.doorbell.bell(id))
    }
}
