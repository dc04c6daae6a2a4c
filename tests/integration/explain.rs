//! `kubemind explain`, the real binary, against a standalone adapter serving made-up values:
//! one finding per scenario — a pod far hotter than the rest, a metric absent, a stale value,
//! an HPA at maxReplicas while saturated — and a healthy HPA with none. Then the cluster path:
//! the HPA, its scale subresource and its pods read from the stand-in API server, which passes
//! metrics requests to the adapter as kube-aggregator would.

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
objects:
  - {namespace: demo, resource: deployments.apps, name: triton, metrics: {request_imbalance_ratio: 3}}
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
    let manifest = hpa("triton", 10, &pods_metric("triton_queue_time_ms", "500"));
    let mut object: serde_json::Value = serde_norway::from_str(&manifest).expect("YAML");
    object["status"]["currentReplicas"] = json!(5);
    standin.set_object(
        "/apis/autoscaling/v2/namespaces/demo/horizontalpodautoscalers/triton",
        object,
    );
    standin.set_object(
        "/apis/apps/v1/namespaces/demo/deployments/triton/scale",
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
               "metadata": {"name": "triton", "namespace": "demo"},
               "spec": {"replicas": 5}, "status": {"replicas": 5, "selector": "app=triton"}}),
    );
    // three pods with values, one still starting, one running with no value yet
    let mut pods: Vec<serde_json::Value> = (0..5)
        .map(|i| {
            pod(
                "demo",
                &format!("triton-{i}"),
                json!({"app": "triton"}),
                None,
            )
        })
        .collect();
    pods[3]["status"]["phase"] = json!("Pending");
    pods.push(pod("demo", "web-0", json!({"app": "web"}), None));
    standin.set_pods(pods);

    let kubeconfig = standin.kubeconfig(dir.path());
    let text = run_explain(&[
        "triton".as_ref(),
        "-n".as_ref(),
        "demo".as_ref(),
        "--kubeconfig".as_ref(),
        kubeconfig.as_os_str(),
    ]);
    let text = flat(&text);
    assert!(
        text.contains("5 replicas (min 2, max 10) pods selected by app=triton"),
        "{text}"
    );
    // triton-4 runs without a value: counted as 0 on the way up; triton-3 is Pending
    assert!(text.contains("has no value for triton-4"), "{text}");
    assert!(
        text.contains("with missing/unready pods filled in: ratio"),
        "{text}"
    );
    assert!(
        text.contains("triton-0 is far hotter than the rest"),
        "{text}"
    );
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
        flat(&text).contains("average = 8000 / 3 = 2666.666; ratio = 2666.666 / 500 = 5.33"),
        "{text}"
    );
    assert!(
        flat(&text).contains("desired = ceil(5.33 × 3 ready) = 16"),
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
        flat(&text).contains("within the tolerance (0.9–1.1): stays at 10"),
        "{text}"
    );
    assert!(flat(&text).contains("findings: none"), "{text}");
}
