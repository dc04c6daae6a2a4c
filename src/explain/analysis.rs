//! What `explain` concludes, as pure functions of what it read: the HPA, its pods, each
//! metric's items. [`analyze`] runs the controller's algorithm ([`crate::sim::hpa`], after
//! kube-controller-manager v1.35) — each metric's proposal with the arithmetic it does, then
//! the sync's decision — and finds what a person should know, including what the HPA's own
//! rules allow before it happens (a runaway scale-up, consumers past a topic's partitions);
//! [`render`] writes it for a terminal, within 80 columns.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricTarget};

use std::collections::BTreeMap;

use crate::quantity::Quantity;
use crate::resources::GroupResource;
use crate::sim::hpa::{
    Autoscaler, Behavior, HpaSpec, MetricOutcome, Milli, PodState, Tolerances, replicas,
};

/// The Kubernetes release whose HPA controller `explain` computes.
pub(crate) const UPSTREAM_RELEASE: &str = "v1.35";
/// The controller's sync period (`--horizontal-pod-autoscaler-sync-period`).
const SYNC_PERIOD: Duration = Duration::from_secs(15);
/// Older than this, a value is worth a word: the HPA syncs every 15 s.
const STALE_AFTER: Duration = SYNC_PERIOD;
/// A pod this many times the mean of the others is "far hotter".
const HOT_FACTOR: f64 = 3.0;
/// How far ahead the scale-up rules are projected, and from what growth they are worth a
/// warning: faster than a doubling a minute (this many times minReplicas within the horizon)
/// and at least this many pods more.
const SCALE_UP_HORIZON: Duration = Duration::from_secs(180);
const RUNAWAY_FACTOR: i32 = 8;
const RUNAWAY_PODS: i32 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricKind {
    Pods,
    Object,
    External,
    Resource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetType {
    Value,
    AverageValue,
    Utilization,
}

/// One entry of `spec.metrics`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricSpec {
    pub kind: MetricKind,
    pub name: String,
    pub target_type: TargetType,
    pub target: f64,
    /// `metric.selector` as selector text.
    pub metric_selector: Option<String>,
    /// Object metrics: (resource path segment, name).
    pub described: Option<(String, String)>,
}

/// An HPA object without a spec: nothing to explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the HPA has no spec")]
pub(crate) struct NoSpec;

/// The HPA, stripped to what is explained.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HpaView {
    pub name: String,
    pub namespace: String,
    pub target_kind: String,
    pub target_api_version: String,
    pub target_name: String,
    /// `deployments.apps`, `statefulsets.apps`, … when the kind is known.
    pub target_resource: Option<String>,
    /// minReplicas, maxReplicas and `behavior` (defaulted), as the controller reads them.
    pub spec: HpaSpec,
    /// The target's replicas (the scale's `spec.replicas`; without it, the HPA's
    /// `status.currentReplicas`).
    pub current: i32,
    /// The scale's `status.replicas` (AverageValue Object and External metrics divide by it).
    pub status_replicas: i32,
    /// The HPA's `status.desiredReplicas`: the controller's last decision.
    pub last_desired: Option<i32>,
    pub metrics: Vec<MetricSpec>,
}

/// A value read.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub name: String,
    pub value: f64,
    pub timestamp: Option<SystemTime>,
}

/// A metric and what reading it gave: items, or the error the HPA would get.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricRead {
    pub spec: MetricSpec,
    pub items: Result<Vec<Item>, String>,
}

/// The `resource.group` path segment of a kind: well-known kinds by name, others by the usual
/// English plural (as the API server's RESTMapper guesses it).
fn resource_of(kind: &str, api_version: &str) -> Option<String> {
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let known = GroupResource::from_config(kind, group);
    if known.resource.as_ref() != kind.to_ascii_lowercase() {
        return Some(known.to_string());
    }
    let lower = kind.to_ascii_lowercase();
    let plural = if lower.ends_with('s') || lower.ends_with('x') || lower.ends_with("ch") {
        format!("{lower}es")
    } else if let Some(stem) = lower
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'i', 'o', 'u']))
    {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    };
    Some(GroupResource::new(&plural, group).to_string())
}

fn target_of(target: &MetricTarget) -> (TargetType, f64) {
    let parse = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
        Quantity::parse(&q.0)
            .map(|q| q.as_f64())
            .unwrap_or(f64::NAN)
    };
    match target.type_.as_str() {
        "Value" => (
            TargetType::Value,
            target.value.as_ref().map_or(f64::NAN, parse),
        ),
        "Utilization" => (
            TargetType::Utilization,
            target.average_utilization.map_or(f64::NAN, f64::from),
        ),
        _ => (
            TargetType::AverageValue,
            target.average_value.as_ref().map_or(f64::NAN, parse),
        ),
    }
}

fn selector_text(
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Option<String> {
    let selector = selector?;
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for expression in selector.match_expressions.iter().flatten() {
        let values = expression.values.clone().unwrap_or_default().join(",");
        parts.push(match expression.operator.as_str() {
            "In" => format!("{} in ({values})", expression.key),
            "NotIn" => format!("{} notin ({values})", expression.key),
            "Exists" => expression.key.clone(),
            _ => format!("!{}", expression.key),
        });
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

impl HpaView {
    pub(crate) fn from_hpa(
        hpa: &HorizontalPodAutoscaler,
        namespace: &str,
    ) -> Result<HpaView, NoSpec> {
        let spec = hpa.spec.as_ref().ok_or(NoSpec)?;
        let target = &spec.scale_target_ref;
        let mut metrics = Vec::new();
        for metric in spec.metrics.iter().flatten() {
            let entry = match metric.type_.as_str() {
                "Pods" => metric.pods.as_ref().map(|p| {
                    let (target_type, target) = target_of(&p.target);
                    MetricSpec {
                        kind: MetricKind::Pods,
                        name: p.metric.name.clone(),
                        target_type,
                        target,
                        metric_selector: selector_text(p.metric.selector.as_ref()),
                        described: None,
                    }
                }),
                "Object" => metric.object.as_ref().map(|o| {
                    let (target_type, target) = target_of(&o.target);
                    let described = &o.described_object;
                    let resource = resource_of(
                        &described.kind,
                        described.api_version.as_deref().unwrap_or("v1"),
                    )
                    .unwrap_or_default();
                    MetricSpec {
                        kind: MetricKind::Object,
                        name: o.metric.name.clone(),
                        target_type,
                        target,
                        metric_selector: selector_text(o.metric.selector.as_ref()),
                        described: Some((resource, described.name.clone())),
                    }
                }),
                "External" => metric.external.as_ref().map(|e| {
                    let (target_type, target) = target_of(&e.target);
                    MetricSpec {
                        kind: MetricKind::External,
                        name: e.metric.name.clone(),
                        target_type,
                        target,
                        metric_selector: selector_text(e.metric.selector.as_ref()),
                        described: None,
                    }
                }),
                _ => metric.resource.as_ref().map(|r| {
                    let (target_type, target) = target_of(&r.target);
                    MetricSpec {
                        kind: MetricKind::Resource,
                        name: r.name.clone(),
                        target_type,
                        target,
                        metric_selector: None,
                        described: None,
                    }
                }),
            };
            metrics.extend(entry);
        }
        let current = hpa
            .status
            .as_ref()
            .and_then(|s| s.current_replicas)
            .unwrap_or(spec.min_replicas.unwrap_or(1));
        let api_version = target
            .api_version
            .clone()
            .unwrap_or_else(|| "apps/v1".into());
        Ok(HpaView {
            name: hpa.metadata.name.clone().unwrap_or_default(),
            namespace: hpa
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| namespace.to_string()),
            target_resource: resource_of(&target.kind, &api_version),
            target_kind: target.kind.clone(),
            target_api_version: api_version,
            target_name: target.name.clone(),
            spec: HpaSpec {
                min_replicas: spec.min_replicas.unwrap_or(1),
                max_replicas: spec.max_replicas,
                behavior: spec.behavior.as_ref().map(Behavior::from_spec),
            },
            current,
            status_replicas: current,
            // a manifest without status reads as 0: only a count the controller set is shown
            last_desired: hpa
                .status
                .as_ref()
                .map(|s| s.desired_replicas)
                .filter(|d| *d > 0),
            metrics,
        })
    }

    /// The scale subresource's path.
    pub(crate) fn scale_path(&self) -> Option<String> {
        let resource = self.target_resource.as_deref()?;
        let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
        let prefix = if group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{}", self.target_api_version)
        };
        Some(format!(
            "{prefix}/namespaces/{}/{plural}/{}/scale",
            self.namespace, self.target_name
        ))
    }
}

/// One metric's part of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricReport {
    pub title: String,
    /// (name, value, age) per item.
    pub rows: Vec<(String, String, String)>,
    /// The arithmetic the controller does, with the numbers it uses, or why there is none.
    pub working: Vec<String>,
    /// The metric's proposal, or why it has none (as the controller would see it).
    pub proposal: Result<i32, String>,
    /// Counted by the controller: a Resource metric is read from metrics-server, which
    /// `explain` does not, so it is shown but left out of the decision.
    pub counted: bool,
}

/// Everything `explain` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub heading: String,
    pub metrics: Vec<MetricReport>,
    pub decision: Vec<String>,
    /// The count the controller sets on this sync.
    pub desired: i32,
    pub findings: Vec<String>,
}

/// A Kafka topic's partition count, read beside an HPA's lag metric.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Partitions {
    pub topic: String,
    pub count: f64,
}

/// What `explain` read, for [`analyze`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inputs<'a> {
    pub hpa: &'a HpaView,
    /// The pods the target's selector matches, when they could be listed.
    pub pods: Option<&'a [PodState]>,
    pub selector: Option<&'a str>,
    pub reads: &'a [MetricRead],
    /// The target's `request_imbalance_ratio`, when kubemind serves it.
    pub imbalance: Option<f64>,
    /// The partitions of the topic a Kafka lag metric reads.
    pub partitions: Option<&'a Partitions>,
    /// Per pod, NVML utilization and GPM SM activity (percent), when the HPA scales on
    /// utilization and kubemind serves SM activity for its pods.
    pub gpu_activity: &'a [GpuActivity],
    pub now: SystemTime,
}

/// One pod's two views of its GPU: NVML's utilization and GPM's SM activity, in percent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GpuActivity {
    pub pod: String,
    pub utilization: f64,
    pub sm_active: f64,
}

/// Pods whose GPU NVML calls busy while its SMs are mostly idle: utilization counts the time
/// *any* kernel ran, so scaling on it adds replicas that will not be needed.
fn busy_but_not_saturated(activity: &[GpuActivity]) -> Option<String> {
    let mut idle: Vec<&GpuActivity> = activity
        .iter()
        .filter(|a| a.utilization >= 80.0 && a.sm_active <= a.utilization / 2.0)
        .collect();
    idle.sort_by(|a, b| a.sm_active.total_cmp(&b.sm_active));
    let first = idle.first()?;
    let others = match idle.len() {
        1 => String::new(),
        n => format!(" (and {} more pods)", n - 1),
    };
    Some(format!(
        "GPU utilization {} % but SM active {} % on {}{others}: the GPU is not saturated — \
         NVML's utilization counts the time any kernel ran, so this HPA scales on a GPU that \
         has room; scale on gpu_sm_active_percent (GPM) or a queue signal \
         (inference_queue_time_ms, inference_requests_waiting)",
        number(first.utilization),
        number(first.sm_active),
        first.pod
    ))
}

fn milli(value: f64) -> Milli {
    (value * 1000.0).round() as Milli
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

fn age(timestamp: Option<SystemTime>, now: SystemTime) -> (String, Option<Duration>) {
    match timestamp.and_then(|t| now.duration_since(t).ok()) {
        Some(age) => (format!("{}s", age.as_secs()), Some(age)),
        None => ("-".into(), None),
    }
}

fn kind_name(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Pods => "Pods",
        MetricKind::Object => "Object",
        MetricKind::External => "External",
        MetricKind::Resource => "Resource",
    }
}

fn title(spec: &MetricSpec) -> String {
    let target = match spec.target_type {
        TargetType::Value => format!("value {}", number(spec.target)),
        TargetType::AverageValue => format!("average {}", number(spec.target)),
        TargetType::Utilization => format!("utilization {} %", number(spec.target)),
    };
    format!("{} ({}, target {target})", spec.name, kind_name(spec.kind))
}

/// The pods the formulas count: those listed, or — without a selector — the pods that have
/// values, taken as Running and Ready.
fn pods_or_items(pods: Option<&[PodState]>, items: &[Item]) -> Vec<PodState> {
    match pods {
        Some(pods) => pods.to_vec(),
        None => items.iter().map(|i| PodState::running(&i.name)).collect(),
    }
}

/// A Pods metric: the controller's formula over the pods, and the pod far hotter than the rest.
fn pods_metric_report(
    inputs: &Inputs,
    spec: &MetricSpec,
    items: &[Item],
    tolerances: Tolerances,
    report: &mut MetricReport,
    findings: &mut Vec<String>,
) {
    let values: BTreeMap<String, Milli> = items
        .iter()
        .map(|i| (i.name.clone(), milli(i.value)))
        .collect();
    let pods = pods_or_items(inputs.pods, items);
    let calculation = replicas::pods_metric(
        inputs.hpa.current,
        &pods,
        &values,
        milli(spec.target),
        tolerances,
    );
    match calculation {
        Ok(calculation) => {
            report.working.extend(calculation.working);
            let groups = calculation.groups.unwrap_or_default();
            if !groups.missing.is_empty() {
                findings.push(format!(
                    "{} has no value for {}: counted as 0 when scaling up, as the target when \
                     scaling down",
                    spec.name,
                    groups.missing.join(", ")
                ));
            }
            report.proposal = Ok(calculation.replicas);
        }
        Err(error) => report.proposal = Err(error.to_string()),
    }
    if let Some((pod, finding)) = hot_pod(spec, items)
        && !findings
            .iter()
            .any(|f| f.starts_with(&format!("{pod} is far hotter")))
    {
        findings.push(finding);
    }
}

/// One pod far hotter than the rest: requests pinned to it. Returns the pod and the finding.
fn hot_pod(spec: &MetricSpec, items: &[Item]) -> Option<(String, String)> {
    if items.len() < 2 {
        return None;
    }
    let hottest = items.iter().max_by(|a, b| a.value.total_cmp(&b.value))?;
    let others: Vec<f64> = items
        .iter()
        .filter(|i| i.name != hottest.name)
        .map(|i| i.value)
        .collect();
    let mean = others.iter().sum::<f64>() / others.len() as f64;
    (hottest.value > spec.target && hottest.value >= HOT_FACTOR * mean.max(f64::MIN_POSITIVE)).then(
        || {
            let finding = format!(
                "{} is far hotter than the rest ({} {} vs {} on average): requests are pinned \
                 to one pod; scaling will not help — balance per request",
                hottest.name,
                spec.name,
                number(hottest.value),
                number(mean)
            );
            (hottest.name.clone(), finding)
        },
    )
}

/// An Object or External metric: Value targets count the pods Running and Ready, AverageValue
/// targets the scale's `status.replicas`.
fn value_metric_report(
    inputs: &Inputs,
    spec: &MetricSpec,
    items: &[Item],
    tolerances: Tolerances,
    report: &mut MetricReport,
) {
    let hpa = inputs.hpa;
    let values: Vec<Milli> = items.iter().map(|i| milli(i.value)).collect();
    let target = milli(spec.target);
    // only Value targets count pods; AverageValue ones take `status.replicas`
    let pods = match inputs.pods {
        Some(pods) => pods.to_vec(),
        None if spec.target_type == TargetType::Value => {
            report.working.push(format!(
                "pods not listed (no selector, or the list failed): taken as {} Running and Ready",
                hpa.current
            ));
            (0..hpa.current)
                .map(|i| PodState::running(&format!("pod-{i}")))
                .collect()
        }
        None => Vec::new(),
    };
    let calculation = match (spec.kind, spec.target_type) {
        (MetricKind::Object, TargetType::Value) => {
            replicas::object_value(hpa.current, &pods, values[0], target, tolerances)
        }
        (MetricKind::Object, _) => {
            replicas::object_average_value(hpa.status_replicas, values[0], target, tolerances)
        }
        (_, TargetType::Value) => {
            replicas::external_value(hpa.current, &pods, &values, target, tolerances)
        }
        _ => replicas::external_average_value(hpa.status_replicas, &values, target, tolerances),
    };
    match calculation {
        Ok(calculation) => {
            report.working.extend(calculation.working);
            report.proposal = Ok(calculation.replicas);
        }
        Err(error) => report.proposal = Err(error.to_string()),
    }
}

/// One metric: its values with their age, then its formula.
fn metric_report(
    inputs: &Inputs,
    read: &MetricRead,
    tolerances: Tolerances,
    findings: &mut Vec<String>,
) -> MetricReport {
    let spec = &read.spec;
    let mut report = MetricReport {
        title: title(spec),
        rows: Vec::new(),
        working: Vec::new(),
        proposal: Err("not read".into()),
        counted: spec.kind != MetricKind::Resource,
    };
    let items = match &read.items {
        Ok(items) if !items.is_empty() => items,
        Ok(_) => {
            report
                .working
                .push("no items: the HPA gets an error, never 0".into());
            report.proposal = Err("no items".into());
            findings.push(format!(
                "{} returned no values: the HPA cannot use it (it still scales up on the other \
                 metrics, never down)",
                spec.name
            ));
            return report;
        }
        Err(message) => {
            report.working.push(format!("not read: {message}"));
            report.proposal = Err(message.clone());
            if report.counted {
                findings.push(format!(
                    "{} is absent ({message}): the HPA cannot use it; it scales up on the other \
                     metrics, never down, while this fails",
                    spec.name
                ));
            }
            return report;
        }
    };
    for item in items {
        let (age_text, age) = age(item.timestamp, inputs.now);
        if age.is_some_and(|a| a > STALE_AFTER) {
            findings.push(format!(
                "{} of {} is {age_text} old: its source is falling behind; past the adapter's \
                 max-age it will be absent",
                spec.name, item.name
            ));
        }
        report
            .rows
            .push((item.name.clone(), number(item.value), age_text));
    }
    match (spec.kind, spec.target_type) {
        (MetricKind::Resource, _) => {}
        (_, TargetType::Utilization) => {
            report.proposal = Err("a Utilization target is only valid for a Resource metric".into())
        }
        (MetricKind::Pods, _) => {
            pods_metric_report(inputs, spec, items, tolerances, &mut report, findings)
        }
        _ => value_metric_report(inputs, spec, items, tolerances, &mut report),
    }
    report
}

/// The sync as the controller runs it: bounds, the largest proposal, failed metrics, then
/// stabilization and rate limits — for a controller on its first sync of this HPA (its
/// history seeded with the current count), and, when that holds a scale-down, for one whose
/// recent recommendations all matched the metrics.
fn decision(hpa: &HpaView, metrics: &[MetricReport]) -> (Vec<String>, i32) {
    let outcomes: Vec<MetricOutcome> = metrics
        .iter()
        .filter(|m| m.counted)
        .map(|m| MetricOutcome {
            name: m.title.split(' ').next().unwrap_or_default().to_string(),
            proposal: m.proposal.clone(),
        })
        .collect();
    let mut lines = vec![format!(
        "decision (HPA controller, Kubernetes {UPSTREAM_RELEASE}; {}):",
        if hpa.spec.behavior.is_some() {
            "spec.behavior"
        } else {
            "legacy path: no behavior"
        }
    )];
    let mut first = Autoscaler::new(hpa.spec.clone());
    let sync = first.reconcile(hpa.current, &outcomes, 0.0);
    lines.extend(sync.working.iter().map(|l| format!("  {l}")));
    lines.push(format!(
        "→ {} replicas ({}), on a first sync — the controller seeds its history with the \
         current count",
        sync.desired, sync.reason
    ));
    if sync.reason == "ScaleDownStabilized" || sync.reason == "ScaleUpStabilized" {
        let mut settled = Autoscaler::with_history(hpa.spec.clone(), Default::default());
        let later = settled.reconcile(hpa.current, &outcomes, 0.0);
        lines.push(format!(
            "→ {} replicas ({}) once every recommendation in the window says so",
            later.desired, later.reason
        ));
    }
    if let Some(desired) = hpa.last_desired {
        lines.push(format!(
            "the controller's last decision (status.desiredReplicas): {desired}"
        ));
    }
    (lines, sync.desired)
}

/// The worst the scale-up rules allow: the count after `SCALE_UP_HORIZON` of syncs that all
/// ask for maxReplicas, from minReplicas, with each step.
fn scale_up_projection(spec: &HpaSpec) -> Vec<i32> {
    let mut autoscaler = Autoscaler::new(spec.clone());
    let mut current = spec.min_replicas.max(1);
    let mut steps = vec![current];
    let asks = [MetricOutcome {
        name: "load".into(),
        proposal: Ok(spec.max_replicas),
    }];
    let mut at = 0;
    while at < SCALE_UP_HORIZON.as_secs() {
        let sync = autoscaler.reconcile(current, &asks, at as f64);
        if sync.desired != current {
            current = sync.desired;
            steps.push(current);
        }
        at += SYNC_PERIOD.as_secs();
    }
    steps
}

/// "This policy allows 2 → 64 pods in 3 minutes": a scale-up that a spike can run away with.
fn runaway_scale_up(spec: &HpaSpec) -> Option<String> {
    let steps = scale_up_projection(spec);
    let (from, to) = (*steps.first()?, *steps.last()?);
    if to < from * RUNAWAY_FACTOR || to - from < RUNAWAY_PODS {
        return None;
    }
    let path: Vec<String> = steps.iter().map(i32::to_string).collect();
    let rules = if spec.behavior.is_some() {
        "this scale-up policy"
    } else {
        "without behavior, the controller's default (up to 2× a sync)"
    };
    Some(format!(
        "{rules} allows {from} → {to} pods in {} minutes ({}): one burst or a metric spike buys \
         them all, and each GPU pod is paid for while it loads its model — cap it with a Pods \
         policy (e.g. 4 pods per 60 s) or a scale-up stabilization window",
        SCALE_UP_HORIZON.as_secs() / 60,
        path.join(" → ")
    ))
}

/// maxReplicas past the partitions of the topic a Kafka consumer group reads.
fn idle_consumers(hpa: &HpaView, partitions: &Partitions) -> Option<String> {
    let count = partitions.count.floor() as i32;
    (count > 0 && hpa.spec.max_replicas > count).then(|| {
        format!(
            "maxReplicas {} but the topic {} has {count} partitions: replicas past {count} sit \
             idle (a partition goes to one consumer of a group) and every scale event \
             rebalances the group — set maxReplicas to {count} or add partitions",
            hpa.spec.max_replicas, partitions.topic
        )
    })
}

/// Runs the controller's algorithm over what was read and collects findings.
pub(crate) fn analyze(inputs: Inputs) -> Report {
    let hpa = inputs.hpa;
    let tolerances = Autoscaler::new(hpa.spec.clone()).tolerances();
    let mut findings = Vec::new();
    let heading = format!(
        "HPA {}/{} → {} {}: {} replicas (min {}, max {}){}",
        hpa.namespace,
        hpa.name,
        hpa.target_kind,
        hpa.target_name,
        hpa.current,
        hpa.spec.min_replicas,
        hpa.spec.max_replicas,
        inputs
            .selector
            .map(|s| format!("\npods selected by {s}"))
            .unwrap_or_default()
    );
    let metrics: Vec<MetricReport> = inputs
        .reads
        .iter()
        .map(|read| metric_report(&inputs, read, tolerances, &mut findings))
        .collect();
    let (decision, desired) = decision(hpa, &metrics);
    let largest = metrics
        .iter()
        .filter(|m| m.counted)
        .filter_map(|m| m.proposal.as_ref().ok())
        .max();
    if let Some(&raw) = largest
        && raw > hpa.spec.max_replicas
        && hpa.current >= hpa.spec.max_replicas
    {
        findings.push(format!(
            "at maxReplicas ({}) while the metrics ask for {raw}: nothing left to add — raise \
             maxReplicas or add capacity (or fix the balancing first)",
            hpa.spec.max_replicas
        ));
    }
    if metrics.iter().any(|m| !m.counted) {
        findings.push(
            "a Resource metric is read by the controller from metrics-server; explain leaves it \
             out, so the real decision may be higher"
                .into(),
        );
    }
    if let Some(ratio) = inputs.imbalance.filter(|r| *r > 2.0) {
        findings.push(format!(
            "request imbalance {ratio:.1} across the {}'s pods (1 = even): requests are pinned; \
             more replicas will not spread them — balance per request",
            hpa.target_kind
        ));
    }
    findings.extend(runaway_scale_up(&hpa.spec));
    if let Some(partitions) = inputs.partitions {
        findings.extend(idle_consumers(hpa, partitions));
    }
    findings.extend(busy_but_not_saturated(inputs.gpu_activity));
    Report {
        heading,
        metrics,
        decision,
        desired,
        findings,
    }
}

/// Wraps `text` at 76 columns, indenting continuation lines.
fn wrap(out: &mut String, first: &str, rest: &str, text: &str) {
    let mut line = String::from(first);
    for word in text.split_whitespace() {
        if line.chars().count() + word.chars().count() + 1 > 78 && line.trim().len() > 1 {
            let _ = writeln!(out, "{}", line.trim_end());
            line = String::from(rest);
        }
        line.push_str(word);
        line.push(' ');
    }
    let _ = writeln!(out, "{}", line.trim_end());
}

/// The report for a terminal.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for line in report.heading.lines() {
        wrap(&mut out, "", "  ", line);
    }
    for metric in &report.metrics {
        let _ = writeln!(out);
        wrap(&mut out, "", "  ", &metric.title);
        if !metric.rows.is_empty() {
            let width = metric
                .rows
                .iter()
                .map(|r| r.0.len())
                .max()
                .unwrap_or(0)
                .clamp(4, 40);
            let _ = writeln!(out, "  {:<width$}  {:>12}  {:>5}", "name", "value", "age");
            for (name, value, age) in &metric.rows {
                let name: String = name.chars().take(40).collect();
                let _ = writeln!(out, "  {name:<width$}  {value:>12}  {age:>5}");
            }
        }
        for line in &metric.working {
            wrap(&mut out, "  ", "    ", line);
        }
    }
    let _ = writeln!(out);
    for line in &report.decision {
        match line.strip_prefix("  ") {
            Some(step) => wrap(&mut out, "  ", "    ", step),
            None => wrap(&mut out, "", "  ", line),
        }
    }
    let _ = writeln!(out);
    if report.findings.is_empty() {
        let _ = writeln!(out, "findings: none");
    } else {
        let _ = writeln!(out, "findings");
        for finding in &report.findings {
            wrap(&mut out, "  ! ", "    ", finding);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa(yaml: &str) -> HpaView {
        let hpa: HorizontalPodAutoscaler = serde_norway::from_str(yaml).expect("HPA");
        HpaView::from_hpa(&hpa, "default").expect("view")
    }

    const STATEFUL: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: llm, namespace: ml}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: llm}
  maxReplicas: 8
  metrics:
  - type: Object
    object:
      describedObject: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: web}
      metric: {name: requests_per_second}
      target: {type: Value, value: 2k}
  - type: External
    external:
      metric:
        name: queue_depth
        selector:
          matchLabels: {queue: jobs}
          matchExpressions: [{key: tier, operator: In, values: [gold, silver]}]
      target: {type: AverageValue, averageValue: "30"}
"#;

    #[test]
    fn reads_targets_selectors_and_the_scale_path() {
        let view = hpa(STATEFUL);
        assert_eq!(view.namespace, "ml");
        assert_eq!(view.spec.min_replicas, 1);
        assert_eq!(view.target_resource.as_deref(), Some("statefulsets.apps"));
        assert_eq!(
            view.scale_path().as_deref(),
            Some("/apis/apps/v1/namespaces/ml/statefulsets/llm/scale")
        );
        let object = &view.metrics[0];
        assert_eq!(
            (object.target_type, object.target),
            (TargetType::Value, 2000.0)
        );
        assert_eq!(
            object.described,
            Some(("ingresses.networking.k8s.io".to_string(), "web".to_string()))
        );
        assert_eq!(
            resource_of("Policy", "example.com/v1").as_deref(),
            Some("policies.example.com")
        );
        assert_eq!(
            resource_of("Gateway", "example.com/v1").as_deref(),
            Some("gateways.example.com")
        );
        assert_eq!(resource_of("Service", "v1").as_deref(), Some("services"));
        let external = &view.metrics[1];
        assert_eq!(
            external.metric_selector.as_deref(),
            Some("queue=jobs,tier in (gold,silver)")
        );
    }

    #[test]
    fn an_external_average_value_uses_the_controller_formula() {
        let view = hpa(STATEFUL);
        let read = MetricRead {
            spec: view.metrics[1].clone(),
            items: Ok(vec![Item {
                name: "queue=jobs".into(),
                value: 90.0,
                timestamp: None,
            }]),
        };
        // 90 against 30 a replica at 1 replica: ceil(90 / 30) = 3
        let report = analyze(inputs(&view, &[read], None));
        assert_eq!(report.metrics[0].proposal, Ok(3));
        // no pods listed, and none assumed: AverageValue does not count them
        let working = report.metrics[0].working.join("\n");
        assert!(!working.contains("pods not listed"), "{working}");
        assert_eq!(report.desired, 3);
        assert!(report.findings.is_empty(), "{:?}", report.findings);
    }

    fn inputs<'a>(
        view: &'a HpaView,
        reads: &'a [MetricRead],
        partitions: Option<&'a Partitions>,
    ) -> Inputs<'a> {
        Inputs {
            hpa: view,
            pods: None,
            selector: None,
            reads,
            imbalance: None,
            partitions,
            gpu_activity: &[],
            now: SystemTime::now(),
        }
    }

    #[test]
    fn a_busy_gpu_with_idle_sms_is_not_saturated() {
        let activity = |pod: &str, utilization: f64, sm_active: f64| GpuActivity {
            pod: pod.into(),
            utilization,
            sm_active,
        };
        let finding = busy_but_not_saturated(&[
            activity("llm-0", 100.0, 12.0),
            activity("llm-1", 97.0, 31.0),
            activity("llm-2", 98.0, 91.0),
            activity("llm-3", 40.0, 5.0),
        ])
        .expect("two pods busy by NVML with idle SMs");
        assert!(
            finding
                .starts_with("GPU utilization 100 % but SM active 12 % on llm-0 (and 1 more pods)"),
            "{finding}"
        );
        assert_eq!(
            busy_but_not_saturated(&[activity("llm-2", 98.0, 91.0)]),
            None,
            "busy and saturated: nothing to say"
        );
    }

    const RUNAWAY: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: llm, namespace: ml}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: llm}
  minReplicas: 2
  maxReplicas: 64
  metrics:
  - type: External
    external:
      metric: {name: kafka_consumergroup_lag, selector: {matchLabels: {topic: orders}}}
      target: {type: AverageValue, averageValue: "100"}
  behavior:
    scaleUp:
      policies: [{type: Percent, value: 100, periodSeconds: 30}]
status: {currentReplicas: 2, desiredReplicas: 2}
"#;

    #[test]
    fn a_doubling_every_30_s_with_no_pod_cap_is_a_runaway() {
        let view = hpa(RUNAWAY);
        let report = analyze(inputs(&view, &[], None));
        // 2 → 4 → 8 → 16 → 32 → 64 in six 30 s periods: within 3 minutes
        let finding = report
            .findings
            .iter()
            .find(|f| f.contains("allows 2 → 64 pods in 3 minutes"))
            .unwrap_or_else(|| panic!("{:?}", report.findings));
        assert!(finding.contains("(2 → 4 → 8 → 16 → 32 → 64)"), "{finding}");
        // a cap of 4 pods a minute: 2 → 6 → 10 → 14, no warning
        let mut capped = view.clone();
        if let Some(behavior) = capped.spec.behavior.as_mut() {
            behavior.scale_up.policies = vec![crate::sim::hpa::Policy::pods(4, 60)];
        }
        let report = analyze(inputs(&capped, &[], None));
        assert!(
            !report.findings.iter().any(|f| f.contains("allows")),
            "{:?}",
            report.findings
        );
    }

    #[test]
    fn max_replicas_past_the_topic_partitions_is_a_finding() {
        let view = hpa(RUNAWAY);
        let partitions = Partitions {
            topic: "orders".into(),
            count: 12.0,
        };
        let report = analyze(inputs(&view, &[], Some(&partitions)));
        assert!(
            report.findings.iter().any(|f| f.contains(
                "maxReplicas 64 but the topic orders has 12 partitions: replicas past 12 sit idle"
            )),
            "{:?}",
            report.findings
        );
        let wide = Partitions {
            topic: "orders".into(),
            count: 64.0,
        };
        let report = analyze(inputs(&view, &[], Some(&wide)));
        assert!(!report.findings.iter().any(|f| f.contains("partitions")));
    }

    #[test]
    fn the_decision_holds_a_scale_down_on_a_first_sync_and_says_when_it_goes() {
        let mut view = hpa(STATEFUL);
        view.current = 4;
        view.status_replicas = 4;
        let read = MetricRead {
            spec: view.metrics[1].clone(),
            items: Ok(vec![Item {
                name: "queue=jobs".into(),
                value: 30.0,
                timestamp: None,
            }]),
        };
        // 30 against 30 a replica at 4 replicas: ratio 0.25 → ceil(30 / 30) = 1
        let report = analyze(inputs(&view, &[read], None));
        assert_eq!(report.desired, 4, "{:?}", report.decision);
        let text = report.decision.join("\n");
        assert!(
            text.contains("→ 4 replicas (ScaleDownStabilized)"),
            "{text}"
        );
        assert!(
            text.contains("→ 1 replicas (ReadyForNewScale) once every recommendation"),
            "{text}"
        );
    }
}
