//! `kubemind explain`, the real binary, against a standalone adapter serving made-up values:
//! one finding per scenario — a pod far hotter than the rest, a metric absent, a stale value,
//! a GPU NVML calls busy whose SMs are mostly idle (GPM),
//! an HPA at maxReplicas while saturated, a scale-up policy that runs away, a Kafka consumer
//! with more replicas than partitions — and a healthy HPA with none. Then the cluster path:
//! the HPA, its scale subresource and its pods (Pending, Running but not Ready, Failed, being
//! deleted, without a value) read from the stand-in API server, which passes metrics requests
//! to the adapter as kube-aggregator would; the count is the one kube-controller-manager
//! v1.35 computes, worked out by hand in the test from `replica_calculator.go`.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::fixtures::{pod, start_standalone_adapter};
use crate::standin::StandIn;

const VALUES: &str = r#"
pods:
  - {namespace: demo, name: triton-0, labels: {app: triton}, metrics: {triton_queue_time_ms: 8000, gpu_utilization_percent: 100}}
  - {namespace: demo, name: triton-1, labels: {app: triton}, metrics: {triton_queue_time_ms: 0, gpu_utilization_percent: 3}}
  - {namespace: demo, name: triton-2, labels: {app: triton}, metrics: {triton_queue_time_ms: 0, gpu_utilization_percent: 4}}
  - {namespace: demo, name: web-0, labels: {app: web}, metrics: {gpu_utilization_percent: {value: 40, age: 25s}}}
  - {namespace: demo, name: web-1, labels: {app: web}, metrics: {gpu_utilization_percent: 42}}
  - {namespace: demo, name: calm-0, labels: {app: calm}, metrics: {gpu_utilization_percent: 69}}
  - {namespace: demo, name: calm-1, labels: {app: calm}, metrics: {gpu_utilization_percent: 71}}
  - {namespace: demo, name: llm-0, labels: {app: llm}, metrics: {gpu_utilization_percent: 100, gpu_sm_active_percent: 12}}
  - {namespace: demo, name: llm-1, labels: {app: llm}, metrics: {gpu_utilization_percent: 99, gpu_sm_active_percent: 18}}
  - {namespace: demo, name: mixed-0, labels: {app: mixed}, metrics: {triton_queue_time_ms: 900}}
  - {namespace: demo, name: mixed-1, labels: {app: mixed}, metrics: {triton_queue_time_ms: 700}}
  - {namespace: demo, name: mixed-2, labels: {app: mixed}, metrics: {triton_queue_time_ms: 2000}}
  - {namespace: demo, name: mixed-3, labels: {app: mixed}, metrics: {triton_queue_time_ms: 5000}}
  - {namespace: demo, name: mixed-4, labels: {app: mixed}, metrics: {triton_queue_time_ms: 5000}}
objects:
  - {namespace: demo, resource: deployments.apps, name: triton, metrics: {request_imbalance_ratio: 3}}
  - {namespace: demo, resource: deployments.apps, name: mixed, metrics: {jobs_waiting: 30}}
external:
  - {namespace: demo, name: kafka_consumergroup_lag, labels: {topic: orders, consumergroup: billing}, value: 1200}
  - {namespace: demo, name: kafka_topic_partitions, labels: {topic: orders}, value: 12}
"#;

fn hpa(name: &str, max: i32, metrics: &str) -> String {
    format!(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: {name}, namespace: demo}}\n\
         spec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}\n  minReplicas: 2\n  maxReplicas: {max}\n  metrics:\n{metrics}\
         status: {{currentReplicas: {max}}}\n"
    )
}

fn pods_metric(name: &str, target: &str) -> String {
    format!(
        "  - type: Pods\n    pods: {{metric: {{name: {name}}}, target: {{type: AverageValue, averageValue: \"{target}\"}}}}\n"
    )
}

/// Runs `kubemind explain ARGS…`, which must succeed within 80 columns; returns what it printed.
fn run_explain(args: &[&std::ffi::OsStr]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_kubemind"))
        .arg("explain")
        .args(args)
        .output()
        .expect("explain runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "over 80 columns: {line}");
    }
    text
}

/// `explain` of the HPA `manifest` (written to `dir`) against the adapter of `kubeconfig`.
fn explain(dir: &Path, kubeconfig: &Path, name: &str, manifest: &str, selector: &str) -> String {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, manifest).expect("manifest");
    let args = [name, "-n", "demo", "--selector", selector, "--kubeconfig"];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    args.extend([kubeconfig.as_os_str(), "-f".as_ref(), file.as_os_str()]);
    run_explain(&args)
}

/// The text with every run of whitespace (line wraps included) as one space.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn explain_reads_the_hpa_its_scale_and_its_pods_from_the_api_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_adapter, adapter_kubeconfig) = start_standalone_adapter(dir.path(), VALUES, &[]);
    let standin = StandIn::start(Default::default(), vec![], Default::default());
    standin.set_metrics_backend(&adapter_kubeconfig);
    let manifest = format!(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: mixed, namespace: demo}}\n\
         spec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: mixed}}\n  minReplicas: 1\n  maxReplicas: 20\n  metrics:\n{}\
         \x20 - type: Object\n    object:\n      describedObject: {{apiVersion: apps/v1, kind: Deployment, name: mixed}}\n      metric: {{name: jobs_waiting}}\n      target: {{type: Value, value: \"10\"}}\n",
        pods_metric("triton_queue_time_ms", "500")
    );
    let object: serde_json::Value = serde_norway::from_str(&manifest).expect("YAML");
    standin.set_object(
        "/apis/autoscaling/v2/namespaces/demo/horizontalpodautoscalers/mixed",
        object,
    );
    standin.set_object(
        "/apis/apps/v1/namespaces/demo/deployments/mixed/scale",
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
               "metadata": {"name": "mixed", "namespace": "demo"},
               "spec": {"replicas": 7}, "status": {"replicas": 7, "selector": "app=mixed"}}),
    );
    // mixed-0, 1: Running and Ready; 2: Running, not Ready; 3: Failed; 4: being deleted;
    // 5: Running without a value; 6: Pending
    let mut pods: Vec<serde_json::Value> = (0..7)
        .map(|i| pod("demo", &format!("mixed-{i}"), json!({"app": "mixed"}), None))
        .collect();
    pods[2]["status"]["conditions"][0]["status"] = json!("False");
    pods[3]["status"]["phase"] = json!("Failed");
    pods[4]["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    pods[6]["status"]["phase"] = json!("Pending");
    pods[6]["status"]["conditions"][0]["status"] = json!("False");
    standin.set_pods(pods);

    let kubeconfig = standin.kubeconfig(dir.path());
    let text = run_explain(&[
        "mixed".as_ref(),
        "-n".as_ref(),
        "demo".as_ref(),
        "--kubeconfig".as_ref(),
        kubeconfig.as_os_str(),
    ]);
    let text = flat(&text);
    assert!(
        text.contains("7 replicas (min 1, max 20) pods selected by app=mixed"),
        "{text}"
    );
    // calcPlainMetricReplicas: 3 and 4 ignored, 6 unready, 5 missing, 2 counts (readiness
    // is not looked at for a Pods metric); 3600 / 3 = 1200 → ratio 2.4 > 1, so the pending
    // and the missing pod count as 0: 3600 / 5 = 720 → ratio 1.44 → ceil(1.44 × 5) = 8
    for step in [
        "left out (failed or being deleted): mixed-3, mixed-4",
        "left out for now (pending): mixed-6",
        "average = 3600 / 3 pods = 1200; ratio = 1200 / 500 = 2.4",
        "scaling up: pods without a value count as 0: mixed-5",
        "scaling up: pending pods count as 0: mixed-6",
        "recounted: average = 3600 / 5 pods = 720; ratio = 1.44",
        "desired = ceil(1.44 × 5 pods) = 8",
        // getUsageRatioReplicaCount counts every pod Running and Ready, with a value or not:
        // 0, 1, 4 (being deleted, still Running and Ready) and 5: ratio 30 / 10 = 3 →
        // ceil(3 × 4) = 12
        "ratio = 30 / 10 = 3",
        "desired = ceil(3 × 4 pods Running and Ready) = 12",
        // the legacy path: the seeded 7 does not hold a scale-up; up to max(2 × 7, 4) = 14
        "largest proposal: max(8, 12) = 12",
        "12 is within the limits: DesiredWithinRange",
        "→ 12 replicas (ReadyForNewScale)",
    ] {
        assert!(text.contains(step), "{step:?} missing:\n{text}");
    }
    assert!(text.contains("has no value for mixed-5"), "{text}");
}

#[test]
fn explain_says_why_for_each_finding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_adapter, kubeconfig) = start_standalone_adapter(dir.path(), VALUES, &[]);

    // one pod gets every request; the HPA is at its maximum
    let text = explain(
        dir.path(),
        &kubeconfig,
        "triton",
        &hpa("triton", 3, &pods_metric("triton_queue_time_ms", "500")),
        "app=triton",
    );
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("triton-0") && l.contains(" 8000 ")),
        "{text}"
    );
    assert!(
        flat(&text).contains("average = 8000 / 3 pods = 2666.666; ratio = 2666.666 / 500 = 5.3333"),
        "{text}"
    );
    assert!(
        flat(&text).contains("desired = ceil(5.3333 × 3 pods) = 16"),
        "{text}"
    );
    assert!(
        flat(&text).contains("proposal: 16 maxReplicas 3: TooManyReplicas → 3 replicas"),
        "{text}"
    );
    assert!(
        flat(&text).contains("triton-0 is far hotter than the rest"),
        "{text}"
    );
    assert!(flat(&text).contains("balance per request"), "{text}");
    assert!(
        flat(&text).contains("at maxReplicas (3) while the metrics ask for 16"),
        "{text}"
    );
    assert!(flat(&text).contains("request imbalance 3.0"), "{text}");

    // a metric the adapter does not serve for these pods
    let text = explain(
        dir.path(),
        &kubeconfig,
        "triton",
        &hpa("triton", 10, &pods_metric("vllm_requests_waiting", "10")),
        "app=triton",
    );
    assert!(
        flat(&text).contains("vllm_requests_waiting is absent"),
        "{text}"
    );
    assert!(flat(&text).contains("never down"), "{text}");

    // a value 25 s old
    let text = explain(
        dir.path(),
        &kubeconfig,
        "web",
        &hpa("web", 10, &pods_metric("gpu_utilization_percent", "70")),
        "app=web",
    );
    assert!(
        flat(&text).contains("gpu_utilization_percent of web-0 is 2"),
        "{text}"
    );
    assert!(flat(&text).contains("falling behind"), "{text}");

    // healthy: within the tolerance, nothing to say
    let text = explain(
        dir.path(),
        &kubeconfig,
        "calm",
        &hpa("calm", 10, &pods_metric("gpu_utilization_percent", "70")),
        "app=calm",
    );
    assert!(
        flat(&text).contains("ratio within the tolerance [0.9, 1.1]: stays at 10"),
        "{text}"
    );
    assert!(flat(&text).contains("findings: none"), "{text}");

    // NVML says 100 % busy, GPM says the SMs are 12 % active: scaling on utilization would
    // add GPUs that have room
    let text = explain(
        dir.path(),
        &kubeconfig,
        "llm",
        &hpa("llm", 10, &pods_metric("gpu_utilization_percent", "70")),
        "app=llm",
    );
    assert!(
        flat(&text).contains("GPU utilization 100 % but SM active 12 % on llm-0 (and 1 more pods): the GPU is not saturated"),
        "{text}"
    );
}

#[test]
fn explain_warns_before_a_runaway_scale_up_and_idle_kafka_consumers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_adapter, kubeconfig) = start_standalone_adapter(dir.path(), VALUES, &[]);
    // a consumer of `orders` on its lag, doubling every 30 s with no pod cap, up to 50
    let manifest = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: billing, namespace: demo}\n\
        spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: billing}\n  minReplicas: 2\n  maxReplicas: 50\n  metrics:\n\
        \x20 - type: External\n    external:\n      metric: {name: kafka_consumergroup_lag, selector: {matchLabels: {topic: orders}}}\n      target: {type: AverageValue, averageValue: \"100\"}\n\
        \x20 behavior:\n    scaleUp:\n      policies: [{type: Percent, value: 100, periodSeconds: 30}]\n\
        status: {currentReplicas: 2}\n";
    let text = flat(&explain(
        dir.path(),
        &kubeconfig,
        "billing",
        manifest,
        "app=billing",
    ));
    // GetExternalPerPodMetricReplicas: 1200 / (100 × 2) = 6 → ceil(1200 / 100) = 12; the
    // behavior allows 2 → 4 on this sync
    assert!(
        text.contains("ratio = 1200 / (100 × 2 replicas) = 6"),
        "{text}"
    );
    assert!(text.contains("desired = ceil(1200 / 100) = 12"), "{text}");
    assert!(text.contains("→ 4 replicas (ScaleUpLimit)"), "{text}");
    assert!(
        text.contains(
            "this scale-up policy allows 2 → 50 pods in 3 minutes (2 → 4 → 8 → 16 → 32 → 50)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "maxReplicas 50 but the topic orders has 12 partitions: replicas past 12 sit idle"
        ),
        "{text}"
    );
}
