//! The Grafana dashboards: their structure (a datasource variable every panel uses, unique
//! panel ids, a 24-column grid), and every query of every panel and variable run against the
//! real Prometheus after it scraped the real exporter (simulated NVML, GPUs attributed through
//! the simulated kubelet, Triton and vLLM endpoints), the adapter in cluster mode (its own
//! /metrics over HTTPS with a bearer token), and a scripted page of the kube-state-metrics HPA
//! series (kube-state-metrics itself cannot run here). Each must return data.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fixtures::{
    DEMO_PODS_PATH, HPA_TOKEN, hpa_standin, pod, port_of, start_cluster_adapter, triton_page,
};
use crate::prometheus_server::Prometheus;
use crate::util::start_node_exporter;
use kubemind::sim::kubelet::{Kubelet, pod as kubelet_pod};
use kubemind::sim::metrics_endpoint;

const DASHBOARDS: &[&str] = &[
    "gpu-fleet.json",
    "inference-saturation.json",
    "hpa.json",
    "kubemind-health.json",
];

fn dashboard(name: &str) -> Value {
    let path = format!("{}/dashboards/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("JSON")
}

/// Every (dashboard, panel title, PromQL) with the variables set to match everything.
fn queries() -> Vec<(String, String, String)> {
    let mut queries = Vec::new();
    for name in DASHBOARDS {
        let board = dashboard(name);
        let instantiate = |expr: &str| {
            expr.replace("$__rate_interval", "1m")
                .replace("$node", ".*")
                .replace("$namespace", ".*")
                .replace("$hpa", ".*")
        };
        for panel in board["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("expr");
                queries.push((
                    name.to_string(),
                    panel["title"].as_str().unwrap_or_default().to_string(),
                    instantiate(expr),
                ));
            }
        }
        for variable in board["templating"]["list"].as_array().expect("variables") {
            if variable["type"] != "query" {
                continue;
            }
            // label_values(METRIC, LABEL): the metric must have the label
            let definition = instantiate(variable["definition"].as_str().expect("definition"));
            let inner = definition
                .strip_prefix("label_values(")
                .and_then(|d| d.strip_suffix(')'))
                .expect("label_values(metric, label)");
            let (metric, label) = inner.rsplit_once(',').expect("metric, label");
            queries.push((
                name.to_string(),
                format!("variable {}", variable["name"]),
                format!("count by ({}) ({})", label.trim(), metric.trim()),
            ));
        }
    }
    queries
}

#[test]
fn dashboards_are_well_formed() {
    for name in DASHBOARDS {
        let board = dashboard(name);
        assert!(
            board["uid"]
                .as_str()
                .is_some_and(|u| u.starts_with("kubemind-")),
            "{name}"
        );
        assert!(
            board["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("kubemind / ")),
            "{name}"
        );
        let variables = board["templating"]["list"].as_array().expect("variables");
        assert!(
            variables.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{name}: the datasource is a variable"
        );
        let mut ids = BTreeSet::new();
        for panel in board["panels"].as_array().expect("panels") {
            let title = panel["title"].as_str().expect("title");
            assert!(
                ids.insert(panel["id"].as_i64().expect("id")),
                "{name}: duplicate id"
            );
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{name}/{title}"
            );
            assert!(
                panel["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{name}/{title}"
            );
            let grid = &panel["gridPos"];
            let (x, w) = (
                grid["x"].as_i64().expect("x"),
                grid["w"].as_i64().expect("w"),
            );
            assert!(
                x >= 0 && w > 0 && x + w <= 24,
                "{name}/{title}: off the grid"
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}/{title}");
            for target in targets {
                assert_eq!(
                    target["datasource"]["uid"], "${datasource}",
                    "{name}/{title}"
                );
                assert!(target["expr"].as_str().is_some_and(|e| !e.is_empty()));
            }
        }
    }
}

/// The HPA series kube-state-metrics exposes, for the demo's `triton` HPA.
fn kube_state_metrics_page(_: u64) -> String {
    let hpa = r#"namespace="demo",horizontalpodautoscaler="triton""#;
    format!(
        "kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}} 3\n\
         kube_horizontalpodautoscaler_status_desired_replicas{{{hpa}}} 6\n\
         kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}} 10\n\
         kube_horizontalpodautoscaler_spec_target_metric{{{hpa},metric_name=\"triton_queue_time_ms\",metric_target_type=\"average\"}} 500\n\
         kube_horizontalpodautoscaler_status_target_metric{{{hpa},metric_name=\"triton_queue_time_ms\",metric_target_type=\"average\"}} 2666\n"
    )
}

fn vllm_page(scrapes: u64) -> String {
    format!(
        "vllm:num_requests_waiting{{model_name=\"llama\"}} 5\n\
         vllm:num_requests_running{{model_name=\"llama\"}} 3\n\
         vllm:kv_cache_usage_perc{{model_name=\"llama\"}} 0.8\n\
         vllm:request_success_total{{model_name=\"llama\"}} {}\n\
         vllm:request_queue_time_seconds_sum{{model_name=\"llama\"}} {}\n\
         vllm:request_queue_time_seconds_count{{model_name=\"llama\"}} {}\n",
        scrapes * 4,
        scrapes as f64 * 4.0 * 0.2,
        scrapes * 4,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let library = crate::nvml::build_simulated_nvml(dir.path());
    let gib = 1u64 << 30;
    std::fs::write(
        dir.path().join("nvml-sim.conf"),
        format!(
            "gpu GPU-aaaa 97 {} {} 350000 71\ngpm 12 8.5 3.25 40\ngpu GPU-bbbb 4 {gib} {} 90000 40\n",
            40 * gib,
            80 * gib,
            80 * gib
        ),
    )
    .expect("nvml script");
    let socket = dir.path().join("kubelet.sock");
    let kubelet = Kubelet::default();
    kubelet.set(vec![
        kubelet_pod(
            "demo",
            "triton-7d4f9c8b5-aaaaa",
            "nvidia.com/gpu",
            &["GPU-aaaa"],
        ),
        kubelet_pod("demo", "vllm-0", "nvidia.com/gpu", &["GPU-bbbb"]),
    ]);
    let _kubelet = kubelet.serve(&socket).expect("serves");
    let busy = metrics_endpoint::serve(|n| triton_page(n, 20, 8000)).expect("serves");
    let idle = metrics_endpoint::serve(|n| triton_page(n, 0, 0)).expect("serves");
    let vllm = metrics_endpoint::serve(vllm_page).expect("serves");
    let kube_state_metrics = metrics_endpoint::serve(kube_state_metrics_page).expect("serves");
    let (exporter, exporter_url) = start_node_exporter(
        dir.path(),
        &library,
        &socket,
        &[
            ("triton:demo/triton-7d4f9c8b5-aaaaa", &busy),
            ("triton:demo/triton-7d4f9c8b5-bbbbb", &idle),
            ("vllm:demo/vllm-0", &vllm),
        ],
        &["--pod-resources-refresh", "200ms"],
    );
    let exporter_port = port_of(&exporter_url);

    // the adapter, reading that exporter, so its own /metrics has every series
    let standin = hpa_standin();
    let mut pods = standin.pods();
    pods.push(pod(
        "demo",
        "triton-7d4f9c8b5-aaaaa",
        json!({"app": "triton"}),
        None,
    ));
    standin.set_pods(pods);
    let (_adapter, address, client) =
        start_cluster_adapter(dir.path(), &standin, &["--exporter-port", &exporter_port]);

    let prometheus = Prometheus::start(
        dir.path(),
        &[
            ("kubemind-exporter", &exporter_url),
            ("kube-state-metrics", &kube_state_metrics),
        ],
    );
    // the adapter's /metrics, over HTTPS with a token, as the ServiceMonitor scrapes it
    prometheus.add_scrape_job(&format!(
        "- job_name: kubemind-adapter\n  scheme: https\n  tls_config: {{insecure_skip_verify: true}}\n  authorization: {{credentials: {HPA_TOKEN}}}\n  static_configs: [{{targets: ['{address}']}}]\n"
    ));

    let queries = queries();
    let started = Instant::now();
    let mut empty: Vec<&(String, String, String)>;
    loop {
        // HPA-style reads, so the adapter's latency histograms have samples
        let _ = client.get(DEMO_PODS_PATH.to_string()).await;
        empty = Vec::new();
        for query in &queries {
            if prometheus.query(&query.2).await.is_empty() {
                empty.push(query);
            }
        }
        if empty.is_empty() || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        empty.is_empty(),
        "queries without data after 60 s:\n{}\nprometheus log:\n{}",
        empty
            .iter()
            .map(|(board, panel, expr)| format!("  {board} / {panel}: {expr}"))
            .collect::<Vec<_>>()
            .join("\n"),
        prometheus.log()
    );
    drop(exporter);
}
