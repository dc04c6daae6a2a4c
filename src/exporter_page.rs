//! Reads one `kubemind exporter` page onto the HPA-facing catalogue (README, Metric catalogue;
//! the mapping is tabled in `docs/gpu-and-inference.md`, What the adapter serves): base units
//! become the catalogue's units (`kubemind_triton_queue_time_seconds` → `triton_queue_time_ms`,
//! ratios → percent), per-pod series become pod values, per-GPU series become node values.
//! Every value carries the page's collection time
//! (`kubemind_exporter_last_collection_timestamp_seconds`), never the time it was read.
//!
//! The same page also travels in a compact form, [`VALUES_MEDIA_TYPE`]: the exporter reads its
//! own text page with [`read`] once per collection and serves the result as JSON to a scraper
//! that asks for it in `Accept` (the adapter does; Prometheus does not). The adapter then reads a
//! few kilobytes of catalogue values instead of parsing every series of a page ten times that
//! size, and the mapping above stays in one place. An exporter that does not know the form
//! answers text, which the adapter reads as before.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use crate::catalogue;
use crate::promtext::{self, ParseError};

/// The catalogue metrics an exporter can give for a pod, for discovery before data arrives.
pub(crate) fn pod_metrics() -> Vec<&'static str> {
    catalogue::pod_metrics()
}

/// The catalogue metrics an exporter gives for its node.
pub(crate) fn node_metrics() -> Vec<&'static str> {
    catalogue::node_metrics()
}

/// What a series of the page is read for.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// `kubemind_exporter_last_collection_timestamp_seconds`: the page's time and node.
    CollectedAt,
    /// A per-pod series the HPA reads.
    Pod(catalogue::Serves),
    PodMemoryTotal,
    /// A per-GPU series averaged over the node (its index in [`catalogue::NODE_MEANS`]).
    NodeMean(usize),
    GpuMemoryUsed,
    GpuMemoryTotal,
}

/// Every series read, by name: one lookup per sample of a page (a thousand pages a second at
/// fleet size), not a walk through the catalogue.
static ROLES: LazyLock<HashMap<&'static str, Role>> = LazyLock::new(|| {
    let mut roles = HashMap::new();
    // node means first: a series that is also a pod series is read as the pod's
    for (which, (series, _)) in catalogue::NODE_MEANS.iter().enumerate() {
        roles.insert(series.name, Role::NodeMean(which));
    }
    for series in catalogue::SERIES {
        if let Some(serves) = series.serves {
            roles.insert(series.name, Role::Pod(serves));
        }
    }
    roles.insert(catalogue::POD_GPU_MEMORY_TOTAL.name, Role::PodMemoryTotal);
    roles.insert(catalogue::GPU_MEMORY_USED.name, Role::GpuMemoryUsed);
    roles.insert(catalogue::GPU_MEMORY_TOTAL.name, Role::GpuMemoryTotal);
    roles.insert(catalogue::LAST_COLLECTION.name, Role::CollectedAt);
    roles
});

/// What one exporter page says, in catalogue terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ExporterPage {
    pub node: Option<String>,
    /// When the exporter collected these values.
    pub collected_at: SystemTime,
    /// Values by (namespace, pod), then by catalogue metric.
    pub pods: BTreeMap<(String, String), BTreeMap<&'static str, f64>>,
    /// The node's own values by catalogue metric.
    pub node_values: BTreeMap<&'static str, f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("not Prometheus text: {0}")]
    Parse(#[from] ParseError),
    #[error("no kubemind_exporter_last_collection_timestamp_seconds: not a kubemind exporter page")]
    NoCollectionTime,
    #[error("not a kubemind values page: {0}")]
    Values(#[from] serde_json::Error),
    #[error("the values page's collection time {0} is not a time")]
    BadCollectionTime(f64),
    #[error("the values page holds more than {0} values")]
    TooManyValues(usize),
    #[error("a row of the values page has {0} values for {1} metrics")]
    MoreValuesThanMetrics(usize, usize),
}

/// The media type of an exporter page in catalogue terms (see the module's doc): a JSON object
/// `{"node": "...", "collected_at": <seconds since the epoch>, "metrics": ["<metric>", ...],
/// "node_values": [<value>, ...], "pods": [["<namespace>", "<pod>", [<value>, ...]], ...]}`,
/// each row of values in the order of `metrics`, `null` where there is none (a row may be
/// shorter than `metrics`: the rest are `null`). Metrics a reader does not know are skipped, so
/// a newer exporter can add some.
pub const VALUES_MEDIA_TYPE: &str = "application/vnd.kubemind.exporter-values.v1+json";

/// The `Accept` header a scraper that reads both forms sends: the values form, else text.
pub const ACCEPT_VALUES_OR_TEXT: &str =
    "application/vnd.kubemind.exporter-values.v1+json, text/plain;version=0.0.4;q=0.5";

/// Whether an `Accept` header asks for [`VALUES_MEDIA_TYPE`] (named without `q=0`).
pub fn accepts_values(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let named = parts
            .next()
            .is_some_and(|media| media.eq_ignore_ascii_case(VALUES_MEDIA_TYPE));
        let refused = parts.any(|parameter| {
            parameter
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        named && !refused
    })
}

/// Whether a request's headers ask for [`VALUES_MEDIA_TYPE`] (see [`accepts_values`]): how an
/// exporter decides which form to answer in.
pub fn asks_for_values(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(accepts_values)
}

/// Whether a response's `Content-Type` is [`VALUES_MEDIA_TYPE`].
pub fn is_values(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(VALUES_MEDIA_TYPE))
}

/// Every catalogue metric a page can carry, to give names read from JSON their static form.
static KNOWN_METRICS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    catalogue::pod_metrics()
        .into_iter()
        .chain(catalogue::node_metrics())
        .collect()
});

/// [`ExporterPage`] on the wire: the metrics named once, as columns, and each pod's values in
/// their order (`null` where the pod has none).
#[derive(serde::Serialize, serde::Deserialize)]
struct WirePage<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    collected_at: f64,
    #[serde(default, borrow)]
    metrics: Vec<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    node_values: Vec<Option<f64>>,
    #[serde(default)]
    pods: Vec<WirePod>,
}

/// `["<namespace>", "<pod>", [<value or null>, ...]]`.
#[derive(serde::Serialize, serde::Deserialize)]
struct WirePod(String, String, Vec<Option<f64>>);

impl ExporterPage {
    /// The page as [`VALUES_MEDIA_TYPE`].
    pub fn to_values_json(&self) -> String {
        // a value that is not finite has no JSON number: absent, as on the text page
        let finite = |values: &BTreeMap<&'static str, f64>, metric: &str| {
            values
                .get(metric)
                .copied()
                .filter(|value| value.is_finite())
        };
        let columns: Vec<&'static str> = std::iter::once(&self.node_values)
            .chain(self.pods.values())
            .flat_map(|values| values.iter())
            .filter(|(_, value)| value.is_finite())
            .map(|(metric, _)| *metric)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let row = |values: &BTreeMap<&'static str, f64>| {
            columns
                .iter()
                .map(|metric| finite(values, metric))
                .collect()
        };
        let wire = WirePage {
            node: self.node.clone(),
            collected_at: self
                .collected_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |since| since.as_secs_f64()),
            metrics: columns
                .iter()
                .map(|m| std::borrow::Cow::Borrowed(*m))
                .collect(),
            node_values: if self.node_values.values().any(|v| v.is_finite()) {
                row(&self.node_values)
            } else {
                Vec::new()
            },
            pods: self
                .pods
                .iter()
                .map(|((namespace, pod), values)| {
                    WirePod(namespace.clone(), pod.clone(), row(values))
                })
                .collect(),
        };
        // a struct of strings and finite numbers always serializes
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Reads a [`VALUES_MEDIA_TYPE`] body; at most `max_values` values.
    pub fn from_values_json(body: &[u8], max_values: usize) -> Result<ExporterPage, PageError> {
        let wire: WirePage = serde_json::from_slice(body)?;
        let held = |row: &[Option<f64>]| row.iter().flatten().count();
        let values = held(&wire.node_values) + wire.pods.iter().map(|p| held(&p.2)).sum::<usize>();
        if values > max_values {
            return Err(PageError::TooManyValues(max_values));
        }
        let collected_at = Duration::try_from_secs_f64(wire.collected_at)
            .map(|since_epoch| SystemTime::UNIX_EPOCH + since_epoch)
            .map_err(|_| PageError::BadCollectionTime(wire.collected_at))?;
        // each column's catalogue name; `None`: a metric this reader does not know
        let columns: Vec<Option<&'static str>> = wire
            .metrics
            .iter()
            .map(|metric| KNOWN_METRICS.get(metric.as_ref()).copied())
            .collect();
        let known = |row: Vec<Option<f64>>| -> Result<BTreeMap<&'static str, f64>, PageError> {
            if row.len() > columns.len() {
                return Err(PageError::MoreValuesThanMetrics(row.len(), columns.len()));
            }
            Ok(columns
                .iter()
                .zip(row)
                .filter_map(|(metric, value)| Some(((*metric)?, value?)))
                .collect())
        };
        let mut pods = BTreeMap::new();
        for WirePod(namespace, pod, row) in wire.pods {
            // a pod named twice: its values merged, the later ones winning
            pods.entry((namespace, pod))
                .or_insert_with(BTreeMap::new)
                .extend(known(row)?);
        }
        Ok(ExporterPage {
            node: wire.node,
            collected_at,
            pods,
            node_values: known(wire.node_values)?,
        })
    }
}

/// Reads a page; at most `max_samples` samples.
pub fn read(text: &str, max_samples: usize) -> Result<ExporterPage, PageError> {
    let exposition = promtext::parse_with_limit(text, max_samples)?;
    let mut collected_at = None;
    let mut node = None;
    // keyed by text borrowed from the page while reading it (a page of 16 pods has ~200
    // samples and a thousand pages arrive a second): owned strings once per pod, at the end
    let mut pods: BTreeMap<(&str, &str), BTreeMap<&'static str, f64>> = BTreeMap::new();
    let mut memory_total: HashMap<(&str, &str), f64> = HashMap::new();
    // per GPU (uuid): memory used, memory total
    let mut gpus: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    // per node mean (catalogue::NODE_MEANS): the value of each GPU (uuid) that has one
    let mut means: [BTreeMap<&str, f64>; catalogue::NODE_MEANS.len()] = Default::default();
    for sample in &exposition.samples {
        if !sample.value.is_finite() {
            continue;
        }
        let Some(role) = ROLES.get(sample.name) else {
            continue; // not read by the adapter (power, temperature, the exporter's health)
        };
        let pod_key = || Some((sample.label("namespace")?, sample.label("pod")?));
        match *role {
            Role::CollectedAt => {
                collected_at = Duration::try_from_secs_f64(sample.value)
                    .ok()
                    .map(|since_epoch| SystemTime::UNIX_EPOCH + since_epoch);
                node = sample.label("node").map(str::to_string);
            }
            Role::Pod(serves) => {
                if let Some(key) = pod_key() {
                    pods.entry(key)
                        .or_default()
                        .insert(serves.metric, sample.value * serves.scale);
                }
            }
            Role::PodMemoryTotal => {
                if let Some(key) = pod_key() {
                    memory_total.insert(key, sample.value);
                }
            }
            Role::NodeMean(which) => {
                if let Some(uuid) = sample.label("uuid") {
                    // once per GPU, however many pods hold it
                    means[which].insert(uuid, sample.value);
                }
            }
            Role::GpuMemoryUsed => {
                if let Some(uuid) = sample.label("uuid") {
                    gpus.entry(uuid).or_default().0 = sample.value;
                }
            }
            Role::GpuMemoryTotal => {
                if let Some(uuid) = sample.label("uuid") {
                    gpus.entry(uuid).or_default().1 = sample.value;
                }
            }
        }
    }
    for (key, total) in memory_total {
        if let Some(values) = pods.get_mut(&key)
            && let Some(&used) = values.get("gpu_memory_used_bytes")
            && total > 0.0
        {
            values.insert(catalogue::GPU_MEMORY_USED_PERCENT, used / total * 100.0);
        }
    }
    let mut node_values = BTreeMap::new();
    for ((_, metric), values) in catalogue::NODE_MEANS.iter().zip(&means) {
        if !values.is_empty() {
            let mean = values.values().sum::<f64>() / values.len() as f64;
            node_values.insert(*metric, mean * 100.0);
        }
    }
    if !gpus.is_empty() {
        let used: f64 = gpus.values().map(|g| g.0).sum();
        let total: f64 = gpus.values().map(|g| g.1).sum();
        node_values.insert("gpu_memory_used_bytes", used);
        if total > 0.0 {
            node_values.insert(catalogue::GPU_MEMORY_USED_PERCENT, used / total * 100.0);
        }
    }
    Ok(ExporterPage {
        node,
        collected_at: collected_at.ok_or(PageError::NoCollectionTime)?,
        pods: pods
            .into_iter()
            .map(|((namespace, pod), values)| ((namespace.to_string(), pod.to_string()), values))
            .collect(),
        node_values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporter::gpu::{GpuReading, GpuSnapshot};
    use crate::exporter::pods::{DeviceId, Holder};
    use crate::exporter::render::{Collection, render};
    use crate::exporter::servers::scrape::{ServerKind, Signals, Target, TargetReport};
    use crate::exporter::servers::triton::TritonSignals;

    /// A page rendered by the exporter itself, so the two sides cannot drift apart.
    fn page() -> String {
        let gpu = |index, uuid: &str, utilization| GpuReading {
            index,
            uuid: uuid.into(),
            name: "sim".into(),
            utilization_ratio: Some(utilization),
            memory_used_bytes: 20,
            memory_total_bytes: 80,
            power_watts: None,
            temperature_celsius: None,
            gpm_supported: false,
            gpm: None,
            processes: vec![],
            mig: vec![],
        };
        let gpus = GpuSnapshot {
            nvml_up: true,
            gpus: vec![gpu(0, "GPU-a", 0.97), gpu(1, "GPU-b", 0.03)],
            sampled_at: SystemTime::UNIX_EPOCH,
            collection: Duration::ZERO,
        };
        let holders = vec![(
            DeviceId::Gpu {
                uuid: "GPU-a".into(),
                replica: None,
            },
            Holder {
                namespace: "demo".into(),
                pod: "triton-0".into(),
                container: "server".into(),
                resource_name: "nvidia.com/gpu".into(),
            },
        )];
        let servers = vec![TargetReport {
            target: Target::new("demo", "triton-0", ServerKind::Triton, ""),
            up: true,
            signals: Some(Signals::Triton(TritonSignals {
                queue_time_seconds: Some(8.0),
                queue_compute_ratio: Some(160.0),
                pending_requests: 412.0,
                request_rate: 19.5,
                rejected_rate: 0.0,
                stalled: false,
            })),
            last_success: None,
            failures: BTreeMap::new(),
        }];
        render(&Collection {
            node: "gpu-node-1",
            gpus: &gpus,
            holders: &holders,
            pod_resources_up: true,
            servers: &servers,
            pod_shares: &Default::default(),
            duration: Duration::ZERO,
            finished_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000),
        })
    }

    #[test]
    fn maps_the_exporters_series_onto_the_catalogue() {
        let page = read(&page(), 10_000).expect("a kubemind page");
        assert_eq!(page.node.as_deref(), Some("gpu-node-1"));
        assert_eq!(
            page.collected_at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000)
        );
        let pod = &page.pods[&("demo".to_string(), "triton-0".to_string())];
        assert_eq!(pod["triton_queue_time_ms"], 8000.0);
        assert_eq!(pod["triton_queue_compute_ratio"], 160.0);
        assert_eq!(pod["triton_pending_requests"], 412.0);
        assert_eq!(pod["inference_request_rate"], 19.5);
        assert_eq!(pod["gpu_utilization_percent"], 97.0);
        assert_eq!(pod["gpu_memory_used_percent"], 25.0);
        assert_eq!(page.node_values["gpu_utilization_percent"], 50.0);
        assert_eq!(page.node_values["gpu_memory_used_bytes"], 40.0);
        for metric in pod.keys() {
            assert!(
                pod_metrics().contains(metric),
                "{metric} is listed for discovery"
            );
        }
    }

    #[test]
    fn the_values_form_reads_as_the_text_form() {
        let text = read(&page(), 10_000).expect("a kubemind page");
        let json = text.to_values_json();
        assert!(
            json.len() * 4 < page().len(),
            "{} bytes against {}",
            json.len(),
            page().len()
        );
        let values = ExporterPage::from_values_json(json.as_bytes(), 10_000).expect("reads");
        assert_eq!(values, text);
    }

    #[test]
    fn values_the_reader_does_not_know_are_skipped() {
        let body = br#"{"node": "n", "collected_at": 1790000000.5,
            "metrics": ["gpu_fan_speed_percent", "gpu_utilization_percent",
                        "triton_pending_requests", "a_future_metric"],
            "node_values": [20, 50],
            "pods": [["demo", "a", [null, null, 4, 1]], ["demo", "b", []]],
            "a_future_field": true}"#;
        let page = ExporterPage::from_values_json(body, 100).expect("reads");
        assert_eq!(
            page.collected_at,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_790_000_000_500)
        );
        assert_eq!(
            page.node_values,
            BTreeMap::from([("gpu_utilization_percent", 50.0)])
        );
        assert_eq!(
            page.pods[&("demo".to_string(), "a".to_string())],
            BTreeMap::from([("triton_pending_requests", 4.0)])
        );
        assert_eq!(
            page.pods[&("demo".to_string(), "b".to_string())],
            BTreeMap::new()
        );
    }

    #[test]
    fn bad_values_pages_are_refused() {
        let refused = |body: &str| ExporterPage::from_values_json(body.as_bytes(), 2).unwrap_err();
        assert!(matches!(refused("up 1\n"), PageError::Values(_)));
        assert!(matches!(refused(r#"{"pods": []}"#), PageError::Values(_)));
        assert!(matches!(
            refused(r#"{"collected_at": -1}"#),
            PageError::BadCollectionTime(_)
        ));
        assert!(matches!(
            refused(r#"{"collected_at": 1e300}"#),
            PageError::BadCollectionTime(_)
        ));
        assert!(matches!(
            refused(r#"{"collected_at": 1, "metrics": ["a"], "node_values": [1e999]}"#),
            PageError::Values(_)
        ));
        assert!(matches!(
            refused(r#"{"collected_at": 1, "metrics": ["a"], "node_values": [1, 2]}"#),
            PageError::MoreValuesThanMetrics(2, 1)
        ));
        assert!(matches!(
            refused(r#"{"collected_at": 1, "metrics": ["a"], "pods": [["n", "p"]]}"#),
            PageError::Values(_)
        ));
        assert!(matches!(
            refused(
                r#"{"collected_at": 1, "metrics": ["a", "b"], "node_values": [1, 2],
                    "pods": [["n", "p", [null, 3]]]}"#
            ),
            PageError::TooManyValues(2)
        ));
    }

    #[test]
    fn accept_headers_are_negotiated() {
        assert!(accepts_values(ACCEPT_VALUES_OR_TEXT));
        assert!(accepts_values(
            "text/plain;q=0.5, Application/Vnd.Kubemind.Exporter-Values.V1+JSON;q=0.9"
        ));
        // what Prometheus 2.x sends (scrape/scrape.go, scrapeAcceptHeader)
        assert!(!accepts_values(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
             version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!accepts_values(
            "application/vnd.kubemind.exporter-values.v1+json;q=0, text/plain"
        ));
        assert!(!accepts_values("*/*"));
        assert!(is_values(
            "application/vnd.kubemind.exporter-values.v1+json; charset=utf-8"
        ));
        assert!(!is_values("text/plain; version=0.0.4; charset=utf-8"));
    }

    proptest::proptest! {
        /// Any page of catalogue values reads back from its values form as it was written.
        #[test]
        fn values_pages_read_back(
            node in proptest::option::of("[a-z0-9.-]{1,20}"),
            seconds in 0u64..4_000_000_000,
            quarters in 0u64..4,
            node_values in proptest::collection::btree_map(0usize..40, -1e12f64..1e12, 0..6),
            pods in proptest::collection::btree_map(
                ("[a-z0-9-]{1,12}", "[a-z0-9\\-\"é]{1,20}"),
                proptest::collection::btree_map(0usize..40, proptest::num::f64::NORMAL, 0..8),
                0..10,
            ),
        ) {
            let known: Vec<&'static str> = KNOWN_METRICS.iter().copied().collect();
            let metrics = |values: BTreeMap<usize, f64>| -> BTreeMap<&'static str, f64> {
                values.into_iter().map(|(i, v)| (known[i % known.len()], v)).collect()
            };
            let page = ExporterPage {
                node,
                // quarter seconds: exact in the float the form carries, as a page's times are
                // to well under a microsecond
                collected_at: SystemTime::UNIX_EPOCH
                    + Duration::from_millis(seconds * 1000 + quarters * 250),
                pods: pods.into_iter().map(|(key, values)| (key, metrics(values))).collect(),
                node_values: metrics(node_values),
            };
            let read = ExporterPage::from_values_json(page.to_values_json().as_bytes(), 10_000)
                .expect("reads");
            proptest::prop_assert_eq!(read, page);
        }
    }

    #[test]
    fn other_pages_are_refused() {
        assert!(matches!(
            read("up 1\n", 100),
            Err(PageError::NoCollectionTime)
        ));
        assert!(matches!(read("{{", 100), Err(PageError::Parse(_))));
    }
}
