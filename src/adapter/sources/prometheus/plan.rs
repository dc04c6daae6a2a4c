//! What to ask Prometheus, as pure functions of rules and answers (so they are tested without
//! one).
//!
//! - Discovery: per rule, one `count by (__name__, <resource labels>) (<seriesQuery>)` tells
//!   which series exist, which resources they describe and in which namespaces — without
//!   listing every series as `/api/v1/series` would, and without counting by a label the
//!   `seriesQuery` already requires (a row per namespace, not per pod).
//! - Evaluation: per rule, metric, resource and namespace, the rule's `metricsQuery` with
//!   `<<.LabelMatchers>>` = the namespace (and the resource label present) and `<<.GroupBy>>` =
//!   the resource label, so one query answers for every pod of the namespace: never a regex of
//!   pod names, whose length grows with the pods and breaks past a few hundred.
//! - Sample times: beside each evaluation, `max by (<resource label>) (timestamp(<<.Series>>
//!   {<<.LabelMatchers>>}))` — when the newest raw sample behind each object's value was
//!   scraped. Prometheus stamps a query's answer with the evaluation time, so without it a
//!   backend that lags (VictoriaMetrics hides the newest 30 s by default; a slow scrape interval;
//!   remote-write delays) would pass old values as fresh, past `--max-age` and the freshness
//!   gauge. A value is stamped with the older of the two.
//! - External: the request's label selector as PromQL matchers, plus the namespace when the rule
//!   is namespaced.

use std::collections::{BTreeMap, BTreeSet};

use super::client::{Row, quote};
use super::config::Rule;
use crate::adapter::sources::assemble::{ObjectKey, Value};
use crate::resources::GroupResource;
use crate::selector::{Operator, Selector};

/// One query evaluated every interval.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Unit {
    /// Index of the rule in the rule set.
    pub rule: usize,
    /// The metric served.
    pub metric: String,
    /// The series `<<.Series>>` names.
    pub series: String,
    pub resource: GroupResource,
    /// The Prometheus label holding the object's name.
    pub label: String,
    /// The namespace evaluated, for namespaced resources.
    pub namespace: Option<String>,
}

/// The discovery query of a rule: one row per series name, namespace and set of resource
/// labels present. Discovery needs no object's name — only which metrics exist in which
/// namespaces, for which resources — so a resource label the rule's `seriesQuery` already
/// requires (`pod!=""`, as prometheus-adapter's rules are written) is not counted by: against
/// a store of a million series the answer is a row per namespace, not a row per pod.
pub fn discovery_query(rule: &Rule) -> String {
    let mut labels: BTreeSet<&str> = rule
        .resources
        .iter()
        .map(|(l, _)| l.as_str())
        .filter(|label| Some(*label) == rule.namespace_label() || !required(rule, label))
        .collect();
    labels.insert("__name__");
    let labels: Vec<&str> = labels.into_iter().collect();
    format!("count by ({}) ({})", labels.join(","), rule.series_query)
}

/// Whether the rule's `seriesQuery` selects only series where `label` has a value (a
/// `label!=""` matcher).
fn required(rule: &Rule, label: &str) -> bool {
    let query: String = rule
        .series_query
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    ['{', ',']
        .iter()
        .any(|before| query.contains(&format!("{before}{label}!=\"\"")))
}

/// The units of a custom rule, from its discovery answer.
pub(crate) fn units(rule_index: usize, rule: &Rule, rows: &[Row]) -> BTreeSet<Unit> {
    let namespace_label = rule.namespace_label();
    // metric → its first series name (sorted), so the choice is stable
    let mut series_of: BTreeMap<String, String> = BTreeMap::new();
    let mut units = BTreeSet::new();
    let mut named: Vec<(&str, String, &Row)> = rows
        .iter()
        .filter_map(|row| {
            let series = row.labels.get("__name__")?;
            Some((series.as_str(), rule.metric_name(series)?, row))
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    // which resource labels the seriesQuery requires: once per rule, not per row
    let resources: Vec<(&String, &GroupResource, bool)> = rule
        .resources
        .iter()
        .map(|(label, resource)| (label, resource, required(rule, label)))
        .collect();
    for (series, metric, row) in named {
        let series = series_of
            .entry(metric.clone())
            .or_insert_with(|| series.to_string());
        for &(label, resource, required) in &resources {
            let present = required || row.labels.get(label).is_some_and(|v| !v.is_empty());
            if !present {
                continue;
            }
            let namespace = if resource.is_namespaced() {
                // a namespaced resource needs the namespace its objects live in
                let Some(value) = namespace_label
                    .and_then(|l| row.labels.get(l))
                    .filter(|v| !v.is_empty())
                else {
                    continue;
                };
                Some(value.clone())
            } else {
                None
            };
            units.insert(Unit {
                rule: rule_index,
                metric: metric.clone(),
                series: series.clone(),
                resource: resource.clone(),
                label: label.clone(),
                namespace,
            });
        }
    }
    units
}

/// A unit's label matchers: its namespace, and its resource label present.
fn unit_matchers(rule: &Rule, unit: &Unit) -> String {
    let mut matchers = Vec::new();
    if let (Some(namespace), Some(label)) = (&unit.namespace, rule.namespace_label()) {
        matchers.push(format!("{label}={}", quote(namespace)));
    }
    if rule.namespace_label() != Some(unit.label.as_str()) || unit.namespace.is_none() {
        matchers.push(format!("{}!=\"\"", unit.label));
    }
    matchers.join(",")
}

/// The query of one unit.
pub(crate) fn unit_query(rule: &Rule, unit: &Unit) -> String {
    let matchers = unit_matchers(rule, unit);
    rule.metrics_query.render(|field| match field {
        "Series" => &unit.series,
        "LabelMatchers" => &matchers,
        _ => &unit.label,
    })
}

/// The sample-time query of one unit: per object, when its newest raw sample was taken.
pub(crate) fn sample_time_query(rule: &Rule, unit: &Unit) -> String {
    format!(
        "max by ({}) (timestamp({}{{{}}}))",
        unit.label,
        unit.series,
        unit_matchers(rule, unit)
    )
}

/// Reads a unit's answer: each row names its object in the unit's label. With the sample-time
/// answer, each value is stamped with its newest sample's time when that is older than the
/// evaluation; an object it does not name keeps the evaluation time.
pub(crate) fn read_unit(
    unit: &Unit,
    rows: &[Row],
    sample_times: Option<&[Row]>,
) -> Vec<(ObjectKey, Value)> {
    let sampled_at = |name: &str| {
        let row = sample_times?
            .iter()
            .find(|row| row.labels.get(&unit.label).is_some_and(|n| n == name))?;
        std::time::Duration::try_from_secs_f64(row.value)
            .ok()
            .map(|since| std::time::SystemTime::UNIX_EPOCH + since)
    };
    rows.iter()
        .filter_map(|row| {
            let name = row.labels.get(&unit.label).filter(|n| !n.is_empty())?;
            let at = sampled_at(name).map_or(row.at, |sampled| sampled.min(row.at));
            Some((
                ObjectKey {
                    resource: unit.resource.clone(),
                    namespace: unit.namespace.clone(),
                    name: name.clone(),
                },
                Value {
                    value: row.value,
                    at,
                },
            ))
        })
        .collect()
}

/// The metrics an external rule serves, each with the series `<<.Series>>` names.
pub(crate) fn external_metrics(rule: &Rule, rows: &[Row]) -> BTreeMap<String, String> {
    let mut metrics: BTreeMap<String, String> = BTreeMap::new();
    for row in rows {
        let Some(series) = row.labels.get("__name__") else {
            continue;
        };
        if let Some(metric) = rule.metric_name(series) {
            let held = metrics.entry(metric).or_insert_with(|| series.clone());
            if series < held {
                *held = series.clone();
            }
        }
    }
    metrics
}

/// The query for an external metric read: `selector` as PromQL matchers, and the namespace
/// when the rule is namespaced. A selector PromQL cannot express (`>`, `<`) is refused.
pub fn external_query(
    rule: &Rule,
    series: &str,
    namespace: &str,
    selector: &Selector,
) -> Result<String, String> {
    let mut matchers = Vec::new();
    if rule.namespaced
        && let Some(label) = rule.namespace_label()
    {
        matchers.push(format!("{label}={}", quote(namespace)));
    }
    for requirement in selector.requirements() {
        let key = requirement.key();
        if !super::config::is_label_name(key) {
            return Err(format!(
                "label {key:?} cannot be matched in Prometheus: label names are [a-zA-Z_][a-zA-Z0-9_]*"
            ));
        }
        let alternatives = |values: &BTreeSet<String>| {
            let escaped: Vec<String> = values.iter().map(|v| regex::escape(v)).collect();
            quote(&escaped.join("|"))
        };
        matchers.push(match requirement.operator() {
            Operator::Equals(value) => format!("{key}={}", quote(value)),
            Operator::NotEquals(value) => format!("{key}!={}", quote(value)),
            Operator::In(values) => format!("{key}=~{}", alternatives(values)),
            Operator::NotIn(values) => format!("{key}!~{}", alternatives(values)),
            Operator::Exists => format!("{key}!=\"\""),
            Operator::DoesNotExist => format!("{key}=\"\""),
            Operator::GreaterThan(_) | Operator::LessThan(_) => {
                return Err(format!(
                    "the selector on {key:?} compares numbers, which Prometheus label matchers cannot"
                ));
            }
        });
    }
    let matchers = matchers.join(",");
    Ok(rule.metrics_query.render(|field| match field {
        "Series" => series,
        "LabelMatchers" => &matchers,
        _ => "",
    }))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::adapter::sources::prometheus::config;

    fn row(pairs: &[(&str, &str)], value: f64) -> Row {
        Row {
            labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
            at: SystemTime::UNIX_EPOCH,
        }
    }

    const CONFIG: &str = r#"
rules:
- seriesQuery: '{__name__=~"^http_requests_total$",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: '{__name__="queue_depth",queue!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)'
"#;

    #[test]
    fn discovery_counts_by_a_resource_label_only_when_the_series_query_does_not_require_it() {
        let config = r#"
rules:
- seriesQuery: 'queue_depth{namespace!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      service: {resource: service}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#;
        let rules = config::parse(config, "f").expect("valid");
        let rule = &rules.rules[0];
        assert_eq!(
            discovery_query(rule),
            r#"count by (__name__,namespace,service) (queue_depth{namespace!=""})"#
        );
        let answer = [
            row(
                &[
                    ("__name__", "queue_depth"),
                    ("namespace", "a"),
                    ("service", "web"),
                ],
                1.0,
            ),
            row(&[("__name__", "queue_depth"), ("namespace", "b")], 1.0),
        ];
        let services: Vec<Unit> = units(0, rule, &answer)
            .into_iter()
            .filter(|u| u.resource == GroupResource::parse("services"))
            .collect();
        assert_eq!(services.len(), 1, "{services:?}");
        assert_eq!(services[0].namespace.as_deref(), Some("a"));
    }

    #[test]
    fn a_pod_rule_becomes_one_query_per_namespace_grouped_by_pod() {
        let rules = config::parse(CONFIG, "f").expect("valid");
        let rule = &rules.rules[0];
        assert_eq!(
            discovery_query(rule),
            r#"count by (__name__,namespace) ({__name__=~"^http_requests_total$",namespace!="",pod!=""})"#
        );
        let answer = [
            row(
                &[
                    ("__name__", "http_requests_total"),
                    ("namespace", "a"),
                    ("pod", "p1"),
                ],
                1.0,
            ),
            row(
                &[
                    ("__name__", "http_requests_total"),
                    ("namespace", "a"),
                    ("pod", "p2"),
                ],
                1.0,
            ),
            row(
                &[
                    ("__name__", "http_requests_total"),
                    ("namespace", "b"),
                    ("pod", "p3"),
                ],
                1.0,
            ),
        ];
        let units = units(0, rule, &answer);
        let pods: Vec<&Unit> = units
            .iter()
            .filter(|u| u.resource == GroupResource::pods())
            .collect();
        assert_eq!(pods.len(), 2, "{units:?}");
        assert_eq!(pods[0].namespace.as_deref(), Some("a"));
        assert_eq!(
            unit_query(rule, pods[0]),
            r#"sum(rate(http_requests_total{namespace="a",pod!=""}[2m])) by (pod)"#
        );
        // the namespace's own metric: grouped by namespace, every namespace at once
        let namespaces: Vec<&Unit> = units
            .iter()
            .filter(|u| u.resource == GroupResource::namespaces())
            .collect();
        assert_eq!(namespaces.len(), 1);
        assert_eq!(
            unit_query(rule, namespaces[0]),
            r#"sum(rate(http_requests_total{namespace!=""}[2m])) by (namespace)"#
        );
        let values = read_unit(
            pods[0],
            &[row(&[("pod", "p1")], 4.0), row(&[("other", "x")], 1.0)],
            None,
        );
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].0.name, "p1");
        assert_eq!(values[0].0.namespace.as_deref(), Some("a"));
        assert_eq!(values[0].1.value, 4.0);
        assert_eq!(
            values[0].1.at,
            SystemTime::UNIX_EPOCH,
            "no sample times: evaluation time"
        );

        // the samples' own times: the newest raw sample per pod
        assert_eq!(
            sample_time_query(rule, pods[0]),
            r#"max by (pod) (timestamp(http_requests_total{namespace="a",pod!=""}))"#
        );
        let evaluated = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        let at = |row: Row| Row {
            at: evaluated,
            ..row
        };
        let values = read_unit(
            pods[0],
            &[
                at(row(&[("pod", "p1")], 4.0)),
                at(row(&[("pod", "p2")], 5.0)),
            ],
            Some(&[row(&[("pod", "p1")], 962.0)]),
        );
        assert_eq!(
            values[0].1.at,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(962),
            "sampled 38 s before the evaluation: stamped with its sample time"
        );
        assert_eq!(
            values[1].1.at, evaluated,
            "no sample time for p2: the evaluation's"
        );
    }

    #[test]
    fn external_selectors_become_label_matchers() {
        let rules = config::parse(CONFIG, "f").expect("valid");
        let rule = &rules.rules[1];
        let metrics = external_metrics(rule, &[row(&[("__name__", "queue_depth")], 1.0)]);
        assert_eq!(metrics["queue_depth"], "queue_depth");
        let selector = Selector::parse("queue in (jobs,mail.x),tier!=cold,!paused").expect("valid");
        assert_eq!(
            external_query(rule, "queue_depth", "demo", &selector).expect("expressible"),
            r#"sum(queue_depth{namespace="demo",paused="",queue=~"jobs|mail\\.x",tier!="cold"}) by (queue)"#
        );
        let numeric = Selector::parse("size>3").expect("valid");
        assert!(external_query(rule, "queue_depth", "demo", &numeric).is_err());
        let dotted = Selector::parse("app.kubernetes.io/name=x").expect("valid");
        assert!(external_query(rule, "queue_depth", "demo", &dotted).is_err());
    }

    #[test]
    fn label_values_are_quoted() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
