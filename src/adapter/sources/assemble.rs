//! The snapshot served in a cluster: Kubernetes' inventory of objects (from the reflectors),
//! the values every source holds for them, and workload aggregates.
//!
//! Each source (the exporters, Prometheus) hands over [`SourceValues`]: values by object and
//! metric, each with the time it was measured, and how long its values stay fresh. Where two
//! sources have a value for the same object and metric, the newer one is served; a value older
//! than its source's max-age takes no part.
//!
//! The inventory is the truth about which pods, workloads, nodes and namespaces exist: a Pods
//! request lists pods the API server knows, in their namespace, with their labels; values for
//! such objects it does not know are dropped. Objects of other resources (a Service a
//! Prometheus rule names) are served as the source names them. For every Deployment and
//! StatefulSet, each pod metric is aggregated over the workload's pods with a fresh value:
//! `<metric>_max` (the one hot pod an average hides), `_avg`, `_sum`, stamped with the oldest
//! contributing sample; and `request_imbalance_ratio` = max pod request rate / mean (1 = even,
//! N = everything on one of N pods), absent when no pod serves requests.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use super::exporter_page::{ExporterPage, node_metrics, pod_metrics};
use crate::adapter::store::{Inventory, Sample, SnapshotBuilder, oldest_fresh};
use crate::resources::GroupResource;

/// One measured value and when it was measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Value {
    pub value: f64,
    pub at: SystemTime,
}

/// An object a source has values for. `namespace` is `None` for cluster-scoped resources.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ObjectKey {
    pub resource: GroupResource,
    pub namespace: Option<String>,
    pub name: String,
}

/// What one source contributes to the snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SourceValues {
    /// Values older than this (at assembly) take no part.
    pub max_age: Duration,
    /// Values by object, then by metric.
    pub objects: BTreeMap<ObjectKey, BTreeMap<String, Value>>,
    /// (resource, metric) pairs listed in discovery even while no object has a value.
    pub declared: BTreeSet<(GroupResource, String)>,
    /// External metric names listed in discovery (their values are read on demand).
    pub external: BTreeSet<String>,
}

impl SourceValues {
    /// The exporters' pages as one source: for each pod and node, the newest page's values.
    pub(crate) fn from_exporter_pages<'a>(
        pages: impl IntoIterator<Item = &'a ExporterPage>,
        max_age: Duration,
    ) -> SourceValues {
        let mut values = SourceValues {
            max_age,
            ..SourceValues::default()
        };
        let pods = GroupResource::pods();
        let nodes = GroupResource::parse("nodes");
        for metric in pod_metrics() {
            values.declared.insert((pods.clone(), metric.to_string()));
        }
        for metric in node_metrics() {
            values.declared.insert((nodes.clone(), metric.to_string()));
        }
        let mut newest = |key: ObjectKey, at: SystemTime, metrics: &BTreeMap<&str, f64>| {
            let entry = values.objects.entry(key).or_default();
            for (metric, value) in metrics {
                let value = Value { value: *value, at };
                entry
                    .entry(metric.to_string())
                    .and_modify(|held| {
                        if held.at < at {
                            *held = value;
                        }
                    })
                    .or_insert(value);
            }
        };
        for page in pages {
            for ((namespace, name), metrics) in &page.pods {
                let key = ObjectKey {
                    resource: pods.clone(),
                    namespace: Some(namespace.clone()),
                    name: name.clone(),
                };
                newest(key, page.collected_at, metrics);
            }
            if let Some(node) = &page.node {
                let key = ObjectKey {
                    resource: nodes.clone(),
                    namespace: None,
                    name: node.clone(),
                };
                newest(key, page.collected_at, &page.node_values);
            }
        }
        values
    }
}

/// Per metric, the (value, sample time) of each of a workload's pods.
type OverPods<'a> = BTreeMap<&'a str, Vec<Value>>;

/// The workload resources that get aggregates.
pub(crate) fn workload_resources() -> [GroupResource; 2] {
    [
        GroupResource::new("deployments", "apps"),
        GroupResource::new("statefulsets", "apps"),
    ]
}

/// Resources whose objects the inventory lists; values for others are served as named.
fn from_inventory(resource: &GroupResource) -> bool {
    *resource == GroupResource::pods()
        || *resource == GroupResource::namespaces()
        || *resource == GroupResource::parse("nodes")
        || workload_resources().contains(resource)
}

/// Each object's metrics: for each, the newest fresh value over all sources.
type Merged<'a> = BTreeMap<&'a ObjectKey, BTreeMap<&'a str, Value>>;

/// Builds the snapshot contents at `now` from the inventory and every source's values: the
/// metrics declared, the values merged, then pods (gathering their workloads' values),
/// workloads with their aggregates, nodes and namespaces, and the objects only a source names.
pub(crate) fn assemble(
    inventory: &Inventory,
    sources: &[&SourceValues],
    now: SystemTime,
) -> SnapshotBuilder {
    let mut builder = SnapshotBuilder::new();
    declare(&mut builder, sources);
    let merged = merge(sources, now);
    let workload_values = put_pods(&mut builder, inventory, &merged);
    put_workloads(&mut builder, inventory, &merged, &workload_values, now);
    put_cluster_scoped(&mut builder, inventory, &merged);
    for (key, values) in &merged {
        if from_inventory(&key.resource) {
            continue;
        }
        if let Some(object) = builder.object(key.namespace.as_deref(), &key.resource, &key.name) {
            put(&mut object.metrics, values);
        }
    }
    builder
}

/// Every metric a source declares (and, for a pod metric, its workload aggregates), for
/// discovery before any value arrives.
fn declare(builder: &mut SnapshotBuilder, sources: &[&SourceValues]) {
    let pods = GroupResource::pods();
    for source in sources {
        for (resource, metric) in &source.declared {
            builder.declare(resource, metric);
            if *resource == pods {
                for workload in workload_resources() {
                    for suffix in ["max", "avg", "sum"] {
                        builder.declare(&workload, &format!("{metric}_{suffix}"));
                    }
                }
            }
        }
        for metric in &source.external {
            builder.declare_external(metric);
        }
    }
    for workload in workload_resources() {
        builder.declare(&workload, "request_imbalance_ratio");
    }
}

/// For each object, each metric's newest value that is fresh and finite, over all sources.
fn merge<'a>(sources: &[&'a SourceValues], now: SystemTime) -> Merged<'a> {
    let mut merged: Merged<'a> = BTreeMap::new();
    for source in sources {
        let cutoff = oldest_fresh(now, source.max_age);
        for (key, metrics) in &source.objects {
            let entry = merged.entry(key).or_default();
            for (metric, value) in metrics {
                if value.at < cutoff || !value.value.is_finite() {
                    continue;
                }
                entry
                    .entry(metric.as_str())
                    .and_modify(|held| {
                        if held.at < value.at {
                            *held = *value;
                        }
                    })
                    .or_insert(*value);
            }
        }
    }
    merged
}

fn values_of<'m>(
    merged: &'m Merged<'_>,
    resource: &GroupResource,
    namespace: Option<&str>,
    name: &str,
) -> Option<&'m BTreeMap<&'m str, Value>> {
    let key = ObjectKey {
        resource: resource.clone(),
        namespace: namespace.map(str::to_string),
        name: name.to_string(),
    };
    merged.get(&key)
}

fn put(metrics: &mut crate::adapter::store::MetricSamples, values: &BTreeMap<&str, Value>) {
    for (metric, value) in values {
        if let Some(sample) = Sample::new(value.value, value.at) {
            metrics.insert((*metric).into(), sample);
        }
    }
}

/// Per workload (namespace, resource, name), per metric: its pods' values.
type WorkloadValues<'a> = BTreeMap<(&'a str, &'a GroupResource, &'a str), OverPods<'a>>;

/// The inventory's pods with their labels and values; returns each workload's pods' values.
fn put_pods<'a>(
    builder: &mut SnapshotBuilder,
    inventory: &'a Inventory,
    merged: &'a Merged<'a>,
) -> WorkloadValues<'a> {
    let pods = GroupResource::pods();
    let mut workload_values: WorkloadValues<'a> = BTreeMap::new();
    for pod in &inventory.pods {
        let Some(object) = builder.object(Some(&pod.namespace), &pods, &pod.name) else {
            continue;
        };
        object.labels = pod.labels.clone();
        object.uid = pod.uid.clone();
        let Some(values) = values_of(merged, &pods, Some(&pod.namespace), &pod.name) else {
            continue;
        };
        put(&mut object.metrics, values);
        if let Some((resource, name)) = &pod.workload {
            let per_metric = workload_values
                .entry((&pod.namespace, resource, name))
                .or_default();
            for (metric, value) in values {
                per_metric.entry(metric).or_default().push(*value);
            }
        }
    }
    workload_values
}

/// The inventory's Deployments and StatefulSets: their own values, and over their pods'
/// values `_max`, `_avg`, `_sum` (stamped with the oldest contributing sample) and
/// `request_imbalance_ratio`.
fn put_workloads(
    builder: &mut SnapshotBuilder,
    inventory: &Inventory,
    merged: &Merged<'_>,
    workload_values: &WorkloadValues<'_>,
    now: SystemTime,
) {
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
        if let Some(values) = values_of(
            merged,
            &workload.resource,
            Some(&workload.namespace),
            &workload.name,
        ) {
            put(&mut object.metrics, values);
        }
        let Some(per_metric) = workload_values.get(&(
            workload.namespace.as_str(),
            &workload.resource,
            workload.name.as_str(),
        )) else {
            continue;
        };
        for (metric, values) in per_metric {
            let oldest = values.iter().map(|v| v.at).min().unwrap_or(now);
            let sum: f64 = values.iter().map(|v| v.value).sum();
            let max = values
                .iter()
                .map(|v| v.value)
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
}

/// The inventory's nodes and namespaces, with their labels and values.
fn put_cluster_scoped(builder: &mut SnapshotBuilder, inventory: &Inventory, merged: &Merged<'_>) {
    let (nodes, namespaces) = (GroupResource::parse("nodes"), GroupResource::namespaces());
    for (resource, listed) in [
        (&nodes, &inventory.nodes),
        (&namespaces, &inventory.namespaces),
    ] {
        for (name, labels) in listed {
            let Some(object) = builder.object(None, resource, name) else {
                continue;
            };
            object.labels = labels.clone();
            if let Some(values) = values_of(merged, resource, None, name) {
                put(&mut object.metrics, values);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::store::{Labels, PodInfo, WorkloadInfo};

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
        let values = SourceValues::from_exporter_pages(&pages, Duration::from_secs(30));
        let snapshot = assemble(&inventory, &[&values], now).build(1, now);
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
        let values = SourceValues::from_exporter_pages(&stale, Duration::from_secs(30));
        let snapshot = assemble(&inventory, &[&values], now).build(1, now);
        let deployment = &snapshot
            .objects(Some("demo"), &GroupResource::parse("deployments"))
            .expect("workloads")["triton"];
        assert!(
            deployment.metrics.is_empty(),
            "{:?}",
            deployment.metrics.keys()
        );
        let idle = [page(now, &[("triton-0", 0.0, 0.0)])];
        let values = SourceValues::from_exporter_pages(&idle, Duration::from_secs(30));
        let snapshot = assemble(&inventory, &[&values], now).build(1, now);
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

    #[test]
    fn the_newest_fresh_value_of_any_source_is_served() {
        let now = SystemTime::now();
        let inventory = Inventory {
            pods: vec![triton_pod("triton-0"), triton_pod("triton-1")],
            ..Inventory::default()
        };
        let pod = |name: &str| ObjectKey {
            resource: GroupResource::pods(),
            namespace: Some("demo".into()),
            name: name.into(),
        };
        let value = |value, seconds_ago| Value {
            value,
            at: now - Duration::from_secs(seconds_ago),
        };
        let one = |key: ObjectKey, metric: &str, v: Value| {
            (key, [(metric.to_string(), v)].into_iter().collect())
        };
        let exporters = SourceValues {
            max_age: Duration::from_secs(5),
            objects: [
                one(pod("triton-0"), "triton_queue_time_ms", value(10.0, 1)),
                // past the exporters' max-age: absent, not replaced by an older value
                one(pod("triton-1"), "triton_queue_time_ms", value(20.0, 9)),
            ]
            .into_iter()
            .collect(),
            ..SourceValues::default()
        };
        let service = ObjectKey {
            resource: GroupResource::parse("services"),
            namespace: Some("demo".into()),
            name: "triton".into(),
        };
        let prometheus = SourceValues {
            max_age: Duration::from_secs(60),
            objects: [
                one(pod("triton-0"), "triton_queue_time_ms", value(99.0, 8)),
                one(pod("triton-1"), "http_requests_per_second", value(3.0, 8)),
                one(service, "http_requests_per_second", value(7.0, 8)),
                one(pod("ghost"), "http_requests_per_second", value(3.0, 8)),
            ]
            .into_iter()
            .collect(),
            external: ["queue_depth".to_string()].into_iter().collect(),
            ..SourceValues::default()
        };
        let snapshot = assemble(&inventory, &[&exporters, &prometheus], now).build(1, now);
        let pods = snapshot
            .objects(Some("demo"), &GroupResource::pods())
            .expect("pods");
        assert_eq!(pods.len(), 2, "ghost is not a pod the API server knows");
        assert_eq!(
            &*pods["triton-0"].metrics["triton_queue_time_ms"].quantity,
            "10"
        );
        assert!(
            !pods["triton-1"]
                .metrics
                .contains_key("triton_queue_time_ms")
        );
        assert_eq!(
            &*pods["triton-1"].metrics["http_requests_per_second"].quantity,
            "3"
        );
        let services = snapshot
            .objects(Some("demo"), &GroupResource::parse("services"))
            .expect("services are served as named");
        assert_eq!(
            &*services["triton"].metrics["http_requests_per_second"].quantity,
            "7"
        );
        assert!(snapshot.catalogue().external.contains("queue_depth"));
        // pod metrics of any source get workload aggregates in discovery
        assert!(snapshot.serves(&GroupResource::pods(), "http_requests_per_second"));
    }
}
