//! The snapshot served in a cluster: Kubernetes' inventory of objects (from the reflectors),
//! the exporters' values for them, and workload aggregates.
//!
//! The inventory is the truth about which objects exist: a Pods request lists pods the API
//! server knows, in their namespace, with their labels; exporter values for pods it does not
//! know are dropped. Each value keeps its exporter's collection time. For every Deployment and
//! StatefulSet, each pod metric is aggregated over the workload's pods with a fresh value:
//! `<metric>_max` (the one hot pod an average hides), `_avg`, `_sum`, stamped with the oldest
//! contributing sample; and `request_imbalance_ratio` = max pod request rate / mean (1 = even,
//! N = everything on one of N pods), absent when no pod serves requests.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::exporter_page::{ExporterPage, POD_METRICS};
use crate::adapter::store::{Labels, Sample, SnapshotBuilder, oldest_fresh};
use crate::resources::GroupResource;

/// A pod as the reflectors see it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    pub labels: Labels,
    /// The Deployment or StatefulSet it belongs to, resolved through its ReplicaSet.
    pub workload: Option<(GroupResource, String)>,
}

/// A Deployment or StatefulSet.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadInfo {
    pub namespace: String,
    pub resource: GroupResource,
    pub name: String,
    pub uid: Option<String>,
    pub labels: Labels,
}

/// Everything the reflectors know, stripped to what is served.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub pods: Vec<PodInfo>,
    pub workloads: Vec<WorkloadInfo>,
    pub nodes: Vec<(String, Labels)>,
    pub namespaces: Vec<(String, Labels)>,
}

/// A page's values by catalogue metric.
type Values = BTreeMap<&'static str, f64>;
/// Values with the time their exporter collected them.
type Stamped<'a> = (SystemTime, &'a Values);
/// A workload: namespace, resource, name.
type WorkloadKey<'a> = (&'a str, &'a GroupResource, &'a str);
/// Per metric, the (value, sample time) of each of a workload's pods.
type OverPods = BTreeMap<&'static str, Vec<(f64, SystemTime)>>;

/// The workload resources that get aggregates.
pub fn workload_resources() -> [GroupResource; 2] {
    [
        GroupResource::new("deployments", "apps"),
        GroupResource::new("statefulsets", "apps"),
    ]
}

/// Builds the snapshot contents at `now`; values older than `max_age` take no part in
/// aggregates (the store already hides them from direct reads).
pub fn assemble(
    inventory: &Inventory,
    pages: &[ExporterPage],
    max_age: Duration,
    now: SystemTime,
) -> SnapshotBuilder {
    let cutoff = oldest_fresh(now, max_age);
    let mut builder = SnapshotBuilder::new();
    let pods = GroupResource::pods();
    let nodes = GroupResource::parse("nodes");
    for metric in POD_METRICS {
        builder.declare(&pods, metric);
        for workload in workload_resources() {
            for suffix in ["max", "avg", "sum"] {
                builder.declare(&workload, &format!("{metric}_{suffix}"));
            }
        }
    }
    for workload in workload_resources() {
        builder.declare(&workload, "request_imbalance_ratio");
    }
    for metric in [
        "gpu_utilization_percent",
        "gpu_memory_used_bytes",
        "gpu_memory_used_percent",
    ] {
        builder.declare(&nodes, metric);
    }

    // the freshest page's values for each pod and node
    let mut pod_values: BTreeMap<(&str, &str), Stamped<'_>> = BTreeMap::new();
    let mut node_values: BTreeMap<&str, Stamped<'_>> = BTreeMap::new();
    for page in pages {
        for ((namespace, pod), values) in &page.pods {
            let entry = pod_values
                .entry((namespace, pod))
                .or_insert((page.collected_at, values));
            if page.collected_at > entry.0 {
                *entry = (page.collected_at, values);
            }
        }
        if let Some(node) = &page.node {
            let entry = node_values
                .entry(node)
                .or_insert((page.collected_at, &page.node_values));
            if page.collected_at > entry.0 {
                *entry = (page.collected_at, &page.node_values);
            }
        }
    }

    // per workload, per metric: (value, sample time) of each of its pods
    let mut workload_values: BTreeMap<WorkloadKey<'_>, OverPods> = BTreeMap::new();
    for pod in &inventory.pods {
        let Some(object) = builder.object(Some(&pod.namespace), &pods, &pod.name) else {
            continue;
        };
        object.labels = pod.labels.clone();
        object.uid = pod.uid.clone();
        let Some((collected_at, values)) =
            pod_values.get(&(pod.namespace.as_str(), pod.name.as_str()))
        else {
            continue;
        };
        for (metric, value) in values.iter() {
            if let Some(sample) = Sample::new(*value, *collected_at) {
                object.metrics.insert((*metric).into(), sample);
            }
        }
        if let Some((resource, name)) = &pod.workload
            && *collected_at >= cutoff
        {
            let per_metric = workload_values
                .entry((&pod.namespace, resource, name))
                .or_default();
            for (metric, value) in values.iter() {
                if value.is_finite() {
                    per_metric
                        .entry(metric)
                        .or_default()
                        .push((*value, *collected_at));
                }
            }
        }
    }
    for workload in &inventory.workloads {
        let Some(object) = builder.object(
            Some(&workload.namespace),
            &workload.resource,
            &workload.name,
        ) else {
            continue;
        };
        object.labels = workload.labels.clone();
        object.uid = workload.uid.clone();
        let Some(per_metric) = workload_values.get(&(
            workload.namespace.as_str(),
            &workload.resource,
            workload.name.as_str(),
        )) else {
            continue;
        };
        for (metric, values) in per_metric {
            let oldest = values.iter().map(|(_, at)| *at).min().unwrap_or(now);
            let sum: f64 = values.iter().map(|(v, _)| v).sum();
            let max = values
                .iter()
                .map(|(v, _)| *v)
                .fold(f64::NEG_INFINITY, f64::max);
            let mean = sum / values.len() as f64;
            for (suffix, value) in [("max", max), ("avg", mean), ("sum", sum)] {
                if let Some(sample) = Sample::new(value, oldest) {
                    object
                        .metrics
                        .insert(format!("{metric}_{suffix}").into(), sample);
                }
            }
            if *metric == "inference_request_rate"
                && mean > 0.0
                && let Some(sample) = Sample::new(max / mean, oldest)
            {
                object
                    .metrics
                    .insert("request_imbalance_ratio".into(), sample);
            }
        }
    }
    for (name, labels) in &inventory.nodes {
        let Some(object) = builder.object(None, &nodes, name) else {
            continue;
        };
        object.labels = labels.clone();
        if let Some((collected_at, values)) = node_values.get(name.as_str()) {
            for (metric, value) in values.iter() {
                if let Some(sample) = Sample::new(*value, *collected_at) {
                    object.metrics.insert((*metric).into(), sample);
                }
            }
        }
    }
    for (name, labels) in &inventory.namespaces {
        if let Some(object) = builder.object(None, &GroupResource::namespaces(), name) {
            object.labels = labels.clone();
        }
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn triton_pod(name: &str) -> PodInfo {
        PodInfo {
            namespace: "demo".into(),
            name: name.into(),
            uid: None,
            labels: labels(&[("app", "triton")]),
            workload: Some((GroupResource::parse("deployments"), "triton".into())),
        }
    }

    fn page(at: SystemTime, pods: &[(&str, f64, f64)]) -> ExporterPage {
        ExporterPage {
            node: Some("gpu-node-1".into()),
            collected_at: at,
            pods: pods
                .iter()
                .map(|(pod, queue_ms, rate)| {
                    (
                        ("demo".to_string(), pod.to_string()),
                        [
                            ("triton_queue_time_ms", *queue_ms),
                            ("inference_request_rate", *rate),
                        ]
                        .into_iter()
                        .collect(),
                    )
                })
                .collect(),
            node_values: [("gpu_utilization_percent", 35.0)].into_iter().collect(),
        }
    }

    #[test]
    fn pods_get_values_and_workloads_get_aggregates() {
        let now = SystemTime::now();
        let inventory = Inventory {
            pods: vec![
                triton_pod("triton-0"),
                triton_pod("triton-1"),
                triton_pod("triton-2"),
            ],
            workloads: vec![WorkloadInfo {
                namespace: "demo".into(),
                resource: GroupResource::parse("deployments"),
                name: "triton".into(),
                uid: Some("d-1".into()),
                labels: labels(&[("app", "triton")]),
            }],
            nodes: vec![("gpu-node-1".into(), Labels::new())],
            namespaces: vec![("demo".into(), Labels::new())],
        };
        // one pod gets every request (an L4-pinned gRPC connection)
        let pages = [
            page(
                now - Duration::from_secs(2),
                &[
                    ("triton-0", 8000.0, 60.0),
                    ("triton-1", 0.0, 0.0),
                    ("triton-2", 0.0, 0.0),
                ],
            ),
            // a pod the API server does not know is dropped
            page(now, &[("ghost", 1.0, 1.0)]),
        ];
        let snapshot = assemble(&inventory, &pages, Duration::from_secs(30), now).build(1, now);
        let pods = snapshot
            .objects(Some("demo"), &GroupResource::pods())
            .expect("pods");
        assert_eq!(pods.len(), 3);
        assert_eq!(
            &*pods["triton-0"].metrics["triton_queue_time_ms"].quantity,
            "8k"
        );
        assert_eq!(
            pods["triton-0"].metrics["triton_queue_time_ms"].sample_time,
            now - Duration::from_secs(2)
        );
        let deployment = &snapshot
            .objects(Some("demo"), &GroupResource::parse("deployments"))
            .expect("workloads")["triton"];
        let value = |metric: &str| {
            deployment
                .metrics
                .get(metric)
                .map(|s| s.quantity.to_string())
        };
        assert_eq!(value("triton_queue_time_ms_max").as_deref(), Some("8k"));
        assert_eq!(
            value("triton_queue_time_ms_avg").as_deref(),
            Some("2666667m")
        );
        assert_eq!(value("inference_request_rate_sum").as_deref(), Some("60"));
        assert_eq!(
            value("request_imbalance_ratio").as_deref(),
            Some("3"),
            "all on one of three pods"
        );
        let node = &snapshot
            .objects(None, &GroupResource::parse("nodes"))
            .expect("nodes")["gpu-node-1"];
        assert_eq!(&*node.metrics["gpu_utilization_percent"].quantity, "35");
        // discovery lists the catalogue even for metrics no pod has yet
        assert!(snapshot.serves(&GroupResource::pods(), "vllm_requests_waiting"));
        assert!(snapshot.serves(
            &GroupResource::parse("statefulsets"),
            "vllm_requests_waiting_max"
        ));
    }

    #[test]
    fn stale_values_take_no_part_in_aggregates_and_idle_workloads_have_no_imbalance() {
        let now = SystemTime::now();
        let inventory = Inventory {
            pods: vec![triton_pod("triton-0")],
            workloads: vec![WorkloadInfo {
                namespace: "demo".into(),
                resource: GroupResource::parse("deployments"),
                name: "triton".into(),
                uid: None,
                labels: Labels::new(),
            }],
            ..Inventory::default()
        };
        let stale = [page(
            now - Duration::from_secs(120),
            &[("triton-0", 8000.0, 5.0)],
        )];
        let snapshot = assemble(&inventory, &stale, Duration::from_secs(30), now).build(1, now);
        let deployment = &snapshot
            .objects(Some("demo"), &GroupResource::parse("deployments"))
            .expect("workloads")["triton"];
        assert!(
            deployment.metrics.is_empty(),
            "{:?}",
            deployment.metrics.keys()
        );
        let idle = [page(now, &[("triton-0", 0.0, 0.0)])];
        let snapshot = assemble(&inventory, &idle, Duration::from_secs(30), now).build(1, now);
        let deployment = &snapshot
            .objects(Some("demo"), &GroupResource::parse("deployments"))
            .expect("workloads")["triton"];
        assert!(
            deployment
                .metrics
                .contains_key("inference_request_rate_max")
        );
        assert!(!deployment.metrics.contains_key("request_imbalance_ratio"));
    }
}
