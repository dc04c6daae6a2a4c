//! The direct path end to end, every part real but the API server: scripted Triton endpoints →
//! the exporter binary (simulated NVML) → the adapter binary in cluster mode (caches from the
//! stand-in API server, exporters scraped every few hundred ms) → the HPA's requests, with a
//! bearer token reviewed by the stand-in. One Triton pod gets every request (an L4-pinned
//! connection): its queue time, the Deployment's `_max`, and `request_imbalance_ratio` 3 show it.

use std::time::Duration;

use crate::fixtures::{
    DEMO_PODS_PATH, hpa_standin, pinned_demo_pods, port_of, resource_names, start_cluster_adapter,
    start_demo_exporter, triton_page, values,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hpa_reads_what_the_exporters_measured() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");

    // the node: three Triton pods, one of which gets every request
    let (exporter, exporter_url) = start_demo_exporter(dir.path(), |n| triton_page(n, 20, 8000));
    let exporter_port = port_of(&exporter_url);

    // the API server's view of it, and the adapter in cluster mode
    let standin = hpa_standin();
    let (adapter, _, client) = start_cluster_adapter(
        dir.path(),
        &standin,
        &[
            "--exporter-port",
            &exporter_port,
            "--exporter-interval",
            "300ms",
            "--exporter-timeout",
            "200ms",
            "--max-age",
            "3s",
        ],
    );
    let get = |path: String| client.get(path);
    let pods = client.wait_for_demo_pods(Duration::from_secs(60)).await;
    assert_eq!(
        pods,
        pinned_demo_pods(),
        "adapter log:\n{}\nexporter log:\n{}",
        adapter.log(),
        exporter.log()
    );
    client.assert_pinned_demo_deployment().await;
    // the workloads (pod → ReplicaSet → Deployment, above), nodes and namespaces come from
    // lists of their metadata alone; pods are listed whole (their phase and IP are read)
    let metadata_lists = standin.metadata_lists();
    for path in [
        "/apis/apps/v1/replicasets",
        "/apis/apps/v1/deployments",
        "/apis/apps/v1/statefulsets",
        "/api/v1/nodes",
        "/api/v1/namespaces",
    ] {
        assert!(
            metadata_lists.iter().any(|listed| listed == path),
            "{path} not listed as metadata: {metadata_lists:?}"
        );
    }
    assert!(!metadata_lists.iter().any(|listed| listed == "/api/v1/pods"));
    let (_, body) = client
        .demo_deployment("triton_pending_requests_sum")
        .await
        .expect("answer");
    assert_eq!(values(&body), [("triton".to_string(), "400".to_string())]);
    // discovery lists the catalogue; the exporter pod and web-0 have no values and are not listed
    let (_, discovery) = get("/apis/custom.metrics.k8s.io/v1beta2".into())
        .await
        .expect("discovery");
    let names = resource_names(&discovery);
    for expected in [
        "pods/triton_queue_time_ms",
        "deployments.apps/triton_queue_time_ms_max",
        "deployments.apps/request_imbalance_ratio",
        "nodes/gpu_utilization_percent",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let (code, _) = get(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/web-0/triton_queue_time_ms"
            .into(),
    )
    .await
    .expect("answer");
    assert_eq!(code, 404, "a pod without values is not served as 0");
    let telemetry = client.text("/metrics").await;
    assert!(
        telemetry.contains(
            "kubemind_adapter_exporter_page_age_seconds{exporter=\"kubemind/kubemind-exporter-x1\"}"
        ),
        "{telemetry}"
    );
    assert!(
        telemetry.contains("kubemind_adapter_source_newest_value_age_seconds{source=\"exporter\"}")
    );
    let rounds = crate::util::series_value(
        &telemetry,
        "kubemind_adapter_exporter_scrape_round_duration_seconds_count ",
    );
    assert!(rounds >= 1.0, "scrape rounds timed: {telemetry}");

    // the exporter stops: after --max-age its pods' values are absent — never 0 — and the
    // Deployment's aggregates with them; discovery keeps answering 200 at once
    drop(exporter);
    crate::util::wait_for_async(
        Duration::from_secs(30),
        "values to turn absent after the exporter stopped",
        || async {
            let (code, body) = get(DEMO_PODS_PATH.to_string()).await?;
            (code == 200 && values(&body).is_empty()).then_some(())
        },
    )
    .await;
    let (code, body) = client
        .demo_deployment("triton_queue_time_ms_max")
        .await
        .expect("answer");
    assert_eq!(
        (code, body["reason"].as_str()),
        (404, Some("NotFound")),
        "{body}"
    );
    let started = std::time::Instant::now();
    let (code, _) = get("/apis/custom.metrics.k8s.io/v1beta2".into())
        .await
        .expect("discovery");
    assert_eq!(code, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
}
