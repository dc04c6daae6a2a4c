//! The snapshot served in a cluster: Kubernetes' inventory of objects (from the reflectors),
//! the values every source holds for them, and workload aggregates.
//!
//! Each source (the exporters, Prometheus) hands over [`SourceValues`]: parts ([`ValuesPart`],
//! one per exporter page, one per Prometheus evaluation) holding samples by object, each sample
//! made once by the source, off the serving path, with the time it was measured; and how
//! long its values stay fresh. Where two parts have a value for the same object and metric, the
//! newer one is served; a value older than its source's max-age takes no part. An object held by
//! one part, all of it fresh, shares that part's samples: assembling a snapshot copies no value
//! that did not change.
//!
//! The inventory is the truth about which pods, workloads, nodes and namespaces exist: a Pods
//! request lists pods the API server knows, in their namespace, with their labels; values for
//! such objects it does not know are dropped. Objects of other resources (a Service a
//! Prometheus rule names) are served as the source names them. For every Deployment and
//! StatefulSet, each pod metric is aggregated over the workload's pods with a fresh value:
//! `<metric>_max` (the one hot pod an average hides), `_avg`, `_sum`, stamped with the oldest
//! contributing sample; and `request_imbalance_ratio` = max pod request rate / mean (1 = even,
//! N = everything on one of N pods), absent when no pod serves requests.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use crate::adapter::store::{
    Inventory, MetricSamples, Object, Sample, SampleTime, SharedNames, Snapshot, SnapshotBuilder,
    WorkloadKind, oldest_fresh,
};
use crate::exporter_page::{ExporterPage, node_metrics, pod_metrics};
use crate::process::{give_way, giving_way};
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

/// Samples by object from one origin (one exporter page, one Prometheus evaluation), made once
/// and shared by every snapshot while they are current.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ValuesPart {
    pub objects: Vec<(ObjectKey, Arc<MetricSamples>)>,
}

/// The catalogue's metric names as shared strings, so a page's samples do not allocate a name
/// each.
static CATALOGUE_NAMES: LazyLock<FastMap<&'static str, Arc<str>>> = LazyLock::new(|| {
    pod_metrics()
        .into_iter()
        .chain(node_metrics())
        .map(|name| (name, Arc::from(name)))
        .collect()
});

fn catalogue_name(metric: &'static str) -> Arc<str> {
    CATALOGUE_NAMES
        .get(metric)
        .cloned()
        .unwrap_or_else(|| Arc::from(metric))
}

impl ValuesPart {
    /// Values by object and metric, each with its own time.
    pub(crate) fn from_values(values: BTreeMap<ObjectKey, BTreeMap<String, Value>>) -> ValuesPart {
        let mut names = SharedNames::default();
        let objects = values
            .into_iter()
            .map(|(key, metrics)| {
                let samples = names.samples(metrics.into_iter().filter_map(|(metric, value)| {
                    Some((Arc::from(metric), Sample::new(value.value, value.at)?))
                }));
                (key, Arc::new(samples))
            })
            .collect();
        ValuesPart { objects }
    }

    /// One exporter page: its pods' values and its node's, all measured when the page was
    /// collected.
    pub(crate) fn from_exporter_page(page: &ExporterPage) -> ValuesPart {
        let at = page.collected_at;
        let mut names = SharedNames::default();
        let mut samples = |metrics: &BTreeMap<&'static str, f64>| -> Arc<MetricSamples> {
            Arc::new(names.samples(metrics.iter().filter_map(|(metric, value)| {
                Some((catalogue_name(metric), Sample::new(*value, at)?))
            })))
        };
        let pods = GroupResource::pods();
        // sized for the node's object too: pushing it onto a list sized for the pods would
        // double the list, and every page's list is held until its next page
        let mut objects = Vec::with_capacity(page.pods.len() + 1);
        objects.extend(page.pods.iter().map(|((namespace, name), metrics)| {
            let key = ObjectKey {
                resource: pods.clone(),
                namespace: Some(namespace.clone()),
                name: name.clone(),
            };
            (key, samples(metrics))
        }));
        if let Some(node) = &page.node {
            let key = ObjectKey {
                resource: GroupResource::parse("nodes"),
                namespace: None,
                name: node.clone(),
            };
            objects.push((key, samples(&page.node_values)));
        }
        ValuesPart { objects }
    }
}

/// What one source contributes to the snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SourceValues {
    /// Values older than this (at assembly) take no part.
    pub max_age: Duration,
    /// The source's values, part by part.
    pub parts: Vec<Arc<ValuesPart>>,
    /// (resource, metric) pairs listed in discovery even while no object has a value.
    pub declared: BTreeSet<(GroupResource, String)>,
    /// External metric names listed in discovery (their values are read on demand).
    pub external: BTreeSet<String>,
}

impl SourceValues {
    /// The exporters' source, declaring the catalogue, with one part per page.
    pub(crate) fn exporters(parts: Vec<Arc<ValuesPart>>, max_age: Duration) -> SourceValues {
        let (pods, nodes) = (GroupResource::pods(), GroupResource::parse("nodes"));
        let declared = pod_metrics()
            .into_iter()
            .map(|metric| (pods.clone(), metric.to_string()))
            .chain(
                node_metrics()
                    .into_iter()
                    .map(|metric| (nodes.clone(), metric.to_string())),
            )
            .collect();
        SourceValues {
            max_age,
            parts,
            declared,
            external: BTreeSet::new(),
        }
    }

    /// The exporters' pages as one source (pages converted here; the exporter source converts
    /// each page as it arrives instead).
    pub(crate) fn from_exporter_pages<'a>(
        pages: impl IntoIterator<Item = &'a ExporterPage>,
        max_age: Duration,
    ) -> SourceValues {
        let parts = pages
            .into_iter()
            .map(|page| Arc::new(ValuesPart::from_exporter_page(page)))
            .collect();
        SourceValues::exporters(parts, max_age)
    }
}

/// A pod metric over a workload's pods with a fresh value: what its aggregates are made of.
#[derive(Debug, Clone, Copy)]
struct OverPods {
    sum: f64,
    max: f64,
    pods: usize,
    /// The oldest contributing sample's time, which the aggregates are stamped with.
    oldest: SampleTime,
}

impl OverPods {
    fn of(sample: &Sample) -> OverPods {
        OverPods {
            sum: sample.value(),
            max: sample.value(),
            pods: 1,
            oldest: sample.measured(),
        }
    }

    fn add(&mut self, sample: &Sample) {
        self.sum += sample.value();
        self.max = self.max.max(sample.value());
        self.pods += 1;
        self.oldest = self.oldest.min(sample.measured());
    }
}

/// A workload's pod metrics, each with its aggregate so far: a dozen metrics, found by a walk
/// that compares the shared name's pointer before its text.
type PerMetric = Vec<(Arc<str>, OverPods)>;

/// Adds a pod's `at`-th sample, of `metric`. Pods mostly have the same metrics in the same
/// order, so the `at`-th entry is tried first, then every entry by pointer, then by text.
fn accumulate(per_metric: &mut PerMetric, at: usize, metric: &Arc<str>, sample: &Sample) {
    let found = match per_metric.get(at) {
        Some((name, _)) if Arc::ptr_eq(name, metric) => Some(at),
        _ => per_metric
            .iter()
            .position(|(name, _)| Arc::ptr_eq(name, metric))
            .or_else(|| per_metric.iter().position(|(name, _)| name == metric)),
    };
    match found.and_then(|at| per_metric.get_mut(at)) {
        Some((_, over_pods)) => over_pods.add(sample),
        None => per_metric.push((metric.clone(), OverPods::of(sample))),
    }
}

/// The workload resources that get aggregates.
pub(crate) fn workload_resources() -> [GroupResource; 2] {
    WorkloadKind::ALL.map(WorkloadKind::resource)
}

/// Resources whose objects the inventory lists; values for others are served as named.
fn from_inventory(resource: &GroupResource) -> bool {
    *resource == GroupResource::pods()
        || *resource == GroupResource::namespaces()
        || *resource == GroupResource::parse("nodes")
        || workload_resources().contains(resource)
}

/// Where an object's samples are, over every source's parts, with each source's cutoff. Nearly
/// every object is held by one part: that one is kept inline, and only a second allocates.
struct Held<'a> {
    first: PartHolding<'a>,
    /// Boxed: an index entry stays small, and nearly every one has no second part.
    more: Option<Box<[PartHolding<'a>]>>,
}

/// One part's samples of an object, and the cutoff of the part's source.
type PartHolding<'a> = (&'a Arc<MetricSamples>, SampleTime);

/// The pods' group-resource, for the index's largest map.
static POD_RESOURCE: LazyLock<GroupResource> = LazyLock::new(GroupResource::pods);

/// Every object any part holds, by resource, then by (namespace, name). Hashed with foldhash:
/// the keys come from our own sources' pages, assembled several times a second.
type Index<'a> = FastMap<&'a GroupResource, FastMap<(Option<&'a str>, &'a str), Held<'a>>>;
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

fn index<'a>(sources: &[&'a SourceValues], now: SystemTime) -> Index<'a> {
    let mut index: Index<'a> = FastMap::default();
    // nearly every object is a pod: their map sized once rather than grown through a dozen
    // rehashes at every publish
    let objects = sources
        .iter()
        .flat_map(|source| &source.parts)
        .map(|part| part.objects.len())
        .sum();
    index.entry(&POD_RESOURCE).or_default().reserve(objects);
    for source in sources {
        let cutoff = oldest_fresh(now, source.max_age);
        for part in &source.parts {
            give_way();
            for (key, samples) in &part.objects {
                let held = (samples, cutoff);
                match index
                    .entry(&key.resource)
                    .or_default()
                    .entry((key.namespace.as_deref(), key.name.as_str()))
                {
                    Entry::Occupied(entry) => {
                        let more = &mut entry.into_mut().more;
                        let mut held_more = more.take().map(Vec::from).unwrap_or_default();
                        held_more.push(held);
                        *more = Some(held_more.into_boxed_slice());
                    }
                    Entry::Vacant(entry) => {
                        entry.insert(Held {
                            first: held,
                            more: None,
                        });
                    }
                }
            }
        }
    }
    index
}

impl Held<'_> {
    /// The object's fresh samples: the one part's own when it alone holds the object and all
    /// of them are fresh; else, per metric, the newest fresh sample of any part.
    fn merged(&self) -> Option<Arc<MetricSamples>> {
        let (samples, cutoff) = self.first;
        if self.more.is_none() && samples.all_newer_than(cutoff) {
            return Some(Arc::clone(samples));
        }
        let mut merged = MetricSamples::default();
        let more = self.more.as_deref().unwrap_or_default();
        for (samples, cutoff) in std::iter::once(&self.first).chain(more) {
            for (metric, sample) in samples.iter() {
                if !sample.is_newer_than(*cutoff) {
                    continue;
                }
                match merged.get(metric) {
                    Some(held) if held.measured() >= sample.measured() => {}
                    _ => {
                        merged.insert(metric.clone(), sample.clone());
                    }
                }
            }
        }
        (!merged.is_empty()).then(|| Arc::new(merged))
    }
}

fn samples_of(
    index: &Index<'_>,
    resource: &GroupResource,
    namespace: Option<&str>,
    name: &str,
) -> Option<Arc<MetricSamples>> {
    index.get(resource)?.get(&(namespace, name))?.merged()
}

/// Builds the snapshot contents at `now` from the inventory and every source's values: the
/// metrics declared, then pods (gathering their workloads' values), workloads with their
/// aggregates, nodes and namespaces, and the objects only a source names.
pub(crate) fn assemble(
    inventory: &Inventory,
    sources: &[&SourceValues],
    now: SystemTime,
) -> SnapshotBuilder {
    assemble_after(inventory, sources, now, None)
}

/// [`assemble`], given the `previous` snapshot when it was assembled from this same
/// inventory: a namespace where no object has a value, now or in `previous`, is served as
/// `previous` holds it — pods and workloads with their labels and nothing else, unchanged — and
/// not assembled again. In a real cluster most namespaces are such.
pub(crate) fn assemble_after(
    inventory: &Inventory,
    sources: &[&SourceValues],
    now: SystemTime,
    previous: Option<&Snapshot>,
) -> SnapshotBuilder {
    let mut builder = SnapshotBuilder::new();
    declare(&mut builder, sources);
    let index = index(sources, now);
    let valued: FastSet<&str> = index
        .values()
        .flat_map(|objects| objects.keys().filter_map(|(namespace, _)| *namespace))
        .collect();
    let mut quiet: FastSet<&str> = FastSet::default();
    if let Some(previous) = previous {
        for (namespace, scope, objects) in previous.namespaced_scopes() {
            if !previous.valued_namespaces.contains(namespace) && !valued.contains(&**namespace) {
                quiet.insert(namespace);
                builder.take_over(scope.clone(), objects.clone());
            }
        }
    }
    builder.valued_namespaces = valued
        .iter()
        .map(|namespace| Arc::from(*namespace))
        .collect();
    let workload_values = put_pods(&mut builder, inventory, &index, &quiet);
    put_workloads(&mut builder, inventory, &index, &workload_values, &quiet);
    put_cluster_scoped(&mut builder, inventory, &index);
    for (resource, objects) in &index {
        if from_inventory(resource) {
            continue;
        }
        for ((namespace, name), held) in objects {
            if let Some(samples) = held.merged()
                && let Some(object) = builder.object(*namespace, resource, name)
            {
                object.metrics = samples;
            }
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

/// The inventory's pods with their labels and values; returns, for each of the inventory's
/// workloads (by position), its pods' values. The inventory lists pods by namespace, so each
/// namespace's objects are put in one go.
fn put_pods(
    builder: &mut SnapshotBuilder,
    inventory: &Inventory,
    index: &Index<'_>,
    quiet: &FastSet<&str>,
) -> Vec<PerMetric> {
    let pods = GroupResource::pods();
    let pod_workloads = inventory.pod_workloads();
    let mut workload_values: Vec<PerMetric> = vec![PerMetric::new(); inventory.workloads.len()];
    let mut at = 0;
    for namespace_pods in inventory.pods.chunk_by(|a, b| a.namespace == b.namespace) {
        let first = at;
        at += namespace_pods.len();
        let namespace = &namespace_pods[0].namespace;
        if quiet.contains(&**namespace) {
            continue; // taken over from the previous snapshot
        }
        let mut objects = Vec::with_capacity(namespace_pods.len());
        for (pod, workload) in giving_way(namespace_pods.iter().zip(&pod_workloads[first..])) {
            let samples = samples_of(index, &pods, Some(&pod.namespace), &pod.name);
            if let (Some(samples), Some(per_metric)) = (
                &samples,
                workload.and_then(|w| workload_values.get_mut(w as usize)),
            ) {
                for (position, (metric, sample)) in samples.iter().enumerate() {
                    accumulate(per_metric, position, metric, sample);
                }
            }
            objects.push((
                pod.name.clone(),
                Object {
                    labels: pod.labels.clone(),
                    uid: pod.uid.clone(),
                    metrics: samples.unwrap_or_else(MetricSamples::none),
                },
            ));
        }
        builder.put_objects((Some(namespace.clone()), pods.clone()), objects);
    }
    workload_values
}

/// The inventory's Deployments and StatefulSets: their own values, and over their pods'
/// values `_max`, `_avg`, `_sum` (stamped with the oldest contributing sample) and
/// `request_imbalance_ratio`.
fn put_workloads(
    builder: &mut SnapshotBuilder,
    inventory: &Inventory,
    index: &Index<'_>,
    workload_values: &[PerMetric],
    quiet: &FastSet<&str>,
) {
    // Workloads mostly aggregate the same metrics: each aggregate's name is made once per
    // assembly, and workloads with the same metrics share one list of names.
    let mut aggregate_names: FastMap<&str, [Arc<str>; 3]> = FastMap::default();
    let imbalance: Arc<str> = Arc::from("request_imbalance_ratio");
    let mut shared_names = SharedNames::default();
    for (workload, per_metric) in giving_way(inventory.workloads.iter().zip(workload_values)) {
        if quiet.contains(&*workload.namespace) {
            continue; // taken over from the previous snapshot
        }
        let own = samples_of(
            index,
            &workload.resource,
            Some(&workload.namespace),
            &workload.name,
        );
        let Some(object) = builder.shared_object(
            Some(&workload.namespace),
            &workload.resource,
            &workload.name,
        ) else {
            continue;
        };
        object.labels = workload.labels.clone();
        object.uid = workload.uid.clone();
        if let Some(own) = own {
            object.metrics = own;
        }
        if per_metric.is_empty() {
            continue;
        }
        // the workload's own values first: an aggregate of the same name replaces one
        let mut samples: Vec<(Arc<str>, Sample)> = object
            .metrics
            .iter()
            .map(|(name, sample)| (name.clone(), sample.clone()))
            .collect();
        for (metric, over_pods) in per_metric {
            let OverPods {
                sum,
                max,
                pods,
                oldest,
            } = *over_pods;
            let mean = sum / pods as f64;
            let names = aggregate_names.entry(metric).or_insert_with(|| {
                ["max", "avg", "sum"].map(|suffix| Arc::from(format!("{metric}_{suffix}")))
            });
            for (name, value) in names.iter().zip([max, mean, sum]) {
                if let Some(sample) = Sample::new(value, oldest.into()) {
                    samples.push((name.clone(), sample));
                }
            }
            if &**metric == "inference_request_rate"
                && mean > 0.0
                && let Some(sample) = Sample::new(max / mean, oldest.into())
            {
                samples.push((imbalance.clone(), sample));
            }
        }
        object.metrics = Arc::new(shared_names.samples(samples));
    }
}

/// The inventory's nodes and namespaces, with their labels and values.
fn put_cluster_scoped(builder: &mut SnapshotBuilder, inventory: &Inventory, index: &Index<'_>) {
    let (nodes, namespaces) = (GroupResource::parse("nodes"), GroupResource::namespaces());
    for (resource, listed) in [
        (&nodes, &inventory.nodes),
        (&namespaces, &inventory.namespaces),
    ] {
        for (name, labels) in listed {
            let samples = samples_of(index, resource, None, name);
            let Some(object) = builder.shared_object(None, resource, name) else {
                continue;
            };
            object.labels = labels.clone();
            if let Some(samples) = samples {
                object.metrics = samples;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::store::{Labels, PodInfo, WorkloadInfo};
    use std::sync::Arc;

    fn labels(pairs: &[(&str, &str)]) -> Arc<Labels> {
        Arc::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn triton_pod(name: &str) -> PodInfo {
        PodInfo {
            namespace: "demo".into(),
            name: name.into(),
            uid: None,
            labels: labels(&[("app", "triton")]),
            workload: Some((WorkloadKind::Deployment, "triton".into())),
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
    fn pods_listed_out_of_namespace_order_are_all_served() {
        let now = SystemTime::now();
        let pod = |namespace: &str, name: &str| PodInfo {
            namespace: namespace.into(),
            ..triton_pod(name)
        };
        // a namespace's pods in two runs (the cluster's inventory is sorted; this one is not)
        let inventory = Inventory {
            pods: vec![
                pod("demo", "triton-1"),
                pod("other", "triton-9"),
                pod("demo", "triton-0"),
            ],
            ..Inventory::default()
        };
        let pages = [page(now, &[("triton-0", 1.0, 1.0), ("triton-1", 2.0, 2.0)])];
        let values = SourceValues::from_exporter_pages(&pages, Duration::from_secs(30));
        let snapshot = assemble(&inventory, &[&values], now).build(1, now);
        let demo = snapshot
            .objects(Some("demo"), &GroupResource::pods())
            .expect("demo's pods");
        let names: Vec<&str> = demo.keys().map(|name| &**name).collect();
        assert_eq!(names, ["triton-0", "triton-1"]);
        assert_eq!(
            &*demo["triton-1"].metrics["triton_queue_time_ms"].quantity(),
            "2"
        );
        let other = snapshot
            .objects(Some("other"), &GroupResource::pods())
            .expect("other's pods");
        assert!(other["triton-9"].metrics.is_empty());
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
            nodes: vec![("gpu-node-1".into(), Arc::default())],
            namespaces: vec![("demo".into(), Arc::default())],
            ..Inventory::default()
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
            &*pods["triton-0"].metrics["triton_queue_time_ms"].quantity(),
            "8k"
        );
        assert_eq!(
            pods["triton-0"].metrics["triton_queue_time_ms"].measured(),
            SampleTime::from(now - Duration::from_secs(2))
        );
        let deployment = &snapshot
            .objects(Some("demo"), &GroupResource::parse("deployments"))
            .expect("workloads")["triton"];
        let value = |metric: &str| {
            deployment
                .metrics
                .get(metric)
                .map(|s| s.quantity().to_string())
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
        assert_eq!(&*node.metrics["gpu_utilization_percent"].quantity(), "35");
        // discovery lists the catalogue even for metrics no pod has yet
        assert!(snapshot.serves(&GroupResource::pods(), "vllm_requests_waiting"));
        assert!(snapshot.serves(
            &GroupResource::parse("statefulsets"),
            "vllm_requests_waiting_max"
        ));
    }

    #[test]
    fn objects_with_the_same_metrics_share_their_names() {
        let now = SystemTime::now();
        let workload = |name: &str| WorkloadInfo {
            namespace: "demo".into(),
            resource: GroupResource::parse("deployments"),
            name: name.into(),
            uid: None,
            labels: Arc::default(),
        };
        let pod_of = |name: &str, deployment: &str| PodInfo {
            workload: Some((WorkloadKind::Deployment, deployment.into())),
            ..triton_pod(name)
        };
        let inventory = Inventory {
            pods: vec![pod_of("a-0", "a"), pod_of("a-1", "a"), pod_of("b-0", "b")],
            workloads: vec![workload("a"), workload("b")],
            ..Inventory::default()
        };
        let pages = [page(
            now,
            &[("a-0", 1.0, 1.0), ("a-1", 2.0, 3.0), ("b-0", 4.0, 5.0)],
        )];
        let values = SourceValues::from_exporter_pages(&pages, Duration::from_secs(30));
        let snapshot = assemble(&inventory, &[&values], now).build(1, now);
        let pods = snapshot
            .objects(Some("demo"), &GroupResource::pods())
            .expect("pods");
        assert!(pods["a-0"].metrics.shares_names_with(&pods["b-0"].metrics));
        let deployments = snapshot
            .objects(Some("demo"), &GroupResource::parse("deployments"))
            .expect("workloads");
        let (a, b) = (&deployments["a"].metrics, &deployments["b"].metrics);
        assert!(
            a.shares_names_with(b),
            "the same aggregates, one list of names"
        );
        assert_eq!(
            a.get("triton_queue_time_ms_sum")
                .map(|s| s.quantity().to_string()),
            Some("3".into())
        );
        assert_eq!(
            b.get("inference_request_rate_max")
                .map(|s| s.quantity().to_string()),
            Some("5".into())
        );
        assert_eq!(a.keys().count(), 7, "3 × 2 aggregates and the imbalance");
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
                labels: Arc::default(),
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
        assert!(deployment.metrics.is_empty(), "{:?}", deployment.metrics);
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
            parts: vec![Arc::new(ValuesPart::from_values(
                [
                    one(pod("triton-0"), "triton_queue_time_ms", value(10.0, 1)),
                    // past the exporters' max-age: absent, not replaced by an older value
                    one(pod("triton-1"), "triton_queue_time_ms", value(20.0, 9)),
                ]
                .into_iter()
                .collect(),
            ))],
            ..SourceValues::default()
        };
        let service = ObjectKey {
            resource: GroupResource::parse("services"),
            namespace: Some("demo".into()),
            name: "triton".into(),
        };
        let prometheus = SourceValues {
            max_age: Duration::from_secs(60),
            parts: vec![Arc::new(ValuesPart::from_values(
                [
                    one(pod("triton-0"), "triton_queue_time_ms", value(99.0, 8)),
                    one(pod("triton-1"), "http_requests_per_second", value(3.0, 8)),
                    one(service, "http_requests_per_second", value(7.0, 8)),
                    one(pod("ghost"), "http_requests_per_second", value(3.0, 8)),
                ]
                .into_iter()
                .collect(),
            ))],
            external: ["queue_depth".to_string()].into_iter().collect(),
            ..SourceValues::default()
        };
        let snapshot = assemble(&inventory, &[&exporters, &prometheus], now).build(1, now);
        let pods = snapshot
            .objects(Some("demo"), &GroupResource::pods())
            .expect("pods");
        assert_eq!(pods.len(), 2, "ghost is not a pod the API server knows");
        assert_eq!(
            &*pods["triton-0"].metrics["triton_queue_time_ms"].quantity(),
            "10"
        );
        assert!(
            !pods["triton-1"]
                .metrics
                .contains_key("triton_queue_time_ms")
        );
        assert_eq!(
            &*pods["triton-1"].metrics["http_requests_per_second"].quantity(),
            "3"
        );
        let services = snapshot
            .objects(Some("demo"), &GroupResource::parse("services"))
            .expect("services are served as named");
        assert_eq!(
            &*services["triton"].metrics["http_requests_per_second"].quantity(),
            "7"
        );
        assert!(snapshot.catalogue().external.contains("queue_depth"));
        // pod metrics of any source get workload aggregates in discovery
        assert!(snapshot.serves(&GroupResource::pods(), "http_requests_per_second"));
    }

    #[test]
    fn one_fresh_part_is_shared_and_two_parts_merge_newest_first() {
        let now = SystemTime::now();
        let inventory = Inventory {
            pods: vec![triton_pod("triton-0"), triton_pod("triton-1")],
            ..Inventory::default()
        };
        // a DaemonSet rollout: the old exporter's last page and the new one's both name triton-1
        let old = page(now - Duration::from_secs(3), &[("triton-1", 500.0, 9.0)]);
        let mut new = page(now, &[("triton-0", 10.0, 1.0), ("triton-1", 20.0, 2.0)]);
        let one_metric_only: BTreeMap<&'static str, f64> =
            [("triton_queue_time_ms", 20.0)].into_iter().collect();
        new.pods.insert(
            ("demo".to_string(), "triton-1".to_string()),
            one_metric_only,
        );
        let values = SourceValues::from_exporter_pages([&old, &new], Duration::from_secs(30));
        let snapshot = assemble(&inventory, &[&values], now).build(1, now);
        let pods = snapshot
            .objects(Some("demo"), &GroupResource::pods())
            .expect("pods");
        let held = values.parts[1]
            .objects
            .iter()
            .find(|(key, _)| key.name == "triton-0")
            .map(|(_, samples)| samples)
            .expect("triton-0 in the new page");
        assert!(
            Arc::ptr_eq(held, &pods["triton-0"].metrics),
            "served from the page's own samples, not a copy"
        );
        let merged = &pods["triton-1"].metrics;
        assert_eq!(
            &*merged["triton_queue_time_ms"].quantity(),
            "20",
            "the newer page"
        );
        assert_eq!(
            &*merged["inference_request_rate"].quantity(),
            "9",
            "only the older page has it"
        );
    }

    #[test]
    fn namespaces_without_values_are_taken_over_from_the_previous_snapshot() {
        let now = SystemTime::now();
        let web = PodInfo {
            namespace: "web".into(),
            name: "frontend-0".into(),
            uid: None,
            labels: labels(&[("app", "frontend")]),
            workload: None,
        };
        let inventory = Inventory {
            pods: vec![triton_pod("triton-0"), web],
            ..Inventory::default()
        };
        let busy = |at| {
            SourceValues::from_exporter_pages(
                [&page(at, &[("triton-0", 10.0, 1.0)])],
                Duration::from_secs(30),
            )
        };
        let first = assemble_after(&inventory, &[&busy(now)], now, None).build(1, now);
        let second = assemble_after(&inventory, &[&busy(now)], now, Some(&first)).build(2, now);
        let scope = |snapshot: &Snapshot, namespace| {
            snapshot
                .objects(Some(namespace), &GroupResource::pods())
                .map(|objects| objects as *const _)
        };
        assert!(scope(&first, "web").is_some());
        assert_eq!(
            scope(&first, "web"),
            scope(&second, "web"),
            "shared, not rebuilt"
        );
        assert_ne!(
            scope(&first, "demo"),
            scope(&second, "demo"),
            "values: rebuilt"
        );
        // the exporter's page is dropped (past max-age): rebuilt once more, without values
        let gone = SourceValues::from_exporter_pages([], Duration::from_secs(30));
        let third = assemble_after(&inventory, &[&gone], now, Some(&second)).build(3, now);
        let pods = third
            .objects(Some("demo"), &GroupResource::pods())
            .expect("pods");
        assert!(pods["triton-0"].metrics.is_empty());
        let fourth = assemble_after(&inventory, &[&gone], now, Some(&third)).build(4, now);
        assert_eq!(scope(&third, "demo"), scope(&fourth, "demo"), "quiet now");
        assert_eq!(scope(&first, "web"), scope(&fourth, "web"));
    }
}
