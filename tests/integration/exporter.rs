//! `kubemind exporter` end to end: the real binary loading the simulated NVML through
//! nvml-wrapper, asking a real gRPC pod-resources server who holds which GPU, and scraping
//! inference endpoints whose counters advance on every scrape. Its page must hold the expected
//! per-pod values — queue time for a known Δqueue/Δsuccess, attribution, a counter reset, a
//! stalled pod, a dead target — and pass `promtool check metrics`.

use std::collections::HashMap;
use std::time::Duration;

use kubemind::promtext;
use kubemind::sim::kubelet::{Kubelet, pod};
use kubemind::sim::metrics_endpoint;

use crate::util::{start_exporter, start_node_exporter};

/// A Triton whose counters grow by 10 requests (50 ms queue, 25 ms compute each) per scrape,
/// and which restarts (counters back to zero) once `restart_after` scrapes were served.
fn triton_page(scrapes: u64, restart_after: u64, stalled: bool) -> String {
    let served = if stalled {
        3
    } else if scrapes > restart_after {
        scrapes - restart_after
    } else {
        scrapes
    };
    let success = served * 10;
    format!(
        "# TYPE nv_inference_request_success counter\n\
         nv_inference_request_success{{model=\"resnet\",version=\"1\",gpu_uuid=\"GPU-aaaa\"}} {}\n\
         nv_inference_request_success{{model=\"bert\",version=\"1\",gpu_uuid=\"GPU-aaaa\"}} {}\n\
         nv_inference_queue_duration_us{{model=\"resnet\",version=\"1\",gpu_uuid=\"GPU-aaaa\"}} {}\n\
         nv_inference_queue_duration_us{{model=\"bert\",version=\"1\",gpu_uuid=\"GPU-aaaa\"}} {}\n\
         nv_inference_compute_infer_duration_us{{model=\"resnet\",version=\"1\",gpu_uuid=\"GPU-aaaa\"}} {}\n\
         nv_inference_compute_infer_duration_us{{model=\"bert\",version=\"1\",gpu_uuid=\"GPU-aaaa\"}} {}\n\
         nv_inference_request_failure{{model=\"resnet\",version=\"1\",reason=\"REJECTED\"}} 0\n\
         nv_inference_pending_request_count{{model=\"resnet\",version=\"1\"}} {}\n",
        success / 2,
        success / 2,
        success / 2 * 50_000,
        success / 2 * 50_000,
        success / 2 * 25_000,
        success / 2 * 25_000,
        if stalled { 7 } else { 0 },
    )
}

fn vllm_page(scrapes: u64) -> String {
    format!(
        "vllm:num_requests_waiting{{model_name=\"llama\",engine=\"0\"}} 5\n\
         vllm:num_requests_running{{model_name=\"llama\",engine=\"0\"}} 3\n\
         vllm:kv_cache_usage_perc{{model_name=\"llama\",engine=\"0\"}} 0.8\n\
         vllm:request_queue_time_seconds_sum{{model_name=\"llama\",engine=\"0\"}} {}\n\
         vllm:request_queue_time_seconds_count{{model_name=\"llama\",engine=\"0\"}} {}\n",
        scrapes as f64 * 4.0 * 0.2,
        scrapes * 4,
    )
}

fn values(page: &str, name: &str) -> HashMap<String, f64> {
    let exposition = promtext::parse(page).expect("the exporter's page parses");
    exposition
        .samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| {
            let who = match (s.label("namespace"), s.label("pod")) {
                (Some(ns), Some(pod)) => format!("{ns}/{pod}"),
                _ => s.label("uuid").unwrap_or("node").to_string(),
            };
            (who, s.value)
        })
        .collect()
}

/// Asserts `page`'s `name` for `who` (namespace/pod, or the GPU UUID) is `expected`.
fn assert_value(page: &str, name: &str, who: &str, expected: f64) {
    let value = values(page, name).get(who).copied();
    assert!(
        value.is_some_and(|v| (v - expected).abs() < 1e-9),
        "{name} of {who}: {value:?}, expected {expected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_end_to_end() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let gib = 1u64 << 30;
    let (dir, library) = crate::nvml::simulated_gpus(&format!(
        "gpu GPU-aaaa 97 {} {} 350000 71\ngpu GPU-bbbb 4 {gib} {} 90000 40\ngpu GPU-mig0 0 0 {} 200000 50 mig\nmig MIG-cccc {gib} {}\n",
        40 * gib,
        80 * gib,
        80 * gib,
        80 * gib,
        10 * gib
    ));
    let socket = dir.path().join("kubelet.sock");
    let kubelet = Kubelet::default();
    kubelet.set(vec![
        pod("demo", "triton-0", "nvidia.com/gpu", &["GPU-aaaa"]),
        pod("demo", "vllm-0", "nvidia.com/gpu", &["GPU-bbbb"]),
        pod("ml", "small", "nvidia.com/mig-1g.10gb", &["MIG-cccc"]),
    ]);
    let _kubelet = kubelet.serve(&socket).expect("serves");
    let triton = metrics_endpoint::serve(|n| triton_page(n, 6, false)).expect("serves");
    let stalled = metrics_endpoint::serve(|n| triton_page(n, u64::MAX, true)).expect("serves");
    let vllm = metrics_endpoint::serve(vllm_page).expect("serves");
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/metrics", listener.local_addr().expect("address"))
    };
    let (_exporter, url) = start_node_exporter(
        dir.path(),
        &library,
        &socket,
        &[
            ("triton:demo/triton-0", &triton),
            ("triton:demo/stalled-0", &stalled),
            ("vllm:demo/vllm-0", &vllm),
            ("triton:demo/dead-0", &dead),
        ],
        &["--pod-resources-refresh", "200ms"],
    );
    let fetch = || {
        let url = url.clone();
        async move { reqwest::get(&url).await.ok()?.text().await.ok() }
    };
    // wait until the triton pod has been restarted and seen since
    let page = crate::util::wait_for_async(
        Duration::from_secs(60),
        "a complete page after the triton pod's restart",
        || async {
            let text = fetch().await?;
            let queue = values(&text, "kubemind_triton_queue_time_seconds");
            (queue.contains_key("demo/triton-0")
                && text.contains("kubemind_vllm_queue_time_seconds{"))
            .then_some(text)
        },
    )
    .await;

    assert_eq!(values(&page, "kubemind_nvml_up")["node"], 1.0);
    let gpu_util = values(&page, "kubemind_gpu_utilization_ratio");
    assert_eq!(gpu_util["demo/triton-0"], 0.97, "attributed to its pod");
    assert_eq!(gpu_util["demo/vllm-0"], 0.04);
    assert!(
        !page.contains("uuid=\"GPU-mig0\",namespace"),
        "a MIG-mode GPU has no utilization"
    );
    assert_eq!(
        values(&page, "kubemind_pod_gpu_utilization_ratio")["demo/triton-0"],
        0.97
    );
    assert_eq!(
        values(&page, "kubemind_pod_gpu_memory_used_bytes")["ml/small"],
        gib as f64,
        "MIG memory to its pod"
    );
    assert_eq!(
        values(&page, "kubemind_pod_gpu_memory_total_bytes")["demo/triton-0"],
        (80 * gib) as f64
    );

    // 10 requests per window that queued 50 ms each and computed 25 ms each
    let queue = values(&page, "kubemind_triton_queue_time_seconds");
    assert!((queue["demo/triton-0"] - 0.05).abs() < 1e-9, "{queue:?}");
    assert!(
        (values(&page, "kubemind_triton_queue_compute_ratio")["demo/triton-0"] - 2.0).abs() < 1e-9
    );
    assert!(values(&page, "kubemind_triton_request_rate")["demo/triton-0"] > 0.0);
    // pending and no completions: stalled, and no queue time at all rather than 0
    assert_eq!(
        values(&page, "kubemind_triton_stalled")["demo/stalled-0"],
        1.0
    );
    assert_eq!(
        values(&page, "kubemind_triton_pending_requests")["demo/stalled-0"],
        7.0
    );
    assert!(!queue.contains_key("demo/stalled-0"));
    let vllm_values = (
        values(&page, "kubemind_vllm_requests_waiting")["demo/vllm-0"],
        values(&page, "kubemind_vllm_kv_cache_usage_ratio")["demo/vllm-0"],
    );
    assert_eq!(vllm_values, (5.0, 0.8));
    assert!((values(&page, "kubemind_vllm_queue_time_seconds")["demo/vllm-0"] - 0.2).abs() < 1e-9);
    // the dead target: down, counted, and no values
    assert_eq!(
        values(&page, "kubemind_exporter_target_up")["demo/dead-0"],
        0.0
    );
    assert!(page.contains("kubemind_exporter_target_failures_total{namespace=\"demo\",pod=\"dead-0\",kind=\"triton\",node=\"gpu-node-1\",reason=\"connect\"}"));
    assert_eq!(
        values(&page, "kubemind_exporter_pod_resources_up")["node"],
        1.0
    );

    // keep watching past the restart (after 6 scrapes): the reset never shows as a spike or a gap
    let seen_after_restart = std::cell::Cell::new(0);
    crate::util::wait_for_async(
        Duration::from_secs(60),
        "ten pages after the restart",
        || {
            let (page, seen) = (fetch(), &seen_after_restart);
            async move {
                let text = page.await?;
                if let Some(q) =
                    values(&text, "kubemind_triton_queue_time_seconds").get("demo/triton-0")
                {
                    assert!((q - 0.05).abs() < 1e-9, "queue time {q} around the restart");
                    seen.set(seen.get() + 1);
                }
                (seen.get() > 10).then_some(())
            }
        },
    )
    .await;

    crate::util::assert_promtool_accepts(&page);
}

/// A server's documented page (`tests/data/`) as it reads after `scrapes` scrapes: every
/// counter and histogram family (by its `# TYPE` line) grown `scrapes` times, gauges as they are
/// — so each window's Δsum/Δcount is the file's sum/count.
fn advanced(page: &str, scrapes: u64) -> String {
    let growing: Vec<&str> = page
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .filter(|(_, kind)| matches!(kind.trim(), "counter" | "histogram" | "summary"))
        .map(|(name, _)| name)
        .collect();
    page.lines()
        .map(|line| {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let grows = !line.starts_with('#')
                && !line.contains("quantile=")
                && growing.iter().any(|family| {
                    name.strip_prefix(family).is_some_and(|rest| {
                        ["", "_sum", "_count", "_bucket", "_total"].contains(&rest)
                    })
                });
            match line.rsplit_once(' ') {
                Some((series, value)) if grows => {
                    let value: f64 = value.parse().expect("a sample value");
                    format!("{series} {}\n", value * scrapes as f64)
                }
                _ => format!("{line}\n"),
            }
        })
        .collect()
}

/// SGLang, TGI and TorchServe pages written from their documented formats, and home-grown
/// servers read through a mapping: the exporter gives each the server-neutral signals, with
/// values known from the pages; a mapping that does not parse, or names a series the page
/// lacks, fails that pod alone, on the page and in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_kind_end_to_end() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let library = crate::nvml::build_simulated_nvml(dir.path());
    std::fs::write(dir.path().join("nvml-sim.conf"), "").expect("no GPUs");
    let data = |file: &str| {
        std::fs::read_to_string(format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR")))
            .expect("sample page")
    };
    let serve =
        |page: String| metrics_endpoint::serve(move |n| advanced(&page, n)).expect("serves");
    let sglang = serve(data("sglang-metrics-sample.txt"));
    let tgi = serve(data("tgi-metrics-sample.txt"));
    let torchserve = serve(data("torchserve-metrics-sample.txt"));
    let home_grown = serve(
        "# TYPE app_queue_depth gauge\napp_queue_depth{stage=\"prefill\"} 4\napp_queue_depth{stage=\"decode\"} 40\n\
         # TYPE app_queue_wait_ms histogram\napp_queue_wait_ms_sum 1500\napp_queue_wait_ms_count 20\n\
         # TYPE app_requests counter\napp_requests_total 20\n"
            .to_string(),
    );
    let triton = metrics_endpoint::serve(|n| triton_page(n, u64::MAX, false)).expect("serves");
    let socket = dir.path().join("none.sock");
    let (exporter, url) = start_node_exporter(
        dir.path(),
        &library,
        &socket,
        &[
            ("sglang:llm/sglang-0", &sglang),
            ("tgi:llm/tgi-0", &tgi),
            ("torchserve:vision/torchserve-0", &torchserve),
            ("mapped:apps/home-grown", &home_grown),
            ("mapped:apps/bad-mapping", &home_grown),
            ("mapped:apps/missing-series", &home_grown),
            ("triton:demo/triton-0", &triton),
        ],
        &[
            "--static-mapping",
            "apps/home-grown=requests_waiting = gauge app_queue_depth{stage=\"prefill\"}; queue_time_seconds = histogram app_queue_wait_ms * 0.001; request_rate = counter app_requests_total",
            "--static-mapping",
            "apps/bad-mapping=queue_depth = gauge app_queue_depth",
            "--static-mapping",
            "apps/missing-series=requests_waiting = gauge app_queue_depth; request_rate = counter app_finished_total",
        ],
    );
    let page = crate::util::wait_for_async(
        Duration::from_secs(60),
        "queue times from every server",
        || async {
            let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
            let queue = values(&text, "kubemind_inference_queue_time_seconds");
            [
                "llm/sglang-0",
                "llm/tgi-0",
                "vision/torchserve-0",
                "apps/home-grown",
                "demo/triton-0",
            ]
            .iter()
            .all(|pod| queue.contains_key(*pod))
            .then_some(text)
        },
    )
    .await;
    // SGLang: 48 s waited by 160 requests; 9 waiting, 24 running, 62 % of the token pool
    assert_value(
        &page,
        "kubemind_inference_queue_time_seconds",
        "llm/sglang-0",
        0.3,
    );
    assert_value(
        &page,
        "kubemind_inference_requests_waiting",
        "llm/sglang-0",
        9.0,
    );
    assert_value(
        &page,
        "kubemind_inference_requests_running",
        "llm/sglang-0",
        24.0,
    );
    assert_value(
        &page,
        "kubemind_inference_kv_cache_usage_ratio",
        "llm/sglang-0",
        0.62,
    );
    // TGI: 36 s over 400 successful requests; queue 6, batch 32; no KV-cache gauge
    assert_value(
        &page,
        "kubemind_inference_queue_time_seconds",
        "llm/tgi-0",
        0.09,
    );
    assert_value(
        &page,
        "kubemind_inference_requests_waiting",
        "llm/tgi-0",
        6.0,
    );
    assert_value(
        &page,
        "kubemind_inference_requests_running",
        "llm/tgi-0",
        32.0,
    );
    assert!(!values(&page, "kubemind_inference_kv_cache_usage_ratio").contains_key("llm/tgi-0"));
    // TorchServe: (12.5 + 4.5) s of queue over 400 requests, both models; no depth gauge
    assert_value(
        &page,
        "kubemind_inference_queue_time_seconds",
        "vision/torchserve-0",
        0.0425,
    );
    assert!(
        !values(&page, "kubemind_inference_requests_waiting").contains_key("vision/torchserve-0")
    );
    // the mapped server: prefill depth only, 1,500 ms over 20 requests in ms scaled to seconds
    assert_value(
        &page,
        "kubemind_inference_requests_waiting",
        "apps/home-grown",
        4.0,
    );
    assert_value(
        &page,
        "kubemind_inference_queue_time_seconds",
        "apps/home-grown",
        0.075,
    );
    // Triton gives the neutral series too: 50 ms each, nothing pending
    assert_value(
        &page,
        "kubemind_inference_queue_time_seconds",
        "demo/triton-0",
        0.05,
    );
    assert_value(
        &page,
        "kubemind_inference_requests_waiting",
        "demo/triton-0",
        0.0,
    );
    for pod in [
        "llm/sglang-0",
        "llm/tgi-0",
        "vision/torchserve-0",
        "apps/home-grown",
    ] {
        assert!(
            values(&page, "kubemind_inference_request_rate")[pod] > 0.0,
            "{pod} finishes requests"
        );
    }
    assert!(
        page.contains("kubemind_inference_queue_time_seconds{namespace=\"llm\",pod=\"sglang-0\",node=\"gpu-node-1\",kind=\"sglang\"}"),
        "labelled with the server's kind"
    );
    assert!(
        !page.contains("kubemind_vllm_requests_waiting{namespace=\"llm\""),
        "vLLM's own series are for vLLM only"
    );
    // the two bad mappings: down, with their reason, and said in the log with the pod
    let up = values(&page, "kubemind_exporter_target_up");
    for (pod, reason) in [
        ("bad-mapping", "mapping"),
        ("missing-series", "missing_series"),
    ] {
        assert_eq!(up[&format!("apps/{pod}")], 0.0, "{pod}");
        assert!(
            page.contains(&format!("kubemind_exporter_target_failures_total{{namespace=\"apps\",pod=\"{pod}\",kind=\"mapped\",node=\"gpu-node-1\",reason=\"{reason}\"}}")),
            "{pod} fails with {reason}"
        );
    }
    let log = exporter.log();
    assert!(
        log.lines()
            .any(|l| l.contains("bad-mapping") && l.contains("\"queue_depth\" is not a signal")),
        "the log names the pod and the problem: {log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("missing-series") && l.contains("app_finished_total")),
        "the log names the missing series: {log}"
    );
    assert_eq!(
        log.matches("bad-mapping").count(),
        1,
        "said once, not at every scrape: {log}"
    );
}

/// GPM end to end: the exporter binary, the simulated NVML's scripted GPM counters, the
/// kubelet naming a MIG instance as GKE does (`nvidia2/gi5`): per-GPU, per-instance and per-pod
/// activity exact, the GPU without GPM flagged and without activity series, logged once, and
/// the adapter reading the page into the catalogue's `gpu_*_percent` for pods and the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpm_activity_end_to_end() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let gib = 1u64 << 30;
    let (dir, library) = crate::nvml::simulated_gpus(&format!(
        "gpu GPU-hopper 100 {} {} 600000 70\ngpm 12 8.5 3.25 40\n\
             gpu GPU-ampere 95 {} {} 300000 65\n\
             gpu GPU-migh 0 0 {} 200000 50 mig\ngpm 50 30 20 10\nmig MIG-aaaa {gib} {} 5\ngpm 70 35 60 25\n",
        40 * gib,
        80 * gib,
        20 * gib,
        80 * gib,
        80 * gib,
        10 * gib
    ));
    let socket = dir.path().join("kubelet.sock");
    let kubelet = Kubelet::default();
    kubelet.set(vec![
        pod("llm", "vllm-0", "nvidia.com/gpu", &["GPU-hopper"]),
        pod("legacy", "old-0", "nvidia.com/gpu", &["GPU-ampere"]),
        pod("small", "gke-0", "nvidia.com/gpu", &["nvidia2/gi5"]),
    ]);
    let _kubelet = kubelet.serve(&socket).expect("serves");
    let (exporter, url) = start_node_exporter(
        dir.path(),
        &library,
        &socket,
        &[],
        &["--pod-resources-refresh", "200ms"],
    );
    let page = crate::util::wait_for_async(
        Duration::from_secs(60),
        "GPM activity attributed to the pods",
        || async {
            let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
            let pods = values(&text, "kubemind_pod_gpu_sm_active_ratio");
            (pods.contains_key("llm/vllm-0") && pods.contains_key("small/gke-0")).then_some(text)
        },
    )
    .await;
    assert_value(&page, "kubemind_gpu_sm_active_ratio", "llm/vllm-0", 0.12);
    assert_value(
        &page,
        "kubemind_gpu_sm_occupancy_ratio",
        "llm/vllm-0",
        0.085,
    );
    assert_value(
        &page,
        "kubemind_gpu_tensor_active_ratio",
        "llm/vllm-0",
        0.0325,
    );
    assert_value(&page, "kubemind_gpu_dram_active_ratio", "llm/vllm-0", 0.4);
    assert_value(&page, "kubemind_gpu_utilization_ratio", "llm/vllm-0", 1.0);
    assert_value(
        &page,
        "kubemind_pod_gpu_sm_active_ratio",
        "llm/vllm-0",
        0.12,
    );
    assert_value(&page, "kubemind_mig_sm_active_ratio", "small/gke-0", 0.7);
    assert_value(
        &page,
        "kubemind_pod_gpu_sm_active_ratio",
        "small/gke-0",
        0.7,
    );
    assert_value(
        &page,
        "kubemind_pod_gpu_tensor_active_ratio",
        "small/gke-0",
        0.6,
    );
    assert_value(
        &page,
        "kubemind_pod_gpu_memory_used_bytes",
        "small/gke-0",
        gib as f64,
    );
    assert_value(&page, "kubemind_gpm_supported", "llm/vllm-0", 1.0);
    assert_value(&page, "kubemind_gpm_supported", "legacy/old-0", 0.0);
    for name in [
        "kubemind_gpu_sm_active_ratio",
        "kubemind_pod_gpu_sm_active_ratio",
        "kubemind_pod_gpu_tensor_active_ratio",
    ] {
        assert!(
            !values(&page, name).contains_key("legacy/old-0"),
            "{name}: a GPU without GPM has no activity, not 0"
        );
    }
    let log = exporter.log();
    assert_eq!(
        log.matches("no GPM:").count(),
        1,
        "the GPU without GPM is logged once: {log}"
    );
    assert!(log.contains("GPU-ampere"), "{log}");

    // the adapter's reading of this page
    let read = kubemind::exporter_page::read(&page, 100_000).expect("reads");
    let pod = &read.pods[&("llm".to_string(), "vllm-0".to_string())];
    assert!(
        (pod["gpu_sm_active_percent"] - 12.0).abs() < 1e-9,
        "{pod:?}"
    );
    assert!((pod["gpu_utilization_percent"] - 100.0).abs() < 1e-9);
    let mig_pod = &read.pods[&("small".to_string(), "gke-0".to_string())];
    assert!(
        (mig_pod["gpu_dram_active_percent"] - 25.0).abs() < 1e-9,
        "{mig_pod:?}"
    );
    // the node: the mean over the GPUs with GPM (12 % and 50 %), not counting the one without
    assert!(
        (read.node_values["gpu_sm_active_percent"] - 31.0).abs() < 1e-9,
        "{:?}",
        read.node_values
    );

    // the adapter asks for the same in the compact values form and gets it; a scraper that does
    // not ask (Prometheus) gets text
    let asked = reqwest::Client::new()
        .get(&url)
        .header("Accept", kubemind::exporter_page::ACCEPT_VALUES_OR_TEXT)
        .send()
        .await
        .expect("answers");
    let content_type = asked.headers()["content-type"].to_str().expect("ASCII");
    assert!(
        kubemind::exporter_page::is_values(content_type),
        "{content_type}"
    );
    assert_eq!(asked.headers()["vary"], "Accept");
    let body = asked.bytes().await.expect("body");
    assert!(body.len() * 4 < page.len(), "{} bytes", body.len());
    let compact =
        kubemind::exporter_page::ExporterPage::from_values_json(&body, 100_000).expect("reads");
    assert_eq!(compact.node, read.node);
    assert_eq!(compact.pods, read.pods);
    assert_eq!(compact.node_values, read.node_values);
    let plain = reqwest::get(&url).await.expect("answers");
    assert!(
        plain.headers()["content-type"]
            .to_str()
            .expect("ASCII")
            .starts_with("text/plain")
    );

    crate::util::assert_promtool_accepts(&page);
}

/// `--per-process` on a time-sliced GPU: NVML's compute processes (scripted in the simulated
/// library) attributed to pods through a fake host `/proc` — each PID's cgroup in one of the
/// kubelet's layouts — and the node's pods' UIDs from the stand-in API server. Each pod gets
/// exactly its own processes' SM time and memory; a host process is nobody's; the whole-GPU
/// series stay as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_process_shares_of_a_time_sliced_gpu() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let gib = 1u64 << 30;
    let (dir, library) = crate::nvml::simulated_gpus(&format!(
        "gpu GPU-shared 100 {} {} 600000 70\n\
             proc 4100 35 {} \nproc 4101 5 {}\nproc 4200 50 {}\nproc 1 3 {gib}\n",
        33 * gib,
        80 * gib,
        10 * gib,
        2 * gib,
        20 * gib
    ));
    const UID_A: &str = "0b6e3f1c-9a2d-4c57-8e10-3d4f5a6b7c8d";
    const UID_B: &str = "7f2a9c4e-1b3d-4e6f-a5c7-9d0e1f2a3b4c";
    const CONTAINER: &str = "4c9e3b0d7a5f1e2c8b6a9d0f3e7c1b5a2d8f6e4c0b9a7d3f1e5c2b8a6d4f0e9c";
    let proc_root = dir.path().join("proc");
    for (pid, cgroup) in [
        // pod A: cgroup v2, systemd driver, containerd
        (
            4100,
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CONTAINER}.scope\n",
                UID_A.replace('-', "_")
            ),
        ),
        (
            4101,
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CONTAINER}.scope\n",
                UID_A.replace('-', "_")
            ),
        ),
        // pod B: cgroup v1, cgroupfs driver
        (
            4200,
            format!("12:pids:/kubepods/besteffort/pod{UID_B}/{CONTAINER}\n1:name=systemd:/\n"),
        ),
        // a host process
        (1, "0::/init.scope\n".to_string()),
    ] {
        let path = proc_root.join(pid.to_string());
        std::fs::create_dir_all(&path).expect("fake /proc");
        std::fs::write(path.join("cgroup"), cgroup).expect("cgroup");
    }
    let socket = dir.path().join("kubelet.sock");
    let kubelet = Kubelet::default();
    kubelet.set(vec![
        pod("ml", "llm-a", "nvidia.com/gpu", &["GPU-shared::1"]),
        pod("ml", "llm-b", "nvidia.com/gpu", &["GPU-shared::2"]),
    ]);
    let _kubelet = kubelet.serve(&socket).expect("serves");
    let standin = crate::standin::StandIn::start(Default::default(), vec![], Default::default());
    let api_pod = |name: &str, uid: &str| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ml", "uid": uid, "resourceVersion": "7"},
            "spec": {"nodeName": "gpu-node-1", "containers": [{"name": "server", "image": "vllm"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.9"},
        })
    };
    standin.set_pods(vec![api_pod("llm-a", UID_A), api_pod("llm-b", UID_B)]);
    let kubeconfig = standin.kubeconfig(dir.path());
    let (_exporter, url) = start_exporter(
        dir.path(),
        &library,
        &[
            "--pod-resources-socket",
            socket.to_str().expect("utf-8"),
            "--pod-resources-refresh",
            "200ms",
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8"),
            "--per-process",
            "--proc-root",
            proc_root.to_str().expect("utf-8"),
        ],
    );
    let page =
        crate::util::wait_for_async(Duration::from_secs(60), "both pods' shares", || async {
            let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
            let shares = values(&text, "kubemind_pod_gpu_sm_share_ratio");
            (shares.contains_key("ml/llm-a") && shares.contains_key("ml/llm-b")).then_some(text)
        })
        .await;
    assert_value(&page, "kubemind_pod_gpu_sm_share_ratio", "ml/llm-a", 0.40);
    assert_value(&page, "kubemind_pod_gpu_sm_share_ratio", "ml/llm-b", 0.50);
    assert_value(
        &page,
        "kubemind_pod_gpu_process_memory_bytes",
        "ml/llm-a",
        (12 * gib) as f64,
    );
    assert_value(
        &page,
        "kubemind_pod_gpu_process_memory_bytes",
        "ml/llm-b",
        (20 * gib) as f64,
    );
    assert_eq!(
        values(&page, "kubemind_pod_gpu_sm_share_ratio").len(),
        2,
        "the host process is nobody's"
    );
    // the whole-GPU view is unchanged: both pods see the GPU at 100 %
    assert_value(&page, "kubemind_pod_gpu_utilization_ratio", "ml/llm-a", 1.0);
    assert_value(&page, "kubemind_pod_gpu_utilization_ratio", "ml/llm-b", 1.0);
    let read = kubemind::exporter_page::read(&page, 100_000).expect("reads");
    let a = &read.pods[&("ml".to_string(), "llm-a".to_string())];
    assert!((a["gpu_sm_share_percent"] - 40.0).abs() < 1e-9, "{a:?}");
    assert!((a["gpu_utilization_percent"] - 100.0).abs() < 1e-9, "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotated_pods_on_the_node_are_discovered() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let library = crate::nvml::build_simulated_nvml(dir.path());
    std::fs::write(dir.path().join("nvml-sim.conf"), "").expect("no GPUs");
    let triton = metrics_endpoint::serve(|n| triton_page(n, u64::MAX, false)).expect("serves");
    let port = triton
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .expect("port")
        .to_string();
    let standin = crate::standin::StandIn::start(Default::default(), vec![], Default::default());
    let pod = |name: &str, annotations: serde_json::Value| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "demo", "uid": name, "resourceVersion": "7", "annotations": annotations},
            "spec": {"nodeName": "gpu-node-1", "containers": [{"name": "server", "image": "triton"}]},
            "status": {"phase": "Running", "podIP": "127.0.0.1"},
        })
    };
    standin.set_pods(vec![
        pod("triton-annotated", serde_json::json!({"kubemind.io/scrape": "triton", "kubemind.io/port": port, "kubemind.io/path": "/metrics"})),
        pod("plain", serde_json::json!({})),
    ]);
    let kubeconfig = standin.kubeconfig(dir.path());
    let none = dir.path().join("none.sock");
    let (_exporter, url) = start_exporter(
        dir.path(),
        &library,
        &[
            "--pod-resources-socket",
            none.to_str().expect("utf-8"),
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8"),
        ],
    );
    let page = crate::util::wait_for_async(
        Duration::from_secs(60),
        "the annotated pod to be scraped",
        || async {
            let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
            values(&text, "kubemind_triton_queue_time_seconds")
                .contains_key("demo/triton-annotated")
                .then_some(text)
        },
    )
    .await;
    let up = values(&page, "kubemind_exporter_target_up");
    assert_eq!(up.get("demo/triton-annotated"), Some(&1.0));
    assert!(
        !up.contains_key("demo/plain"),
        "pods without the annotation are not scraped"
    );
    assert!(
        standin
            .pod_field_selectors()
            .iter()
            .all(|s| s == "spec.nodeName=gpu-node-1"),
        "{:?}",
        standin.pod_field_selectors()
    );
    assert!(!standin.pod_field_selectors().is_empty());
}

#[tokio::test]
async fn a_target_with_thousands_of_models_is_refused_not_held() {
    use kubemind::exporter::servers::scrape::{FailureReason, Scraper, ServerKind, Target};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let huge = metrics_endpoint::serve(|_| {
        (0..50_000)
            .map(|i| format!("nv_inference_request_success{{model=\"m{i}\",version=\"1\"}} 1\n"))
            .collect()
    })
    .expect("serves");
    let normal = metrics_endpoint::serve(|n| triton_page(n, u64::MAX, false)).expect("serves");
    let target = |pod: &str, url: &str| Target::new("demo", pod, ServerKind::Triton, url);
    let targets = [target("huge", &huge), target("normal", &normal)];
    let mut scraper = Scraper::new(Duration::from_secs(5), 10_000).expect("client");
    for _ in 0..3 {
        let reports = scraper.scrape_all(&targets).await;
        let huge = reports
            .iter()
            .find(|r| r.target.pod == "huge")
            .expect("report");
        assert!(!huge.up);
        assert!(huge.signals.is_none());
        assert!(huge.failures.contains_key(&FailureReason::Cardinality));
        assert!(
            reports
                .iter()
                .find(|r| r.target.pod == "normal")
                .expect("report")
                .up,
            "the other target is unaffected"
        );
    }
}
