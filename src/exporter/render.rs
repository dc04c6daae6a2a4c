//! Renders one collection as Prometheus text: what `/metrics` serves until the next collection
//! (nothing is computed on the scrape path). Series are in base units, named as the README's
//! exporter table says (The exporter):
//!
//! | series | labels |
//! |---|---|
//! | `kubemind_nvml_up` | node |
//! | `kubemind_gpu_utilization_ratio`, `kubemind_gpu_memory_{used,total}_bytes`, `kubemind_gpu_power_watts`, `kubemind_gpu_temperature_celsius` | node, gpu, uuid (+ namespace, pod, container per holder) |
//! | `kubemind_gpm_supported`, `kubemind_gpu_{sm_active,sm_occupancy,tensor_active,dram_active}_ratio` (GPM) | node, gpu, uuid (+ holder) |
//! | `kubemind_mig_memory_{used,total}_bytes`, `kubemind_mig_{sm_active,sm_occupancy,tensor_active,dram_active}_ratio` | node, gpu, uuid, mig_uuid (+ holder) |
//! | `kubemind_pod_gpu_utilization_ratio`, `kubemind_pod_gpu_memory_{used,total}_bytes`, `kubemind_pod_gpu_{sm_active,sm_occupancy,tensor_active,dram_active}_ratio` | namespace, pod, node |
//! | `kubemind_pod_gpu_sm_share_ratio`, `kubemind_pod_gpu_process_memory_bytes` (`--per-process`) | namespace, pod, node |
//! | `kubemind_inference_{requests_waiting,requests_running,queue_time_seconds,kv_cache_usage_ratio,request_rate}` | namespace, pod, node, kind (every kind) |
//! | `kubemind_triton_{queue_time_seconds,queue_compute_ratio,pending_requests,request_rate,rejected_rate,stalled}` | namespace, pod, node, kind |
//! | `kubemind_vllm_{requests_waiting,requests_running,kv_cache_usage_ratio,queue_time_seconds,request_rate}` | namespace, pod, node, kind |
//! | `kubemind_exporter_*` | the exporter's own health (the `kubemind_exporter_connections_*` series are appended by the `/metrics` handler, from [`crate::serve::ConnectionStats`]) |
//!
//! A GPU shared by several pods (time-slicing, MPS) appears once per holder with the whole GPU's
//! values: NVML reports per GPU. With `--per-process`, each pod also gets its own processes'
//! share (`kubemind_pod_gpu_sm_share_ratio`, `kubemind_pod_gpu_process_memory_bytes`). A value the source could not give (MIG-mode
//! utilization, a stalled pod's queue time) is left out, never written as 0.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use super::gpu::{GpmActivity, GpuReading, GpuSnapshot, MigReading};
use super::pods::{DeviceId, Holder};
use super::processes::PodShare;
use super::servers::recipe::QueueSignals;
use super::servers::scrape::{ServerKind, Signals, TargetReport};
use super::servers::triton::TritonSignals;
use crate::catalogue::{self, Series};
use crate::promtext::{MetricType, Writer};

/// Everything one collection produced.
pub struct Collection<'a> {
    pub node: &'a str,
    pub gpus: &'a GpuSnapshot,
    pub holders: &'a [(DeviceId, Holder)],
    pub pod_resources_up: bool,
    pub servers: &'a [TargetReport],
    /// `--per-process`: each pod's own share of the GPUs its processes run on.
    pub pod_shares: &'a BTreeMap<(String, String), PodShare>,
    pub duration: Duration,
    pub finished_at: SystemTime,
}

fn seconds_since_epoch(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The distinct holders of the devices `held` matches, in order.
fn holders_of(holders: &[(DeviceId, Holder)], held: impl Fn(&DeviceId) -> bool) -> Vec<&Holder> {
    let mut found: Vec<&Holder> = holders
        .iter()
        .filter(|(id, _)| held(id))
        .map(|(_, holder)| holder)
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The holders of a whole GPU (by UUID or index).
fn gpu_holders<'a>(gpu: &GpuReading, holders: &'a [(DeviceId, Holder)]) -> Vec<&'a Holder> {
    holders_of(holders, |id| match id {
        DeviceId::Gpu { uuid, .. } => *uuid == gpu.uuid,
        DeviceId::Index {
            index,
            gpu_instance: None,
            ..
        } => *index == gpu.index,
        _ => false,
    })
}

/// The holders of a MIG instance: by its MIG UUID, or as GKE names it, `nvidiaN/giM` — the
/// GPU's index and the instance's GPU-instance ID.
fn mig_holders<'a>(
    gpu: &GpuReading,
    mig: &MigReading,
    holders: &'a [(DeviceId, Holder)],
) -> Vec<&'a Holder> {
    holders_of(holders, |id| match id {
        DeviceId::Mig { uuid, .. } => *uuid == mig.uuid,
        DeviceId::Index {
            index,
            gpu_instance: Some(instance),
            ..
        } => *index == gpu.index && mig.gpu_instance_id == Some(*instance),
        _ => false,
    })
}

/// A device's sample once per pod holding it (with its namespace, pod and container), or once
/// bare when nobody holds it.
fn per_holder(w: &mut Writer, name: &str, base: &[(&str, &str)], holders: &[&Holder], value: f64) {
    if holders.is_empty() {
        w.sample(name, base, value);
    }
    for holder in holders {
        let mut labels = base.to_vec();
        labels.extend([
            ("namespace", holder.namespace.as_str()),
            ("pod", holder.pod.as_str()),
            ("container", holder.container.as_str()),
        ]);
        w.sample(name, &labels, value);
    }
}

type GpuValue = fn(&GpuReading) -> Option<f64>;

/// The per-GPU families: series, value.
const GPU_FAMILIES: [(Series, GpuValue); 10] = [
    (catalogue::GPU_UTILIZATION, |g| g.utilization_ratio),
    (catalogue::GPU_MEMORY_USED, |g| {
        Some(g.memory_used_bytes as f64)
    }),
    (catalogue::GPU_MEMORY_TOTAL, |g| {
        Some(g.memory_total_bytes as f64)
    }),
    (catalogue::GPU_POWER, |g| g.power_watts),
    (catalogue::GPU_TEMPERATURE, |g| g.temperature_celsius),
    (catalogue::GPM_SUPPORTED, |g| {
        Some(if g.gpm_supported { 1.0 } else { 0.0 })
    }),
    (catalogue::GPU_SM_ACTIVE, |g| g.gpm?.sm_active),
    (catalogue::GPU_SM_OCCUPANCY, |g| g.gpm?.sm_occupancy),
    (catalogue::GPU_TENSOR_ACTIVE, |g| g.gpm?.tensor_active),
    (catalogue::GPU_DRAM_ACTIVE, |g| g.gpm?.dram_active),
];

type Activity = fn(&GpmActivity) -> Option<f64>;

/// GPM's four activities: the per-MIG-instance series, the per-pod series, and the value.
const GPM_FAMILIES: [(Series, Series, Activity); 4] = [
    (
        catalogue::MIG_SM_ACTIVE,
        catalogue::POD_GPU_SM_ACTIVE,
        |a| a.sm_active,
    ),
    (
        catalogue::MIG_SM_OCCUPANCY,
        catalogue::POD_GPU_SM_OCCUPANCY,
        |a| a.sm_occupancy,
    ),
    (
        catalogue::MIG_TENSOR_ACTIVE,
        catalogue::POD_GPU_TENSOR_ACTIVE,
        |a| a.tensor_active,
    ),
    (
        catalogue::MIG_DRAM_ACTIVE,
        catalogue::POD_GPU_DRAM_ACTIVE,
        |a| a.dram_active,
    ),
];

type ServerValue = fn(ServerKind, &Signals) -> Option<f64>;

/// The per-server families: series, value (absent where the server kind has none). The
/// `kubemind_inference_*` families are written for every kind; the Triton and vLLM ones only
/// for their kind.
fn server_families() -> [(Series, ServerValue); 16] {
    [
        (catalogue::TRITON_QUEUE_TIME, |_, s| {
            triton(s)?.queue_time_seconds
        }),
        (catalogue::TRITON_QUEUE_COMPUTE_RATIO, |_, s| {
            triton(s)?.queue_compute_ratio
        }),
        (catalogue::TRITON_PENDING_REQUESTS, |_, s| {
            Some(triton(s)?.pending_requests)
        }),
        (catalogue::TRITON_REQUEST_RATE, |_, s| {
            Some(triton(s)?.request_rate)
        }),
        (catalogue::TRITON_REJECTED_RATE, |_, s| {
            Some(triton(s)?.rejected_rate)
        }),
        (catalogue::TRITON_STALLED, |_, s| {
            Some(if triton(s)?.stalled { 1.0 } else { 0.0 })
        }),
        (catalogue::VLLM_REQUESTS_WAITING, |k, s| {
            vllm(k, s)?.requests_waiting
        }),
        (catalogue::VLLM_REQUESTS_RUNNING, |k, s| {
            vllm(k, s)?.requests_running
        }),
        (catalogue::VLLM_KV_CACHE_USAGE, |k, s| {
            vllm(k, s)?.kv_cache_usage_ratio
        }),
        (catalogue::VLLM_QUEUE_TIME, |k, s| {
            vllm(k, s)?.queue_time_seconds
        }),
        (catalogue::VLLM_REQUEST_RATE, |k, s| {
            vllm(k, s)?.request_rate
        }),
        (catalogue::INFERENCE_REQUESTS_WAITING, |_, s| match s {
            Signals::Triton(t) => Some(t.pending_requests),
            Signals::Queue(q) => q.requests_waiting,
        }),
        (catalogue::INFERENCE_REQUESTS_RUNNING, |_, s| {
            queue(s)?.requests_running
        }),
        (catalogue::INFERENCE_QUEUE_TIME, |_, s| match s {
            Signals::Triton(t) => t.queue_time_seconds,
            Signals::Queue(q) => q.queue_time_seconds,
        }),
        (catalogue::INFERENCE_KV_CACHE_USAGE, |_, s| {
            queue(s)?.kv_cache_usage_ratio
        }),
        (catalogue::INFERENCE_REQUEST_RATE, |_, s| match s {
            Signals::Triton(t) => Some(t.request_rate),
            Signals::Queue(q) => q.request_rate,
        }),
    ]
}

/// One GPU-level family: a sample per GPU (and per holder), labelled as the catalogue says.
fn gpu_family(w: &mut Writer, c: &Collection<'_>, series: &Series, value: GpuValue) {
    let (name, help) = (series.name, series.help);
    w.family(name, MetricType::Gauge, help);
    for gpu in &c.gpus.gpus {
        let Some(v) = value(gpu) else { continue };
        let index = gpu.index.to_string();
        let base = [
            ("node", c.node),
            ("gpu", index.as_str()),
            ("uuid", gpu.uuid.as_str()),
        ];
        per_holder(w, name, &base, &gpu_holders(gpu, c.holders), v);
    }
}

/// GPU use summed up per pod: mean utilization over its whole GPUs, memory over its GPUs and
/// MIG instances, GPM activity over both.
#[derive(Default)]
struct PodGpus {
    utilization: Vec<f64>,
    memory_used: u64,
    memory_total: u64,
    activity: Vec<GpmActivity>,
    devices: BTreeSet<String>,
}

fn pod_gpus<'a>(c: &Collection<'a>) -> BTreeMap<(&'a str, &'a str), PodGpus> {
    let mut pods: BTreeMap<(&str, &str), PodGpus> = BTreeMap::new();
    for gpu in &c.gpus.gpus {
        for holder in gpu_holders(gpu, c.holders) {
            let pod = pods.entry((&holder.namespace, &holder.pod)).or_default();
            if pod.devices.insert(gpu.uuid.clone()) {
                pod.utilization.extend(gpu.utilization_ratio);
                pod.memory_used += gpu.memory_used_bytes;
                pod.memory_total += gpu.memory_total_bytes;
                pod.activity.extend(gpu.gpm);
            }
        }
        for mig in &gpu.mig {
            for holder in mig_holders(gpu, mig, c.holders) {
                let pod = pods.entry((&holder.namespace, &holder.pod)).or_default();
                if pod.devices.insert(mig.uuid.clone()) {
                    pod.memory_used += mig.memory_used_bytes;
                    pod.memory_total += mig.memory_total_bytes;
                    pod.activity.extend(mig.gpm);
                }
            }
        }
    }
    pods
}

/// A per-pod server family: a sample per target whose signals carry a value, labelled with
/// the server's kind.
fn server_family(w: &mut Writer, c: &Collection<'_>, series: &Series, value: ServerValue) {
    let (name, help) = (series.name, series.help);
    w.family(name, MetricType::Gauge, help);
    for report in c.servers {
        let t = &report.target;
        if let Some(v) = report.signals.as_ref().and_then(|s| value(t.kind, s)) {
            w.sample(
                name,
                &[
                    ("namespace", &t.namespace),
                    ("pod", &t.pod),
                    ("node", c.node),
                    ("kind", t.kind.as_str()),
                ],
                v,
            );
        }
    }
}

fn triton(signals: &Signals) -> Option<&TritonSignals> {
    match signals {
        Signals::Triton(s) => Some(s),
        Signals::Queue(_) => None,
    }
}

fn queue(signals: &Signals) -> Option<&QueueSignals> {
    match signals {
        Signals::Queue(s) => Some(s),
        Signals::Triton(_) => None,
    }
}

/// vLLM's own families, for vLLM servers only.
fn vllm(kind: ServerKind, signals: &Signals) -> Option<&QueueSignals> {
    (kind == ServerKind::Vllm).then(|| queue(signals)).flatten()
}

/// The page: NVML health, per-GPU and per-MIG series, per-pod GPU use, per-server signals,
/// then the exporter's own health.
pub fn render(c: &Collection<'_>) -> String {
    let mut w = Writer::new();
    nvml_health(&mut w, c);
    for (series, value) in GPU_FAMILIES {
        gpu_family(&mut w, c, &series, value);
    }
    mig_families(&mut w, c);
    pod_gpu_families(&mut w, c);
    for (series, value) in server_families() {
        server_family(&mut w, c, &series, value);
    }
    collection_health(&mut w, c);
    target_health(&mut w, c);
    w.finish()
}

/// `kubemind_nvml_up`.
fn nvml_health(w: &mut Writer, c: &Collection<'_>) {
    let node = [("node", c.node)];
    w.family(
        catalogue::NVML_UP.name,
        MetricType::Gauge,
        catalogue::NVML_UP.help,
    );
    w.sample(
        catalogue::NVML_UP.name,
        &node,
        if c.gpus.nvml_up { 1.0 } else { 0.0 },
    );
}

type MigValue = Box<dyn Fn(&MigReading) -> Option<f64>>;

/// Memory and GPM activity per MIG instance, per holder.
fn mig_families(w: &mut Writer, c: &Collection<'_>) {
    let mut families: Vec<(Series, MigValue)> = vec![
        (
            catalogue::MIG_MEMORY_USED,
            Box::new(|m| Some(m.memory_used_bytes as f64)),
        ),
        (
            catalogue::MIG_MEMORY_TOTAL,
            Box::new(|m| Some(m.memory_total_bytes as f64)),
        ),
    ];
    for (series, _, activity) in GPM_FAMILIES {
        families.push((series, Box::new(move |m| activity(m.gpm.as_ref()?))));
    }
    for (series, value) in families {
        let name = series.name;
        w.family(name, MetricType::Gauge, series.help);
        for gpu in &c.gpus.gpus {
            let index = gpu.index.to_string();
            for mig in &gpu.mig {
                let Some(value) = value(mig) else { continue };
                let base = [
                    ("node", c.node),
                    ("gpu", index.as_str()),
                    ("uuid", gpu.uuid.as_str()),
                    ("mig_uuid", mig.uuid.as_str()),
                ];
                per_holder(w, name, &base, &mig_holders(gpu, mig, c.holders), value);
            }
        }
    }
}

/// GPU use summed per pod: utilization over its whole GPUs, memory over its GPUs and MIG
/// instances.
fn pod_gpu_families(w: &mut Writer, c: &Collection<'_>) {
    let pods = pod_gpus(c);
    fn pod_labels<'a>(key: &(&'a str, &'a str), node: &'a str) -> [(&'static str, &'a str); 3] {
        [("namespace", key.0), ("pod", key.1), ("node", node)]
    }
    w.family(
        catalogue::POD_GPU_UTILIZATION.name,
        MetricType::Gauge,
        catalogue::POD_GPU_UTILIZATION.help,
    );
    for (key, pod) in &pods {
        if !pod.utilization.is_empty() {
            let mean = pod.utilization.iter().sum::<f64>() / pod.utilization.len() as f64;
            w.sample(
                catalogue::POD_GPU_UTILIZATION.name,
                &pod_labels(key, c.node),
                mean,
            );
        }
    }
    w.family(
        catalogue::POD_GPU_MEMORY_USED.name,
        MetricType::Gauge,
        catalogue::POD_GPU_MEMORY_USED.help,
    );
    for (key, pod) in &pods {
        w.sample(
            catalogue::POD_GPU_MEMORY_USED.name,
            &pod_labels(key, c.node),
            pod.memory_used as f64,
        );
    }
    w.family(
        catalogue::POD_GPU_MEMORY_TOTAL.name,
        MetricType::Gauge,
        catalogue::POD_GPU_MEMORY_TOTAL.help,
    );
    for (key, pod) in &pods {
        w.sample(
            catalogue::POD_GPU_MEMORY_TOTAL.name,
            &pod_labels(key, c.node),
            pod.memory_total as f64,
        );
    }
    for (series, value) in [
        (
            catalogue::POD_GPU_SM_SHARE,
            (|s: &PodShare| s.sm_ratio) as fn(&PodShare) -> Option<f64>,
        ),
        (catalogue::POD_GPU_PROCESS_MEMORY, |s| {
            Some(s.memory_bytes as f64)
        }),
    ] {
        w.family(series.name, MetricType::Gauge, series.help);
        for ((namespace, pod), share) in c.pod_shares {
            if let Some(v) = value(share) {
                w.sample(series.name, &pod_labels(&(namespace, pod), c.node), v);
            }
        }
    }
    for (_, series, activity) in GPM_FAMILIES {
        w.family(series.name, MetricType::Gauge, series.help);
        for (key, pod) in &pods {
            let values: Vec<f64> = pod.activity.iter().filter_map(activity).collect();
            if !values.is_empty() {
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                w.sample(series.name, &pod_labels(key, c.node), mean);
            }
        }
    }
}

/// How the last collection went: its duration and time, NVML's, the kubelet's answer.
fn collection_health(w: &mut Writer, c: &Collection<'_>) {
    let node = [("node", c.node)];
    w.family(
        catalogue::COLLECTION_DURATION.name,
        MetricType::Gauge,
        catalogue::COLLECTION_DURATION.help,
    );
    w.sample(
        catalogue::COLLECTION_DURATION.name,
        &node,
        c.duration.as_secs_f64(),
    );
    w.family(
        catalogue::LAST_COLLECTION.name,
        MetricType::Gauge,
        catalogue::LAST_COLLECTION.help,
    );
    w.sample(
        catalogue::LAST_COLLECTION.name,
        &node,
        seconds_since_epoch(c.finished_at),
    );
    w.family(
        catalogue::NVML_COLLECTION_DURATION.name,
        MetricType::Gauge,
        catalogue::NVML_COLLECTION_DURATION.help,
    );
    w.sample(
        catalogue::NVML_COLLECTION_DURATION.name,
        &node,
        c.gpus.collection.as_secs_f64(),
    );
    w.family(
        catalogue::POD_RESOURCES_UP.name,
        MetricType::Gauge,
        catalogue::POD_RESOURCES_UP.help,
    );
    w.sample(
        catalogue::POD_RESOURCES_UP.name,
        &node,
        if c.pod_resources_up { 1.0 } else { 0.0 },
    );
}

/// Each inference server: up, last success, failures by reason.
fn target_health(w: &mut Writer, c: &Collection<'_>) {
    w.family(
        catalogue::TARGET_UP.name,
        MetricType::Gauge,
        catalogue::TARGET_UP.help,
    );
    for report in c.servers {
        let t = &report.target;
        w.sample(
            catalogue::TARGET_UP.name,
            &[
                ("namespace", &t.namespace),
                ("pod", &t.pod),
                ("kind", t.kind.as_str()),
                ("node", c.node),
            ],
            if report.up { 1.0 } else { 0.0 },
        );
    }
    w.family(
        catalogue::TARGET_LAST_SUCCESS.name,
        MetricType::Gauge,
        catalogue::TARGET_LAST_SUCCESS.help,
    );
    for report in c.servers {
        if let Some(at) = report.last_success {
            let t = &report.target;
            w.sample(
                catalogue::TARGET_LAST_SUCCESS.name,
                &[
                    ("namespace", &t.namespace),
                    ("pod", &t.pod),
                    ("kind", t.kind.as_str()),
                    ("node", c.node),
                ],
                seconds_since_epoch(at),
            );
        }
    }
    w.family(
        catalogue::TARGET_FAILURES.name,
        MetricType::Counter,
        catalogue::TARGET_FAILURES.help,
    );
    for report in c.servers {
        let t = &report.target;
        for (reason, count) in &report.failures {
            w.sample(
                catalogue::TARGET_FAILURES.name,
                &[
                    ("namespace", &t.namespace),
                    ("pod", &t.pod),
                    ("kind", t.kind.as_str()),
                    ("node", c.node),
                    ("reason", reason.as_str()),
                ],
                *count as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exporter::gpu::MigReading;
    use crate::promtext;

    fn gpu(index: u32, uuid: &str, utilization: Option<f64>, mig: Vec<MigReading>) -> GpuReading {
        GpuReading {
            index,
            uuid: uuid.into(),
            name: "sim".into(),
            utilization_ratio: utilization,
            memory_used_bytes: 10,
            memory_total_bytes: 100,
            power_watts: None,
            temperature_celsius: None,
            gpm_supported: false,
            gpm: None,
            processes: vec![],
            mig,
        }
    }

    fn holder(namespace: &str, pod: &str) -> Holder {
        Holder {
            namespace: namespace.into(),
            pod: pod.into(),
            container: "server".into(),
            resource_name: "nvidia.com/gpu".into(),
        }
    }

    #[test]
    fn every_device_id_form_attributes_to_its_pod() {
        let gpus = GpuSnapshot {
            nvml_up: true,
            gpus: vec![
                gpu(0, "GPU-a", Some(0.5), vec![]),
                gpu(1, "GPU-b", Some(0.9), vec![]),
                gpu(2, "GPU-c", Some(0.1), vec![]),
                gpu(
                    3,
                    "GPU-d",
                    None,
                    vec![
                        MigReading {
                            uuid: "MIG-x".into(),
                            gpu_instance_id: Some(7),
                            memory_used_bytes: 7,
                            memory_total_bytes: 50,
                            gpm: None,
                        },
                        MigReading {
                            uuid: "MIG-y".into(),
                            gpu_instance_id: Some(9),
                            memory_used_bytes: 3,
                            memory_total_bytes: 20,
                            gpm: None,
                        },
                    ],
                ),
            ],
            sampled_at: SystemTime::UNIX_EPOCH,
            collection: Duration::ZERO,
        };
        let holders = vec![
            (
                DeviceId::Gpu {
                    uuid: "GPU-a".into(),
                    replica: None,
                },
                holder("uuid", "p"),
            ),
            (
                DeviceId::Gpu {
                    uuid: "GPU-b".into(),
                    replica: Some(1),
                },
                holder("sliced", "one"),
            ),
            (
                DeviceId::Gpu {
                    uuid: "GPU-b".into(),
                    replica: Some(2),
                },
                holder("sliced", "two"),
            ),
            (
                DeviceId::Index {
                    index: 2,
                    gpu_instance: None,
                    vgpu: None,
                },
                holder("gke", "p"),
            ),
            (
                DeviceId::Mig {
                    uuid: "MIG-x".into(),
                    replica: None,
                },
                holder("mig", "p"),
            ),
            // GKE's form: GPU 3's GPU instance 9
            (
                DeviceId::Index {
                    index: 3,
                    gpu_instance: Some(9),
                    vgpu: None,
                },
                holder("gke-mig", "p"),
            ),
            // a pod holding two replicas of one GPU counts the GPU once
            (
                DeviceId::Gpu {
                    uuid: "GPU-a".into(),
                    replica: Some(1),
                },
                holder("uuid", "p"),
            ),
        ];
        let text = render(&Collection {
            node: "n",
            gpus: &gpus,
            holders: &holders,
            pod_resources_up: true,
            servers: &[],
            pod_shares: &Default::default(),
            duration: Duration::ZERO,
            finished_at: SystemTime::UNIX_EPOCH,
        });
        let page = promtext::parse(&text).expect("parses");
        let pod_value = |name: &str, ns: &str| {
            page.samples
                .iter()
                .find(|s| s.name == name && s.label("namespace") == Some(ns))
                .map(|s| s.value)
        };
        assert_eq!(
            pod_value("kubemind_pod_gpu_utilization_ratio", "uuid"),
            Some(0.5)
        );
        assert_eq!(
            pod_value("kubemind_pod_gpu_memory_used_bytes", "uuid"),
            Some(10.0),
            "GPU-a counted once"
        );
        assert_eq!(
            pod_value("kubemind_pod_gpu_utilization_ratio", "gke"),
            Some(0.1),
            "by index"
        );
        assert_eq!(
            pod_value("kubemind_pod_gpu_memory_used_bytes", "mig"),
            Some(7.0),
            "MIG instance memory"
        );
        assert_eq!(
            pod_value("kubemind_pod_gpu_utilization_ratio", "mig"),
            None,
            "no utilization under MIG"
        );
        assert_eq!(
            pod_value("kubemind_pod_gpu_memory_used_bytes", "gke-mig"),
            Some(3.0),
            "GKE's nvidia3/gi9 is GPU 3's GPU instance 9: MIG-y, not MIG-x"
        );
        let sliced: Vec<&str> = page
            .samples
            .iter()
            .filter(|s| {
                s.name == "kubemind_gpu_utilization_ratio" && s.label("uuid") == Some("GPU-b")
            })
            .filter_map(|s| s.label("pod"))
            .collect();
        assert_eq!(
            sliced,
            ["one", "two"],
            "a time-sliced GPU appears once per holder"
        );
        assert!(
            !text.contains("kubemind_triton"),
            "no server families without servers"
        );
    }
}
