//! One HPA's syncs, after `reconcileAutoscaler`, `computeReplicasForMetrics` and
//! `tolerancesForHpa` in `pkg/controller/podautoscaler/horizontal.go` (Kubernetes v1.35):
//!
//! 1. The first sync seeds the recommendation history with the current count, so a scale-down
//!    waits out the stabilization window after the HPA appears or the controller restarts.
//! 2. A target at 0 replicas with `minReplicas` ≠ 0 is not scaled (`ScalingDisabled`); a count
//!    above `maxReplicas` or below `minReplicas` moves to that bound before any metric counts.
//! 3. Otherwise the desired count is the largest metric proposal. A metric that fails is
//!    skipped, unless every metric failed or the others would scale down: then the count stays.
//! 4. Normalization ([`super::normalize`]), by `behavior` or the legacy path; a change is
//!    remembered as a scale event.
//!
//! The metric proposals come from the caller ([`super::replicas`]), computed with
//! [`Autoscaler::tolerances`].

use super::behavior::Behavior;
use super::normalize::{self, History};
use super::{DEFAULT_DOWNSCALE_STABILIZATION_SECONDS, DEFAULT_TOLERANCE, Tolerances};

/// The parts of an HPA's spec the controller's normalization reads.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaSpec {
    /// `spec.minReplicas`, 1 when left out.
    pub min_replicas: i32,
    pub max_replicas: i32,
    /// `spec.behavior` defaulted; `None` takes the legacy path.
    pub behavior: Option<Behavior>,
}

/// One metric's outcome for a sync: a proposal, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricOutcome {
    pub name: String,
    pub proposal: Result<i32, String>,
}

/// What one sync decided, and why, step by step.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconciliation {
    pub current: i32,
    /// The largest proposal over the metrics (before normalization), when metrics counted.
    pub proposed: Option<i32>,
    pub desired: i32,
    /// The count is set to `desired` (it differs from the current one).
    pub rescale: bool,
    /// The reason the controller would record (`ScalingDisabled`, `TooManyReplicas`,
    /// `FailedGetMetrics`, `ScaleDownStabilized`, `ScaleUpLimit`, …).
    pub reason: String,
    pub working: Vec<String>,
}

/// The controller's memory of one HPA, and its spec.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    pub spec: HpaSpec,
    /// `--horizontal-pod-autoscaler-tolerance`.
    pub controller_tolerance: f64,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`, in seconds.
    pub downscale_stabilization_seconds: i32,
    /// The legacy path's scale-up factor (2; upstream's unit tests use 8).
    pub legacy_scale_up_factor: f64,
    history: Option<History>,
}

impl Autoscaler {
    /// A controller that has not synced this HPA yet, with the controller's default flags.
    pub fn new(spec: HpaSpec) -> Autoscaler {
        Autoscaler {
            spec,
            controller_tolerance: DEFAULT_TOLERANCE,
            downscale_stabilization_seconds: DEFAULT_DOWNSCALE_STABILIZATION_SECONDS,
            legacy_scale_up_factor: normalize::LEGACY_SCALE_UP_FACTOR,
            history: None,
        }
    }

    /// A controller that already remembers `history` (an empty one is not seeded: the
    /// controller seeds only a history it has never had).
    pub(crate) fn with_history(spec: HpaSpec, history: History) -> Autoscaler {
        Autoscaler {
            history: Some(history),
            ..Autoscaler::new(spec)
        }
    }

    /// `tolerancesForHpa`: the controller's tolerance, replaced per direction by
    /// `behavior.scaleUp.tolerance` / `behavior.scaleDown.tolerance` where set (the
    /// HPAConfigurableTolerance feature, beta and on since v1.35).
    pub(crate) fn tolerances(&self) -> Tolerances {
        let mut tolerances = Tolerances {
            scale_down: self.controller_tolerance,
            scale_up: self.controller_tolerance,
        };
        if let Some(behavior) = &self.spec.behavior {
            if let Some(t) = behavior.scale_down.tolerance {
                tolerances.scale_down = t;
            }
            if let Some(t) = behavior.scale_up.tolerance {
                tolerances.scale_up = t;
            }
        }
        tolerances
    }

    /// One sync at `now` (seconds) with the target at `current` replicas (the scale's
    /// `spec.replicas`) and the metrics' outcomes. A change is recorded as made.
    pub fn reconcile(
        &mut self,
        current: i32,
        metrics: &[MetricOutcome],
        now: f64,
    ) -> Reconciliation {
        let history = self.history.get_or_insert_with(|| History {
            recommendations: vec![(now, current)],
            ..History::default()
        });
        let (min, max) = (self.spec.min_replicas, self.spec.max_replicas);
        let mut working = Vec::new();
        let decided = |desired: i32, reason: &str, proposed, working| Reconciliation {
            current,
            proposed,
            desired,
            rescale: desired != current,
            reason: reason.to_string(),
            working,
        };
        if current == 0 && min != 0 {
            working.push(
                "the target is at 0 replicas and minReplicas is not 0: scaling is disabled"
                    .to_string(),
            );
            return decided(0, "ScalingDisabled", None, working);
        }
        if current > max {
            working.push(format!(
                "{current} replicas is above maxReplicas {max}: set to {max} before any metric \
                 counts"
            ));
            let outcome = decided(max, "TooManyReplicas", None, working);
            normalize::store_scale_event(history, self.spec.behavior.as_ref(), current, max, now);
            return outcome;
        }
        if current < min {
            working.push(format!(
                "{current} replicas is below minReplicas {min}: set to {min} before any metric \
                 counts"
            ));
            let outcome = decided(min, "TooFewReplicas", None, working);
            normalize::store_scale_event(history, self.spec.behavior.as_ref(), current, min, now);
            return outcome;
        }

        // computeReplicasForMetrics: the largest proposal; failures counted
        let mut proposals = Vec::new();
        let mut failed = Vec::new();
        for metric in metrics {
            match &metric.proposal {
                Ok(replicas) => proposals.push(*replicas),
                Err(_) => failed.push(metric.name.as_str()),
            }
        }
        let Some(&raw) = proposals.iter().max() else {
            working.push("no metric gives a proposal: the count stays".to_string());
            return decided(current, "FailedGetMetrics", None, working);
        };
        working.push(if proposals.len() > 1 {
            let listed: Vec<String> = proposals.iter().map(i32::to_string).collect();
            format!("largest proposal: max({}) = {raw}", listed.join(", "))
        } else {
            format!("proposal: {raw}")
        });
        if !failed.is_empty() && raw < current {
            working.push(format!(
                "{} failed and the rest would scale down to {raw}: the count stays \
                 ({} invalid of {})",
                failed.join(", "),
                failed.len(),
                metrics.len()
            ));
            return decided(current, "FailedGetMetrics", Some(raw), working);
        }
        if !failed.is_empty() {
            working.push(format!(
                "{} failed; the others may still scale up",
                failed.join(", ")
            ));
        }
        let normalized = match &self.spec.behavior {
            Some(behavior) => {
                normalize::with_behavior(history, current, raw, min, max, behavior, now)
            }
            None => normalize::legacy(
                history,
                current,
                raw,
                min,
                max,
                normalize::LegacyRules {
                    downscale_window_seconds: self.downscale_stabilization_seconds,
                    scale_up_factor: self.legacy_scale_up_factor,
                },
                now,
            ),
        };
        working.extend(normalized.working);
        let reason = if normalized.limit != normalize::Limit::DesiredWithinRange {
            normalized.limit.reason()
        } else {
            normalized.stabilization_reason
        };
        let outcome = decided(normalized.replicas, reason, Some(raw), working);
        if outcome.rescale {
            normalize::store_scale_event(
                history,
                self.spec.behavior.as_ref(),
                current,
                normalized.replicas,
                now,
            );
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &str, replicas: i32) -> MetricOutcome {
        MetricOutcome {
            name: name.into(),
            proposal: Ok(replicas),
        }
    }

    fn failed(name: &str) -> MetricOutcome {
        MetricOutcome {
            name: name.into(),
            proposal: Err("unable to get metric".into()),
        }
    }

    fn autoscaler(min: i32, max: i32, behavior: Option<Behavior>) -> Autoscaler {
        Autoscaler::new(HpaSpec {
            min_replicas: min,
            max_replicas: max,
            behavior,
        })
    }

    #[test]
    fn a_fresh_history_holds_a_scale_down_for_the_window() {
        let mut hpa = autoscaler(1, 10, Some(Behavior::default()));
        let first = hpa.reconcile(5, &[ok("queue", 2)], 0.0);
        assert_eq!(
            (first.desired, first.reason.as_str()),
            (5, "ScaleDownStabilized")
        );
        // still within 300 s of the seeded 5
        assert_eq!(hpa.reconcile(5, &[ok("queue", 2)], 299.0).desired, 5);
        assert_eq!(hpa.reconcile(5, &[ok("queue", 2)], 301.0).desired, 2);
        // the legacy path seeds the same way
        let mut legacy = autoscaler(1, 10, None);
        assert_eq!(legacy.reconcile(5, &[ok("queue", 2)], 0.0).desired, 5);
    }

    #[test]
    fn bounds_come_before_metrics_and_zero_disables() {
        let mut hpa = autoscaler(2, 6, None);
        let above = hpa.reconcile(9, &[ok("queue", 20)], 0.0);
        assert_eq!((above.desired, above.proposed), (6, None));
        let below = autoscaler(2, 6, None).reconcile(1, &[failed("queue")], 0.0);
        assert_eq!(below.desired, 2);
        let zero = autoscaler(1, 6, None).reconcile(0, &[ok("queue", 4)], 0.0);
        assert_eq!(
            (zero.desired, zero.rescale, zero.reason.as_str()),
            (0, false, "ScalingDisabled")
        );
    }

    #[test]
    fn an_invalid_metric_blocks_a_scale_down_but_not_a_scale_up() {
        let mut hpa = autoscaler(1, 10, Some(Behavior::default()));
        let held = hpa.reconcile(4, &[ok("queue", 2), failed("gpu")], 0.0);
        assert_eq!(
            (held.desired, held.reason.as_str()),
            (4, "FailedGetMetrics")
        );
        let up = autoscaler(1, 10, Some(Behavior::default())).reconcile(
            4,
            &[ok("queue", 6), failed("gpu")],
            0.0,
        );
        assert_eq!(up.desired, 6);
        let none = autoscaler(1, 10, None).reconcile(4, &[failed("gpu")], 0.0);
        assert_eq!((none.desired, none.proposed), (4, None));
    }

    #[test]
    fn rate_limits_count_both_directions_within_the_period() {
        // scale-up policy: 2 pods per 60 s
        let mut behavior = Behavior::default();
        behavior.scale_up.policies = vec![super::super::Policy::pods(2, 60)];
        behavior.scale_down.stabilization_seconds = 0;
        let mut hpa = autoscaler(1, 20, Some(behavior));
        // down 10 → 6 at t=0 (100 % per 15 s allows it), then up at t=30: the period started
        // at 10, so 10 + 2 = 12 is allowed, not 6 + 2 = 8
        assert_eq!(hpa.reconcile(10, &[ok("queue", 6)], 0.0).desired, 6);
        let up = hpa.reconcile(6, &[ok("queue", 15)], 30.0);
        assert_eq!((up.desired, up.reason.as_str()), (12, "ScaleUpLimit"));
    }
}
