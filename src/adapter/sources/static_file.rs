//! The static-metrics source of standalone mode: objects, their labels and metric values from a
//! YAML or JSON file, re-read when it changes.
//!
//! It is how kubemind runs with no cluster, and how users dry-run HPA manifests against made-up
//! values. The file (documented in README, "Standalone mode"):
//!
//! ```yaml
//! pods:
//!   - {namespace: demo, name: triton-0, labels: {app: triton}, node: gpu-node-1,
//!      metrics: {triton_queue_time_ms: 8000, gpu_utilization_percent: 100}}
//! objects:          # any resource; `namespaces` objects answer /namespaces/{ns}/metrics/{m}
//!   - {namespace: demo, resource: deployments.apps, name: triton, metrics: {triton_queue_time_ms_max: 8000}}
//!   - {resource: nodes, name: gpu-node-1, metrics: {gpu_utilization_percent: 97}}
//! external:
//!   - {namespace: demo, name: kafka_consumergroup_lag, labels: {topic: cv-jobs}, value: 1200}
//! ```
//!
//! A value is a number, a quantity string (`"1500m"`, `"8k"`) or a map `{value, labels, window,
//! timestamp | age}`; `timestamp` (RFC 3339) or `age` (`"90s"`) pins the sample time so staleness
//! can be tried, otherwise the value is re-stamped "now" on every refresh (the file asserts the
//! current value). `.nan` is accepted and served as absent, like any NaN.
//!
//! A file that does not parse or validate is reported with its path and the problem (line and
//! column where the parser knows them), and the last good contents keep being served.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::adapter::store::Readiness;
use crate::adapter::store::{ExternalSeries, Labels, Sample, SnapshotBuilder, Store};
use crate::adapter::telemetry::Telemetry;
use crate::quantity::Quantity;
use crate::resources::GroupResource;

/// Largest file accepted; a million-series file is a mistake, not a dry run.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("static metrics file {path}: {problem}")]
pub struct LoadError {
    pub path: PathBuf,
    pub problem: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileContents {
    #[serde(default)]
    pods: Vec<PodEntry>,
    #[serde(default)]
    objects: Vec<ObjectEntry>,
    #[serde(default)]
    external: Vec<ExternalEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PodEntry {
    namespace: String,
    name: String,
    #[serde(default)]
    labels: Labels,
    /// The node the pod runs on; informational (shown by `explain`).
    #[serde(default)]
    #[allow(dead_code)]
    node: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    metrics: BTreeMap<String, MetricEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectEntry {
    #[serde(default)]
    namespace: Option<String>,
    resource: String,
    name: String,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    metrics: BTreeMap<String, MetricEntry>,
}

/// An external series. Its value fields repeat [`DetailedValue`]'s because serde cannot
/// `flatten` into a struct that denies unknown fields, and a misspelt field must be an error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalEntry {
    #[serde(default)]
    namespace: Option<String>,
    name: String,
    #[serde(default)]
    labels: Labels,
    value: Number,
    #[serde(default)]
    window: Option<i64>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    age: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MetricEntry {
    Plain(Number),
    Detailed(DetailedValue),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailedValue {
    value: Number,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    window: Option<i64>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    age: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Number {
    Float(f64),
    Text(String),
}

/// When a value was sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SampleTime {
    /// Re-stamped at every refresh.
    Now,
    At(SystemTime),
    /// This long before every refresh.
    Ago(Duration),
}

#[derive(Debug, Clone, PartialEq)]
struct Value {
    value: f64,
    labels: Labels,
    window: Option<i64>,
    time: SampleTime,
}

#[derive(Debug, Clone, PartialEq)]
struct StaticObject {
    namespace: Option<String>,
    resource: GroupResource,
    name: String,
    labels: Arc<Labels>,
    uid: Option<Arc<str>>,
    metrics: Vec<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq)]
struct StaticExternal {
    namespace: Option<String>,
    name: String,
    value: Value,
}

/// A validated file: what the source publishes on every refresh.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StaticMetrics {
    objects: Vec<StaticObject>,
    external: Vec<StaticExternal>,
}

impl StaticMetrics {
    /// Reads and validates a file (blocking I/O; call from a blocking context).
    pub fn load(path: &Path) -> Result<StaticMetrics, LoadError> {
        let fail = |problem: String| LoadError {
            path: path.into(),
            problem,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| fail(e.to_string()))?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(fail(format!(
                "{size} bytes is more than the {MAX_FILE_BYTES} accepted"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        StaticMetrics::from_bytes(path, &bytes)
    }

    /// Parses contents already read from `path` (named in the error).
    pub(crate) fn from_bytes(path: &Path, bytes: &[u8]) -> Result<StaticMetrics, LoadError> {
        let fail = |problem: String| LoadError {
            path: path.into(),
            problem,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| fail(format!("not UTF-8: {e}")))?;
        StaticMetrics::parse(text).map_err(|e| fail(e.to_string()))
    }

    /// Parses and validates file contents; the error names the entry and the problem.
    pub fn parse(text: &str) -> Result<StaticMetrics, ParseError> {
        let contents: FileContents = if text.trim().is_empty() {
            return Ok(StaticMetrics::default());
        } else {
            serde_norway::from_str(text).map_err(|e| ParseError::Syntax(e.to_string()))?
        };
        let mut metrics = StaticMetrics::default();
        for (index, pod) in contents.pods.into_iter().enumerate() {
            let place = format!("pods[{index}] ({}/{})", pod.namespace, pod.name);
            require_name(&place, "namespace", &pod.namespace)?;
            require_name(&place, "name", &pod.name)?;
            metrics.objects.push(StaticObject {
                namespace: Some(pod.namespace),
                resource: GroupResource::pods(),
                name: pod.name,
                labels: Arc::new(pod.labels),
                uid: pod.uid.map(Arc::from),
                metrics: values(&place, pod.metrics)?,
            });
        }
        for (index, object) in contents.objects.into_iter().enumerate() {
            let resource = GroupResource::parse(&object.resource);
            let place = format!("objects[{index}] ({resource}/{})", object.name);
            require_name(&place, "resource", &object.resource)?;
            require_name(&place, "name", &object.name)?;
            let namespace = match (resource.is_namespaced(), object.namespace) {
                (true, Some(ns)) => {
                    require_name(&place, "namespace", &ns)?;
                    Some(ns)
                }
                (true, None) => {
                    return Err(ParseError::entry(
                        &place,
                        format!("{resource} is namespaced, so a namespace is required"),
                    ));
                }
                (false, Some(_)) => {
                    return Err(ParseError::entry(
                        &place,
                        format!("{resource} is cluster-scoped, so it takes no namespace"),
                    ));
                }
                (false, None) => None,
            };
            metrics.objects.push(StaticObject {
                namespace,
                resource,
                name: object.name,
                labels: Arc::new(object.labels),
                uid: object.uid.map(Arc::from),
                metrics: values(&place, object.metrics)?,
            });
        }
        for (index, external) in contents.external.into_iter().enumerate() {
            let place = format!("external[{index}] ({})", external.name);
            require_name(&place, "name", &external.name)?;
            let value = value(
                &place,
                DetailedValue {
                    value: external.value,
                    labels: external.labels,
                    window: external.window,
                    timestamp: external.timestamp,
                    age: external.age,
                },
            )?;
            metrics.external.push(StaticExternal {
                namespace: external.namespace,
                name: external.name,
                value,
            });
        }
        Ok(metrics)
    }

    /// Number of objects (pods included) in the file.
    pub(crate) fn object_count(&self) -> usize {
        self.objects.len()
    }

    /// The snapshot contents as of `now`.
    pub fn snapshot(&self, now: SystemTime) -> SnapshotBuilder {
        let mut builder = SnapshotBuilder::new();
        for entry in &self.objects {
            let Some(object) =
                builder.object(entry.namespace.as_deref(), &entry.resource, &entry.name)
            else {
                continue;
            };
            object.labels = entry.labels.clone();
            object.uid = entry.uid.clone();
            let metrics = Arc::make_mut(&mut object.metrics);
            for (metric, value) in &entry.metrics {
                if let Some(sample) = value.sample(now) {
                    metrics.insert(Arc::from(metric.as_str()), sample);
                }
            }
        }
        for entry in &self.external {
            if let Some(sample) = entry.value.sample(now) {
                builder.external(
                    &entry.name,
                    ExternalSeries {
                        namespace: entry.namespace.clone(),
                        labels: entry.value.labels.clone(),
                        sample,
                    },
                );
            }
        }
        builder
    }
}

impl Value {
    fn sample(&self, now: SystemTime) -> Option<Sample> {
        let time = match self.time {
            SampleTime::Now => now,
            SampleTime::At(time) => time,
            SampleTime::Ago(age) => now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH),
        };
        Sample::new(self.value, time).map(|sample| {
            sample
                .with_window(self.window)
                .with_labels(self.labels.clone())
        })
    }
}

/// What is wrong with a values file, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not YAML or JSON of the expected shape (with line and column).
    #[error("{0}")]
    Syntax(String),
    /// An entry that cannot be served.
    #[error("{place}: {problem}")]
    Entry { place: String, problem: String },
}

impl ParseError {
    fn entry(place: &str, problem: String) -> ParseError {
        ParseError::Entry {
            place: place.to_string(),
            problem,
        }
    }

    /// Whether the message says `text` (for tests and logs).
    pub fn contains(&self, text: &str) -> bool {
        self.to_string().contains(text)
    }
}

fn require_name(place: &str, field: &str, value: &str) -> Result<(), ParseError> {
    if value.is_empty() {
        Err(ParseError::entry(
            place,
            format!("{field} must not be empty"),
        ))
    } else if value.contains('/') || value == "." || value == ".." {
        Err(ParseError::entry(
            place,
            format!("{field} {value:?} is not a single path segment"),
        ))
    } else {
        Ok(())
    }
}

fn values(
    place: &str,
    entries: BTreeMap<String, MetricEntry>,
) -> Result<Vec<(String, Value)>, ParseError> {
    entries
        .into_iter()
        .map(|(metric, entry)| {
            let place = format!("{place} metric {metric:?}");
            require_name(&place, "metric name", &metric)?;
            let detailed = match entry {
                MetricEntry::Plain(value) => DetailedValue {
                    value,
                    labels: Labels::new(),
                    window: None,
                    timestamp: None,
                    age: None,
                },
                MetricEntry::Detailed(detailed) => detailed,
            };
            Ok((metric, value(&place, detailed)?))
        })
        .collect()
}

fn value(place: &str, detailed: DetailedValue) -> Result<Value, ParseError> {
    let value = match detailed.value {
        Number::Float(value) => value,
        Number::Text(text) => Quantity::parse(&text)
            .map_err(|e| ParseError::entry(place, e.to_string()))?
            .as_f64(),
    };
    if let Some(window) = detailed.window
        && window <= 0
    {
        return Err(ParseError::entry(
            place,
            "window must be a positive number of seconds".to_string(),
        ));
    }
    let time = match (detailed.timestamp, detailed.age) {
        (Some(_), Some(_)) => {
            return Err(ParseError::entry(
                place,
                "give timestamp or age, not both".to_string(),
            ));
        }
        (Some(text), None) => {
            let at: jiff::Timestamp = text.parse().map_err(|e| {
                ParseError::entry(place, format!("timestamp {text:?} is not RFC 3339: {e}"))
            })?;
            SampleTime::At(SystemTime::from(at))
        }
        (None, Some(text)) => SampleTime::Ago(
            humantime::parse_duration(&text)
                .map_err(|e| ParseError::entry(place, format!("age {text:?}: {e}")))?,
        ),
        (None, None) => SampleTime::Now,
    };
    Ok(Value {
        value,
        labels: detailed.labels,
        window: detailed.window,
        time,
    })
}

/// Re-reads the file every `refresh` and publishes a snapshot from the last good contents.
pub(crate) struct StaticFileSource {
    pub path: PathBuf,
    pub refresh: Duration,
    pub store: Arc<Store>,
    pub telemetry: Arc<Telemetry>,
    pub readiness: Readiness,
}

impl StaticFileSource {
    /// Publishes `initial` at once, then runs until the task is dropped.
    pub async fn run(self, initial: StaticMetrics) {
        let mut current = initial;
        let mut last_seen = tokio::fs::read(&self.path)
            .await
            .ok()
            .map(|b| fingerprint(&b));
        self.store.publish(current.snapshot(SystemTime::now()));
        self.readiness.set_ready();
        let mut ticker = tokio::time::interval(self.refresh);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            self.check_file(&mut current, &mut last_seen).await;
            self.store.publish(current.snapshot(SystemTime::now()));
        }
    }

    /// Re-reads the file; replaces `current` when it changed and validates. `last_seen` is the
    /// fingerprint of the contents last tried, so a bad file is reported once, not every tick.
    async fn check_file(&self, current: &mut StaticMetrics, last_seen: &mut Option<u64>) {
        let bytes = match tokio::fs::read(&self.path).await {
            Ok(bytes) => bytes,
            Err(error) => {
                if last_seen.take().is_some() {
                    tracing::error!(path = %self.path.display(), %error, "static metrics file unreadable; serving the last good contents");
                    self.telemetry.count_source_refresh("static", false);
                }
                return;
            }
        };
        let seen = fingerprint(&bytes);
        if *last_seen == Some(seen) {
            return;
        }
        *last_seen = Some(seen);
        // parsing a large file is CPU work: off the async workers
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || StaticMetrics::from_bytes(&path, &bytes))
            .await
            .unwrap_or_else(|e| {
                Err(LoadError {
                    path: self.path.clone(),
                    problem: e.to_string(),
                })
            });
        match loaded {
            Ok(metrics) => {
                tracing::info!(path = %self.path.display(), objects = metrics.object_count(), "static metrics reloaded");
                *current = metrics;
                self.telemetry.count_source_refresh("static", true);
            }
            Err(error) => {
                tracing::error!(%error, "static metrics file refused; serving the last good contents");
                self.telemetry.count_source_refresh("static", false);
            }
        }
    }
}

fn fingerprint(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
pods:
  - {namespace: demo, name: triton-0, labels: {app: triton}, node: gpu-node-1,
     metrics: {triton_queue_time_ms: 8000, gpu_utilization_percent: 100}}
objects:
  - {namespace: demo, resource: deployments.apps, name: triton, metrics: {triton_queue_time_ms_max: 8000}}
  - {resource: nodes, name: gpu-node-1, metrics: {gpu_utilization_percent: "97500m"}}
external:
  - {namespace: demo, name: kafka_consumergroup_lag, labels: {topic: cv-jobs}, value: 1200}
"#;

    #[test]
    fn reads_the_documented_example() {
        let metrics = StaticMetrics::parse(EXAMPLE).expect("valid");
        assert_eq!(metrics.object_count(), 3);
        let snapshot = metrics
            .snapshot(SystemTime::now())
            .build(1, SystemTime::now());
        let pods = snapshot
            .objects(Some("demo"), &GroupResource::pods())
            .expect("pods");
        let pod = pods.get("triton-0").expect("triton-0");
        assert_eq!(pod.labels.get("app").map(String::as_str), Some("triton"));
        assert_eq!(&*pod.metrics["triton_queue_time_ms"].quantity(), "8k");
        let node = &snapshot
            .objects(None, &GroupResource::parse("nodes"))
            .expect("nodes")["gpu-node-1"];
        assert_eq!(
            &*node.metrics["gpu_utilization_percent"].quantity(),
            "97500m"
        );
        assert_eq!(snapshot.external("kafka_consumergroup_lag").len(), 1);
    }

    #[test]
    fn pinned_times_stay_pinned() {
        let text = r#"
pods:
  - namespace: demo
    name: p
    metrics:
      old: {value: 1, timestamp: "2026-07-01T12:00:05Z"}
      aged: {value: 2, age: 90s, window: 30, labels: {model: resnet}}
"#;
        let metrics = StaticMetrics::parse(text).expect("valid");
        let now = SystemTime::now();
        let snapshot = metrics.snapshot(now).build(1, now);
        let pod = &snapshot
            .objects(Some("demo"), &GroupResource::pods())
            .expect("pods")["p"];
        assert_eq!(
            pod.metrics["old"].timestamp().as_str(),
            "2026-07-01T12:00:05Z"
        );
        let aged = &pod.metrics["aged"];
        assert_eq!(
            aged.measured(),
            crate::adapter::store::SampleTime::from(now - Duration::from_secs(90))
        );
        assert_eq!(aged.window_seconds(), Some(30));
        assert_eq!(
            aged.labels().get("model").map(String::as_str),
            Some("resnet")
        );
    }

    #[test]
    fn nan_is_absent_not_zero() {
        let metrics =
            StaticMetrics::parse("pods: [{namespace: demo, name: p, metrics: {m: .nan, n: 1}}]")
                .expect("valid");
        let snapshot = metrics
            .snapshot(SystemTime::now())
            .build(1, SystemTime::now());
        let pod = &snapshot
            .objects(Some("demo"), &GroupResource::pods())
            .expect("pods")["p"];
        assert!(!pod.metrics.contains_key("m"));
        assert!(pod.metrics.contains_key("n"));
    }

    #[test]
    fn bad_files_name_the_problem() {
        let cases = [
            ("pods: [{namespace: demo, nmae: p}]", "unknown field `nmae`"),
            ("pods: [{namespace: demo, name: p}]\n  bad: [", "line"),
            (
                "pods: [{namespace: demo, name: p, metrics: {m: 12x}}]",
                "invalid quantity \"12x\"",
            ),
            (
                "objects: [{resource: deployments.apps, name: web}]",
                "objects[0] (deployments.apps/web): deployments.apps is namespaced",
            ),
            (
                "objects: [{namespace: x, resource: nodes, name: n}]",
                "cluster-scoped",
            ),
            (
                "pods: [{namespace: '', name: p}]",
                "namespace must not be empty",
            ),
            (
                "pods: [{namespace: demo, name: a/b}]",
                "not a single path segment",
            ),
            (
                "external: [{name: lag, value: 1, age: soon}]",
                "age \"soon\"",
            ),
            (
                "external: [{name: lag, value: 1, timestamp: yesterday}]",
                "not RFC 3339",
            ),
            (
                "pods: [{namespace: demo, name: p, metrics: {m: {value: 1, window: 0}}}]",
                "window must be a positive number",
            ),
        ];
        for (text, expected) in cases {
            let error = StaticMetrics::parse(text).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("metrics.yaml");
        std::fs::write(&path, "pods: [{namespace: demo}]").expect("write");
        let error = StaticMetrics::load(&path).expect_err("missing name");
        let text = error.to_string();
        assert!(text.contains("metrics.yaml"), "{text}");
        assert!(text.contains("missing field `name`"), "{text}");
    }
}
