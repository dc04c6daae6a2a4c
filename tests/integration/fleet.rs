//! Fan-in at fleet size: one adapter in cluster mode scraping many exporters, each a page of
//! its own on a distinct loopback address ([`kubemind::sim::fleet`]), listed by the stand-in
//! API server with their nodes, the inference pods' Deployments and pods that carry no values.
//! The same setup drives `make bench` at 1,000 exporters (`benches/fleet.rs` includes this file);
//! the test runs 100 and checks that every exporter's values are served — each pod's, each
//! node's, each Deployment's aggregate — and that a value changed at one exporter arrives.
//! It prints how long that took, but asserts no timing: speed is `make bench`'s to measure.

use std::path::Path;
use std::time::{Duration, Instant};

use kubemind::process::ThreadPriority;
use kubemind::quantity::Quantity;
use kubemind::sim::fleet::{Fleet, FleetShape, pod_name};

use crate::fixtures::{AdapterClient, hpa_standin, start_cluster_adapter_binary};
use crate::standin::StandIn;
use crate::util::Process;

/// A fleet, the stand-in listing it, and one adapter scraping it.
pub struct FleetUnderTest {
    pub fleet: Fleet,
    pub adapter: Process,
    pub client: AdapterClient,
    _standin: StandIn,
    _dir: tempfile::TempDir,
}

/// Starts the fleet and an adapter scraping every exporter each `interval`; returns once the
/// adapter serves a value of the last exporter's last pod.
pub async fn start(shape: FleetShape, interval: &str) -> FleetUnderTest {
    start_binary(
        Path::new(env!("CARGO_BIN_EXE_kubemind")),
        shape,
        ThreadPriority::Normal,
        &["--exporter-interval", interval],
    )
    .await
}

/// [`start`] with another build of the adapter (the image's, in a bench), the fleet's thread
/// at `priority`, and these flags added to the adapter's.
pub async fn start_binary(
    binary: &Path,
    shape: FleetShape,
    priority: ThreadPriority,
    adapter_flags: &[&str],
) -> FleetUnderTest {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fleet = Fleet::start(shape, priority).expect("the fleet listens");
    let standin = hpa_standin();
    for (path, objects) in fleet.inventory() {
        standin.set_collection(path, objects);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = fleet.port.to_string();
    let mut flags = vec![
        "--exporter-port",
        &port,
        "--exporter-timeout",
        "900ms",
        "--max-age",
        "30s",
    ];
    flags.extend_from_slice(adapter_flags);
    let (adapter, _, client) = start_cluster_adapter_binary(binary, dir.path(), &standin, &flags);
    let last = shape.exporters - 1;
    crate::util::wait_for_async(
        Duration::from_secs(120),
        "the last exporter's values",
        || pending(&client, last, shape.pods - 1),
    )
    .await;
    FleetUnderTest {
        fleet,
        adapter,
        client,
        _standin: standin,
        _dir: dir,
    }
}

/// The path of pod `j` of exporter `i`'s `metric`.
pub fn pod_path(i: usize, j: usize, metric: &str) -> String {
    let (namespace, pod) = pod_name(i, j);
    format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/pods/{pod}/{metric}")
}

fn quantity(value: &serde_json::Value) -> Option<f64> {
    Quantity::parse(value.as_str()?).ok().map(|q| q.as_f64())
}

/// The pending requests the adapter serves for exporter `i`'s pod `j`.
pub async fn pending(client: &AdapterClient, i: usize, j: usize) -> Option<f64> {
    let (code, body) = client
        .get(pod_path(i, j, "triton_pending_requests"))
        .await?;
    quantity(&body["items"][0]["value"]).filter(|_| code == 200)
}

/// Changes pod `j`'s pending requests at exporter `i` to `value` and waits until the adapter
/// serves it: how long that took.
pub async fn change_and_wait(
    under_test: &FleetUnderTest,
    i: usize,
    j: usize,
    value: f64,
) -> Duration {
    under_test.fleet.set_pending(i, j, value);
    let changed = Instant::now();
    crate::util::wait_for_async(Duration::from_secs(60), "the changed value", || async {
        (pending(&under_test.client, i, j).await? == value).then_some(())
    })
    .await;
    changed.elapsed()
}

/// The `p`-th percentile of `durations` (sorted here).
pub fn percentile(durations: &mut [Duration], p: f64) -> Duration {
    durations.sort();
    let rank = ((durations.len() as f64 * p / 100.0).ceil() as usize).saturating_sub(1);
    durations.get(rank).copied().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_exporters_feed_one_adapter() {
    let shape = FleetShape {
        exporters: 100,
        gpus: 8,
        pods: 16,
        plain_pods: 1_000,
        plain_namespaces: 10,
        // half the fleet still runs an exporter that answers only Prometheus text
        text_only: 50,
    };
    let under_test = start(shape, "1s").await;
    let client = &under_test.client;

    // every exporter's pods, in every inference namespace
    for j in [0, 7, 15] {
        let path = format!(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/infer-{j}/pods/*/triton_pending_requests"
        );
        let items = crate::util::wait_for_async(Duration::from_secs(60), "every pod", || async {
            let (_, body) = client.get(path.clone()).await?;
            let items = body["items"].as_array()?.clone();
            (items.len() == shape.exporters).then_some(items)
        })
        .await;
        assert!(
            items
                .iter()
                .all(|item| quantity(&item["value"]) == Some(3.0))
        );
    }
    // pods with no values are listed by the API server but have no item
    let (code, body) = client
        .get(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/team-3/pods/*/triton_pending_requests"
                .into(),
        )
        .await
        .expect("answer");
    assert_eq!(
        (code, body["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    // each node's own values, from an exporter answering text (42) and one answering the compact
    // values form (77); each Deployment's aggregate over its ten pods
    for node in ["gpu-node-42", "gpu-node-77"] {
        let (code, body) = client
            .get(format!(
                "/apis/custom.metrics.k8s.io/v1beta2/nodes/{node}/gpu_utilization_percent"
            ))
            .await
            .expect("answer");
        assert_eq!(code, 200, "{body}");
        assert_eq!(quantity(&body["items"][0]["value"]), Some(53.5), "{body}");
    }
    let (code, body) = client
        .get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/infer-3/deployments.apps/triton-4/triton_pending_requests_sum".into())
        .await
        .expect("answer");
    assert_eq!(code, 200, "{body}");
    assert_eq!(quantity(&body["items"][0]["value"]), Some(30.0), "{body}");

    // a change at any one exporter arrives, whichever form it answers in (text below 50)
    let mut took = Vec::new();
    for (n, i) in [3, 97, 50, 11, 64, 28, 80, 5, 39, 72]
        .into_iter()
        .enumerate()
    {
        took.push(change_and_wait(&under_test, i, n % shape.pods, 1_000.0 + n as f64).await);
    }
    println!(
        "fleet of {}: a changed value served after p50 {} ms, max {} ms ({} pages served; adapter RSS {} MiB)",
        shape.exporters,
        percentile(&mut took, 50.0).as_millis(),
        percentile(&mut took, 100.0).as_millis(),
        under_test.fleet.scrapes(),
        kubemind::sim::process::status_kib(under_test.adapter.child_id(), "VmRSS:") / 1024
    );

    let telemetry = client.text("/metrics").await;
    let rounds = crate::util::series_value(
        &telemetry,
        "kubemind_adapter_exporter_scrape_round_duration_seconds_count ",
    );
    assert!(rounds >= 1.0, "{telemetry}");
}
