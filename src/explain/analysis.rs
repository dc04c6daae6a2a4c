//! What `explain` concludes, as pure functions of what it read: the HPA, its pods, each
//! metric's items. [`analyze`] runs the controller's formula per metric
//! ([`crate::sim::hpa`]) and finds what a person should know; [`render`] writes it for a
//! terminal, within 80 columns.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricTarget};

use crate::quantity::Quantity;
use crate::resources::GroupResource;
use crate::sim::hpa::{
    Milli, PodPhase, Tolerance, average_value_replicas, pods_replicas, value_replicas,
};

/// Older than this, a value is worth a word: the HPA syncs every 15 s.
const STALE_AFTER: Duration = Duration::from_secs(15);
/// A pod this many times the mean of the others is "far hotter".
const HOT_FACTOR: f64 = 3.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Pods,
    Object,
    External,
    Resource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetType {
    Value,
    AverageValue,
    Utilization,
}

/// One entry of `spec.metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    pub kind: MetricKind,
    pub name: String,
    pub target_type: TargetType,
    pub target: f64,
    /// `metric.selector` as selector text.
    pub metric_selector: Option<String>,
    /// Object metrics: (resource path segment, name).
    pub described: Option<(String, String)>,
}

/// The HPA, stripped to what is explained.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaView {
    pub name: String,
    pub namespace: String,
    pub target_kind: String,
    pub target_api_version: String,
    pub target_name: String,
    /// `deployments.apps`, `statefulsets.apps`, … when the kind is known.
    pub target_resource: Option<String>,
    pub min: i32,
    pub max: i32,
    pub current: i32,
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
pub struct MetricRead {
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
    pub fn from_hpa(hpa: &HorizontalPodAutoscaler, namespace: &str) -> anyhow::Result<HpaView> {
        let spec = hpa
            .spec
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the HPA has no spec"))?;
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
            min: spec.min_replicas.unwrap_or(1),
            max: spec.max_replicas,
            current: hpa
                .status
                .as_ref()
                .and_then(|s| s.current_replicas)
                .unwrap_or(spec.min_replicas.unwrap_or(1)),
            metrics,
        })
    }

    /// The scale subresource's path.
    pub fn scale_path(&self) -> Option<String> {
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
    /// The formula with the numbers, or why there is none.
    pub working: Vec<String>,
    pub proposal: Option<i32>,
}

/// Everything `explain` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub heading: String,
    pub metrics: Vec<MetricReport>,
    pub decision: Vec<String>,
    pub findings: Vec<String>,
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

/// Runs the controller's formula per metric and collects findings.
pub fn analyze(
    hpa: &HpaView,
    pods: Option<&[(String, PodPhase)]>,
    selector: Option<&str>,
    reads: &[MetricRead],
    imbalance: Option<f64>,
    now: SystemTime,
) -> Report {
    let tolerance = Tolerance::default();
    let mut findings = Vec::new();
    let mut metrics = Vec::new();
    let mut hot_pods: Vec<String> = Vec::new();
    let heading = format!(
        "HPA {}/{} → {} {}: {} replicas (min {}, max {}){}",
        hpa.namespace,
        hpa.name,
        hpa.target_kind,
        hpa.target_name,
        hpa.current,
        hpa.min,
        hpa.max,
        selector
            .map(|s| format!("\npods selected by {s}"))
            .unwrap_or_default()
    );
    let ready = pods.map_or(hpa.current, |pods| {
        pods.iter().filter(|(_, p)| *p == PodPhase::Running).count() as i32
    });
    for read in reads {
        let spec = &read.spec;
        let kind = match spec.kind {
            MetricKind::Pods => "Pods",
            MetricKind::Object => "Object",
            MetricKind::External => "External",
            MetricKind::Resource => "Resource",
        };
        let target_text = match spec.target_type {
            TargetType::Value => format!("value {}", number(spec.target)),
            TargetType::AverageValue => format!("average {}", number(spec.target)),
            TargetType::Utilization => format!("utilization {} %", number(spec.target)),
        };
        let mut report = MetricReport {
            title: format!("{} ({kind}, target {target_text})", spec.name),
            rows: Vec::new(),
            working: Vec::new(),
            proposal: None,
        };
        let items = match &read.items {
            Ok(items) if !items.is_empty() => items,
            Ok(_) => {
                report
                    .working
                    .push("no items: the HPA gets an error, never 0".into());
                findings.push(format!(
                    "{} returned no values: the HPA cannot use it (it still scales up on the \
                     other metrics, never down)",
                    spec.name
                ));
                metrics.push(report);
                continue;
            }
            Err(message) => {
                report.working.push(format!("not read: {message}"));
                if spec.kind != MetricKind::Resource {
                    findings.push(format!(
                        "{} is absent ({message}): the HPA cannot use it; it scales up on the \
                         other metrics, never down, while this fails",
                        spec.name
                    ));
                }
                metrics.push(report);
                continue;
            }
        };
        for item in items {
            let (age_text, age) = age(item.timestamp, now);
            if age.is_some_and(|a| a > STALE_AFTER) {
                findings.push(format!(
                    "{} of {} is {age_text} old: its source is falling behind; past the \
                     adapter's max-age it will be absent",
                    spec.name, item.name
                ));
            }
            report
                .rows
                .push((item.name.clone(), number(item.value), age_text));
        }
        match spec.kind {
            MetricKind::Pods => {
                let values = items
                    .iter()
                    .map(|i| (i.name.clone(), milli(i.value)))
                    .collect();
                let pod_list: Vec<(String, PodPhase)> = match pods {
                    Some(pods) => pods.to_vec(),
                    None => items
                        .iter()
                        .map(|i| (i.name.clone(), PodPhase::Running))
                        .collect(),
                };
                match pods_replicas(
                    hpa.current,
                    &pod_list,
                    &values,
                    milli(spec.target),
                    tolerance,
                ) {
                    Ok(outcome) => {
                        let sum: f64 = items.iter().map(|i| i.value).sum();
                        report.working.push(format!(
                            "average = {} / {} = {}; ratio = {} / {} = {:.2}",
                            number(sum),
                            items.len(),
                            number(outcome.usage as f64 / 1000.0),
                            number(outcome.usage as f64 / 1000.0),
                            number(spec.target),
                            outcome.ratio
                        ));
                        if !outcome.missing.is_empty() {
                            findings.push(format!(
                                "{} has no value for {}: counted as 0 when scaling up, as the \
                                 target when scaling down",
                                spec.name,
                                outcome.missing.join(", ")
                            ));
                        }
                        if let Some(adjusted) = outcome.adjusted_ratio {
                            report.working.push(format!(
                                "with missing/unready pods filled in: ratio {adjusted:.2}"
                            ));
                        }
                        report.working.push(if outcome.within_tolerance {
                            format!(
                                "within the tolerance ({:.1}–{:.1}): stays at {}",
                                1.0 - tolerance.down,
                                1.0 + tolerance.up,
                                outcome.replicas
                            )
                        } else {
                            format!(
                                "desired = ceil({:.2} × {} ready) = {}",
                                outcome.adjusted_ratio.unwrap_or(outcome.ratio),
                                outcome.ready.max(1),
                                outcome.replicas
                            )
                        });
                        report.proposal = Some(outcome.replicas);
                    }
                    Err(error) => report.working.push(error.to_string()),
                }
                // one pod far hotter than the rest
                if items.len() >= 2 {
                    let hottest = items
                        .iter()
                        .max_by(|a, b| a.value.total_cmp(&b.value))
                        .map(|i| (i.name.clone(), i.value));
                    if let Some((name, value)) = hottest {
                        let others: Vec<f64> = items
                            .iter()
                            .filter(|i| i.name != name)
                            .map(|i| i.value)
                            .collect();
                        let mean = others.iter().sum::<f64>() / others.len() as f64;
                        if value > spec.target
                            && value >= HOT_FACTOR * mean.max(f64::MIN_POSITIVE)
                            && !hot_pods.contains(&name)
                        {
                            hot_pods.push(name.clone());
                            findings.push(format!(
                                "{name} is far hotter than the rest ({} {} vs {} on average): \
                                 requests are pinned to one pod; scaling will not help — \
                                 balance per request",
                                spec.name,
                                number(value),
                                number(mean)
                            ));
                        }
                    }
                }
            }
            MetricKind::Object | MetricKind::External => {
                let value: f64 = items.iter().map(|i| i.value).sum();
                let proposal = match spec.target_type {
                    TargetType::Value => {
                        report.working.push(format!(
                            "ratio = {} / {} = {:.2}; desired = ceil(ratio × {ready} ready)",
                            number(value),
                            number(spec.target),
                            value / spec.target
                        ));
                        value_replicas(
                            hpa.current,
                            ready,
                            milli(value),
                            milli(spec.target),
                            tolerance,
                        )
                    }
                    _ => {
                        report.working.push(format!(
                            "ratio = {} / ({} × {}) = {:.2}; desired = ceil({} / {})",
                            number(value),
                            number(spec.target),
                            hpa.current,
                            value / (spec.target * f64::from(hpa.current.max(1))),
                            number(value),
                            number(spec.target)
                        ));
                        average_value_replicas(
                            hpa.current,
                            milli(value),
                            milli(spec.target),
                            tolerance,
                        )
                    }
                };
                report.proposal = proposal.ok();
                if let Some(p) = report.proposal {
                    report.working.push(format!("proposes {p}"));
                }
            }
            MetricKind::Resource => {}
        }
        metrics.push(report);
    }

    let mut decision = Vec::new();
    let proposals: Vec<i32> = metrics.iter().filter_map(|m| m.proposal).collect();
    match proposals.iter().max() {
        None => decision.push(format!(
            "no metric gives a proposal: the HPA keeps {} replicas",
            hpa.current
        )),
        Some(&raw) => {
            let clamped = raw.clamp(hpa.min, hpa.max);
            decision.push(format!(
                "desired = max over metrics = {raw} → within [{}, {}]: {clamped}",
                hpa.min, hpa.max
            ));
            if clamped < hpa.current {
                decision.push(
                    "scale-down waits for the stabilization window (300 s by default)".into(),
                );
            } else if clamped > hpa.current {
                decision.push(
                    "scale-up is limited per period by behavior (default: +4 pods or +100 % / 15 s)"
                        .into(),
                );
            }
            if raw > hpa.max && hpa.current >= hpa.max {
                findings.push(format!(
                    "at maxReplicas ({}) while the metrics ask for {raw}: nothing left to add — \
                     raise maxReplicas or add capacity (or fix the balancing first)",
                    hpa.max
                ));
            }
        }
    }
    if let Some(ratio) = imbalance.filter(|r| *r > 2.0) {
        findings.push(format!(
            "request imbalance {ratio:.1} across the {}'s pods (1 = even): requests are pinned; \
             more replicas will not spread them — balance per request",
            hpa.target_kind
        ));
    }
    Report {
        heading,
        metrics,
        decision,
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
        wrap(&mut out, "", "  ", line);
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
        assert_eq!(view.min, 1);
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
        let report = analyze(&view, None, None, &[read], None, SystemTime::now());
        assert_eq!(report.metrics[0].proposal, Some(3));
        assert!(report.findings.is_empty(), "{:?}", report.findings);
    }
}
