//! One metric's replica proposal, after `pkg/controller/podautoscaler/replica_calculator.go`
//! (Kubernetes v1.35): `GetMetricReplicas` / `calcPlainMetricReplicas` for Pods metrics,
//! `GetObjectMetricReplicas` and `GetObjectPerPodMetricReplicas` for Object metrics,
//! `GetExternalMetricReplicas` and `GetExternalPerPodMetricReplicas` for External metrics,
//! `getUsageRatioReplicaCount` and `groupPods` beneath them, and `GetResourceReplicas` for the
//! demo's CPU HPA. Each function returns the count and the working: the arithmetic it did, with
//! the numbers it used, line by line.

use std::collections::BTreeMap;

use super::Phase;
use super::{Milli, PodState, Tolerances, milli_text, ratio_text};

/// Why a metric gives no proposal (the controller's error texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    #[error("no pods returned by selector while calculating replica count")]
    NoPods,
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoMetrics,
    /// The API server refuses a target that is not positive; a manifest read from a file may
    /// still carry one.
    #[error("the target must be positive")]
    InvalidTarget,
}

/// How `groupPods` sorted the pods the selector matched (for a metric other than CPU).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodGroups {
    /// Pods with a value that count as they are.
    pub ready: usize,
    /// Pending pods: left out, or counted as 0 when scaling up.
    pub unready: Vec<String>,
    /// Running pods without a value: counted as the target when scaling down, as 0 when
    /// scaling up.
    pub missing: Vec<String>,
    /// Failed pods and pods being deleted: left out entirely.
    pub ignored: Vec<String>,
}

/// A proposal and how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Calculation {
    pub replicas: i32,
    /// The usage the controller reports in the HPA's status (milli-units; CPU: percent).
    pub usage: Milli,
    /// The arithmetic done, in the order it was done.
    pub working: Vec<String>,
    /// Pods metrics: how the pods were sorted.
    pub groups: Option<PodGroups>,
}

impl Calculation {
    fn new(replicas: i32, usage: Milli, working: Vec<String>) -> Calculation {
        Calculation {
            replicas,
            usage,
            working,
            groups: None,
        }
    }
}

/// `groupPods` for any metric but CPU: a pod being deleted or Failed is ignored, a Pending pod
/// is unready, a pod without a value is missing, every other pod counts — its Ready
/// condition is not looked at.
pub(crate) fn group_pods(pods: &[PodState], values: &BTreeMap<String, Milli>) -> PodGroups {
    let mut groups = PodGroups::default();
    for pod in pods {
        if pod.deleting || pod.phase == Phase::Failed {
            groups.ignored.push(pod.name.clone());
        } else if pod.phase == Phase::Pending {
            groups.unready.push(pod.name.clone());
        } else if !values.contains_key(&pod.name) {
            groups.missing.push(pod.name.clone());
        } else {
            groups.ready += 1;
        }
    }
    groups
}

/// `GetMetricUsageRatio`: the integer mean of the values, and that mean over the target.
fn usage_ratio(values: &BTreeMap<String, Milli>, target: Milli) -> (Milli, f64, Milli) {
    let sum = values
        .values()
        .fold(0 as Milli, |sum, v| sum.wrapping_add(*v));
    let usage = sum / values.len().max(1) as Milli;
    (usage, usage as f64 / target as f64, sum)
}

fn ceil_to_i32(value: f64) -> i32 {
    value.ceil() as i32
}

fn names(list: &[String]) -> String {
    list.join(", ")
}

/// A Pods metric with an AverageValue target (`GetMetricReplicas` → `calcPlainMetricReplicas`).
/// `pods` are the pods the scale selector matches; `values` what the metrics API returned, by
/// pod name — every returned value counts, also one for a pod not in `pods`.
pub fn pods_metric(
    current: i32,
    pods: &[PodState],
    values: &BTreeMap<String, Milli>,
    target: Milli,
    tolerances: Tolerances,
) -> Result<Calculation, CalcError> {
    if target <= 0 {
        return Err(CalcError::InvalidTarget);
    }
    if pods.is_empty() {
        return Err(CalcError::NoPods);
    }
    let groups = group_pods(pods, values);
    let mut metrics = values.clone();
    for name in groups.ignored.iter().chain(&groups.unready) {
        metrics.remove(name);
    }
    if metrics.is_empty() {
        return Err(CalcError::NoMetrics);
    }
    let mut working = Vec::new();
    if !groups.ignored.is_empty() {
        working.push(format!(
            "left out (failed or being deleted): {}",
            names(&groups.ignored)
        ));
    }
    if !groups.unready.is_empty() {
        working.push(format!(
            "left out for now (pending): {}",
            names(&groups.unready)
        ));
    }
    let (usage, ratio, sum) = usage_ratio(&metrics, target);
    working.push(format!(
        "average = {} / {} pods = {}; ratio = {} / {} = {}",
        milli_text(sum),
        metrics.len(),
        milli_text(usage),
        milli_text(usage),
        milli_text(target),
        ratio_text(ratio)
    ));
    let done = |replicas: i32, working: Vec<String>| Calculation {
        replicas,
        usage,
        working,
        groups: Some(groups.clone()),
    };

    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if tolerances.is_within(ratio) {
            working.push(format!(
                "ratio within the tolerance {}: stays at {current}",
                tolerances.band()
            ));
            return Ok(done(current, working));
        }
        let replicas = ceil_to_i32(ratio * groups.ready as f64);
        working.push(format!(
            "desired = ceil({} × {} pods) = {replicas}",
            ratio_text(ratio),
            groups.ready
        ));
        return Ok(done(replicas, working));
    }

    if !groups.missing.is_empty() {
        if ratio < 1.0 {
            for name in &groups.missing {
                metrics.insert(name.clone(), target);
            }
            working.push(format!(
                "scaling down: pods without a value count as the target {}: {}",
                milli_text(target),
                names(&groups.missing)
            ));
        } else if ratio > 1.0 {
            for name in &groups.missing {
                metrics.insert(name.clone(), 0);
            }
            working.push(format!(
                "scaling up: pods without a value count as 0: {}",
                names(&groups.missing)
            ));
        } else {
            working.push(format!(
                "ratio exactly 1: pods without a value stay left out: {}",
                names(&groups.missing)
            ));
        }
    }
    if scale_up_with_unready {
        for name in &groups.unready {
            metrics.insert(name.clone(), 0);
        }
        working.push(format!(
            "scaling up: pending pods count as 0: {}",
            names(&groups.unready)
        ));
    }
    let (new_usage, new_ratio, new_sum) = usage_ratio(&metrics, target);
    working.push(format!(
        "recounted: average = {} / {} pods = {}; ratio = {}",
        milli_text(new_sum),
        metrics.len(),
        milli_text(new_usage),
        ratio_text(new_ratio)
    ));
    if tolerances.is_within(new_ratio) {
        working.push(format!(
            "ratio within the tolerance {}: stays at {current}",
            tolerances.band()
        ));
        return Ok(done(current, working));
    }
    if (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0) {
        working.push(format!(
            "the recount turns the direction around: stays at {current}"
        ));
        return Ok(done(current, working));
    }
    let replicas = ceil_to_i32(new_ratio * metrics.len() as f64);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        working.push(format!(
            "ceil({} × {}) = {replicas} would move the other way: stays at {current}",
            ratio_text(new_ratio),
            metrics.len()
        ));
        return Ok(done(current, working));
    }
    working.push(format!(
        "desired = ceil({} × {} pods) = {replicas}",
        ratio_text(new_ratio),
        metrics.len()
    ));
    Ok(done(replicas, working))
}

/// `getUsageRatioReplicaCount`: at 0 replicas `ceil(ratio)`; otherwise the current count
/// within the tolerance, else `ceil(ratio × pods Running and Ready)`.
fn usage_ratio_replicas(
    current: i32,
    ratio: f64,
    tolerances: Tolerances,
    pods: &[PodState],
    working: &mut Vec<String>,
) -> Result<i32, CalcError> {
    if current == 0 {
        let replicas = ceil_to_i32(ratio);
        working.push(format!(
            "at 0 replicas: desired = ceil({}) = {replicas}",
            ratio_text(ratio)
        ));
        return Ok(replicas);
    }
    if tolerances.is_within(ratio) {
        working.push(format!(
            "ratio within the tolerance {}: stays at {current}",
            tolerances.band()
        ));
        return Ok(current);
    }
    if pods.is_empty() {
        return Err(CalcError::NoPods);
    }
    let ready = pods.iter().filter(|p| p.is_running_and_ready()).count();
    let product = ratio * ready as f64;
    let replicas = if product > f64::from(i32::MAX) {
        i32::MAX
    } else {
        ceil_to_i32(product)
    };
    working.push(format!(
        "desired = ceil({} × {ready} pods Running and Ready) = {replicas}",
        ratio_text(ratio)
    ));
    Ok(replicas)
}

/// An Object metric with a Value target (`GetObjectMetricReplicas`).
pub fn object_value(
    current: i32,
    pods: &[PodState],
    value: Milli,
    target: Milli,
    tolerances: Tolerances,
) -> Result<Calculation, CalcError> {
    if target <= 0 {
        return Err(CalcError::InvalidTarget);
    }
    let ratio = value as f64 / target as f64;
    let mut working = vec![format!(
        "ratio = {} / {} = {}",
        milli_text(value),
        milli_text(target),
        ratio_text(ratio)
    )];
    let replicas = usage_ratio_replicas(current, ratio, tolerances, pods, &mut working)?;
    Ok(Calculation::new(replicas, value, working))
}

/// An Object metric with an AverageValue target (`GetObjectPerPodMetricReplicas`): the ratio
/// is taken over `status.replicas`, the proposal is `ceil(value / target)`.
pub(crate) fn object_average_value(
    status_replicas: i32,
    value: Milli,
    target: Milli,
    tolerances: Tolerances,
) -> Result<Calculation, CalcError> {
    if target <= 0 {
        return Err(CalcError::InvalidTarget);
    }
    let ratio = value as f64 / (target as f64 * f64::from(status_replicas));
    let mut working = vec![format!(
        "ratio = {} / ({} × {status_replicas} replicas) = {}",
        milli_text(value),
        milli_text(target),
        ratio_text(ratio)
    )];
    let mut replicas = status_replicas;
    if tolerances.is_within(ratio) {
        working.push(format!(
            "ratio within the tolerance {}: stays at {status_replicas}",
            tolerances.band()
        ));
    } else {
        replicas = ceil_to_i32(value as f64 / target as f64);
        working.push(format!(
            "desired = ceil({} / {}) = {replicas}",
            milli_text(value),
            milli_text(target)
        ));
    }
    let usage = (value as f64 / f64::from(status_replicas)).ceil() as Milli;
    Ok(Calculation::new(replicas, usage, working))
}

/// The sum of an External metric's values, capped at `i64::MAX` as `GetExternalMetricReplicas`
/// caps it.
fn external_sum(values: &[Milli]) -> Milli {
    let mut sum: Milli = 0;
    for &value in values {
        if value > 0 && sum > Milli::MAX - value {
            return Milli::MAX;
        }
        sum = sum.wrapping_add(value);
    }
    sum
}

fn sum_text(values: &[Milli], sum: Milli) -> String {
    if values.len() == 1 {
        milli_text(sum)
    } else {
        format!(
            "({}) = {}",
            values
                .iter()
                .map(|v| milli_text(*v))
                .collect::<Vec<_>>()
                .join(" + "),
            milli_text(sum)
        )
    }
}

/// An External metric with a Value target (`GetExternalMetricReplicas`): the series' values
/// are summed.
pub(crate) fn external_value(
    current: i32,
    pods: &[PodState],
    values: &[Milli],
    target: Milli,
    tolerances: Tolerances,
) -> Result<Calculation, CalcError> {
    if target <= 0 {
        return Err(CalcError::InvalidTarget);
    }
    let usage = external_sum(values);
    let ratio = usage as f64 / target as f64;
    let mut working = vec![format!(
        "ratio = {} / {} = {}",
        sum_text(values, usage),
        milli_text(target),
        ratio_text(ratio)
    )];
    let replicas = usage_ratio_replicas(current, ratio, tolerances, pods, &mut working)?;
    Ok(Calculation::new(replicas, usage, working))
}

/// An External metric with an AverageValue target (`GetExternalPerPodMetricReplicas`).
pub(crate) fn external_average_value(
    status_replicas: i32,
    values: &[Milli],
    target: Milli,
    tolerances: Tolerances,
) -> Result<Calculation, CalcError> {
    if target <= 0 {
        return Err(CalcError::InvalidTarget);
    }
    let mut usage: Milli = 0;
    for &value in values {
        usage = usage.wrapping_add(value);
        if usage < 0 {
            // only an overflow gets here
            usage = Milli::MAX;
            break;
        }
    }
    let ratio = usage as f64 / (target as f64 * f64::from(status_replicas));
    let mut working = vec![format!(
        "ratio = {} / ({} × {status_replicas} replicas) = {}",
        sum_text(values, usage),
        milli_text(target),
        ratio_text(ratio)
    )];
    let mut replicas = status_replicas;
    if tolerances.is_within(ratio) {
        working.push(format!(
            "ratio within the tolerance {}: stays at {status_replicas}",
            tolerances.band()
        ));
    } else {
        let proposal = (usage as f64 / target as f64).ceil();
        replicas = if proposal > f64::from(i32::MAX) {
            i32::MAX
        } else {
            proposal as i32
        };
        working.push(format!(
            "desired = ceil({} / {}) = {replicas}",
            milli_text(usage),
            milli_text(target)
        ));
    }
    let per_pod = if usage as f64 >= Milli::MAX as f64 {
        Milli::MAX
    } else {
        (usage as f64 / f64::from(status_replicas)).ceil() as Milli
    };
    Ok(Calculation::new(replicas, per_pod, working))
}

/// A resource metric with a Utilization target (`GetResourceReplicas`), for the demo's CPU
/// HPA. `usage` and `requests` are per pod in milli-units. CPU readiness is simplified: a
/// Running pod that is not Ready counts as unready (upstream also looks at the pod's start
/// time and when its readiness last changed).
pub(crate) fn resource_utilization(
    current: i32,
    pods: &[PodState],
    usage: &BTreeMap<String, Milli>,
    requests: &BTreeMap<String, Milli>,
    target_percent: i32,
    tolerances: Tolerances,
) -> Result<Calculation, CalcError> {
    if target_percent <= 0 {
        return Err(CalcError::InvalidTarget);
    }
    if pods.is_empty() {
        return Err(CalcError::NoPods);
    }
    let mut groups = group_pods(pods, usage);
    // CPU also leaves out Running pods that are not Ready
    let not_ready: Vec<String> = pods
        .iter()
        .filter(|p| {
            !p.deleting
                && p.phase != Phase::Failed
                && p.phase != Phase::Pending
                && usage.contains_key(&p.name)
                && !p.ready
        })
        .map(|p| p.name.clone())
        .collect();
    groups.ready -= not_ready.len();
    groups.unready.extend(not_ready);
    let mut metrics = usage.clone();
    for name in groups.ignored.iter().chain(&groups.unready) {
        metrics.remove(name);
    }
    if metrics.is_empty() {
        return Err(CalcError::NoMetrics);
    }
    // GetResourceUtilizationRatio: sums over pods with a request, integer percent
    let utilization = |metrics: &BTreeMap<String, Milli>| {
        let (used, requested) = metrics
            .iter()
            .filter_map(|(name, value)| Some((*value, *requests.get(name)?)))
            .fold((0 as Milli, 0 as Milli), |(u, r), (v, q)| (u + v, r + q));
        let percent = if requested == 0 {
            0
        } else {
            used * 100 / requested
        };
        (percent, percent as f64 / f64::from(target_percent))
    };
    let (percent, ratio) = utilization(&metrics);
    let mut working = vec![format!(
        "utilization = {percent} % of requests; ratio = {percent} / {target_percent} = {}",
        ratio_text(ratio)
    )];
    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        let replicas = if tolerances.is_within(ratio) {
            current
        } else {
            ceil_to_i32(ratio * groups.ready as f64)
        };
        working.push(format!("desired = {replicas}"));
        return Ok(Calculation {
            groups: Some(groups),
            ..Calculation::new(replicas, percent, working)
        });
    }
    if !groups.missing.is_empty() {
        let fallback = Milli::from(target_percent.max(100));
        for name in &groups.missing {
            let request = requests.get(name).copied().unwrap_or(0);
            if ratio < 1.0 {
                metrics.insert(name.clone(), request * fallback / 100);
            } else if ratio > 1.0 {
                metrics.insert(name.clone(), 0);
            }
        }
    }
    if scale_up_with_unready {
        for name in &groups.unready {
            metrics.insert(name.clone(), 0);
        }
    }
    let (_, new_ratio) = utilization(&metrics);
    let flipped = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    let mut replicas = current;
    if !tolerances.is_within(new_ratio) && !flipped {
        let proposal = ceil_to_i32(new_ratio * metrics.len() as f64);
        let wrong_way =
            (new_ratio < 1.0 && proposal > current) || (new_ratio > 1.0 && proposal < current);
        if !wrong_way {
            replicas = proposal;
        }
    }
    working.push(format!(
        "recounted with missing and unready pods: ratio {}; desired = {replicas}",
        ratio_text(new_ratio)
    ));
    Ok(Calculation {
        groups: Some(groups),
        ..Calculation::new(replicas, percent, working)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, Milli)]) -> BTreeMap<String, Milli> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn missing_pods_at_a_ratio_of_exactly_one_are_left_out() {
        // a at 100 against 100, b without a value: ratio 1 → b is not counted as anything,
        // the recount is the same, within the tolerance: stays at 2 (upstream's `else if`)
        let pods = [PodState::running("a"), PodState::running("b")];
        let out = pods_metric(
            2,
            &pods,
            &values(&[("a", 100_000)]),
            100_000,
            Tolerances::default(),
        )
        .expect("a proposal");
        assert_eq!(out.replicas, 2);
        assert!(
            out.working.iter().any(|l| l.contains("stay left out")),
            "{:?}",
            out.working
        );
    }

    #[test]
    fn the_working_states_the_numbers_used() {
        // one pod at 8000 ms, two at 0: average 2666.666 against 500 → ceil(5.3333 × 3) = 16
        let pods = [
            PodState::running("a"),
            PodState::running("b"),
            PodState::running("c"),
        ];
        let out = pods_metric(
            3,
            &pods,
            &values(&[("a", 8_000_000), ("b", 0), ("c", 0)]),
            500_000,
            Tolerances::default(),
        )
        .expect("a proposal");
        assert_eq!(out.replicas, 16);
        assert_eq!(
            out.working,
            [
                "average = 8000 / 3 pods = 2666.666; ratio = 2666.666 / 500 = 5.3333",
                "desired = ceil(5.3333 × 3 pods) = 16"
            ]
        );
    }

    #[test]
    fn object_value_counts_only_running_and_ready_pods() {
        let mut unready = PodState::running("b");
        unready.ready = false;
        let pods = [PodState::running("a"), unready, PodState::pending("c")];
        // ratio 2 × 1 pod Running and Ready = 2
        let out = object_value(3, &pods, 2_000, 1_000, Tolerances::default()).expect("proposal");
        assert_eq!(out.replicas, 2);
    }

    #[test]
    fn not_positive_targets_and_no_pods_are_errors_never_zero() {
        let pods = [PodState::running("a")];
        assert_eq!(
            pods_metric(1, &pods, &BTreeMap::new(), 0, Tolerances::default()),
            Err(CalcError::InvalidTarget)
        );
        assert_eq!(
            pods_metric(1, &pods, &BTreeMap::new(), 100, Tolerances::default()),
            Err(CalcError::NoMetrics)
        );
        assert_eq!(
            pods_metric(1, &[], &values(&[("a", 1)]), 100, Tolerances::default()),
            Err(CalcError::NoPods)
        );
        assert_eq!(
            object_value(1, &[], 5_000, 1_000, Tolerances::default()),
            Err(CalcError::NoPods)
        );
    }

    #[test]
    fn cpu_utilization_over_requests() {
        // 300m + 100m of 500m + 500m requested = 40 % against 60 % → ceil(0.6667 × 2) = 2
        let pods = [PodState::running("a"), PodState::running("b")];
        let out = resource_utilization(
            2,
            &pods,
            &values(&[("a", 300), ("b", 100)]),
            &values(&[("a", 500), ("b", 500)]),
            60,
            Tolerances::default(),
        )
        .expect("proposal");
        assert_eq!((out.usage, out.replicas), (40, 2));
        // 900m + 300m of 1000m: 120 % against 60 % → 4
        let out = resource_utilization(
            2,
            &pods,
            &values(&[("a", 900), ("b", 300)]),
            &values(&[("a", 500), ("b", 500)]),
            60,
            Tolerances::default(),
        )
        .expect("proposal");
        assert_eq!((out.usage, out.replicas), (120, 4));
    }
}
