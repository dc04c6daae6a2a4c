//! From the maximum over metrics to the count the controller sets, after
//! `pkg/controller/podautoscaler/horizontal.go` (Kubernetes v1.35):
//!
//! - with `spec.behavior`: `normalizeDesiredReplicasWithBehaviors` —
//!   `stabilizeRecommendationWithBehaviors` (the lowest recommendation of the scale-up window,
//!   the highest of the scale-down window), then `convertDesiredReplicasWithBehaviorRate` with
//!   `calculateScaleUpLimitWithScalingRules` and `calculateScaleDownLimitWithBehaviors`, whose
//!   period start counts the scale-ups *and* the scale-downs made within the period
//!   (`getReplicasChangePerPeriod`);
//! - without it: `normalizeDesiredReplicas` — `stabilizeRecommendation` (the highest
//!   recommendation of the controller's downscale window) and `convertDesiredReplicasWithRules`
//!   (up to `max(2 × current, 4)` per sync, then [min, max]).
//!
//! [`History`] is what the controller keeps per HPA between syncs: timestamped
//! recommendations, and scale events (kept only for HPAs with `behavior`).

use super::behavior::{Behavior, PolicyKind, Rules, Select};

/// `scaleUpLimitFactor` and `scaleUpLimitMinimum` of the legacy path.
pub(crate) const LEGACY_SCALE_UP_FACTOR: f64 = 2.0;
const LEGACY_SCALE_UP_MINIMUM: f64 = 4.0;

/// A recommendation: (time in seconds, desired replicas before normalization).
pub(crate) type Recommendation = (f64, i32);
/// A scale event: (time in seconds, replicas added or removed).
pub(crate) type ScaleEvent = (f64, i32);

/// What the controller remembers of one HPA.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub recommendations: Vec<Recommendation>,
    pub scale_up_events: Vec<ScaleEvent>,
    pub scale_down_events: Vec<ScaleEvent>,
}

/// The condition a normalization sets, with its reason as the controller writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    DesiredWithinRange,
    ScaleUpLimit,
    ScaleDownLimit,
    TooManyReplicas,
    TooFewReplicas,
}

impl Limit {
    pub fn reason(self) -> &'static str {
        match self {
            Limit::DesiredWithinRange => "DesiredWithinRange",
            Limit::ScaleUpLimit => "ScaleUpLimit",
            Limit::ScaleDownLimit => "ScaleDownLimit",
            Limit::TooManyReplicas => "TooManyReplicas",
            Limit::TooFewReplicas => "TooFewReplicas",
        }
    }
}

/// What one normalization did, step by step.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub replicas: i32,
    pub limit: Limit,
    /// The `AbleToScale` reason: `ScaleUpStabilized`, `ScaleDownStabilized` or
    /// `ReadyForNewScale`.
    pub stabilization_reason: &'static str,
    pub working: Vec<String>,
}

/// Records `desired` at `now` in the slot of a sample older than both windows, or appends it
/// (the controller reuses one stale slot per sync).
fn record(history: &mut History, old_slot: Option<usize>, desired: i32, now: f64) {
    match old_slot {
        Some(slot) => history.recommendations[slot] = (now, desired),
        None => history.recommendations.push((now, desired)),
    }
}

/// `stabilizeRecommendationWithBehaviors`.
pub(crate) fn stabilize_with_behavior(
    history: &mut History,
    current: i32,
    desired: i32,
    behavior: &Behavior,
    now: f64,
) -> (i32, &'static str) {
    let up_cutoff = now - f64::from(behavior.scale_up.stabilization_seconds);
    let down_cutoff = now - f64::from(behavior.scale_down.stabilization_seconds);
    let mut up_recommendation = desired;
    let mut down_recommendation = desired;
    let mut old_slot = None;
    for (slot, &(at, recommendation)) in history.recommendations.iter().enumerate() {
        if at > up_cutoff {
            up_recommendation = up_recommendation.min(recommendation);
        }
        if at > down_cutoff {
            down_recommendation = down_recommendation.max(recommendation);
        }
        if at < up_cutoff && at < down_cutoff {
            old_slot = Some(slot);
        }
    }
    let stabilized = current.max(up_recommendation).min(down_recommendation);
    record(history, old_slot, desired, now);
    let reason = if desired >= current {
        "ScaleUpStabilized"
    } else {
        "ScaleDownStabilized"
    };
    (stabilized, reason)
}

/// `getReplicasChangePerPeriod`: the replicas changed by events newer than `period` seconds.
pub(crate) fn change_in_period(period_seconds: i32, events: &[ScaleEvent], now: f64) -> i32 {
    let cutoff = now - f64::from(period_seconds);
    events
        .iter()
        .filter(|(at, _)| *at > cutoff)
        .map(|(_, change)| change)
        .sum()
}

/// The replica count at the start of a policy's period: the scale-ups within it taken back,
/// the scale-downs within it added back.
fn period_start(current: i32, period: i32, history: &History, now: f64) -> i32 {
    current - change_in_period(period, &history.scale_up_events, now)
        + change_in_period(period, &history.scale_down_events, now)
}

/// `calculateScaleUpLimitWithScalingRules`.
pub(crate) fn scale_up_limit(current: i32, history: &History, rules: &Rules, now: f64) -> i32 {
    let select: fn(i32, i32) -> i32 = match rules.select {
        Select::Disabled => return current,
        Select::Min => i32::min,
        Select::Max => i32::max,
    };
    let mut result = if rules.select == Select::Min {
        i32::MAX
    } else {
        i32::MIN
    };
    for policy in &rules.policies {
        let start = period_start(current, policy.period_seconds, history, now);
        let proposed = match policy.kind {
            PolicyKind::Pods => start.saturating_add(policy.value),
            PolicyKind::Percent => {
                (f64::from(start) * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i32
            }
        };
        result = select(result, proposed);
    }
    result
}

/// `calculateScaleDownLimitWithBehaviors`.
pub(crate) fn scale_down_limit(current: i32, history: &History, rules: &Rules, now: f64) -> i32 {
    // for a scale-down the smallest change is the largest count
    let select: fn(i32, i32) -> i32 = match rules.select {
        Select::Disabled => return current,
        Select::Min => i32::max,
        Select::Max => i32::min,
    };
    let mut result = if rules.select == Select::Min {
        i32::MIN
    } else {
        i32::MAX
    };
    for policy in &rules.policies {
        let start = period_start(current, policy.period_seconds, history, now);
        let proposed = match policy.kind {
            PolicyKind::Pods => start.saturating_sub(policy.value),
            PolicyKind::Percent => {
                (f64::from(start) * (1.0 - f64::from(policy.value) / 100.0)) as i32
            }
        };
        result = select(result, proposed);
    }
    result
}

/// `convertDesiredReplicasWithBehaviorRate`.
pub(crate) fn convert_with_behavior_rate(
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    behavior: &Behavior,
    history: &History,
    now: f64,
) -> (i32, Limit, String) {
    if desired > current {
        let limit = scale_up_limit(current, history, &behavior.scale_up, now).max(current);
        let (allowed, why) = if max > limit {
            (limit, Limit::ScaleUpLimit)
        } else {
            (max, Limit::TooManyReplicas)
        };
        if desired > allowed {
            let text = match why {
                Limit::ScaleUpLimit => format!(
                    "the scale-up policies allow {allowed} now (from {current}): {}",
                    why.reason()
                ),
                _ => format!("maxReplicas {max}: {}", why.reason()),
            };
            return (allowed, why, text);
        }
    } else if desired < current {
        let limit = scale_down_limit(current, history, &behavior.scale_down, now).min(current);
        let (allowed, why) = if min < limit {
            (limit, Limit::ScaleDownLimit)
        } else {
            (min, Limit::TooFewReplicas)
        };
        if desired < allowed {
            let text = match why {
                Limit::ScaleDownLimit => format!(
                    "the scale-down policies allow {allowed} now (from {current}): {}",
                    why.reason()
                ),
                _ => format!("minReplicas {min}: {}", why.reason()),
            };
            return (allowed, why, text);
        }
    }
    (
        desired,
        Limit::DesiredWithinRange,
        format!("{desired} is within the limits: DesiredWithinRange"),
    )
}

/// `normalizeDesiredReplicasWithBehaviors`.
pub(crate) fn with_behavior(
    history: &mut History,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    behavior: &Behavior,
    now: f64,
) -> Normalized {
    let (stabilized, reason) = stabilize_with_behavior(history, current, desired, behavior, now);
    let mut working = Vec::new();
    let stabilization_reason = if stabilized != desired {
        working.push(if reason == "ScaleUpStabilized" {
            format!(
                "stabilization: the lowest recommendation of the last {} s is {stabilized}: \
                 {reason}",
                behavior.scale_up.stabilization_seconds
            )
        } else {
            format!(
                "stabilization: the highest recommendation of the last {} s is {stabilized}: \
                 {reason}",
                behavior.scale_down.stabilization_seconds
            )
        });
        reason
    } else {
        "ReadyForNewScale"
    };
    let (replicas, limit, text) =
        convert_with_behavior_rate(current, stabilized, min, max, behavior, history, now);
    working.push(text);
    Normalized {
        replicas,
        limit,
        stabilization_reason,
        working,
    }
}

/// `stabilizeRecommendation` (legacy path): the highest recommendation within the window.
pub(crate) fn stabilize_legacy(
    history: &mut History,
    desired: i32,
    window_seconds: i32,
    now: f64,
) -> i32 {
    let cutoff = now - f64::from(window_seconds);
    let mut highest = desired;
    let mut old_slot = None;
    for (slot, &(at, recommendation)) in history.recommendations.iter().enumerate() {
        if at < cutoff {
            old_slot = Some(slot);
        } else if recommendation > highest {
            highest = recommendation;
        }
    }
    record(history, old_slot, desired, now);
    highest
}

/// `calculateScaleUpLimit` (legacy path): `max(factor × current, 4)`; the factor is
/// [`LEGACY_SCALE_UP_FACTOR`] (upstream's unit tests set 8).
pub(crate) fn legacy_scale_up_limit(current: i32, factor: f64) -> i32 {
    (factor * f64::from(current)).max(LEGACY_SCALE_UP_MINIMUM) as i32
}

/// `convertDesiredReplicasWithRules` (legacy path).
pub(crate) fn convert_with_rules(
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    factor: f64,
) -> (i32, Limit, String) {
    let scale_up_limit = legacy_scale_up_limit(current, factor);
    let (allowed, why) = if max > scale_up_limit {
        (scale_up_limit, Limit::ScaleUpLimit)
    } else {
        (max, Limit::TooManyReplicas)
    };
    if desired < min {
        return (
            min,
            Limit::TooFewReplicas,
            format!("minReplicas {min}: TooFewReplicas"),
        );
    }
    if desired > allowed {
        let text = match why {
            Limit::ScaleUpLimit => format!(
                "without behavior a sync may go up to max({factor} × {current}, 4) = \
                 {allowed}: ScaleUpLimit"
            ),
            _ => format!("maxReplicas {max}: TooManyReplicas"),
        };
        return (allowed, why, text);
    }
    (
        desired,
        Limit::DesiredWithinRange,
        format!("{desired} is within the limits: DesiredWithinRange"),
    )
}

/// The controller flags the legacy path reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LegacyRules {
    /// `--horizontal-pod-autoscaler-downscale-stabilization`, in seconds.
    pub downscale_window_seconds: i32,
    /// [`LEGACY_SCALE_UP_FACTOR`] (upstream's unit tests set 8).
    pub scale_up_factor: f64,
}

/// `normalizeDesiredReplicas`: an HPA without `spec.behavior`.
pub fn legacy(
    history: &mut History,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    rules: LegacyRules,
    now: f64,
) -> Normalized {
    let LegacyRules {
        downscale_window_seconds,
        scale_up_factor: factor,
    } = rules;
    let stabilized = stabilize_legacy(history, desired, downscale_window_seconds, now);
    let mut working = Vec::new();
    let stabilization_reason = if stabilized != desired {
        working.push(format!(
            "stabilization: the highest recommendation of the last {downscale_window_seconds} s \
             is {stabilized}: ScaleDownStabilized"
        ));
        "ScaleDownStabilized"
    } else {
        "ReadyForNewScale"
    };
    let (replicas, limit, text) = convert_with_rules(current, stabilized, min, max, factor);
    working.push(text);
    Normalized {
        replicas,
        limit,
        stabilization_reason,
        working,
    }
}

/// `storeScaleEvent`: remembers a change, for HPAs with `behavior` only; events older than the
/// direction's longest policy period are dropped (the controller marks them outdated and
/// reuses their slot).
pub(crate) fn store_scale_event(
    history: &mut History,
    behavior: Option<&Behavior>,
    previous: i32,
    new: i32,
    now: f64,
) {
    let Some(behavior) = behavior else {
        return;
    };
    let (events, rules) = if new > previous {
        (&mut history.scale_up_events, &behavior.scale_up)
    } else {
        (&mut history.scale_down_events, &behavior.scale_down)
    };
    let longest = f64::from(rules.longest_period());
    events.retain(|(at, _)| now - at <= longest);
    events.push((now, (new - previous).abs()));
}
