//! One list of metric names: every series the exporter writes (name, help, what it is per)
//! and, for the ones the HPA reads, the catalogue metric it becomes and the unit conversion
//! (`kubemind_triton_queue_time_seconds` × 1000 → `triton_queue_time_ms`). The exporter's
//! renderer names its families from here, the adapter's page reader maps series onto the
//! catalogue from here, and the built-in Prometheus rules are generated from here — so adding
//! a signal is one row, and nothing spells a name twice. A test checks that the dashboards and
//! alert rules name only series that exist. (Workload aggregates — `<metric>_max`, `_avg`,
//! `_sum`, `request_imbalance_ratio` — are derived from the pod metrics by the adapter.)

/// What a series has one sample per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Node,
    Gpu,
    MigInstance,
    Pod,
    /// An inference server (a pod's Triton, vLLM, SGLang, TGI, TorchServe or mapped server).
    Server,
}

/// An exporter series the HPA reads per pod, and how: `value × scale` as `metric`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Serves {
    pub metric: &'static str,
    pub scale: f64,
}

/// One exporter series, in base units (seconds, bytes, ratios 0–1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Series {
    pub name: &'static str,
    pub help: &'static str,
    pub per: Per,
    /// The catalogue metric it gives per pod, if the HPA reads it.
    pub serves: Option<Serves>,
}

const fn series(name: &'static str, per: Per, help: &'static str) -> Series {
    Series {
        name,
        help,
        per,
        serves: None,
    }
}

const fn serving(
    name: &'static str,
    per: Per,
    help: &'static str,
    metric: &'static str,
    scale: f64,
) -> Series {
    Series {
        name,
        help,
        per,
        serves: Some(Serves { metric, scale }),
    }
}

pub(crate) const NVML_UP: Series = series(
    "kubemind_nvml_up",
    Per::Node,
    "1 when NVML answered the last collection, else 0",
);
pub(crate) const GPU_UTILIZATION: Series = series(
    "kubemind_gpu_utilization_ratio",
    Per::Gpu,
    "GPU busy fraction over NVML's last sample period (absent in MIG mode)",
);
pub(crate) const GPU_MEMORY_USED: Series = series(
    "kubemind_gpu_memory_used_bytes",
    Per::Gpu,
    "GPU memory in use",
);
pub(crate) const GPU_MEMORY_TOTAL: Series = series(
    "kubemind_gpu_memory_total_bytes",
    Per::Gpu,
    "GPU memory installed",
);
pub(crate) const GPU_POWER: Series = series("kubemind_gpu_power_watts", Per::Gpu, "GPU power draw");
pub(crate) const GPU_TEMPERATURE: Series = series(
    "kubemind_gpu_temperature_celsius",
    Per::Gpu,
    "GPU temperature",
);
pub(crate) const GPM_SUPPORTED: Series = series(
    "kubemind_gpm_supported",
    Per::Gpu,
    "1 when the GPU supports GPM (Hopper and newer), so its SM, tensor and DRAM activity are reported",
);
pub(crate) const GPU_SM_ACTIVE: Series = series(
    "kubemind_gpu_sm_active_ratio",
    Per::Gpu,
    "GPM: share of time SMs had at least one warp resident, over the last interval",
);
pub(crate) const GPU_SM_OCCUPANCY: Series = series(
    "kubemind_gpu_sm_occupancy_ratio",
    Per::Gpu,
    "GPM: resident warps over the SMs' maximum, over the last interval",
);
pub(crate) const GPU_TENSOR_ACTIVE: Series = series(
    "kubemind_gpu_tensor_active_ratio",
    Per::Gpu,
    "GPM: share of time any tensor pipe was busy, over the last interval",
);
pub(crate) const GPU_DRAM_ACTIVE: Series = series(
    "kubemind_gpu_dram_active_ratio",
    Per::Gpu,
    "GPM: DRAM bandwidth used over the peak, over the last interval",
);
pub(crate) const MIG_SM_ACTIVE: Series = series(
    "kubemind_mig_sm_active_ratio",
    Per::MigInstance,
    "GPM: share of time the instance's SMs had a warp resident, over the last interval",
);
pub(crate) const MIG_SM_OCCUPANCY: Series = series(
    "kubemind_mig_sm_occupancy_ratio",
    Per::MigInstance,
    "GPM: the instance's resident warps over its SMs' maximum, over the last interval",
);
pub(crate) const MIG_TENSOR_ACTIVE: Series = series(
    "kubemind_mig_tensor_active_ratio",
    Per::MigInstance,
    "GPM: share of time the instance's tensor pipes were busy, over the last interval",
);
pub(crate) const MIG_DRAM_ACTIVE: Series = series(
    "kubemind_mig_dram_active_ratio",
    Per::MigInstance,
    "GPM: the instance's DRAM bandwidth over the peak, over the last interval",
);
pub(crate) const MIG_MEMORY_USED: Series = series(
    "kubemind_mig_memory_used_bytes",
    Per::MigInstance,
    "MIG instance memory in use",
);
pub(crate) const MIG_MEMORY_TOTAL: Series = series(
    "kubemind_mig_memory_total_bytes",
    Per::MigInstance,
    "MIG instance memory",
);
pub(crate) const POD_GPU_UTILIZATION: Series = serving(
    "kubemind_pod_gpu_utilization_ratio",
    Per::Pod,
    "Mean busy fraction over the whole GPUs a pod holds",
    "gpu_utilization_percent",
    100.0,
);
pub(crate) const POD_GPU_MEMORY_USED: Series = serving(
    "kubemind_pod_gpu_memory_used_bytes",
    Per::Pod,
    "GPU memory in use on the GPUs and MIG instances a pod holds",
    "gpu_memory_used_bytes",
    1.0,
);
pub(crate) const POD_GPU_SM_ACTIVE: Series = serving(
    "kubemind_pod_gpu_sm_active_ratio",
    Per::Pod,
    "GPM SM activity, mean over the GPUs and MIG instances a pod holds",
    "gpu_sm_active_percent",
    100.0,
);
pub(crate) const POD_GPU_SM_OCCUPANCY: Series = serving(
    "kubemind_pod_gpu_sm_occupancy_ratio",
    Per::Pod,
    "GPM SM occupancy, mean over the GPUs and MIG instances a pod holds",
    "gpu_sm_occupancy_percent",
    100.0,
);
pub(crate) const POD_GPU_TENSOR_ACTIVE: Series = serving(
    "kubemind_pod_gpu_tensor_active_ratio",
    Per::Pod,
    "GPM tensor-pipe activity, mean over the GPUs and MIG instances a pod holds",
    "gpu_tensor_active_percent",
    100.0,
);
pub(crate) const POD_GPU_DRAM_ACTIVE: Series = serving(
    "kubemind_pod_gpu_dram_active_ratio",
    Per::Pod,
    "GPM DRAM bandwidth, mean over the GPUs and MIG instances a pod holds",
    "gpu_dram_active_percent",
    100.0,
);
pub(crate) const POD_GPU_SM_SHARE: Series = serving(
    "kubemind_pod_gpu_sm_share_ratio",
    Per::Pod,
    "--per-process: the SM utilization of the pod's own processes on the GPUs they share (mean over those GPUs)",
    "gpu_sm_share_percent",
    100.0,
);
pub(crate) const POD_GPU_PROCESS_MEMORY: Series = serving(
    "kubemind_pod_gpu_process_memory_bytes",
    Per::Pod,
    "--per-process: GPU memory used by the pod's own processes",
    "gpu_process_memory_bytes",
    1.0,
);
pub(crate) const POD_GPU_MEMORY_TOTAL: Series = series(
    "kubemind_pod_gpu_memory_total_bytes",
    Per::Pod,
    "GPU memory on the GPUs and MIG instances a pod holds",
);
pub(crate) const TRITON_QUEUE_TIME: Series = serving(
    "kubemind_triton_queue_time_seconds",
    Per::Server,
    "Request-weighted mean queue time over the window, all models (absent when stalled)",
    "triton_queue_time_ms",
    1000.0,
);
pub(crate) const TRITON_QUEUE_COMPUTE_RATIO: Series = serving(
    "kubemind_triton_queue_compute_ratio",
    Per::Server,
    "Queue time over compute time over the window",
    "triton_queue_compute_ratio",
    1.0,
);
pub(crate) const TRITON_PENDING_REQUESTS: Series = serving(
    "kubemind_triton_pending_requests",
    Per::Server,
    "Requests queued and not yet executing, all models",
    "triton_pending_requests",
    1.0,
);
pub(crate) const TRITON_REQUEST_RATE: Series = series(
    "kubemind_triton_request_rate",
    Per::Server,
    "Successful requests per second over the window",
);
pub(crate) const TRITON_REJECTED_RATE: Series = series(
    "kubemind_triton_rejected_rate",
    Per::Server,
    "Rejected (queue timeout) requests per second over the window",
);
pub(crate) const TRITON_STALLED: Series = series(
    "kubemind_triton_stalled",
    Per::Server,
    "1 when requests are pending and none completed over the window",
);
pub(crate) const VLLM_REQUESTS_WAITING: Series = serving(
    "kubemind_vllm_requests_waiting",
    Per::Server,
    "Requests waiting, all engines",
    "vllm_requests_waiting",
    1.0,
);
pub(crate) const VLLM_REQUESTS_RUNNING: Series = series(
    "kubemind_vllm_requests_running",
    Per::Server,
    "Requests running, all engines",
);
pub(crate) const VLLM_KV_CACHE_USAGE: Series = serving(
    "kubemind_vllm_kv_cache_usage_ratio",
    Per::Server,
    "KV-cache fullness of the fullest engine",
    "vllm_kv_cache_usage_percent",
    100.0,
);
pub(crate) const VLLM_QUEUE_TIME: Series = series(
    "kubemind_vllm_queue_time_seconds",
    Per::Server,
    "Mean time requests waited before running, over the window",
);
pub(crate) const VLLM_REQUEST_RATE: Series = series(
    "kubemind_vllm_request_rate",
    Per::Server,
    "Finished requests per second over the window",
);
pub(crate) const INFERENCE_REQUESTS_WAITING: Series = serving(
    "kubemind_inference_requests_waiting",
    Per::Server,
    "Requests queued and not yet running, any server (Triton: pending requests)",
    "inference_requests_waiting",
    1.0,
);
pub(crate) const INFERENCE_REQUESTS_RUNNING: Series = serving(
    "kubemind_inference_requests_running",
    Per::Server,
    "Requests running (the batch), any server that says",
    "inference_requests_running",
    1.0,
);
pub(crate) const INFERENCE_QUEUE_TIME: Series = serving(
    "kubemind_inference_queue_time_seconds",
    Per::Server,
    "Request-weighted mean queue time over the window, any server (absent when stalled)",
    "inference_queue_time_ms",
    1000.0,
);
pub(crate) const INFERENCE_KV_CACHE_USAGE: Series = serving(
    "kubemind_inference_kv_cache_usage_ratio",
    Per::Server,
    "KV-cache (token) fullness of the fullest engine, any server that says",
    "inference_kv_cache_usage_percent",
    100.0,
);
pub(crate) const INFERENCE_REQUEST_RATE: Series = serving(
    "kubemind_inference_request_rate",
    Per::Server,
    "Finished requests per second over the window, any server",
    "inference_request_rate",
    1.0,
);
pub(crate) const COLLECTION_DURATION: Series = series(
    "kubemind_exporter_collection_duration_seconds",
    Per::Node,
    "Time the last collection took",
);
pub(crate) const LAST_COLLECTION: Series = series(
    "kubemind_exporter_last_collection_timestamp_seconds",
    Per::Node,
    "When the values on this page were collected (Unix time)",
);
pub(crate) const NVML_COLLECTION_DURATION: Series = series(
    "kubemind_exporter_nvml_collection_duration_seconds",
    Per::Node,
    "Time the last NVML collection took",
);
pub(crate) const POD_RESOURCES_UP: Series = series(
    "kubemind_exporter_pod_resources_up",
    Per::Node,
    "1 when the kubelet pod-resources API answered the last call",
);
pub(crate) const TARGET_UP: Series = series(
    "kubemind_exporter_target_up",
    Per::Server,
    "1 when the last scrape of an inference server succeeded",
);
pub(crate) const TARGET_LAST_SUCCESS: Series = series(
    "kubemind_exporter_target_last_success_timestamp_seconds",
    Per::Server,
    "When an inference server was last scraped successfully (Unix time)",
);
pub(crate) const TARGET_FAILURES: Series = series(
    "kubemind_exporter_target_failures_total",
    Per::Server,
    "Failed scrapes of inference servers, by reason",
);

/// Every series an exporter page holds (besides its connection accounting, which
/// [`crate::serve::ConnectionStats`] names).
pub const SERIES: &[Series] = &[
    NVML_UP,
    GPU_UTILIZATION,
    GPU_MEMORY_USED,
    GPU_MEMORY_TOTAL,
    GPU_POWER,
    GPU_TEMPERATURE,
    GPM_SUPPORTED,
    GPU_SM_ACTIVE,
    GPU_SM_OCCUPANCY,
    GPU_TENSOR_ACTIVE,
    GPU_DRAM_ACTIVE,
    MIG_MEMORY_USED,
    MIG_MEMORY_TOTAL,
    MIG_SM_ACTIVE,
    MIG_SM_OCCUPANCY,
    MIG_TENSOR_ACTIVE,
    MIG_DRAM_ACTIVE,
    POD_GPU_UTILIZATION,
    POD_GPU_MEMORY_USED,
    POD_GPU_MEMORY_TOTAL,
    POD_GPU_SM_ACTIVE,
    POD_GPU_SM_OCCUPANCY,
    POD_GPU_TENSOR_ACTIVE,
    POD_GPU_DRAM_ACTIVE,
    POD_GPU_SM_SHARE,
    POD_GPU_PROCESS_MEMORY,
    TRITON_QUEUE_TIME,
    TRITON_QUEUE_COMPUTE_RATIO,
    TRITON_PENDING_REQUESTS,
    TRITON_REQUEST_RATE,
    TRITON_REJECTED_RATE,
    TRITON_STALLED,
    VLLM_REQUESTS_WAITING,
    VLLM_REQUESTS_RUNNING,
    VLLM_KV_CACHE_USAGE,
    VLLM_QUEUE_TIME,
    VLLM_REQUEST_RATE,
    INFERENCE_REQUESTS_WAITING,
    INFERENCE_REQUESTS_RUNNING,
    INFERENCE_QUEUE_TIME,
    INFERENCE_KV_CACHE_USAGE,
    INFERENCE_REQUEST_RATE,
    COLLECTION_DURATION,
    LAST_COLLECTION,
    NVML_COLLECTION_DURATION,
    POD_RESOURCES_UP,
    TARGET_UP,
    TARGET_LAST_SUCCESS,
    TARGET_FAILURES,
];

/// The per-pod catalogue metric computed from two series: memory used over total, in percent.
pub(crate) const GPU_MEMORY_USED_PERCENT: &str = "gpu_memory_used_percent";

/// The catalogue metrics an exporter can give for a pod: each series' metric, and the memory
/// percentage.
pub(crate) fn pod_metrics() -> Vec<&'static str> {
    let mut metrics: Vec<&'static str> = Vec::new();
    for served in SERIES.iter().filter_map(|s| s.serves) {
        if !metrics.contains(&served.metric) {
            metrics.push(served.metric);
        }
    }
    metrics.push(GPU_MEMORY_USED_PERCENT);
    metrics
}

/// The per-GPU series whose mean over a node's GPUs (× 100) is a node metric.
pub(crate) const NODE_MEANS: [(Series, &str); 5] = [
    (GPU_UTILIZATION, "gpu_utilization_percent"),
    (GPU_SM_ACTIVE, "gpu_sm_active_percent"),
    (GPU_SM_OCCUPANCY, "gpu_sm_occupancy_percent"),
    (GPU_TENSOR_ACTIVE, "gpu_tensor_active_percent"),
    (GPU_DRAM_ACTIVE, "gpu_dram_active_percent"),
];

/// The catalogue metrics an exporter gives for its node, over all its GPUs: the means, and
/// the memory in use.
pub(crate) fn node_metrics() -> Vec<&'static str> {
    let mut metrics: Vec<&'static str> = NODE_MEANS.iter().map(|(_, metric)| *metric).collect();
    metrics.extend(["gpu_memory_used_bytes", GPU_MEMORY_USED_PERCENT]);
    metrics
}

/// prometheus-adapter rules giving the catalogue from the exporter's series in Prometheus (the
/// Prometheus source's built-in rules): one per catalogue metric of a pod — the series that
/// serve it, scaled — and the node metrics over the node's GPUs.
pub(crate) fn prometheus_rules() -> String {
    let mut rules = String::from("rules:\n");
    let mut served: Vec<(&str, f64, Vec<&str>)> = Vec::new();
    for series in SERIES {
        let Some(serves) = series.serves else {
            continue;
        };
        match served
            .iter_mut()
            .find(|(metric, _, _)| *metric == serves.metric)
        {
            Some((_, _, names)) => names.push(series.name),
            None => served.push((serves.metric, serves.scale, vec![series.name])),
        }
    }
    let pod_rule = |rules: &mut String, query: &str, metric: &str, expression: &str| {
        rules.push_str(&format!(
            "- seriesQuery: '{query}'\n  resources: {{template: \"<<.Resource>>\"}}\n  name: {{as: {metric}}}\n  metricsQuery: '{expression}'\n"
        ));
    };
    for (metric, scale, names) in &served {
        let factor = if *scale == 1.0 {
            String::new()
        } else {
            format!("{scale} * ")
        };
        if let [name] = names.as_slice() {
            pod_rule(
                &mut rules,
                &format!("{name}{{namespace!=\"\",pod!=\"\"}}"),
                metric,
                &format!("{factor}max by (<<.GroupBy>>) (<<.Series>>{{<<.LabelMatchers>>}})"),
            );
        } else {
            let any = format!("__name__=~\"{}\"", names.join("|"));
            pod_rule(
                &mut rules,
                &format!("{{{any},namespace!=\"\",pod!=\"\"}}"),
                metric,
                &format!("{factor}max by (<<.GroupBy>>) ({{{any},<<.LabelMatchers>>}})"),
            );
        }
    }
    pod_rule(
        &mut rules,
        &format!("{}{{namespace!=\"\",pod!=\"\"}}", POD_GPU_MEMORY_USED.name),
        GPU_MEMORY_USED_PERCENT,
        &format!(
            "100 * max by (<<.GroupBy>>) (<<.Series>>{{<<.LabelMatchers>>}}) / max by (<<.GroupBy>>) ({}{{<<.LabelMatchers>>}} > 0)",
            POD_GPU_MEMORY_TOTAL.name
        ),
    );
    let node_rule = |rules: &mut String, series: &str, metric: &str, expression: String| {
        rules.push_str(&format!(
            "- seriesQuery: '{series}{{node!=\"\"}}'\n  resources: {{overrides: {{node: {{resource: node}}}}}}\n  name: {{as: {metric}}}\n  metricsQuery: '{expression}'\n"
        ));
    };
    for (series, metric) in NODE_MEANS {
        node_rule(
            &mut rules,
            series.name,
            metric,
            "100 * avg by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})".into(),
        );
    }
    node_rule(
        &mut rules,
        GPU_MEMORY_USED.name,
        "gpu_memory_used_bytes",
        "sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})".into(),
    );
    node_rule(
        &mut rules,
        GPU_MEMORY_USED.name,
        GPU_MEMORY_USED_PERCENT,
        format!(
            "100 * sum by (<<.GroupBy>>) (<<.Series>>{{<<.LabelMatchers>>}}) / sum by (<<.GroupBy>>) ({}{{<<.LabelMatchers>>}} > 0)",
            GPU_MEMORY_TOTAL.name
        ),
    );
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_carry_their_unit() {
        let mut names: Vec<&str> = SERIES.iter().map(|s| s.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a series is listed twice");
        for series in SERIES {
            assert!(series.name.starts_with("kubemind_"), "{}", series.name);
            if let Some(serves) = series.serves {
                // ratios become percent, seconds milliseconds, the rest keep their unit
                if series.name.ends_with("_ratio") && serves.metric.ends_with("_percent") {
                    assert_eq!(serves.scale, 100.0, "{}", series.name);
                }
                if series.name.ends_with("_seconds") {
                    assert!(serves.metric.ends_with("_ms") && serves.scale == 1000.0);
                }
            }
        }
    }

    #[test]
    fn every_node_metric_is_also_a_pod_metric() {
        let pods = pod_metrics();
        for metric in node_metrics() {
            assert!(pods.contains(&metric), "{metric}");
        }
    }
}
