//! The cases of upstream's own controller tests, carried over one by one: each row names the
//! Go test it comes from (kubernetes/kubernetes, `pkg/controller/podautoscaler/`, v1.35), its
//! inputs and its expected count, and must give the same count here.
//!
//! - `replica_calculator_test.go`: every case of a Pods, Object or External metric. There the
//!   pods are `test-pod-0…`, all Running; a pod beyond the metric's levels has no value; levels
//!   and targets are already milli-values; `Tolerances{down, up}` defaults to 0.1 both ways.
//! - `horizontal_test.go`: the normalization cases (stabilization, the rate limits of
//!   `behavior`, the legacy path, minReplicas and maxReplicas) and the invalid-metric cases.

use std::collections::BTreeMap;

use super::behavior::{Behavior, Policy, PolicyKind, Rules, Select};
use super::controller::{Autoscaler, HpaSpec, MetricOutcome};
use super::normalize::{self, History};
use super::replicas::{
    external_average_value, external_value, object_average_value, object_value, pods_metric,
    resource_utilization,
};
use super::{Milli, PodState, Tolerances};

/// The time the function under test runs; events and recommendations are placed before it.
const NOW: f64 = 10_000.0;
/// `init()` in `horizontal_test.go` sets `scaleUpLimitFactor = 8`.
const TEST_SCALE_UP_FACTOR: f64 = 8.0;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Pods,
    ObjectValue,
    ObjectAverageValue,
    ExternalValue,
    ExternalAverageValue,
}

/// A test pod: Running, its Ready condition, its value (`None`: no metric returned for it).
#[derive(Debug, Clone, Copy)]
struct TestPod {
    ready: bool,
    value: Option<Milli>,
}

const fn pod(ready: bool, value: Option<Milli>) -> TestPod {
    TestPod { ready, value }
}

/// One case of `replica_calculator_test.go`.
struct Case {
    /// The Go test function (the version before the tests were folded into tables).
    upstream: &'static str,
    /// The same case in the newest version's tables.
    subtest: &'static str,
    kind: Kind,
    current: i32,
    pods: &'static [TestPod],
    /// Object: the one value; External: the levels, summed.
    values: &'static [Milli],
    target: Milli,
    tolerances: Tolerances,
    replicas: i32,
    usage: Milli,
}

const REPLICA_CALCULATOR: &[Case] = &[
    Case {
        upstream: "TestReplicaCalcScaleUpCM",
        subtest: "TestReplicaCalcPodMetric/scale up",
        kind: Kind::Pods,
        current: 3,
        pods: &[
            pod(true, Some(20_000)),
            pod(true, Some(10_000)),
            pod(true, Some(30_000)),
        ],
        values: &[],
        target: 15_000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 4,
        usage: 20_000,
    },
    Case {
        upstream: "TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale",
        subtest: "TestReplicaCalcPodMetric/scale up: unready hot-CPU pod scales less",
        kind: Kind::Pods,
        current: 3,
        pods: &[
            pod(true, Some(50_000)),
            pod(true, Some(10_000)),
            pod(false, Some(30_000)),
        ],
        values: &[],
        target: 15_000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 6,
        usage: 30_000,
    },
    Case {
        upstream: "TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown",
        subtest: "TestReplicaCalcPodMetric/scale up: unready hot-CPU pods avoid scale-down",
        kind: Kind::Pods,
        current: 3,
        pods: &[
            pod(false, Some(50_000)),
            pod(true, Some(15_000)),
            pod(false, Some(30_000)),
        ],
        values: &[],
        target: 15_000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 7,
        usage: 31_666,
    },
    Case {
        upstream: "TestReplicaCalcScaleDownCM",
        subtest: "TestReplicaCalcPodMetric/scale down",
        kind: Kind::Pods,
        current: 5,
        pods: &[
            pod(true, Some(12_000)),
            pod(true, Some(12_000)),
            pod(true, Some(12_000)),
            pod(true, Some(12_000)),
            pod(true, Some(12_000)),
        ],
        values: &[],
        target: 20_000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 3,
        usage: 12_000,
    },
    Case {
        upstream: "TestReplicaCalcToleranceCM",
        subtest: "TestReplicaCalcPodMetric/within default tolerance",
        kind: Kind::Pods,
        current: 3,
        pods: &[
            pod(true, Some(20_000)),
            pod(true, Some(21_000)),
            pod(true, Some(21_000)),
        ],
        values: &[],
        target: 20_000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 3,
        usage: 20_666,
    },
    Case {
        upstream: "TestReplicaCalcConfigurableToleranceCM",
        subtest: "TestReplicaCalcPodMetric/outside configurable 1% tolerance",
        kind: Kind::Pods,
        current: 3,
        pods: &[
            pod(true, Some(20_000)),
            pod(true, Some(21_000)),
            pod(true, Some(21_000)),
        ],
        values: &[],
        target: 20_000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.01,
        },
        replicas: 4,
        usage: 20_666,
    },
    Case {
        upstream: "TestPlainMetricReplicaCalcMissingMetricsNoChangeEq",
        subtest: "TestReplicaCalcPodMetric/no change: missing metrics",
        kind: Kind::Pods,
        current: 5,
        pods: &[
            pod(true, Some(20_000)),
            pod(true, Some(19_000)),
            pod(true, Some(21_000)),
            pod(true, None),
            pod(true, None),
        ],
        values: &[],
        target: 20_000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 5,
        usage: 20_000,
    },
    Case {
        upstream: "TestReplicaCalcDuringRollingUpdateWithMaxSurgeCM",
        subtest: "TestReplicaCalcPodMetric/rolling update with maxSurge: extra pod missing metric",
        kind: Kind::Pods,
        current: 2,
        pods: &[
            pod(true, Some(10_000)),
            pod(true, Some(10_000)),
            pod(true, None),
        ],
        values: &[],
        target: 17_000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 2,
        usage: 10_000,
    },
    Case {
        upstream: "TestReplicaCalcScaleUpOverflow",
        subtest: "TestReplicaCalcObjectMetric/scale up: very large metric saturates replicas to MaxInt32",
        kind: Kind::ObjectValue,
        current: 3,
        pods: &[pod(true, None), pod(true, None), pod(true, None)],
        values: &[i64::MAX],
        target: 1,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: i32::MAX,
        usage: i64::MAX,
    },
    Case {
        upstream: "TestReplicaCalcScaleUpCMObject",
        subtest: "TestReplicaCalcObjectMetric/scale up",
        kind: Kind::ObjectValue,
        current: 3,
        pods: &[pod(true, None), pod(true, None), pod(true, None)],
        values: &[20_000],
        target: 15_000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 4,
        usage: 20_000,
    },
    Case {
        upstream: "TestReplicaCalcScaleUpCMObjectIgnoresUnreadyPods",
        subtest: "TestReplicaCalcObjectMetric/scale up: ignores unready pods",
        kind: Kind::ObjectValue,
        current: 3,
        pods: &[pod(false, None), pod(true, None), pod(false, None)],
        values: &[50_000],
        target: 10_000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 5,
        usage: 50_000,
    },
    Case {
        upstream: "TestReplicaCalcScaleDownCMObject",
        subtest: "TestReplicaCalcObjectMetric/scale down",
        kind: Kind::ObjectValue,
        current: 5,
        pods: &[
            pod(true, None),
            pod(true, None),
            pod(true, None),
            pod(true, None),
            pod(true, None),
        ],
        values: &[12_000],
        target: 20_000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 3,
        usage: 12_000,
    },
    Case {
        upstream: "TestReplicaCalcToleranceCMObject",
        subtest: "TestReplicaCalcObjectMetric/within default tolerance",
        kind: Kind::ObjectValue,
        current: 3,
        pods: &[pod(true, None), pod(true, None), pod(true, None)],
        values: &[20_666],
        target: 20_000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 3,
        usage: 20_666,
    },
    Case {
        upstream: "TestReplicaCalcConfigurableToleranceCMObject",
        subtest: "TestReplicaCalcObjectMetric/outside configurable 1% tolerance",
        kind: Kind::ObjectValue,
        current: 3,
        pods: &[pod(true, None), pod(true, None), pod(true, None)],
        values: &[20_666],
        target: 20_000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.01,
        },
        replicas: 4,
        usage: 20_666,
    },
    Case {
        upstream: "TestReplicaCalcScaleUpCMPerPodObject",
        subtest: "TestReplicaCalcObjectPerPodMetric/scale up",
        kind: Kind::ObjectAverageValue,
        current: 3,
        pods: &[pod(true, None), pod(true, None), pod(true, None)],
        values: &[20_000],
        target: 5000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 4,
        usage: 6667,
    },
    Case {
        upstream: "TestReplicaCalcScaleDownPerPodCMObject",
        subtest: "TestReplicaCalcObjectPerPodMetric/scale down",
        kind: Kind::ObjectAverageValue,
        current: 5,
        pods: &[
            pod(true, None),
            pod(true, None),
            pod(true, None),
            pod(true, None),
            pod(true, None),
        ],
        values: &[6000],
        target: 2000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 3,
        usage: 1200,
    },
    Case {
        upstream: "TestReplicaCalcTolerancePerPodCMObject",
        subtest: "TestReplicaCalcObjectPerPodMetric/within default tolerance",
        kind: Kind::ObjectAverageValue,
        current: 4,
        pods: &[
            pod(true, None),
            pod(true, None),
            pod(true, None),
            pod(true, None),
        ],
        values: &[20_166],
        target: 5000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 4,
        usage: 5042,
    },
    Case {
        upstream: "TestReplicaCalcConfigurableTolerancePerPodCMObject",
        subtest: "TestReplicaCalcObjectPerPodMetric/outside configurable 1% tolerance",
        kind: Kind::ObjectAverageValue,
        current: 4,
        pods: &[
            pod(true, None),
            pod(true, None),
            pod(true, None),
            pod(true, None),
        ],
        values: &[20_208],
        target: 5000,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.01,
        },
        replicas: 5,
        usage: 5052,
    },
    Case {
        upstream: "TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods",
        subtest: "TestReplicaCalcExternalMetric/scale down: ignores unready pods (would otherwise scale up)",
        kind: Kind::ExternalValue,
        current: 3,
        pods: &[pod(false, None), pod(true, None), pod(false, None)],
        values: &[8600],
        target: 4400,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 2,
        usage: 8600,
    },
    Case {
        upstream: "TestReplicaCalcScaleDownCMExternal",
        subtest: "TestReplicaCalcExternalMetric/scale down",
        kind: Kind::ExternalValue,
        current: 5,
        pods: &[
            pod(true, None),
            pod(true, None),
            pod(true, None),
            pod(true, None),
            pod(true, None),
        ],
        values: &[8600],
        target: 14_334,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 3,
        usage: 8600,
    },
    Case {
        upstream: "TestReplicaCalcToleranceCMExternal",
        subtest: "TestReplicaCalcExternalMetric/within default tolerance",
        kind: Kind::ExternalValue,
        current: 3,
        pods: &[pod(true, None), pod(true, None), pod(true, None)],
        values: &[8600],
        target: 8888,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 3,
        usage: 8600,
    },
    Case {
        upstream: "TestReplicaCalcConfigurableToleranceCMExternal",
        subtest: "TestReplicaCalcExternalMetric/outside configurable 1% tolerance",
        kind: Kind::ExternalValue,
        current: 3,
        pods: &[pod(true, None), pod(true, None), pod(true, None)],
        values: &[8900],
        target: 8800,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.01,
        },
        replicas: 4,
        usage: 8900,
    },
    Case {
        upstream: "TestReplicaCalcExternalMetricUsageOverflow",
        subtest: "TestReplicaCalcExternalMetric/usage overflow caps at MaxInt64",
        kind: Kind::ExternalValue,
        current: 3,
        pods: &[pod(true, None), pod(true, None), pod(true, None)],
        values: &[4_611_686_018_427_387_904, 4_611_686_018_427_387_904],
        target: i64::MAX,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 3,
        usage: i64::MAX,
    },
    Case {
        upstream: "TestExternalPerPodMetricReplicaOverflow",
        subtest: "TestReplicaCalcExternalPerPodMetric/replica count overflow saturates to MaxInt32",
        kind: Kind::ExternalAverageValue,
        current: 1,
        pods: &[pod(true, None)],
        values: &[i64::MAX],
        target: 1,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: i32::MAX,
        usage: i64::MAX,
    },
    Case {
        upstream: "TestExternalPerPodMetricUsageOverflow",
        subtest: "TestReplicaCalcExternalPerPodMetric/usage overflow with huge target leaves replicas unchanged",
        kind: Kind::ExternalAverageValue,
        current: 1,
        pods: &[pod(true, None)],
        values: &[i64::MAX],
        target: i64::MAX,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 1,
        usage: i64::MAX,
    },
    Case {
        upstream: "TestReplicaCalcScaleUpPerPodCMExternal",
        subtest: "TestReplicaCalcExternalPerPodMetric/scale up",
        kind: Kind::ExternalAverageValue,
        current: 3,
        pods: &[pod(true, None), pod(true, None), pod(true, None)],
        values: &[8600],
        target: 2150,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 4,
        usage: 2867,
    },
    Case {
        upstream: "TestReplicaCalcScaleDownPerPodCMExternal",
        subtest: "TestReplicaCalcExternalPerPodMetric/scale down",
        kind: Kind::ExternalAverageValue,
        current: 5,
        pods: &[
            pod(true, None),
            pod(true, None),
            pod(true, None),
            pod(true, None),
            pod(true, None),
        ],
        values: &[8600],
        target: 2867,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 3,
        usage: 1720,
    },
    Case {
        upstream: "TestReplicaCalcTolerancePerPodCMExternal",
        subtest: "TestReplicaCalcExternalPerPodMetric/within default tolerance",
        kind: Kind::ExternalAverageValue,
        current: 3,
        pods: &[pod(true, None), pod(true, None), pod(true, None)],
        values: &[8600],
        target: 2900,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.1,
        },
        replicas: 3,
        usage: 2867,
    },
    Case {
        upstream: "TestReplicaCalcConfigurableTolerancePerPodCMExternal",
        subtest: "TestReplicaCalcExternalPerPodMetric/outside configurable 1% tolerance",
        kind: Kind::ExternalAverageValue,
        current: 3,
        pods: &[pod(true, None), pod(true, None), pod(true, None)],
        values: &[8600],
        target: 2800,
        tolerances: Tolerances {
            scale_down: 0.1,
            scale_up: 0.01,
        },
        replicas: 4,
        usage: 2867,
    },
];

#[test]
fn replica_calculator_cases_give_upstreams_counts() {
    for case in REPLICA_CALCULATOR {
        let pods: Vec<PodState> = case
            .pods
            .iter()
            .enumerate()
            .map(|(i, p)| PodState {
                ready: p.ready,
                ..PodState::running(&format!("test-pod-{i}"))
            })
            .collect();
        let values: BTreeMap<String, Milli> = case
            .pods
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((format!("test-pod-{i}"), p.value?)))
            .collect();
        let outcome = match case.kind {
            Kind::Pods => pods_metric(case.current, &pods, &values, case.target, case.tolerances),
            Kind::ObjectValue => object_value(
                case.current,
                &pods,
                case.values[0],
                case.target,
                case.tolerances,
            ),
            Kind::ObjectAverageValue => {
                object_average_value(case.current, case.values[0], case.target, case.tolerances)
            }
            Kind::ExternalValue => external_value(
                case.current,
                &pods,
                case.values,
                case.target,
                case.tolerances,
            ),
            Kind::ExternalAverageValue => {
                external_average_value(case.current, case.values, case.target, case.tolerances)
            }
        };
        let outcome =
            outcome.unwrap_or_else(|e| panic!("{} ({}): {e}", case.upstream, case.subtest));
        assert_eq!(
            (outcome.replicas, outcome.usage),
            (case.replicas, case.usage),
            "{} ({}): {:?}",
            case.upstream,
            case.subtest,
            outcome.working
        );
    }
}

/// Rules as a test table writes them; `stabilization: None` is the controller's 300 s.
#[derive(Debug, Clone, Copy)]
struct TestRules {
    stabilization: Option<i32>,
    select: Select,
    policies: &'static [(PolicyKind, i32, i32)],
}

impl TestRules {
    fn rules(&self) -> Rules {
        Rules {
            stabilization_seconds: self.stabilization.unwrap_or(300),
            policies: self
                .policies
                .iter()
                .map(|(kind, value, period_seconds)| Policy {
                    kind: *kind,
                    value: *value,
                    period_seconds: *period_seconds,
                })
                .collect(),
            select: self.select,
            tolerance: None,
        }
    }
}

struct Stabilization {
    case: &'static str,
    /// (replicas, seconds ago)
    recommendations: &'static [(i32, f64)],
    current: i32,
    desired: i32,
    up_window: i32,
    down_window: i32,
    stabilized: i32,
    recommendations_after: Option<&'static [i32]>,
}

struct RateCase {
    case: &'static str,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    scale_up: TestRules,
    scale_down: TestRules,
    /// (replicas changed, seconds ago)
    scale_up_events: &'static [(i32, f64)],
    scale_down_events: &'static [(i32, f64)],
    expected: i32,
    reason: &'static str,
}

/// CPU utilization as the controller tests feed it: usage and requests per pod, milli-cores.
struct Cpu {
    target_percent: i32,
    usage: &'static [Milli],
    requests: &'static [Milli],
}

struct TestBehavior {
    scale_up: TestRules,
    scale_down: TestRules,
    up_tolerance: Option<f64>,
    down_tolerance: Option<f64>,
}

/// The recommendation history before the sync.
enum Seed {
    /// None yet: the controller seeds it with the current count.
    Current,
    /// An empty, existing history: not seeded.
    Empty,
    /// (replicas, seconds ago)
    List(&'static [(i32, f64)]),
}

struct ControllerCase {
    case: &'static str,
    min: i32,
    max: i32,
    spec_replicas: i32,
    cpu: Option<Cpu>,
    /// A second metric that fails (an unknown type, or an external metric that errors).
    invalid_metric: bool,
    behavior: Option<TestBehavior>,
    seed: Seed,
    desired: i32,
    /// The condition reason the sync ends with.
    reason: &'static str,
}

/// Recommendations or scale events as a table writes them: (replicas, seconds ago).
type Placed = &'static [(i32, f64)];

fn placed(list: &[(i32, f64)]) -> Vec<(f64, i32)> {
    list.iter().map(|(n, ago)| (NOW - ago, *n)).collect()
}

/// `TestConvertDesiredReplicasWithRules` (the test file sets `scaleUpLimitFactor = 8`):
/// (case, current, desired, minReplicas, maxReplicas, expected, condition reason).
const CONVERT_WITH_RULES: &[(&str, i32, i32, i32, i32, i32, &str)] = &[
    (
        "prenormalized desired replicas within range",
        5,
        7,
        3,
        8,
        7,
        "DesiredWithinRange",
    ),
    (
        "prenormalized desired replicas < minReplicas",
        3,
        1,
        2,
        8,
        2,
        "TooFewReplicas",
    ),
    (
        "prenormalized desired zeroed replicas within range",
        1,
        0,
        0,
        10,
        0,
        "DesiredWithinRange",
    ),
    (
        "maxReplicas is the limit because maxReplicas < scaleUpLimit",
        20,
        1000,
        1,
        10,
        10,
        "TooManyReplicas",
    ),
    (
        "scaleUpLimit is the limit because scaleUpLimit < maxReplicas",
        3,
        1000,
        1,
        2000,
        24,
        "ScaleUpLimit",
    ),
];

/// `TestNormalizeDesiredReplicas` (legacy stabilization): (case, window, recommendations as
/// (replicas, seconds ago), desired, expected, length of the log after).
const LEGACY_STABILIZATION: &[(&str, i32, Placed, i32, i32, usize)] = &[
    ("empty log", 300, &[], 5, 5, 1),
    ("stabilize", 300, &[(4, 120.0), (5, 60.0)], 3, 5, 3),
    ("no stabilize", 300, &[(1, 120.0), (2, 60.0)], 3, 3, 3),
    (
        "no stabilize - old recommendations",
        300,
        &[(10, 600.0), (9, 540.0)],
        3,
        3,
        2,
    ),
    (
        "stabilize - old recommendations",
        300,
        &[(10, 600.0), (4, 60.0), (5, 120.0), (9, 540.0)],
        3,
        5,
        4,
    ),
];

/// `TestNormalizeDesiredReplicasWithBehavior` (`stabilizeRecommendationWithBehaviors`).
const BEHAVIOR_STABILIZATION: &[Stabilization] = &[
    Stabilization {
        case: "empty recommendations for scaling down",
        recommendations: &[],
        current: 100,
        desired: 5,
        up_window: 0,
        down_window: 0,
        stabilized: 5,
        recommendations_after: Some(&[5]),
    },
    Stabilization {
        case: "simple scale down stabilization",
        recommendations: &[(4, 120.0), (5, 60.0)],
        current: 100,
        desired: 3,
        up_window: 0,
        down_window: 180,
        stabilized: 5,
        recommendations_after: Some(&[4, 5, 3]),
    },
    Stabilization {
        case: "simple scale up stabilization",
        recommendations: &[(4, 120.0), (5, 60.0)],
        current: 1,
        desired: 7,
        up_window: 300,
        down_window: 0,
        stabilized: 4,
        recommendations_after: Some(&[4, 5, 7]),
    },
    Stabilization {
        case: "no scale down stabilization",
        recommendations: &[(1, 120.0), (2, 60.0)],
        current: 100,
        desired: 3,
        up_window: 300,
        down_window: 0,
        stabilized: 3,
        recommendations_after: Some(&[1, 2, 3]),
    },
    Stabilization {
        case: "no scale up stabilization",
        recommendations: &[(4, 120.0), (5, 60.0)],
        current: 1,
        desired: 3,
        up_window: 0,
        down_window: 300,
        stabilized: 3,
        recommendations_after: Some(&[4, 5, 3]),
    },
    Stabilization {
        case: "no scale down stabilization, reuse recommendation element",
        recommendations: &[(10, 600.0), (9, 540.0)],
        current: 100,
        desired: 3,
        up_window: 0,
        down_window: 0,
        stabilized: 3,
        recommendations_after: Some(&[10, 3]),
    },
    Stabilization {
        case: "no scale up stabilization, reuse recommendation element",
        recommendations: &[(10, 600.0), (9, 540.0)],
        current: 1,
        desired: 100,
        up_window: 0,
        down_window: 0,
        stabilized: 100,
        recommendations_after: Some(&[10, 100]),
    },
    Stabilization {
        case: "scale down stabilization, reuse one of obsolete recommendation element",
        recommendations: &[(10, 600.0), (4, 60.0), (5, 120.0), (9, 540.0)],
        current: 100,
        desired: 3,
        up_window: 0,
        down_window: 180,
        stabilized: 5,
        recommendations_after: Some(&[10, 4, 5, 3]),
    },
    Stabilization {
        case: "scale up stabilization, reuse one of obsolete recommendation element",
        recommendations: &[(10, 6000.0), (6, 60.0), (5, 120.0), (9, 180.0)],
        current: 1,
        desired: 100,
        up_window: 300,
        down_window: 0,
        stabilized: 5,
        recommendations_after: Some(&[100, 6, 5, 9]),
    },
    Stabilization {
        case: "scale up and down stabilization, do not scale up when prenormalized rec goes down",
        recommendations: &[(2, 6000.0), (3, 180.0)],
        current: 2,
        desired: 1,
        up_window: 300,
        down_window: 300,
        stabilized: 2,
        recommendations_after: None,
    },
    Stabilization {
        case: "scale up and down stabilization, do not scale down when prenormalized rec goes up",
        recommendations: &[(2, 6000.0), (1, 180.0)],
        current: 2,
        desired: 3,
        up_window: 300,
        down_window: 300,
        stabilized: 2,
        recommendations_after: None,
    },
];

/// `TestScalingWithRules` (`convertDesiredReplicasWithBehaviorRate`), rules as defaulted.
const SCALING_WITH_RULES: &[RateCase] = &[
    RateCase {
        case: "prenormalized desired replicas within range",
        current: 5,
        desired: 7,
        min: 3,
        max: 8,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 7,
        reason: "DesiredWithinRange",
    },
    RateCase {
        case: "prenormalized desired replicas < minReplicas",
        current: 3,
        desired: 1,
        min: 2,
        max: 8,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 2,
        reason: "TooFewReplicas",
    },
    RateCase {
        case: "prenormalized desired replicas within range when minReplicas is 0",
        current: 1,
        desired: 0,
        min: 0,
        max: 10,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 0,
        reason: "DesiredWithinRange",
    },
    RateCase {
        case: "maxReplicas is the limit because maxReplicas < scaleUpLimit",
        current: 20,
        desired: 1000,
        min: 1,
        max: 10,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 10,
        reason: "TooManyReplicas",
    },
    RateCase {
        case: "desired replica count is more than the maximum replica count",
        current: 100,
        desired: 1000,
        min: 100,
        max: 150,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 150,
        reason: "TooManyReplicas",
    },
    RateCase {
        case: "scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
        current: 3,
        desired: 1000,
        min: 1,
        max: 2000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 1, 60)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 4,
        reason: "ScaleUpLimit",
    },
    RateCase {
        case: "scaleUp with default behavior",
        current: 10,
        desired: 50,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 20,
        reason: "ScaleUpLimit",
    },
    RateCase {
        case: "scaleUp with pods policy larger than percent policy",
        current: 10,
        desired: 500,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 100, 60), (PolicyKind::Percent, 100, 60)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 110,
        reason: "ScaleUpLimit",
    },
    RateCase {
        case: "scaleUp with percent policy larger than pods policy",
        current: 10,
        desired: 500,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 2, 60), (PolicyKind::Percent, 100, 60)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 20,
        reason: "ScaleUpLimit",
    },
    RateCase {
        case: "scaleUp with spec MaxReplicas limitation with large pod policy",
        current: 10,
        desired: 50,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 100, 60)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 50,
        reason: "DesiredWithinRange",
    },
    RateCase {
        case: "scaleUp with spec MaxReplicas limitation with large percent policy",
        current: 10,
        desired: 50,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 10000, 60)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 50,
        reason: "DesiredWithinRange",
    },
    RateCase {
        case: "scaleUp with pod policy limitation",
        current: 10,
        desired: 50,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 30, 60)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 40,
        reason: "ScaleUpLimit",
    },
    RateCase {
        case: "scaleUp with percent policy limitation",
        current: 10,
        desired: 50,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 200, 60)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 30,
        reason: "ScaleUpLimit",
    },
    RateCase {
        case: "scaleDown with percent policy larger than pod policy",
        current: 100,
        desired: 2,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 20, 60), (PolicyKind::Percent, 1, 60)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 80,
        reason: "ScaleDownLimit",
    },
    RateCase {
        case: "scaleDown with pod policy larger than percent policy",
        current: 100,
        desired: 2,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 2, 60), (PolicyKind::Percent, 1, 60)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 98,
        reason: "ScaleDownLimit",
    },
    RateCase {
        case: "scaleDown with spec MinReplicas=nil limitation with large pod policy",
        current: 10,
        desired: 0,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 100, 60)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 1,
        reason: "TooFewReplicas",
    },
    RateCase {
        case: "scaleDown with spec MinReplicas limitation with large pod policy",
        current: 10,
        desired: 0,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 100, 60)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 1,
        reason: "TooFewReplicas",
    },
    RateCase {
        case: "scaleDown with spec MinReplicas limitation with large percent policy",
        current: 10,
        desired: 2,
        min: 5,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 60)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 5,
        reason: "TooFewReplicas",
    },
    RateCase {
        case: "scaleDown with pod policy limitation",
        current: 10,
        desired: 2,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 5, 60)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 5,
        reason: "ScaleDownLimit",
    },
    RateCase {
        case: "scaleDown with percent policy limitation",
        current: 10,
        desired: 5,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 50, 60)],
        },
        scale_up_events: &[],
        scale_down_events: &[],
        expected: 5,
        reason: "DesiredWithinRange",
    },
    RateCase {
        case: "scaleUp with spec MaxReplicas limitation with large pod policy and events",
        current: 100,
        desired: 500,
        min: 1,
        max: 200,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 300, 60)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[(1, 100.0), (5, 60.0), (9, 20.0)],
        scale_down_events: &[],
        expected: 200,
        reason: "TooManyReplicas",
    },
    RateCase {
        case: "scaleUp with spec MaxReplicas limitation with large percent policy and events",
        current: 100,
        desired: 500,
        min: 1,
        max: 200,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 10000, 60)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[(1, 100.0), (5, 60.0), (9, 20.0)],
        scale_down_events: &[],
        expected: 200,
        reason: "TooManyReplicas",
    },
    RateCase {
        case: "scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent scale up events",
        current: 100,
        desired: 500,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 5, 120)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[(1, 100.0), (5, 60.0), (9, 20.0)],
        scale_down_events: &[],
        expected: 100,
        reason: "ScaleUpLimit",
    },
    RateCase {
        case: "scaleUp with pod policy and previous scale up events",
        current: 100,
        desired: 500,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 150, 120)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[(1, 100.0), (5, 60.0), (9, 20.0)],
        scale_down_events: &[],
        expected: 235,
        reason: "ScaleUpLimit",
    },
    RateCase {
        case: "scaleUp with percent policy and previous scale up events",
        current: 100,
        desired: 500,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 200, 120)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[(1, 100.0), (5, 60.0), (9, 20.0)],
        scale_down_events: &[],
        expected: 255,
        reason: "ScaleUpLimit",
    },
    RateCase {
        case: "scaleUp with percent policy and previous scale up and down events",
        current: 6,
        desired: 24,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 300, 300)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[(4, 60.0)],
        scale_down_events: &[(2, 60.0)],
        expected: 16,
        reason: "ScaleUpLimit",
    },
    RateCase {
        case: "scaleDown with default policy and previous events",
        current: 10,
        desired: 5,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[],
        scale_down_events: &[(1, 100.0), (5, 60.0), (9, 20.0)],
        expected: 5,
        reason: "DesiredWithinRange",
    },
    RateCase {
        case: "scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events",
        current: 100,
        desired: 0,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 115, 120)],
        },
        scale_up_events: &[],
        scale_down_events: &[(1, 100.0), (5, 60.0), (9, 20.0)],
        expected: 1,
        reason: "TooFewReplicas",
    },
    RateCase {
        case: "scaleDown with spec MinReplicas limitation with large pod policy and previous events",
        current: 100,
        desired: 0,
        min: 5,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 130, 120)],
        },
        scale_up_events: &[],
        scale_down_events: &[(1, 100.0), (5, 60.0), (9, 20.0)],
        expected: 5,
        reason: "TooFewReplicas",
    },
    RateCase {
        case: "scaleDown with spec MinReplicas limitation with large percent policy and previous events",
        current: 100,
        desired: 2,
        min: 5,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 120)],
        },
        scale_up_events: &[],
        scale_down_events: &[(1, 100.0), (5, 60.0), (9, 20.0)],
        expected: 5,
        reason: "TooFewReplicas",
    },
    RateCase {
        case: "scaleDown with pod policy limitation and previous events",
        current: 100,
        desired: 2,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 5, 120)],
        },
        scale_up_events: &[],
        scale_down_events: &[(1, 100.0), (5, 60.0), (9, 20.0)],
        expected: 100,
        reason: "ScaleDownLimit",
    },
    RateCase {
        case: "scaleDown with percent policy limitation and previous events",
        current: 100,
        desired: 0,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 50, 120)],
        },
        scale_up_events: &[],
        scale_down_events: &[(2, 100.0), (4, 60.0), (6, 20.0)],
        expected: 56,
        reason: "ScaleDownLimit",
    },
    RateCase {
        case: "scaleDown with percent policy and previous scale up and down events",
        current: 10,
        desired: 1,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 50, 180)],
        },
        scale_up_events: &[(2, 60.0)],
        scale_down_events: &[(4, 60.0)],
        expected: 6,
        reason: "ScaleDownLimit",
    },
    RateCase {
        case: "scaleDown with previous events preventing further scale down",
        current: 100,
        desired: 0,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 10, 120)],
        },
        scale_up_events: &[],
        scale_down_events: &[(10, 100.0), (10, 60.0), (10, 20.0)],
        expected: 100,
        reason: "ScaleDownLimit",
    },
    RateCase {
        case: "scaleDown with with previous events still allowing more scale down",
        current: 10,
        desired: 5,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 1000, 120)],
        },
        scale_up_events: &[],
        scale_down_events: &[(10, 100.0), (10, 60.0), (10, 20.0)],
        expected: 5,
        reason: "DesiredWithinRange",
    },
    RateCase {
        case: "check 'outdated' flag for events for one behavior for up",
        current: 100,
        desired: 200,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 1000, 60)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[(8, 105.0), (12, 75.0), (9, 45.0), (11, 15.0)],
        scale_down_events: &[],
        expected: 200,
        reason: "DesiredWithinRange",
    },
    RateCase {
        case: "check that events were not marked 'outdated' for two different policies in the behavior for up",
        current: 100,
        desired: 200,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[
                (PolicyKind::Pods, 1000, 120),
                (PolicyKind::Percent, 100, 60),
            ],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[(8, 105.0), (12, 75.0), (9, 45.0), (11, 15.0)],
        scale_down_events: &[],
        expected: 200,
        reason: "DesiredWithinRange",
    },
    RateCase {
        case: "check that events were marked 'outdated' for two different policies in the behavior for up",
        current: 100,
        desired: 200,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 1000, 30), (PolicyKind::Percent, 100, 60)],
        },
        scale_down: TestRules {
            stabilization: None,
            select: Select::Max,
            policies: &[(PolicyKind::Percent, 100, 15)],
        },
        scale_up_events: &[(8, 105.0), (12, 75.0), (9, 45.0), (11, 15.0)],
        scale_down_events: &[],
        expected: 200,
        reason: "DesiredWithinRange",
    },
    RateCase {
        case: "check 'outdated' flag for events for one behavior for down",
        current: 100,
        desired: 5,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 1000, 60)],
        },
        scale_up_events: &[],
        scale_down_events: &[(8, 105.0), (12, 75.0), (9, 45.0), (11, 15.0)],
        expected: 5,
        reason: "DesiredWithinRange",
    },
    RateCase {
        case: "check that events were not marked 'outdated' for two different policies in the behavior for down",
        current: 100,
        desired: 5,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[
                (PolicyKind::Pods, 1000, 120),
                (PolicyKind::Percent, 100, 60),
            ],
        },
        scale_up_events: &[],
        scale_down_events: &[(8, 105.0), (12, 75.0), (9, 45.0), (11, 15.0)],
        expected: 5,
        reason: "DesiredWithinRange",
    },
    RateCase {
        case: "check that events were marked 'outdated' for two different policies in the behavior for down",
        current: 100,
        desired: 5,
        min: 1,
        max: 1000,
        scale_up: TestRules {
            stabilization: Some(0),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        },
        scale_down: TestRules {
            stabilization: Some(300),
            select: Select::Max,
            policies: &[(PolicyKind::Pods, 1000, 30), (PolicyKind::Percent, 100, 60)],
        },
        scale_up_events: &[],
        scale_down_events: &[(8, 105.0), (12, 75.0), (9, 45.0), (11, 15.0)],
        expected: 5,
        reason: "DesiredWithinRange",
    },
];

// TestCalculateScaleUpLimitWithScalingRules: {"name": "TestCalculateScaleUpLimitWithScalingRules", "currentReplicas": 1, "scaleUpEvents": [], "scaleDownEvents": [], "rules": {"stabilizationWindowSeconds": 300, "selectPolicy": "Min", "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}, {"type": "Percent", "value": 50, "periodSeconds": 60}]}, "expectedLimit": 2, "derivation": "Pods: 1+2=3; Percent: ceil(1*1.5)=2; Min -> 2"}
// TestCalculateScaleDownLimitWithBehaviors: {"name": "TestCalculateScaleDownLimitWithBehaviors", "currentReplicas": 5, "scaleUpEvents": [], "scaleDownEvents": [], "rules": {"stabilizationWindowSeconds": 300, "selectPolicy": "Min", "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}, {"type": "Percent", "value": 50, "periodSeconds": 60}]}, "expectedLimit": 3, "derivation": "Pods: 5-2=3; Percent: int32(5*0.5)=2; Min select on scale-down takes max -> 3"}
/// The controller tests of `horizontal_test.go` (a whole sync through fake clients; CPU
/// utilization metrics; `scaleUpLimitFactor = 8`).
const CONTROLLER: &[ControllerCase] = &[
    ControllerCase {
        case: "TestScaleUpOneMetricInvalid",
        min: 2,
        max: 6,
        spec_replicas: 3,
        cpu: Some(Cpu {
            target_percent: 30,
            usage: &[300, 400, 500],
            requests: &[1000, 1000, 1000],
        }),
        invalid_metric: true,
        behavior: None,
        seed: Seed::Current,
        desired: 4,
        reason: "ReadyForNewScale",
    },
    ControllerCase {
        case: "TestScaleUpFromZeroOneMetricInvalid",
        min: 0,
        max: 6,
        spec_replicas: 0,
        cpu: Some(Cpu {
            target_percent: 30,
            usage: &[300, 400, 500],
            requests: &[1000, 1000, 1000],
        }),
        invalid_metric: true,
        behavior: None,
        seed: Seed::Empty,
        desired: 4,
        reason: "ReadyForNewScale",
    },
    ControllerCase {
        case: "TestScaleUpBothMetricsEmpty",
        min: 2,
        max: 6,
        spec_replicas: 3,
        cpu: None,
        invalid_metric: true,
        behavior: None,
        seed: Seed::Current,
        desired: 3,
        reason: "FailedGetMetrics",
    },
    ControllerCase {
        case: "TestScaleUpOneMetricEmpty",
        min: 2,
        max: 6,
        spec_replicas: 3,
        cpu: Some(Cpu {
            target_percent: 30,
            usage: &[300, 400, 500],
            requests: &[1000, 1000, 1000],
        }),
        invalid_metric: true,
        behavior: None,
        seed: Seed::Current,
        desired: 4,
        reason: "ReadyForNewScale",
    },
    ControllerCase {
        case: "TestNoScaleDownOneMetricInvalid",
        min: 2,
        max: 6,
        spec_replicas: 5,
        cpu: Some(Cpu {
            target_percent: 50,
            usage: &[100, 300, 500, 250, 250],
            requests: &[1000, 1000, 1000, 1000, 1000],
        }),
        invalid_metric: true,
        behavior: None,
        seed: Seed::Empty,
        desired: 5,
        reason: "FailedGetMetrics",
    },
    ControllerCase {
        case: "TestNoScaleDownOneMetricEmpty",
        min: 2,
        max: 6,
        spec_replicas: 5,
        cpu: Some(Cpu {
            target_percent: 50,
            usage: &[100, 300, 500, 250, 250],
            requests: &[1000, 1000, 1000, 1000, 1000],
        }),
        invalid_metric: true,
        behavior: None,
        seed: Seed::Empty,
        desired: 5,
        reason: "FailedGetMetrics",
    },
    ControllerCase {
        case: "TestMinReplicas",
        min: 2,
        max: 5,
        spec_replicas: 3,
        cpu: Some(Cpu {
            target_percent: 90,
            usage: &[10, 95, 10],
            requests: &[900, 1000, 1100],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Empty,
        desired: 2,
        reason: "TooFewReplicas",
    },
    ControllerCase {
        case: "TestZeroMinReplicasDesiredZero",
        min: 0,
        max: 5,
        spec_replicas: 3,
        cpu: Some(Cpu {
            target_percent: 90,
            usage: &[0, 0, 0],
            requests: &[900, 1000, 1100],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Empty,
        desired: 0,
        reason: "ReadyForNewScale",
    },
    ControllerCase {
        case: "TestMinReplicasDesiredZero",
        min: 2,
        max: 5,
        spec_replicas: 3,
        cpu: Some(Cpu {
            target_percent: 90,
            usage: &[0, 0, 0],
            requests: &[900, 1000, 1100],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Empty,
        desired: 2,
        reason: "TooFewReplicas",
    },
    ControllerCase {
        case: "TestZeroReplicas",
        min: 3,
        max: 5,
        spec_replicas: 0,
        cpu: Some(Cpu {
            target_percent: 90,
            usage: &[],
            requests: &[],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Current,
        desired: 0,
        reason: "ScalingDisabled",
    },
    ControllerCase {
        case: "TestTooFewReplicas",
        min: 3,
        max: 5,
        spec_replicas: 2,
        cpu: Some(Cpu {
            target_percent: 90,
            usage: &[],
            requests: &[],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Current,
        desired: 3,
        reason: "TooFewReplicas",
    },
    ControllerCase {
        case: "TestTooManyReplicas",
        min: 3,
        max: 5,
        spec_replicas: 10,
        cpu: Some(Cpu {
            target_percent: 90,
            usage: &[],
            requests: &[],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Current,
        desired: 5,
        reason: "TooManyReplicas",
    },
    ControllerCase {
        case: "TestMaxReplicas",
        min: 2,
        max: 5,
        spec_replicas: 3,
        cpu: Some(Cpu {
            target_percent: 90,
            usage: &[8000, 9500, 1000],
            requests: &[900, 1000, 1100],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Current,
        desired: 5,
        reason: "TooManyReplicas",
    },
    ControllerCase {
        case: "TestSuperfluousMetrics",
        min: 2,
        max: 6,
        spec_replicas: 4,
        cpu: Some(Cpu {
            target_percent: 100,
            usage: &[4000, 9500, 3000, 7000, 3200, 2000],
            requests: &[1000, 1000, 1000, 1000],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Current,
        desired: 6,
        reason: "TooManyReplicas",
    },
    ControllerCase {
        case: "TestScaleDownStabilizeInitialSize",
        min: 2,
        max: 6,
        spec_replicas: 5,
        cpu: Some(Cpu {
            target_percent: 50,
            usage: &[100, 300, 500, 250, 250],
            requests: &[1000, 1000, 1000, 1000, 1000],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Current,
        desired: 5,
        reason: "ScaleDownStabilized",
    },
    ControllerCase {
        case: "TestStabilizeDownscale",
        min: 1,
        max: 5,
        spec_replicas: 4,
        cpu: Some(Cpu {
            target_percent: 100,
            usage: &[50, 50, 50],
            requests: &[100, 100, 100],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::List(&[(10, 600.0), (4, 60.0)]),
        desired: 4,
        reason: "ScaleDownStabilized",
    },
    ControllerCase {
        case: "TestScaleUpRCImmediately",
        min: 2,
        max: 6,
        spec_replicas: 1,
        cpu: Some(Cpu {
            target_percent: 80,
            usage: &[0, 0, 0, 0],
            requests: &[1000, 1000, 1000, 1000],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Current,
        desired: 2,
        reason: "TooFewReplicas",
    },
    ControllerCase {
        case: "TestScaleDownRCImmediately",
        min: 2,
        max: 5,
        spec_replicas: 6,
        cpu: Some(Cpu {
            target_percent: 50,
            usage: &[8000, 9500, 1000],
            requests: &[900, 1000, 1100],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Current,
        desired: 5,
        reason: "TooManyReplicas",
    },
    ControllerCase {
        case: "TestUpscaleCap",
        min: 1,
        max: 100,
        spec_replicas: 3,
        cpu: Some(Cpu {
            target_percent: 10,
            usage: &[100, 200, 300],
            requests: &[100, 100, 100],
        }),
        invalid_metric: false,
        behavior: Some(TestBehavior {
            scale_up: TestRules {
                stabilization: Some(0),
                select: Select::Max,
                policies: &[(PolicyKind::Percent, 700, 60)],
            },
            scale_down: TestRules {
                stabilization: None,
                select: Select::Max,
                policies: &[(PolicyKind::Percent, 100, 15)],
            },
            up_tolerance: None,
            down_tolerance: None,
        }),
        seed: Seed::Current,
        desired: 24,
        reason: "ScaleUpLimit",
    },
    ControllerCase {
        case: "TestUpscaleCapGreaterThanMaxReplicas",
        min: 1,
        max: 20,
        spec_replicas: 3,
        cpu: Some(Cpu {
            target_percent: 10,
            usage: &[100, 200, 300],
            requests: &[100, 100, 100],
        }),
        invalid_metric: false,
        behavior: Some(TestBehavior {
            scale_up: TestRules {
                stabilization: Some(0),
                select: Select::Max,
                policies: &[(PolicyKind::Percent, 700, 60)],
            },
            scale_down: TestRules {
                stabilization: None,
                select: Select::Max,
                policies: &[(PolicyKind::Percent, 100, 15)],
            },
            up_tolerance: None,
            down_tolerance: None,
        }),
        seed: Seed::Current,
        desired: 20,
        reason: "TooManyReplicas",
    },
    ControllerCase {
        case: "TestMoreReplicasThanSpecNoScale",
        min: 1,
        max: 8,
        spec_replicas: 4,
        cpu: Some(Cpu {
            target_percent: 50,
            usage: &[500, 500, 500, 500, 500],
            requests: &[1000, 1000, 1000, 1000, 1000],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Current,
        desired: 4,
        reason: "ReadyForNewScale",
    },
    ControllerCase {
        case: "TestScaleDown",
        min: 2,
        max: 6,
        spec_replicas: 5,
        cpu: Some(Cpu {
            target_percent: 50,
            usage: &[100, 300, 500, 250, 250],
            requests: &[1000, 1000, 1000, 1000, 1000],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Empty,
        desired: 3,
        reason: "ReadyForNewScale",
    },
    ControllerCase {
        case: "TestScaleDownWithScalingRules",
        min: 2,
        max: 6,
        spec_replicas: 5,
        cpu: Some(Cpu {
            target_percent: 50,
            usage: &[100, 300, 500, 250, 250],
            requests: &[1000, 1000, 1000, 1000, 1000],
        }),
        invalid_metric: false,
        behavior: Some(TestBehavior {
            scale_up: TestRules {
                stabilization: Some(30),
                select: Select::Max,
                policies: &[(PolicyKind::Percent, 100, 15)],
            },
            scale_down: TestRules {
                stabilization: None,
                select: Select::Max,
                policies: &[(PolicyKind::Percent, 100, 15)],
            },
            up_tolerance: None,
            down_tolerance: None,
        }),
        seed: Seed::Empty,
        desired: 3,
        reason: "ReadyForNewScale",
    },
    ControllerCase {
        case: "TestTolerance",
        min: 1,
        max: 5,
        spec_replicas: 3,
        cpu: Some(Cpu {
            target_percent: 100,
            usage: &[1010, 1030, 1020],
            requests: &[900, 1000, 1100],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Current,
        desired: 3,
        reason: "ReadyForNewScale",
    },
    ControllerCase {
        case: "TestConfigurableTolerance/Scaling up because of a 1% configurable tolerance",
        min: 1,
        max: 5,
        spec_replicas: 3,
        cpu: Some(Cpu {
            target_percent: 100,
            usage: &[1010, 1030, 1020],
            requests: &[900, 1000, 1100],
        }),
        invalid_metric: false,
        behavior: Some(TestBehavior {
            scale_up: TestRules {
                stabilization: Some(0),
                select: Select::Max,
                policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
            },
            scale_down: TestRules {
                stabilization: None,
                select: Select::Max,
                policies: &[(PolicyKind::Percent, 100, 15)],
            },
            up_tolerance: Some(0.01),
            down_tolerance: None,
        }),
        seed: Seed::Current,
        desired: 4,
        reason: "ReadyForNewScale",
    },
    ControllerCase {
        case: "TestConfigurableTolerance/No scale-down because of a 90% configurable tolerance",
        min: 1,
        max: 5,
        spec_replicas: 3,
        cpu: Some(Cpu {
            target_percent: 100,
            usage: &[300, 300, 300],
            requests: &[1000, 1000, 1000],
        }),
        invalid_metric: false,
        behavior: Some(TestBehavior {
            scale_up: TestRules {
                stabilization: Some(0),
                select: Select::Max,
                policies: &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
            },
            scale_down: TestRules {
                stabilization: None,
                select: Select::Max,
                policies: &[(PolicyKind::Percent, 100, 15)],
            },
            up_tolerance: None,
            down_tolerance: Some(0.9),
        }),
        seed: Seed::Current,
        desired: 3,
        reason: "ReadyForNewScale",
    },
    ControllerCase {
        case: "TestConfigurableTolerance/No scaling because of the large default tolerance",
        min: 1,
        max: 5,
        spec_replicas: 3,
        cpu: Some(Cpu {
            target_percent: 100,
            usage: &[1010, 1030, 1020],
            requests: &[900, 1000, 1100],
        }),
        invalid_metric: false,
        behavior: None,
        seed: Seed::Current,
        desired: 3,
        reason: "ReadyForNewScale",
    },
];

#[test]
fn legacy_limits_give_upstreams_counts() {
    for (case, current, desired, min, max, expected, reason) in CONVERT_WITH_RULES {
        let (replicas, limit, _) =
            normalize::convert_with_rules(*current, *desired, *min, *max, TEST_SCALE_UP_FACTOR);
        assert_eq!((replicas, limit.reason()), (*expected, *reason), "{case}");
    }
}

#[test]
fn legacy_stabilization_gives_upstreams_counts() {
    for (case, window, recommendations, desired, expected, length) in LEGACY_STABILIZATION {
        let mut history = History {
            recommendations: placed(recommendations),
            ..History::default()
        };
        let stabilized = normalize::stabilize_legacy(&mut history, *desired, *window, NOW);
        assert_eq!(stabilized, *expected, "{case}");
        assert_eq!(history.recommendations.len(), *length, "{case}");
    }
}

#[test]
fn behavior_stabilization_gives_upstreams_counts() {
    for case in BEHAVIOR_STABILIZATION {
        let mut history = History {
            recommendations: placed(case.recommendations),
            ..History::default()
        };
        let mut behavior = Behavior::default();
        behavior.scale_up.stabilization_seconds = case.up_window;
        behavior.scale_down.stabilization_seconds = case.down_window;
        let (stabilized, _) = normalize::stabilize_with_behavior(
            &mut history,
            case.current,
            case.desired,
            &behavior,
            NOW,
        );
        assert_eq!(stabilized, case.stabilized, "{}", case.case);
        if let Some(expected) = case.recommendations_after {
            let after: Vec<i32> = history.recommendations.iter().map(|r| r.1).collect();
            assert_eq!(after, expected, "{}", case.case);
        }
    }
}

#[test]
fn behavior_rate_limits_give_upstreams_counts() {
    for case in SCALING_WITH_RULES {
        let behavior = Behavior {
            scale_up: case.scale_up.rules(),
            scale_down: case.scale_down.rules(),
        };
        let history = History {
            recommendations: Vec::new(),
            scale_up_events: placed(case.scale_up_events),
            scale_down_events: placed(case.scale_down_events),
        };
        let (replicas, limit, _) = normalize::convert_with_behavior_rate(
            case.current,
            case.desired,
            case.min,
            case.max,
            &behavior,
            &history,
            NOW,
        );
        assert_eq!(
            (replicas, limit.reason()),
            (case.expected, case.reason),
            "{}",
            case.case
        );
    }
}

#[test]
fn scale_limit_functions_give_upstreams_counts() {
    // TestCalculateScaleUpLimitWithScalingRules and TestCalculateScaleDownLimitWithBehaviors:
    // Pods 2 / 60 s and Percent 50 / 60 s, selectPolicy Min, no events
    let rules = Rules {
        stabilization_seconds: 300,
        policies: vec![Policy::pods(2, 60), Policy::percent(50, 60)],
        select: Select::Min,
        tolerance: None,
    };
    let history = History::default();
    assert_eq!(normalize::scale_up_limit(1, &history, &rules, NOW), 2);
    assert_eq!(normalize::scale_down_limit(5, &history, &rules, NOW), 3);
}

#[test]
fn controller_syncs_give_upstreams_counts() {
    for case in CONTROLLER {
        let behavior = case.behavior.as_ref().map(|b| {
            let mut behavior = Behavior {
                scale_up: b.scale_up.rules(),
                scale_down: b.scale_down.rules(),
            };
            behavior.scale_up.tolerance = b.up_tolerance;
            behavior.scale_down.tolerance = b.down_tolerance;
            behavior
        });
        let spec = HpaSpec {
            min_replicas: case.min,
            max_replicas: case.max,
            behavior,
        };
        let mut autoscaler = match case.seed {
            Seed::Current => Autoscaler::new(spec),
            Seed::Empty => Autoscaler::with_history(spec, History::default()),
            Seed::List(list) => Autoscaler::with_history(
                spec,
                History {
                    recommendations: placed(list),
                    ..History::default()
                },
            ),
        };
        autoscaler.legacy_scale_up_factor = TEST_SCALE_UP_FACTOR;
        let mut metrics = Vec::new();
        if let Some(cpu) = &case.cpu {
            // pods are the ones with requests; a usage beyond them belongs to no pod
            let pods: Vec<PodState> = (0..cpu.requests.len())
                .map(|i| PodState::running(&format!("test-pod-{i}")))
                .collect();
            let named = |values: &[Milli]| -> BTreeMap<String, Milli> {
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("test-pod-{i}"), *v))
                    .collect()
            };
            let proposal = resource_utilization(
                case.spec_replicas,
                &pods,
                &named(cpu.usage),
                &named(cpu.requests),
                cpu.target_percent,
                autoscaler.tolerances(),
            )
            .map(|c| c.replicas)
            .map_err(|e| e.to_string());
            metrics.push(MetricOutcome {
                name: "cpu".into(),
                proposal,
            });
        }
        if case.invalid_metric {
            metrics.push(MetricOutcome {
                name: "invalid".into(),
                proposal: Err("invalid metric source type".into()),
            });
        }
        let outcome = autoscaler.reconcile(case.spec_replicas, &metrics, NOW);
        assert_eq!(
            (outcome.desired, outcome.reason.as_str()),
            (case.desired, case.reason),
            "{}: {:?}",
            case.case,
            outcome.working
        );
    }
}
