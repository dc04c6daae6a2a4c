//! The HorizontalPodAutoscaler controller's algorithm, written after kube-controller-manager
//! **v1.35** (`pkg/controller/podautoscaler/` in kubernetes/kubernetes), so that `kubemind
//! explain` and `kubemind demo` give the replica count the real controller gives.
//!
//! - [`replicas`] follows `replica_calculator.go`: one metric's proposal (Pods, Object and
//!   External metrics with Value and AverageValue targets, and CPU/memory utilization for the
//!   demo's CPU HPA), with the tolerance and the treatment of missing, unready and ignored pods.
//! - [`behavior`] is `spec.behavior` with the API server's defaults filled in.
//! - [`normalize`] follows `horizontal.go`'s normalization: the stabilization windows and the
//!   rate limits of both the `behavior` path and the legacy path of an HPA without `behavior`.
//! - [`controller`] follows `reconcileAutoscaler` and `computeReplicasForMetrics`: the bounds
//!   checked before any metric, the maximum over metrics, what an invalid metric prevents, and
//!   the history the controller keeps between syncs.
//!
//! Values are int64 milli-units, as the controller holds them (`Quantity.MilliValue`); times
//! are seconds on one clock chosen by the caller (simulated time in the demo). Every
//! calculation records the arithmetic it actually did, in words, for `explain` to print.
//! The upstream unit tests these functions are checked against live in `upstream_tests`.

pub mod behavior;
pub mod controller;
pub mod normalize;
pub mod replicas;
#[cfg(test)]
mod upstream_tests;

pub use behavior::{Behavior, Policy, PolicyKind, Rules, Select};
pub use controller::{Autoscaler, HpaSpec, MetricOutcome, Reconciliation};
pub use replicas::{CalcError, Calculation, PodGroups};

/// Milli-units, as `resource.Quantity::MilliValue` gives them.
pub(crate) type Milli = i64;

/// The controller's tolerance when the HPA sets none (`--horizontal-pod-autoscaler-tolerance`).
pub(crate) const DEFAULT_TOLERANCE: f64 = 0.1;
/// The controller's default scale-down stabilization window
/// (`--horizontal-pod-autoscaler-downscale-stabilization`), in seconds.
pub(crate) const DEFAULT_DOWNSCALE_STABILIZATION_SECONDS: i32 = 300;

/// The band in which a usage ratio changes nothing: `1 − scale_down ≤ ratio ≤ 1 + scale_up`
/// (`Tolerances.isWithin` in `replica_calculator.go`; both ends included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    pub scale_down: f64,
    pub scale_up: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            scale_down: DEFAULT_TOLERANCE,
            scale_up: DEFAULT_TOLERANCE,
        }
    }
}

impl Tolerances {
    pub(crate) fn is_within(&self, ratio: f64) -> bool {
        1.0 - self.scale_down <= ratio && ratio <= 1.0 + self.scale_up
    }

    /// `[0.9, 1.1]`, as printed in working lines.
    pub(crate) fn band(&self) -> String {
        format!(
            "[{}, {}]",
            ratio_text(1.0 - self.scale_down),
            ratio_text(1.0 + self.scale_up)
        )
    }
}

/// A pod's phase, as `status.phase` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl Phase {
    pub fn parse(phase: Option<&str>) -> Phase {
        match phase {
            Some("Pending") => Phase::Pending,
            Some("Running") => Phase::Running,
            Some("Succeeded") => Phase::Succeeded,
            Some("Failed") => Phase::Failed,
            _ => Phase::Unknown,
        }
    }
}

/// What the controller reads of a pod the HPA's selector matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    pub name: String,
    pub phase: Phase,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

impl PodState {
    /// A Running, Ready pod.
    pub fn running(name: &str) -> PodState {
        PodState {
            name: name.to_string(),
            phase: Phase::Running,
            ready: true,
            deleting: false,
        }
    }

    /// A pod that is not serving yet: Pending, not Ready.
    pub fn pending(name: &str) -> PodState {
        PodState {
            phase: Phase::Pending,
            ready: false,
            ..PodState::running(name)
        }
    }

    pub(crate) fn from_pod(pod: &k8s_openapi::api::core::v1::Pod) -> PodState {
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        PodState {
            name: pod.metadata.name.clone().unwrap_or_default(),
            phase: Phase::parse(status.and_then(|s| s.phase.as_deref())),
            ready,
            deleting: pod.metadata.deletion_timestamp.is_some(),
        }
    }

    /// Counted by the Value formulas of Object and External metrics (`getReadyPodsCount`).
    pub(crate) fn is_running_and_ready(&self) -> bool {
        self.phase == Phase::Running && self.ready
    }
}

/// A milli-value in the metric's own unit: `1500` → `1.5`, `2000` → `2`.
pub(crate) fn milli_text(value: Milli) -> String {
    let whole = value / 1000;
    let fraction = (value % 1000).abs();
    if fraction == 0 {
        whole.to_string()
    } else {
        let sign = if value < 0 && whole == 0 { "-" } else { "" };
        let digits = format!("{fraction:03}");
        format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// A ratio with up to four decimals, trailing zeros dropped.
pub(crate) fn ratio_text(ratio: f64) -> String {
    let text = format!("{ratio:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_a_person_reads_them() {
        assert_eq!(milli_text(1500), "1.5");
        assert_eq!(milli_text(2000), "2");
        assert_eq!(milli_text(-250), "-0.25");
        assert_eq!(milli_text(20_005), "20.005");
        assert_eq!(ratio_text(1.0), "1");
        assert_eq!(ratio_text(1.33333), "1.3333");
        assert_eq!(Tolerances::default().band(), "[0.9, 1.1]");
    }

    #[test]
    fn tolerance_ends_are_included() {
        let tolerances = Tolerances {
            scale_down: 0.1,
            scale_up: 0.01,
        };
        assert!(tolerances.is_within(0.9));
        assert!(tolerances.is_within(1.01));
        assert!(!tolerances.is_within(1.0101));
    }
}
