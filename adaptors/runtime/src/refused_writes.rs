//! Writes from MQTT that were refused, counted on the device's DeviceLink
//! as `status.refusedWrites`: at most every ten seconds per device (the
//! refusals in between are added in one go), so a client sending bad
//! writes in a loop cannot flood the API server. The operator records each
//! rise of the count as a WriteRefused Event: an adaptor records no Events
//! (an admission policy that held its Events to its own DeviceLinks had to
//! compare each with every DeviceLink of the namespace).

use std::time::Duration;

use devicelink_api::{DeviceLink, RefusedWrites};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use tracing::warn;

use crate::link::Link;

/// Least time between two such writes of one device.
pub(crate) const AT_MOST_EVERY: Duration = Duration::from_secs(10);
/// How soon a write that lost to another writer is made again.
pub(crate) const AGAIN_AFTER_CONFLICT: Duration = Duration::from_secs(1);

/// Refusals not yet counted on the DeviceLink: a count and the last
/// reason, not a queue (kept for every device, for something rare); the
/// device's report gathers them (writer.rs).
#[derive(Debug, PartialEq)]
pub(crate) struct Refused {
    pub(crate) count: i64,
    pub(crate) last: String,
    pub(crate) at: Time,
}

impl Refused {
    /// One more refusal, `why`.
    pub(crate) fn add(refused: &mut Option<Refused>, why: String) {
        let at = devicelink_api::condition::now();
        match refused {
            Some(r) => {
                r.count += 1;
                (r.last, r.at) = (why, at);
            }
            None => {
                *refused = Some(Refused {
                    count: 1,
                    last: why,
                    at,
                })
            }
        }
    }

    /// Puts back refusals whose write failed, before any that came since.
    pub(crate) fn put_back(refused: &mut Option<Refused>, unwritten: Refused) {
        match refused {
            Some(newer) => newer.count += unwritten.count,
            None => *refused = Some(unwritten),
        }
    }
}

/// What became of the write.
pub(crate) enum Counted {
    Yes,
    /// Not written (the DeviceLink changed meanwhile, or the write
    /// failed): to be tried again on the newest DeviceLink.
    No(Refused),
}

/// Adds `refused` to the DeviceLink's count. The patch carries the
/// resourceVersion the count was read at, so two writes never add to the
/// same number.
pub(crate) async fn count(api: &Api<DeviceLink>, link: &Link, refused: Refused) -> Counted {
    let total = RefusedWrites {
        count: link.refused + refused.count,
        last_message: refused.last.clone(),
        last_time: Some(refused.at.clone()),
    };
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": link.resource_version},
        "status": {"refusedWrites": total},
    });
    let name = &link.name;
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Counted::Yes,
        // The DeviceLink is gone: there is nothing to count on.
        Err(kube::Error::Api(e)) if e.code == 404 => Counted::Yes,
        Err(kube::Error::Api(e)) if e.code == 409 => Counted::No(refused),
        Err(e) => {
            warn!(devicelink = %name, error = %e, "could not count refused writes; trying again");
            Counted::No(refused)
        }
    }
}
