//! Reads one `kubemind exporter` page onto the HPA-facing catalogue (README, Metric catalogue;
//! the mapping is tabled in `docs/gpu-and-inference.md`, What the adapter serves): base units
//! become the catalogue's units (`kubemind_triton_queue_time_seconds` → `triton_queue_time_ms`,
//! ratios → percent), per-pod series become pod values, per-GPU series become node values.
//! Every value carries the page's collection time
//! (`kubemind_exporter_last_collection_timestamp_seconds`), never the time it was read.

use std::collections::{BTreeMap, HashMap};
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
    fn other_pages_are_refused() {
        assert!(matches!(
            read("up 1\n", 100),
            Err(PageError::NoCollectionTime)
        ));
        assert!(matches!(read("{{", 100), Err(PageError::Parse(_))));
    }
}
