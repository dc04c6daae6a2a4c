//! The HorizontalPodAutoscaler's algorithm, as the Kubernetes controller runs it (CONTRACT.md
//! §3.3 and §3.5): replica math per metric type with the tolerance and the treatment of missing
//! and unready pods, the maximum over several metrics, then stabilization, rate-limiting
//! policies and the [min, max] clamp. Values are int64 milli-units, as the controller holds
//! them. Used by `kubemind demo` (a simulated HPA reading the real adapter) and `kubemind
//! explain` (the formula with the numbers filled in).

use std::collections::{BTreeMap, VecDeque};

/// Milli-units, as `resource.Quantity::MilliValue` gives them.
pub type Milli = i64;

/// The tolerance band: no change while `1 − down ≤ ratio ≤ 1 + up`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub up: f64,
    pub down: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { up: 0.1, down: 0.1 }
    }
}

impl Tolerance {
    pub fn is_within(&self, ratio: f64) -> bool {
        1.0 - self.down <= ratio && ratio <= 1.0 + self.up
    }
}

/// A pod as the controller sorts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    Running,
    /// Counted as unready (readiness is checked only for CPU).
    Pending,
    /// Deleting or Failed: left out entirely.
    Ignored,
}

/// What a Pods metric computation found, for `explain` to show.
#[derive(Debug, Clone, PartialEq)]
pub struct PodsOutcome {
    pub replicas: i32,
    /// `sum / count` over the pods with values (integer division), before adjustments.
    pub usage: Milli,
    pub ratio: f64,
    pub ready: usize,
    pub missing: Vec<String>,
    pub unready: Vec<String>,
    pub ignored: Vec<String>,
    /// The ratio after missing and unready pods were filled in, when they were.
    pub adjusted_ratio: Option<f64>,
    pub within_tolerance: bool,
}

/// Why no proposal could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MathError {
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoMetrics,
    #[error("the target is zero")]
    ZeroTarget,
}

fn usage_ratio(values: &BTreeMap<&str, Milli>, target: Milli) -> (f64, Milli) {
    let sum: Milli = values.values().sum();
    let usage = sum / values.len().max(1) as Milli;
    (usage as f64 / target as f64, usage)
}

/// A Pods metric with an AverageValue target (`calcPlainMetricReplicas`). `pods` are the pods
/// the scale selector matches; `values` what the metrics API returned, by pod name.
pub fn pods_replicas(
    current: i32,
    pods: &[(String, PodPhase)],
    values: &BTreeMap<String, Milli>,
    target: Milli,
    tolerance: Tolerance,
) -> Result<PodsOutcome, MathError> {
    if target == 0 {
        return Err(MathError::ZeroTarget);
    }
    // every returned item counts, even for a pod the selector no longer matches
    let mut metrics: BTreeMap<&str, Milli> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let (mut ready, mut missing, mut unready, mut ignored) =
        (0, Vec::new(), Vec::new(), Vec::new());
    for (name, phase) in pods {
        match phase {
            PodPhase::Ignored => ignored.push(name.clone()),
            PodPhase::Pending => unready.push(name.clone()),
            PodPhase::Running if !values.contains_key(name) => missing.push(name.clone()),
            PodPhase::Running => ready += 1,
        }
    }
    for name in ignored.iter().chain(&unready) {
        metrics.remove(name.as_str());
    }
    if metrics.is_empty() {
        return Err(MathError::NoMetrics);
    }
    let (ratio, usage) = usage_ratio(&metrics, target);
    let mut outcome = PodsOutcome {
        replicas: current,
        usage,
        ratio,
        ready,
        missing: missing.clone(),
        unready: unready.clone(),
        ignored,
        adjusted_ratio: None,
        within_tolerance: tolerance.is_within(ratio),
    };
    let scale_up_with_unready = !unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && missing.is_empty() {
        if !outcome.within_tolerance {
            outcome.replicas = (ratio * ready as f64).ceil() as i32;
        }
        return Ok(outcome);
    }
    // missing pods: the target when scaling down, 0 when scaling up; unready pods: 0
    for name in &missing {
        metrics.insert(name, if ratio < 1.0 { target } else { 0 });
    }
    if scale_up_with_unready {
        for name in &unready {
            metrics.insert(name, 0);
        }
    }
    let (adjusted, _) = usage_ratio(&metrics, target);
    outcome.adjusted_ratio = Some(adjusted);
    outcome.within_tolerance = tolerance.is_within(adjusted);
    let flipped = (ratio < 1.0 && adjusted > 1.0) || (ratio > 1.0 && adjusted < 1.0);
    if outcome.within_tolerance || flipped {
        return Ok(outcome);
    }
    let proposed = (adjusted * metrics.len() as f64).ceil() as i32;
    let wrong_way =
        (adjusted < 1.0 && proposed > current) || (adjusted > 1.0 && proposed < current);
    if !wrong_way {
        outcome.replicas = proposed;
    }
    Ok(outcome)
}

/// An Object (or External) metric with a Value target: `ratio = value / target`; at 0
/// replicas `ceil(ratio)`, else `ceil(ratio × ready)` outside the tolerance.
pub fn value_replicas(
    current: i32,
    ready_pods: i32,
    value: Milli,
    target: Milli,
    tolerance: Tolerance,
) -> Result<i32, MathError> {
    if target == 0 {
        return Err(MathError::ZeroTarget);
    }
    let ratio = value as f64 / target as f64;
    if current == 0 {
        return Ok(ratio.ceil() as i32);
    }
    if tolerance.is_within(ratio) {
        return Ok(current);
    }
    Ok((ratio * ready_pods as f64).ceil() as i32)
}

/// An Object (or External) metric with an AverageValue target: the ratio is
/// `value / (target × replicas)`; outside the tolerance, `ceil(value / target)`.
pub fn average_value_replicas(
    status_replicas: i32,
    value: Milli,
    target: Milli,
    tolerance: Tolerance,
) -> Result<i32, MathError> {
    if target == 0 {
        return Err(MathError::ZeroTarget);
    }
    let ratio = value as f64 / (target as f64 * status_replicas.max(1) as f64);
    if tolerance.is_within(ratio) {
        return Ok(status_replicas);
    }
    Ok((value as f64 / target as f64).ceil() as i32)
}

/// How a policy limits change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub value: i32,
    pub period_seconds: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

/// One direction of `spec.behavior`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub stabilization_seconds: u32,
    pub policies: Vec<Policy>,
    pub select: Select,
}

/// `spec.behavior`; [`Behavior::default`] is what the API server fills in when it is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    pub scale_up: Rules,
    pub scale_down: Rules,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            scale_up: Rules {
                stabilization_seconds: 0,
                policies: vec![
                    Policy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period_seconds: 15,
                    },
                    Policy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period_seconds: 15,
                    },
                ],
                select: Select::Max,
            },
            scale_down: Rules {
                stabilization_seconds: 300,
                policies: vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_seconds: 15,
                }],
                select: Select::Max,
            },
        }
    }
}

/// What the controller remembers between syncs: recommendations and scale events.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// (time in seconds, desired replicas) of past syncs.
    recommendations: VecDeque<(f64, i32)>,
    /// (time, replicas added) and (time, replicas removed).
    scale_ups: VecDeque<(f64, i32)>,
    scale_downs: VecDeque<(f64, i32)>,
}

/// The limits a sync's desired count went through, for `explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub raw: i32,
    pub stabilized: i32,
    pub final_replicas: i32,
    pub reason: &'static str,
}

fn changed_within(events: &VecDeque<(f64, i32)>, now: f64, period: u32) -> i32 {
    events
        .iter()
        .filter(|(at, _)| now - at < f64::from(period))
        .map(|(_, n)| n)
        .sum()
}

fn scale_up_limit(current: i32, rules: &Rules, history: &History, now: f64) -> i32 {
    if rules.select == Select::Disabled {
        return current;
    }
    let proposals = rules.policies.iter().map(|policy| {
        let start = current - changed_within(&history.scale_ups, now, policy.period_seconds);
        match policy.kind {
            PolicyKind::Pods => start + policy.value,
            PolicyKind::Percent => {
                (f64::from(start) * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i32
            }
        }
    });
    match rules.select {
        Select::Min => proposals.min(),
        _ => proposals.max(),
    }
    .unwrap_or(current)
}

fn scale_down_limit(current: i32, rules: &Rules, history: &History, now: f64) -> i32 {
    if rules.select == Select::Disabled {
        return current;
    }
    let proposals = rules.policies.iter().map(|policy| {
        let start = current + changed_within(&history.scale_downs, now, policy.period_seconds);
        match policy.kind {
            PolicyKind::Pods => start - policy.value,
            PolicyKind::Percent => {
                (f64::from(start) * (1.0 - f64::from(policy.value) / 100.0)) as i32
            }
        }
    });
    // Max picks the policy allowing the largest change: the smallest count
    match rules.select {
        Select::Min => proposals.max(),
        _ => proposals.min(),
    }
    .unwrap_or(current)
}

/// One sync's normalization of `raw` (the maximum over metrics) at time `now` (seconds):
/// stabilization, then the policies, then [min, max]. `behavior: None` is an HPA without
/// `spec.behavior` (300 s down-stabilization, up at most max(2 × current, 4)).
pub fn normalize(
    current: i32,
    raw: i32,
    min: i32,
    max: i32,
    behavior: Option<&Behavior>,
    history: &mut History,
    now: f64,
) -> Decision {
    let default_behavior = Behavior {
        scale_up: Rules {
            stabilization_seconds: 0,
            policies: vec![],
            select: Select::Max,
        },
        ..Behavior::default()
    };
    let rules = behavior.unwrap_or(&default_behavior);
    let longest = rules
        .scale_up
        .stabilization_seconds
        .max(rules.scale_down.stabilization_seconds);
    history
        .recommendations
        .retain(|(at, _)| now - at < f64::from(longest));
    let within = |window: u32| {
        history
            .recommendations
            .iter()
            .filter(move |(at, _)| now - at < f64::from(window))
            .map(|(_, r)| *r)
    };
    let up_recommendation = within(rules.scale_up.stabilization_seconds)
        .chain([raw])
        .min()
        .unwrap_or(raw);
    let down_recommendation = within(rules.scale_down.stabilization_seconds)
        .chain([raw])
        .max()
        .unwrap_or(raw);
    history.recommendations.push_back((now, raw));
    let mut stabilized = current;
    if stabilized < up_recommendation {
        stabilized = up_recommendation;
    }
    if stabilized > down_recommendation {
        stabilized = down_recommendation;
    }
    let (final_replicas, reason) = if stabilized > current {
        let limit = match behavior {
            Some(b) => scale_up_limit(current, &b.scale_up, history, now).max(current),
            None => (2 * current).max(4),
        };
        if stabilized > max.min(limit) {
            if limit < max {
                (
                    limit,
                    "ScaleUpLimit: the scale-up policy allows no more this period",
                )
            } else {
                (max, "TooManyReplicas: desired count above maxReplicas")
            }
        } else {
            (stabilized, "ScaleUp")
        }
    } else if stabilized < current {
        let limit = match behavior {
            Some(b) => scale_down_limit(current, &b.scale_down, history, now).min(current),
            None => i32::MIN,
        };
        let floor = limit.max(min);
        if stabilized < floor {
            if limit > min {
                (
                    limit,
                    "ScaleDownLimit: the scale-down policy allows no more this period",
                )
            } else {
                (min, "TooFewReplicas: desired count below minReplicas")
            }
        } else {
            (stabilized, "ScaleDown")
        }
    } else {
        (current.clamp(min, max), "Stable")
    };
    let reason = if stabilized != raw && final_replicas == stabilized {
        "ScaleDownStabilized: recent recommendations were higher"
    } else {
        reason
    };
    if final_replicas > current {
        history.scale_ups.push_back((now, final_replicas - current));
    } else if final_replicas < current {
        history
            .scale_downs
            .push_back((now, current - final_replicas));
    }
    let keep = 1800.0;
    history.scale_ups.retain(|(at, _)| now - at < keep);
    history.scale_downs.retain(|(at, _)| now - at < keep);
    Decision {
        raw,
        stabilized,
        final_replicas,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(names: &[&str]) -> Vec<(String, PodPhase)> {
        names
            .iter()
            .map(|n| (n.to_string(), PodPhase::Running))
            .collect()
    }

    fn values(pairs: &[(&str, Milli)]) -> BTreeMap<String, Milli> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    /// [`pods_replicas`] at the default tolerance, for values that give an answer.
    fn replicas_for(
        current: i32,
        pods: &[(String, PodPhase)],
        pairs: &[(&str, Milli)],
        target: Milli,
    ) -> PodsOutcome {
        pods_replicas(current, pods, &values(pairs), target, Tolerance::default()).expect("values")
    }

    #[test]
    fn tolerance_keeps_the_current_count() {
        // usage 105 against 100: within 10 %
        let pods = running(&["a", "b"]);
        let out = replicas_for(2, &pods, &[("a", 100_000), ("b", 110_000)], 100_000);
        assert_eq!(out.replicas, 2);
        assert!(out.within_tolerance);
    }

    #[test]
    fn ratio_times_ready_pods_rounded_up() {
        // one pod at 8000 ms, two at 0: average 2666 against 500 → ceil(5.333 × 3) = 16
        let pods = running(&["a", "b", "c"]);
        let out = replicas_for(3, &pods, &[("a", 8_000_000), ("b", 0), ("c", 0)], 500_000);
        assert_eq!(out.usage, 2_666_666);
        assert_eq!(out.replicas, 16);
    }

    #[test]
    fn missing_pods_count_as_zero_on_scale_up_and_as_the_target_on_scale_down() {
        let pods = running(&["a", "b", "c"]);
        // scale up: c missing counts 0 → (300+300+0)/3 = 200 against 100 → 6
        let up = replicas_for(3, &pods, &[("a", 300_000), ("b", 300_000)], 100_000);
        assert_eq!(up.missing, ["c"]);
        assert_eq!(up.adjusted_ratio, Some(2.0));
        assert_eq!(up.replicas, 6);
        // scale down: c missing counts as the target → (10+10+100)/3 = 40 → ceil(0.4 × 3) = 2
        let down = replicas_for(3, &pods, &[("a", 10_000), ("b", 10_000)], 100_000);
        assert_eq!(down.replicas, 2);
    }

    #[test]
    fn a_direction_flipped_by_missing_pods_changes_nothing() {
        // a at 150, b missing: ratio 1.5, adjusted (150+0)/2 = 0.75 < 1 → keep 2
        let pods = running(&["a", "b"]);
        let out = replicas_for(2, &pods, &[("a", 150_000)], 100_000);
        assert_eq!(out.replicas, 2);
    }

    #[test]
    fn pending_pods_count_as_zero_when_scaling_up_and_ignored_pods_not_at_all() {
        let pods = vec![
            ("a".to_string(), PodPhase::Running),
            ("b".to_string(), PodPhase::Pending),
            ("c".to_string(), PodPhase::Ignored),
        ];
        // a at 400 against 100: ratio 4; b pending counts 0 → 2 → ceil(2 × 2) = 4
        let out = replicas_for(
            3,
            &pods,
            &[("a", 400_000), ("b", 900_000), ("c", 900_000)],
            100_000,
        );
        assert_eq!(out.unready, ["b"]);
        assert_eq!(out.ignored, ["c"]);
        assert_eq!(out.replicas, 4);
    }

    #[test]
    fn no_values_is_an_error_never_zero() {
        let pods = running(&["a"]);
        assert_eq!(
            pods_replicas(1, &pods, &BTreeMap::new(), 100, Tolerance::default()),
            Err(MathError::NoMetrics)
        );
    }

    #[test]
    fn object_and_external_formulas() {
        // Value: ratio 2 × 3 ready pods = 6; at 0 replicas ceil(ratio)
        assert_eq!(
            value_replicas(3, 3, 2_000, 1_000, Tolerance::default()),
            Ok(6)
        );
        assert_eq!(
            value_replicas(0, 0, 2_500, 1_000, Tolerance::default()),
            Ok(3)
        );
        assert_eq!(
            value_replicas(3, 3, 1_050, 1_000, Tolerance::default()),
            Ok(3)
        );
        // AverageValue: 90 against 30 a replica, 2 replicas: ratio 1.5 → ceil(90/30) = 3
        assert_eq!(
            average_value_replicas(2, 90_000, 30_000, Tolerance::default()),
            Ok(3)
        );
        assert_eq!(
            average_value_replicas(3, 90_000, 30_000, Tolerance::default()),
            Ok(3)
        );
    }

    #[test]
    fn scale_up_is_limited_by_policy_per_period() {
        let behavior = Behavior::default();
        let mut history = History::default();
        // 3 → 16 wanted: Max of (3 + 4, ceil(3 × 2)) = 7
        let first = normalize(3, 16, 1, 20, Some(&behavior), &mut history, 0.0);
        assert_eq!(first.final_replicas, 7);
        // 15 s later the period restarts from 7: max(11, 14) = 14
        let second = normalize(7, 16, 1, 20, Some(&behavior), &mut history, 15.0);
        assert_eq!(second.final_replicas, 14);
        let third = normalize(14, 16, 1, 20, Some(&behavior), &mut history, 30.0);
        assert_eq!(third.final_replicas, 16);
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window() {
        let behavior = Behavior::default();
        let mut history = History::default();
        normalize(10, 10, 1, 20, Some(&behavior), &mut history, 0.0);
        // the load is gone: no scale-down while a higher recommendation is in the window
        let held = normalize(10, 2, 1, 20, Some(&behavior), &mut history, 60.0);
        assert_eq!(held.final_replicas, 10);
        assert_eq!(held.stabilized, 10);
        let later = normalize(10, 2, 1, 20, Some(&behavior), &mut history, 301.0);
        assert_eq!(later.final_replicas, 2);
    }

    #[test]
    fn without_behavior_scale_up_doubles_at_most_and_max_clamps() {
        let mut history = History::default();
        assert_eq!(
            normalize(3, 16, 1, 20, None, &mut history, 0.0).final_replicas,
            6
        );
        let mut history = History::default();
        assert_eq!(
            normalize(1, 16, 1, 20, None, &mut history, 0.0).final_replicas,
            4
        );
        let mut history = History::default();
        let clamped = normalize(12, 40, 1, 20, None, &mut history, 0.0);
        assert_eq!(clamped.final_replicas, 20);
    }

    #[test]
    fn disabled_scale_down_never_removes_pods() {
        let mut behavior = Behavior::default();
        behavior.scale_down.select = Select::Disabled;
        behavior.scale_down.stabilization_seconds = 0;
        let mut history = History::default();
        assert_eq!(
            normalize(5, 1, 1, 20, Some(&behavior), &mut history, 0.0).final_replicas,
            5
        );
    }

    #[test]
    fn percent_scale_down_truncates() {
        let behavior = Behavior {
            scale_down: Rules {
                stabilization_seconds: 0,
                policies: vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 20,
                    period_seconds: 60,
                }],
                select: Select::Max,
            },
            ..Behavior::default()
        };
        let mut history = History::default();
        // 10 × 0.8 = 8
        assert_eq!(
            normalize(10, 1, 1, 20, Some(&behavior), &mut history, 0.0).final_replicas,
            8
        );
        // within the same period the start is 10 again: 8 stays
        assert_eq!(
            normalize(8, 1, 1, 20, Some(&behavior), &mut history, 30.0).final_replicas,
            8
        );
    }
}
