//! The DeviceLink condition pipeline.
//!
//! Conditions form a chain, NodeExisted -> ModelExisted -> AdaptorExisted ->
//! DeviceCreated -> DeviceConnected. Each stage is evaluated only when the one
//! before it is True; the first stage that is not True ends the list, and when
//! a stage is True the next one is shown as Unknown with an in-progress reason,
//! so `status.conditions[-1]` always tells where a DeviceLink stands.
//!
//! The operator owns the first four stages, the adaptor the last. Both compute
//! the new list with [`advance`], so they agree on the rules.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::{Deserialize, Serialize};

use crate::devicelink::DeviceLinkCondition;

/// The stages of the pipeline, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ConditionType {
    NodeExisted,
    ModelExisted,
    AdaptorExisted,
    DeviceCreated,
    DeviceConnected,
}

impl ConditionType {
    /// All stages in pipeline order.
    pub const PIPELINE: [ConditionType; 5] = [
        ConditionType::NodeExisted,
        ConditionType::ModelExisted,
        ConditionType::AdaptorExisted,
        ConditionType::DeviceCreated,
        ConditionType::DeviceConnected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::NodeExisted => "NodeExisted",
            ConditionType::ModelExisted => "ModelExisted",
            ConditionType::AdaptorExisted => "AdaptorExisted",
            ConditionType::DeviceCreated => "DeviceCreated",
            ConditionType::DeviceConnected => "DeviceConnected",
        }
    }

    fn index(self) -> usize {
        Self::PIPELINE.iter().position(|t| *t == self).unwrap_or(0)
    }

    /// The stage after this one, if any.
    pub fn next(self) -> Option<ConditionType> {
        Self::PIPELINE.get(self.index() + 1).copied()
    }

    /// What a stage shows while it has not been decided yet.
    pub fn pending(self) -> Outcome {
        let (reason, message) = match self {
            ConditionType::NodeExisted => ("Confirming", "checking that the node exists"),
            ConditionType::ModelExisted => ("Confirming", "checking that the model's CRD exists"),
            ConditionType::AdaptorExisted => {
                ("Confirming", "checking that the adaptor runs on the node")
            }
            ConditionType::DeviceCreated => ("Creating", "creating the device from the template"),
            ConditionType::DeviceConnected => (
                "Connecting",
                "waiting for the adaptor to connect the device",
            ),
        };
        Outcome::unknown(reason, message)
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// The result of evaluating one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
}

impl Outcome {
    pub fn new(status: ConditionStatus, reason: &str, message: impl Into<String>) -> Self {
        Outcome {
            status,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
    pub fn ok(reason: &str) -> Self {
        Self::new(ConditionStatus::True, reason, "")
    }
    pub fn fail(reason: &str, message: impl Into<String>) -> Self {
        Self::new(ConditionStatus::False, reason, message)
    }
    pub fn unknown(reason: &str, message: impl Into<String>) -> Self {
        Self::new(ConditionStatus::Unknown, reason, message)
    }
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }

    fn matches(&self, c: &DeviceLinkCondition) -> bool {
        c.status == self.status.as_str() && c.reason == self.reason && c.message == self.message
    }
}

/// The current time as the API server stores it (whole seconds), so that a
/// condition written and read back compares equal.
pub fn now() -> Time {
    let secs = k8s_openapi::jiff::Timestamp::now().as_second();
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).expect("current time is in range"))
}

/// Finds a condition by type.
pub fn find(conditions: &[DeviceLinkCondition], t: ConditionType) -> Option<&DeviceLinkCondition> {
    conditions.iter().find(|c| c.type_ == t.as_str())
}

/// Whether the condition of type `t` is present and True.
pub fn is_true(conditions: &[DeviceLinkCondition], t: ConditionType) -> bool {
    find(conditions, t).is_some_and(|c| c.status == "True")
}

/// Computes the condition list from stage outcomes given in pipeline order,
/// starting at NodeExisted.
///
/// Evaluation stops at the first outcome that is not True. If every given
/// stage is True, the next stage is kept as it is in `current` (its owner sets
/// it) or added as pending. Timestamps move only when something changes:
/// `lastTransitionTime` when the status changes, `lastUpdateTime` when status,
/// reason or message change.
pub fn advance(
    current: &[DeviceLinkCondition],
    outcomes: &[Outcome],
    now: &Time,
) -> Vec<DeviceLinkCondition> {
    let mut next = Vec::with_capacity(ConditionType::PIPELINE.len());
    for (stage, outcome) in ConditionType::PIPELINE.iter().zip(outcomes) {
        next.push(merge(find(current, *stage), *stage, outcome, now));
        if !outcome.is_true() {
            return next;
        }
    }
    if let Some(stage) = ConditionType::PIPELINE.get(outcomes.len()) {
        match find(current, *stage) {
            Some(existing) => next.push(existing.clone()),
            None => next.push(merge(None, *stage, &stage.pending(), now)),
        }
    }
    next
}

/// The outcomes recorded in `current` for the stages before `stage`, in
/// order, as long as they are True. Lets the owner of a later stage keep the
/// earlier ones exactly as they are.
pub fn true_prefix(current: &[DeviceLinkCondition], stage: ConditionType) -> Option<Vec<Outcome>> {
    ConditionType::PIPELINE[..stage.index()]
        .iter()
        .map(|t| {
            find(current, *t)
                .filter(|c| c.status == "True")
                .map(|c| Outcome::new(ConditionStatus::True, &c.reason, c.message.clone()))
        })
        .collect()
}

/// The condition of `stage` once `outcome` is recorded over `existing`:
/// `existing` itself if nothing changed, new timestamps only for what did.
pub fn merge(
    existing: Option<&DeviceLinkCondition>,
    stage: ConditionType,
    outcome: &Outcome,
    now: &Time,
) -> DeviceLinkCondition {
    match existing {
        Some(c) if outcome.matches(c) => c.clone(),
        Some(c) if c.status == outcome.status.as_str() => DeviceLinkCondition {
            reason: outcome.reason.clone(),
            message: outcome.message.clone(),
            last_update_time: Some(now.clone()),
            ..c.clone()
        },
        _ => DeviceLinkCondition {
            type_: stage.as_str().to_string(),
            status: outcome.status.as_str().to_string(),
            reason: outcome.reason.clone(),
            message: outcome.message.clone(),
            last_update_time: Some(now.clone()),
            last_transition_time: Some(now.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    fn types(c: &[DeviceLinkCondition]) -> Vec<(&str, &str)> {
        c.iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect()
    }

    #[test]
    fn failing_stage_ends_the_list() {
        let out = advance(
            &[],
            &[Outcome::ok("Found"), Outcome::fail("NotFound", "no CRD")],
            &at(1),
        );
        assert_eq!(
            types(&out),
            vec![("NodeExisted", "True"), ("ModelExisted", "False")]
        );
        assert_eq!(out[1].message, "no CRD");
    }

    #[test]
    fn true_stages_add_the_next_as_pending() {
        let out = advance(&[], &[Outcome::ok("Found")], &at(1));
        assert_eq!(
            types(&out),
            vec![("NodeExisted", "True"), ("ModelExisted", "Unknown")]
        );
        assert_eq!(out[1].reason, "Confirming");
    }

    #[test]
    fn unchanged_outcomes_keep_timestamps() {
        let first = advance(&[], &[Outcome::ok("Found")], &at(1));
        let second = advance(&first, &[Outcome::ok("Found")], &at(2));
        assert_eq!(first, second);
    }

    #[test]
    fn transition_moves_both_timestamps_reason_change_only_update_time() {
        let first = advance(&[], &[Outcome::fail("NotFound", "a")], &at(1));
        let reworded = advance(&first, &[Outcome::fail("NotFound", "b")], &at(2));
        assert_eq!(reworded[0].last_transition_time, Some(at(1)));
        assert_eq!(reworded[0].last_update_time, Some(at(2)));
        let healed = advance(&reworded, &[Outcome::ok("Found")], &at(3));
        assert_eq!(healed[0].last_transition_time, Some(at(3)));
    }

    #[test]
    fn later_stage_owned_by_someone_else_is_kept() {
        let four = vec![
            Outcome::ok("Found"),
            Outcome::ok("Found"),
            Outcome::ok("Found"),
            Outcome::ok("Success"),
        ];
        let operator = advance(&[], &four, &at(1));
        assert_eq!(operator.last().unwrap().type_, "DeviceConnected");
        let mut adaptor_view = true_prefix(&operator, ConditionType::DeviceConnected).unwrap();
        adaptor_view.push(Outcome::ok("Healthy"));
        let connected = advance(&operator, &adaptor_view, &at(2));
        assert_eq!(connected.last().unwrap().status, "True");
        // The operator's next pass leaves the adaptor's condition alone.
        assert_eq!(advance(&connected, &four, &at(3)), connected);
    }

    #[test]
    fn true_prefix_refuses_when_an_earlier_stage_is_not_true() {
        let out = advance(
            &[],
            &[Outcome::ok("Found"), Outcome::fail("NotFound", "x")],
            &at(1),
        );
        assert!(true_prefix(&out, ConditionType::DeviceConnected).is_none());
    }
}

/// A Kubernetes condition (`metav1.Condition`, as devicelink's own kinds
/// beside DeviceLink keep them) of `type_` as it should now read, its
/// `lastTransitionTime` kept from `current` while its status stays; `None`
/// if `current` already reads so (nothing to write).
pub fn kube_condition(
    current: &[Condition],
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
) -> Option<Condition> {
    let status = status.as_str();
    let before = current.iter().find(|c| c.type_ == type_);
    if before.is_some_and(|c| {
        c.status == status
            && c.reason == reason
            && c.message == message
            && c.observed_generation == observed_generation
    }) {
        return None;
    }
    let since = before
        .filter(|c| c.status == status)
        .map_or_else(now, |c| c.last_transition_time.clone());
    Some(Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time: since,
        observed_generation,
    })
}

#[cfg(test)]
mod kube_condition_tests {
    use super::*;

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_stays() {
        let first = kube_condition(
            &[],
            "Scanned",
            ConditionStatus::True,
            "Scanned",
            "1 found",
            None,
        )
        .expect("new");
        let mut earlier = first.clone();
        earlier.last_transition_time =
            Time(first.last_transition_time.0 - k8s_openapi::jiff::SignedDuration::from_secs(60));
        let current = [earlier.clone()];
        assert_eq!(
            kube_condition(
                &current,
                "Scanned",
                ConditionStatus::True,
                "Scanned",
                "1 found",
                None
            ),
            None,
            "the same again is nothing to write"
        );
        let reworded = kube_condition(
            &current,
            "Scanned",
            ConditionStatus::True,
            "Scanned",
            "2 found",
            None,
        )
        .unwrap();
        assert_eq!(reworded.last_transition_time, earlier.last_transition_time);
        let failed = kube_condition(
            &current,
            "Scanned",
            ConditionStatus::False,
            "WriteFailed",
            "no",
            None,
        )
        .unwrap();
        assert_ne!(failed.last_transition_time, earlier.last_transition_time);
    }
}
