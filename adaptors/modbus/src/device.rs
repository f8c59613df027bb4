//! The task of one Modbus device: polls on schedule, follows spec changes,
//! applies writes from MQTT, and backs off while the device is away.

use devicelink_adaptor_runtime::{Backoff, Change, DeviceContext};
use devicelink_api::modbus::ModbusDevice;
use tokio::time::{Instant, sleep_until};

use crate::{metrics::ModbusMetrics, poller::Poller};

/// Runs one device until it is removed.
pub async fn run(mut ctx: DeviceContext<ModbusDevice>, metrics: ModbusMetrics) {
    let mut poller = Poller::new(&ctx.device().spec, metrics);
    let mut next = Instant::now();
    let mut backoff = Backoff::new();
    loop {
        tokio::select! {
            changed = ctx.changed() => match changed {
                None => return,
                Some(Change::Spec(device)) => {
                    poller.apply(&device.spec);
                    backoff.reset();
                    next = Instant::now();
                }
                Some(Change::Write(request)) => {
                    let Some(values) = ctx.decode_write(&request, &poller.properties()) else {
                        continue;
                    };
                    match poller.write(&values).await {
                        Ok(()) => ctx.answer_write(&request, Ok(&values)),
                        Err(refused) => ctx.answer_write(&request, Err(&refused)),
                    }
                    // Show the written values without waiting for the schedule.
                    next = Instant::now();
                }
            },
            _ = sleep_until(next) => {
                let started = Instant::now();
                let _ = poller.cycle().await;
                ctx.report(&poller.status());
                ctx.set_connected(poller.outcome());
                next = if poller.disconnected() {
                    Instant::now() + backoff.after_failure()
                } else {
                    backoff.reset();
                    // On schedule from the start of this cycle; a cycle that
                    // overran starts the next at once.
                    (started + poller.interval).max(Instant::now())
                };
            }
        }
    }
}
