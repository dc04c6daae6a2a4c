//! Rules for the Prometheus source, in prometheus-adapter's configuration format, so its users
//! switch by pointing `--prometheus-config` at the file they have: `rules` (custom metrics) and
//! `externalRules`, each with `seriesQuery`, `seriesFilters`, `resources` (`overrides`,
//! `template`, `namespaced`), `name` (`matches`, `as`) and `metricsQuery`. `resourceRules` (the
//! resource-metrics API, which kubemind does not serve) is accepted and ignored.
//!
//! Everything is checked when the file is read: YAML, regexes, templates, resources. An error
//! names the file and the line it points at. [`builtin`] holds the rules that produce kubemind's
//! own catalogue from the exporter's series, written in the same format.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use super::template::Template;
use crate::resources::GroupResource;

/// Fields a `metricsQuery` may use.
const QUERY_FIELDS: &[&str] = &["Series", "LabelMatchers", "GroupBy"];
/// Fields a `resources.template` may use.
const RESOURCE_FIELDS: &[&str] = &["Resource", "Group"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    rules: Vec<RuleConfig>,
    #[serde(default)]
    external_rules: Vec<RuleConfig>,
    #[serde(default)]
    resource_rules: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleConfig {
    series_query: String,
    #[serde(default)]
    series_filters: Vec<FilterConfig>,
    #[serde(default)]
    resources: ResourcesConfig,
    #[serde(default)]
    name: NameConfig,
    metrics_query: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FilterConfig {
    is: Option<String>,
    is_not: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ResourcesConfig {
    template: Option<String>,
    #[serde(default)]
    overrides: BTreeMap<String, OverrideConfig>,
    namespaced: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideConfig {
    #[serde(default)]
    group: String,
    resource: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NameConfig {
    matches: Option<String>,
    #[serde(rename = "as")]
    rename: Option<String>,
}

/// Whether a rule serves the custom- or the external-metrics API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Custom,
    External,
}

/// A series filter: keep names that match (`is`) or that do not (`isNot`).
#[derive(Debug, Clone)]
pub struct SeriesFilter {
    pub keep_matching: bool,
    pub pattern: Regex,
}

/// One checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub kind: RuleKind,
    /// Where it came from, for logs and errors (`rules[2]`).
    pub origin: String,
    pub series_query: String,
    pub filters: Vec<SeriesFilter>,
    /// Prometheus label → the resource its values name, in label order.
    pub resources: Vec<(String, GroupResource)>,
    /// For external rules: whether the request's namespace becomes a matcher.
    pub namespaced: bool,
    pub name_matches: Regex,
    pub name_as: String,
    pub metrics_query: Template,
}

impl Rule {
    /// The label that holds the namespace, if the rule maps one.
    pub(crate) fn namespace_label(&self) -> Option<&str> {
        self.resources
            .iter()
            .find(|(_, resource)| *resource == GroupResource::namespaces())
            .map(|(label, _)| label.as_str())
    }

    /// The metric a series is served as, or `None` when the series is filtered out or its name
    /// does not match `name.matches`.
    pub fn metric_name(&self, series: &str) -> Option<String> {
        let kept = self
            .filters
            .iter()
            .all(|filter| filter.pattern.is_match(series) == filter.keep_matching);
        if !kept {
            return None;
        }
        let captures = self.name_matches.captures(series)?;
        let mut name = String::new();
        captures.expand(&self.name_as, &mut name);
        (!name.is_empty()).then_some(name)
    }
}

/// A rule set: what the Prometheus source evaluates.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub rules: Vec<Rule>,
}

impl Rules {
    pub fn custom(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.kind == RuleKind::Custom)
    }

    pub fn external(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.kind == RuleKind::External)
    }

    pub fn extend(&mut self, other: Rules) {
        self.rules.extend(other.rules);
    }
}

/// A configuration that cannot be used, with where.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

/// Reads and checks a prometheus-adapter configuration file.
pub fn load(path: &Path) -> Result<Rules, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        line: None,
        message: e.to_string(),
    })?;
    parse(&text, &path.display().to_string())
}

/// Checks a configuration's text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Rules, ConfigError> {
    let config: FileConfig = serde_norway::from_str(text).map_err(|e| ConfigError {
        file: file.to_string(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })?;
    if config.resource_rules.is_some() {
        tracing::info!(
            file,
            "resourceRules serve metrics.k8s.io, which kubemind does not serve; ignored"
        );
    }
    let mut rules = Vec::new();
    let numbered = config
        .rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| (RuleKind::Custom, format!("rules[{i}]"), r))
        .chain(
            config
                .external_rules
                .into_iter()
                .enumerate()
                .map(|(i, r)| (RuleKind::External, format!("externalRules[{i}]"), r)),
        );
    for (kind, origin, rule) in numbered {
        let compiled = compile(kind, &origin, rule).map_err(|(needle, message)| ConfigError {
            file: file.to_string(),
            line: line_of(text, &needle),
            message: format!("{origin}: {message}"),
        })?;
        rules.push(compiled);
    }
    Ok(Rules { rules })
}

/// The 1-based line of the first occurrence of `needle`'s first line in `text`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    let needle = needle.lines().next()?.trim();
    if needle.is_empty() {
        return None;
    }
    text.lines()
        .position(|line| line.contains(needle))
        .map(|i| i + 1)
}

/// Error: the text to locate in the file and the message.
type CompileError = (String, String);

fn compile(kind: RuleKind, origin: &str, rule: RuleConfig) -> Result<Rule, CompileError> {
    let regex = |field: &str, pattern: &str| {
        Regex::new(pattern)
            .map_err(|e| (pattern.to_string(), format!("{field}: invalid regex: {e}")))
    };
    let mut filters = Vec::new();
    for filter in &rule.series_filters {
        match (&filter.is, &filter.is_not) {
            (Some(pattern), None) => filters.push(SeriesFilter {
                keep_matching: true,
                pattern: regex("seriesFilters.is", pattern)?,
            }),
            (None, Some(pattern)) => filters.push(SeriesFilter {
                keep_matching: false,
                pattern: regex("seriesFilters.isNot", pattern)?,
            }),
            _ => {
                return Err((
                    "seriesFilters".into(),
                    "each seriesFilters entry has exactly one of `is` and `isNot`".into(),
                ));
            }
        }
    }
    if rule.series_query.trim().is_empty() {
        return Err(("seriesQuery".into(), "seriesQuery is empty".into()));
    }
    let name_matches = regex("name.matches", rule.name.matches.as_deref().unwrap_or(".*"))?;
    // prometheus-adapter's default: the first capture group if there is exactly one, else all
    let name_as = rule.name.rename.clone().unwrap_or_else(|| {
        if name_matches.captures_len() == 2 {
            "${1}".into()
        } else {
            "${0}".into()
        }
    });
    let metrics_query = Template::parse(&rule.metrics_query, QUERY_FIELDS)
        .map_err(|e| (rule.metrics_query.clone(), format!("metricsQuery: {e}")))?;

    let mut resources: Vec<(String, GroupResource)> = rule
        .resources
        .overrides
        .iter()
        .map(|(label, o)| {
            (
                label.clone(),
                GroupResource::from_config(&o.resource, &o.group),
            )
        })
        .collect();
    if let Some(text) = &rule.resources.template {
        let template = Template::parse(text, RESOURCE_FIELDS)
            .map_err(|e| (text.clone(), format!("resources.template: {e}")))?;
        for (singular, group) in GroupResource::well_known_singulars() {
            let label = template.render(|field| match field {
                "Resource" => &singular,
                _ => group,
            });
            if !resources.iter().any(|(l, _)| *l == label) {
                resources.push((label, GroupResource::from_config(&singular, group)));
            }
        }
    }
    for (label, _) in &resources {
        if !is_label_name(label) {
            return Err((
                label.clone(),
                format!("resources: `{label}` is not a Prometheus label name"),
            ));
        }
    }
    if kind == RuleKind::Custom && resources.is_empty() {
        return Err((
            rule.series_query.clone(),
            "resources maps no label to a Kubernetes resource: values would describe nothing"
                .into(),
        ));
    }
    let has_namespace = resources
        .iter()
        .any(|(_, r)| *r == GroupResource::namespaces());
    let namespaced = match (kind, rule.resources.namespaced) {
        (RuleKind::External, Some(true)) if !has_namespace => {
            return Err((
                "namespaced".into(),
                "resources.namespaced is true but no label maps to the namespace resource".into(),
            ));
        }
        (RuleKind::External, Some(namespaced)) => namespaced,
        (_, _) => has_namespace,
    };
    Ok(Rule {
        kind,
        origin: origin.to_string(),
        series_query: rule.series_query,
        filters,
        resources,
        namespaced,
        name_matches,
        name_as,
        metrics_query,
    })
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub(crate) fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The built-in rules, checked.
pub(crate) fn builtin() -> Rules {
    // generated from the catalogue and checked by the tests below: an error is a bug there
    parse(&crate::catalogue::prometheus_rules(), "built-in rules").unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in GPU-memory percentages, rendered as the adapter renders them and evaluated
    /// by the real promtool (`promtool test rules`), as the exporter's direct path computes
    /// them: 0 % in use is 0, not absent, and a GPU reporting no memory is left out, not +Inf.
    #[test]
    fn the_memory_percent_rules_evaluate_as_the_direct_path_computes() {
        let rules = builtin();
        let mut recording = String::from("groups:\n- name: built-in\n  rules:\n");
        for rule in rules
            .custom()
            .filter(|rule| rule.name_as == "gpu_memory_used_percent")
        {
            let series = rule.series_query.split('{').next().unwrap_or_default();
            let (record, group_by) = if rule.namespace_label().is_some() {
                ("pod_percent", "namespace,pod")
            } else {
                ("node_percent", "node")
            };
            let query = rule.metrics_query.render(|field| match field {
                "Series" => series,
                "GroupBy" => group_by,
                _ => "",
            });
            recording.push_str(&format!("  - record: {record}\n    expr: '{query}'\n"));
        }
        assert!(recording.contains("node_percent") && recording.contains("pod_percent"));
        let test = r#"
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - {series: 'kubemind_gpu_memory_used_bytes{node="idle",gpu="0"}', values: '0x3'}
  - {series: 'kubemind_gpu_memory_total_bytes{node="idle",gpu="0"}', values: '100x3'}
  - {series: 'kubemind_gpu_memory_used_bytes{node="busy",gpu="0"}', values: '25x3'}
  - {series: 'kubemind_gpu_memory_total_bytes{node="busy",gpu="0"}', values: '100x3'}
  - {series: 'kubemind_gpu_memory_used_bytes{node="unknown",gpu="0"}', values: '5x3'}
  - {series: 'kubemind_gpu_memory_total_bytes{node="unknown",gpu="0"}', values: '0x3'}
  - {series: 'kubemind_pod_gpu_memory_used_bytes{namespace="demo",pod="idle"}', values: '0x3'}
  - {series: 'kubemind_pod_gpu_memory_total_bytes{namespace="demo",pod="idle"}', values: '100x3'}
  - {series: 'kubemind_pod_gpu_memory_used_bytes{namespace="demo",pod="busy"}', values: '50x3'}
  - {series: 'kubemind_pod_gpu_memory_total_bytes{namespace="demo",pod="busy"}', values: '100x3'}
  promql_expr_test:
  - expr: node_percent
    eval_time: 2m
    exp_samples:
    - {labels: 'node_percent{node="idle"}', value: 0}
    - {labels: 'node_percent{node="busy"}', value: 25}
  - expr: pod_percent
    eval_time: 2m
    exp_samples:
    - {labels: 'pod_percent{namespace="demo",pod="idle"}', value: 0}
    - {labels: 'pod_percent{namespace="demo",pod="busy"}', value: 50}
"#;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("rules.yaml"), &recording).expect("rules");
        std::fs::write(dir.path().join("test.yaml"), test).expect("test");
        let output = std::process::Command::new("promtool")
            .args(["test", "rules", "test.yaml"])
            .current_dir(dir.path())
            .output()
            .expect("promtool (Debian: prometheus) on PATH");
        assert!(
            output.status.success(),
            "{recording}\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A configuration as prometheus-adapter's documentation and charts write them.
    const TYPICAL: &str = r#"
rules:
- seriesQuery: '{__name__=~"^http_requests_.*",namespace!="",pod!=""}'
  seriesFilters:
  - isNot: "^http_requests_errors_.*"
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  name:
    matches: "^(.*)_total$"
    as: "${1}_per_second"
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'
- seriesQuery: 'nginx_connections{kubernetes_namespace!=""}'
  resources:
    template: "kubernetes_<<.Resource>>"
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: '{__name__="queue_depth",queue!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)'
resourceRules:
  cpu: {containerQuery: "x", nodeQuery: "y", resources: {}, containerLabel: container}
"#;

    #[test]
    fn reads_a_typical_prometheus_adapter_configuration() {
        let rules = parse(TYPICAL, "adapter.yaml").expect("valid");
        let custom: Vec<&Rule> = rules.custom().collect();
        assert_eq!(custom.len(), 2);
        let rate = custom[0];
        assert_eq!(
            rate.metric_name("http_requests_total").as_deref(),
            Some("http_requests_per_second")
        );
        assert_eq!(rate.metric_name("http_requests_errors_total"), None);
        assert_eq!(rate.metric_name("http_requests_inflight"), None);
        assert_eq!(rate.namespace_label(), Some("namespace"));
        assert!(
            rate.resources
                .contains(&("pod".to_string(), GroupResource::pods()))
        );

        let templated = custom[1];
        assert_eq!(
            templated.metric_name("nginx_connections").as_deref(),
            Some("nginx_connections")
        );
        assert_eq!(templated.namespace_label(), Some("kubernetes_namespace"));
        assert!(templated.resources.contains(&(
            "kubernetes_deployment".to_string(),
            GroupResource::new("deployments", "apps")
        )));

        let external: Vec<&Rule> = rules.external().collect();
        assert_eq!(external.len(), 1);
        assert!(external[0].namespaced);
        assert_eq!(
            external[0].metric_name("queue_depth").as_deref(),
            Some("queue_depth")
        );
    }

    #[test]
    fn one_capture_group_names_the_metric_by_default() {
        let text = r#"
rules:
- seriesQuery: 'x_total{pod!=""}'
  resources: {overrides: {pod: {resource: pod}, namespace: {resource: namespace}}}
  name: {matches: "^(.*)_total$"}
  metricsQuery: 'rate(<<.Series>>{<<.LabelMatchers>>}[1m])'
"#;
        let rules = parse(text, "f").expect("valid");
        assert_eq!(rules.rules[0].metric_name("x_total").as_deref(), Some("x"));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let bad_regex = "rules:\n- seriesQuery: 'x{pod!=\"\"}'\n  resources: {template: \"<<.Resource>>\"}\n  name: {matches: \"(unclosed\"}\n  metricsQuery: 'x'\n";
        let error = parse(bad_regex, "adapter.yaml").unwrap_err();
        assert_eq!(error.line, Some(4), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("adapter.yaml:4: rules[0]: name.matches"),
            "{error}"
        );

        let bad_template = "rules:\n- seriesQuery: 'x{pod!=\"\"}'\n  resources: {template: \"<<.Resource>>\"}\n  metricsQuery: 'sum(<<.Series>>) by (<<range .GroupBySlice>>)'\n";
        let error = parse(bad_template, "adapter.yaml").unwrap_err();
        assert_eq!(error.line, Some(4), "{error}");
        assert!(error.message.contains("metricsQuery"), "{error}");

        let unknown_field = "rules:\n- seriesQuery: 'x'\n  metricQuery: 'x'\n";
        let error = parse(unknown_field, "adapter.yaml").unwrap_err();
        assert!(error.line.is_some(), "{error}");
        assert!(error.message.contains("metricQuery"), "{error}");

        let no_resources = "rules:\n- seriesQuery: 'x'\n  metricsQuery: 'x'\n";
        assert!(parse(no_resources, "f").is_err());
    }

    #[test]
    fn the_shipped_example_rules_are_valid() {
        let rules = parse(
            include_str!("../../../../apiservice/prometheus/rules.yaml"),
            "rules.yaml",
        )
        .expect("valid");
        assert_eq!(rules.custom().count(), 1);
        assert_eq!(rules.external().count(), 3);
        // the Kafka rules match whatever namespace the exporter runs in
        let partitions = rules
            .external()
            .find(|r| r.series_query.contains("kafka_topic_partitions"))
            .expect("the partitions rule");
        assert!(!partitions.namespaced);
        let selector = crate::selector::Selector::parse("topic=orders").expect("selector");
        assert_eq!(
            super::super::plan::external_query(
                partitions,
                "kafka_topic_partitions",
                "demo",
                &selector
            ),
            Ok(r#"max(kafka_topic_partitions{topic="orders"}) by (topic)"#.to_string())
        );
    }

    #[test]
    fn the_builtin_rules_are_valid_and_cover_the_pod_catalogue() {
        let rules = builtin();
        for metric in crate::exporter_page::pod_metrics() {
            assert!(
                rules.custom().any(|r| r.name_as == *metric
                    && r.resources.iter().any(|(_, g)| *g == GroupResource::pods())),
                "{metric} has no built-in rule"
            );
        }
    }
}
