//! `make bench`: the two paths from a node to the HPA, side by side in one run, against the same
//! real Prometheus (Debian package), the real exporter (simulated NVML) and two adapters in
//! cluster mode on the stand-in API server (list/watch only; tests/integration/standin.rs):
//!
//! - **freshness**: a Triton pod's queue time changes on the node; how long until each adapter
//!   serves the new value — the direct path (exporter scraped every second) and the Prometheus
//!   path (Prometheus scraping every 5 s, kubemind's rules every 5 s);
//! - **serving**: p99 of a Pods request over 1,000 pods answered from kubemind's snapshot,
//!   against the query-per-request path prometheus-adapter takes: list the pods matching the
//!   selector from the API server (here the stand-in, far quicker than a real one), one PromQL
//!   query naming every pod (sent by POST so its length does not fail), and the answer turned
//!   into the same list.
//!
//! The Prometheus holds `BACKFILL_SERIES` (1,000,000) more series of the same metric across
//! 1,000 namespaces, written into its storage with `promtool tsdb create-blocks-from
//! openmetrics` before it starts, with samples up to that moment — so the per-request query,
//! over the `[5m]` window prometheus-adapter's default rules use, searches an index the size
//! of a production store's, as kubemind's background rules do (`0` leaves them out).
//!
//! Needs `prometheus` (and its `promtool`) and a C compiler on PATH. Figures vary with the machine; the ratio is the
//! point, and both sides run in the same minute on the same machine.

#[allow(dead_code)]
mod common;
#[path = "../tests/integration/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
#[path = "../tests/integration/prometheus_server.rs"]
#[allow(dead_code)]
mod prometheus_server;
#[path = "../tests/integration/standin.rs"]
#[allow(dead_code)]
mod standin;
#[path = "../tests/integration/util.rs"]
#[allow(dead_code)]
mod util;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{millis, percentile};
use fixtures::{
    AdapterClient, hpa_standin, pod, port_of, start_cluster_adapter, triton_page, triton_text,
    values,
};
use kubemind::sim::metrics_endpoint;
use prometheus_server::Prometheus;
use util::{Process, listening_address};

const PODS: usize = 1_000;
const CHANGES: u64 = 6;
const SNAPSHOT_REQUESTS: usize = 1_000;
const PER_REQUEST_QUERIES: usize = 100;

const ADAPTER_CONFIG: &str = r#"rules:
- seriesQuery: '{__name__=~"^http_requests_total$",namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^(.*)_total$", as: "${1}_per_second"}
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)'
"#;

fn application_page(scrape: u64) -> String {
    let mut page = String::from("# TYPE http_requests_total counter\n");
    for i in 0..PODS {
        page.push_str(&format!(
            "http_requests_total{{namespace=\"big\",pod=\"big-{i}\"}} {}\n",
            scrape * (i as u64 % 13 + 1)
        ));
    }
    page
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// What prometheus-adapter does for one Pods request: list the pods the selector matches, one
/// query naming every one of them, and the answer turned into the list.
async fn query_per_request(
    client: &prometheus_http_query::Client,
    http: &reqwest::Client,
    api_server: &str,
) -> usize {
    let list: Value = http
        .get(format!("{api_server}/api/v1/pods"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|pod| {
            pod["metadata"]["namespace"] == "big" && pod["metadata"]["labels"]["app"] == "big"
        })
        .filter_map(|pod| pod["metadata"]["name"].as_str())
        .collect();
    let pods = names.join("|");
    let query =
        format!("sum(rate(http_requests_total{{namespace=\"big\",pod=~\"{pods}\"}}[5m])) by (pod)");
    let answer = client
        .query(query)
        .post()
        .await
        .expect("Prometheus answers");
    let vector = answer.data().as_vector().expect("a vector");
    let items: Vec<Value> = vector
        .iter()
        .map(|row| {
            json!({
                "describedObject": {"kind": "Pod", "namespace": "big", "name": row.metric().get("pod"), "apiVersion": "/v1"},
                "metric": {"name": "http_requests_per_second", "selector": null},
                "timestamp": row.sample().timestamp(),
                "value": format!("{}", row.sample().value()),
            })
        })
        .collect();
    let body = serde_json::to_vec(&json!({"kind": "MetricValueList", "items": items}))
        .expect("serializes");
    assert!(!body.is_empty());
    items.len()
}

/// Writes `BACKFILL_SERIES` series of `http_requests_total` (1,000 per namespace `bulk-N`),
/// three samples each over the five minutes before now, into blocks in `storage`; how many.
fn backfill(storage: &std::path::Path) -> usize {
    use std::io::Write as _;
    let series: usize = std::env::var("BACKFILL_SERIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    if series == 0 {
        return 0;
    }
    let started = Instant::now();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let input = storage.with_extension("om");
    {
        let file = std::fs::File::create(&input).expect("backfill input");
        let mut out = std::io::BufWriter::new(file);
        writeln!(out, "# TYPE http_requests_total counter").expect("write");
        for (step, at) in [now - 300, now - 150, now - 1].into_iter().enumerate() {
            for n in 0..series {
                writeln!(
                    out,
                    "http_requests_total{{namespace=\"bulk-{}\",pod=\"bulk-{n}\"}} {} {at}",
                    n / 1_000,
                    (n % 97 + step * 150) as f64
                )
                .expect("write");
            }
        }
        writeln!(out, "# EOF").expect("write");
        out.flush().expect("write");
    }
    std::fs::create_dir_all(storage).expect("storage");
    let output = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
        .arg(&input)
        .arg(storage)
        .output()
        .expect("promtool runs (apt-get install prometheus)");
    assert!(
        output.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_file(&input);
    println!(
        "backfilled {series} series into Prometheus' storage in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    series
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("prometheus is not installed (apt-get install prometheus): skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");

    // the node: triton-0's queue time is what changes
    let queue_ms = Arc::new(AtomicU64::new(1000));
    // its counters grow as Triton's do: each scrape, 20 more requests queued for the queue time
    // of that moment (so a change shows in the next window, not retroactively)
    let triton_0 = {
        let queue_ms = queue_ms.clone();
        let counters = std::sync::Mutex::new((0u64, 0u64));
        metrics_endpoint::serve(move |_| {
            let mut counters = counters.lock().expect("lock");
            counters.0 += 20;
            counters.1 += 20 * queue_ms.load(Ordering::SeqCst) * 1000;
            triton_text(counters.0, counters.1, 400)
        })
        .expect("serves")
    };
    let idle = metrics_endpoint::serve(|n| triton_page(n, 0, 0)).expect("serves");
    let application = metrics_endpoint::serve(application_page).expect("serves");
    let library = kubemind::sim::nvml::build(dir.path()).expect("cc");
    std::fs::write(dir.path().join("nvml-sim.conf"), "").expect("no GPUs");
    let none = dir.path().join("none.sock");
    // the exporter collects every second (its default), as on a real node
    let exporter = Process::start(
        dir.path(),
        "exporter",
        &[
            "exporter",
            "--listen",
            "127.0.0.1:0",
            "--node-name",
            "gpu-node-1",
            "--nvml-lib",
            library.to_str().expect("utf-8"),
            "--pod-resources-socket",
            none.to_str().expect("utf-8"),
            "--no-pod-discovery",
            &format!("--static-target=triton:demo/triton-0={triton_0}"),
            &format!("--static-target=triton:demo/triton-1={idle}"),
            &format!("--static-target=triton:demo/triton-2={idle}"),
        ],
    );
    let exporter_url = format!(
        "http://{}/metrics",
        listening_address(&exporter, "serving /metrics")
    );
    let exporter_port = port_of(&exporter_url);
    let backfilled = backfill(&dir.path().join("tsdb"));
    let prometheus = Prometheus::start_with_interval(
        dir.path(),
        &[
            ("kubemind-exporter", &exporter_url),
            ("application", &application),
        ],
        "5s",
    );

    let standin = hpa_standin();
    let mut pods = standin.pods();
    for i in 0..PODS {
        pods.push(pod("big", &format!("big-{i}"), json!({"app": "big"}), None));
    }
    standin.set_pods(pods);
    let config = dir.path().join("adapter.yaml");
    std::fs::write(&config, ADAPTER_CONFIG).expect("config");
    // each adapter in a folder of its own: its certificate, kubeconfig and log
    let (direct_dir, via_dir) = (dir.path().join("direct"), dir.path().join("prometheus"));
    std::fs::create_dir_all(&direct_dir).expect("folder");
    std::fs::create_dir_all(&via_dir).expect("folder");
    let (_direct, _, direct) = start_cluster_adapter(
        &direct_dir,
        &standin,
        &["--sources", "exporters", "--exporter-port", &exporter_port],
    );
    let prometheus_url = prometheus.url();
    let (_via, _, via) = start_cluster_adapter(
        &via_dir,
        &standin,
        &[
            "--sources",
            "prometheus",
            "--prometheus-url",
            &prometheus_url,
            "--prometheus-config",
            config.to_str().expect("utf-8"),
            "--prometheus-interval",
            "5s",
        ],
    );

    println!("kubemind: the direct path and the Prometheus path, one run, same Prometheus");
    println!();

    // freshness: both adapters watched for the same change
    let triton_path =
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/triton-0/triton_queue_time_ms"
            .to_string();
    let read = |client: &AdapterClient| {
        let request = client.get(triton_path.clone());
        async move {
            let (code, body) = request.await?;
            (code == 200).then(|| values(&body).first().map(|(_, v)| v.clone()))?
        }
    };
    // wait until both serve the first value
    let first = "1k".to_string();
    let started = Instant::now();
    while read(&direct).await.as_ref() != Some(&first) || read(&via).await.as_ref() != Some(&first)
    {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no value within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut direct_times = Vec::new();
    let mut via_times = Vec::new();
    for change in 1..=CHANGES {
        let value = 1000 + change * 500;
        let expected = kubemind::quantity::format(value as f64)
            .expect("finite")
            .to_string();
        queue_ms.store(value, Ordering::SeqCst);
        let changed = Instant::now();
        let (mut direct_seen, mut via_seen) = (None, None);
        while direct_seen.is_none() || via_seen.is_none() {
            if direct_seen.is_none() && read(&direct).await.as_ref() == Some(&expected) {
                direct_seen = Some(changed.elapsed());
            }
            if via_seen.is_none() && read(&via).await.as_ref() == Some(&expected) {
                via_seen = Some(changed.elapsed());
            }
            assert!(
                changed.elapsed() < Duration::from_secs(60),
                "change {change} not served"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        direct_times.extend(direct_seen);
        via_times.extend(via_seen);
        // a pause of a different length each time, so that the changes land at phases spread
        // over the 5 s scrape and rule cycles (a fixed pause locks onto one phase)
        tokio::time::sleep(Duration::from_millis(1000 + 5000 * change / CHANGES)).await;
    }
    direct_times.sort();
    via_times.sort();
    println!("freshness: change on the node → value served ({CHANGES} changes)");
    println!(
        "  direct path (exporter 1 s, adapter scrape 1 s)    median {:>8}  max {:>8}   budget ≤ 2 s: {}",
        secs(percentile(&direct_times, 0.5)),
        secs(percentile(&direct_times, 1.0)),
        if percentile(&direct_times, 1.0) <= Duration::from_secs(2) {
            "within"
        } else {
            "OVER"
        }
    );
    println!(
        "  Prometheus path (scrape 5 s, rules every 5 s)     median {:>8}  max {:>8}   (prometheus-adapter: 15–40 s)",
        secs(percentile(&via_times, 0.5)),
        secs(percentile(&via_times, 1.0)),
    );
    println!();

    // serving: the snapshot against a query per request, same pods, same Prometheus
    let big_path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/big/pods/%2A/http_requests_per_second?labelSelector=app%3Dbig".to_string();
    let started = Instant::now();
    loop {
        if let Some((200, body)) = via.get(big_path.clone()).await
            && values(&body).len() == PODS
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "1,000 pods not served"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let client = prometheus_http_query::Client::from(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
        &prometheus.url(),
    )
    .expect("url");
    let http = reqwest::Client::new();
    let api_server = format!("http://{}", standin.address);
    let mut per_request = Vec::with_capacity(PER_REQUEST_QUERIES);
    for _ in 0..PER_REQUEST_QUERIES {
        let started = Instant::now();
        let items = query_per_request(&client, &http, &api_server).await;
        per_request.push(started.elapsed());
        assert_eq!(items, PODS);
    }
    // the snapshot, first beside the running Prometheus on the same two cores, then with
    // Prometheus frozen: in a cluster the store runs on machines of its own, and its
    // background work over a million series (head compaction, discovery's counts, garbage
    // collection) is no part of the adapter's answer; the frozen run also shows that the
    // answer does not wait on Prometheus at all
    let snapshot_beside = snapshot_requests(&via, &big_path).await;
    prometheus.freeze();
    let snapshot = snapshot_requests(&via, &big_path).await;
    prometheus.thaw();
    per_request.sort();
    let (snapshot_p99, per_request_p99) =
        (percentile(&snapshot, 0.99), percentile(&per_request, 0.99));
    let ratio = per_request_p99.as_secs_f64() / snapshot_p99.as_secs_f64();
    let ratio_beside =
        per_request_p99.as_secs_f64() / percentile(&snapshot_beside, 0.99).as_secs_f64();
    println!("serving: Pods request over {PODS} pods (HTTPS, one client, one request at a time)");
    println!(
        "  kubemind snapshot           p50 {:>10}  p99 {:>10}   ({SNAPSHOT_REQUESTS} requests, Prometheus frozen)",
        millis(percentile(&snapshot, 0.5)),
        millis(snapshot_p99)
    );
    println!(
        "  kubemind snapshot           p50 {:>10}  p99 {:>10}   ({SNAPSHOT_REQUESTS} requests, Prometheus running on the same cores)",
        millis(percentile(&snapshot_beside, 0.5)),
        millis(percentile(&snapshot_beside, 0.99))
    );
    println!(
        "  query per request           p50 {:>10}  p99 {:>10}   ({PER_REQUEST_QUERIES} × pod LIST + PromQL of ~8 KB by POST)",
        millis(percentile(&per_request, 0.5)),
        millis(per_request_p99),
    );
    println!("  Prometheus holding {backfilled} backfilled series besides the live ones");
    println!(
        "  ratio of p99s: {ratio:.0}× with the store on cores of its own, as in a cluster   budget ≥ 100×: {}",
        if ratio >= 100.0 { "within" } else { "BELOW" }
    );
    println!("  ratio of p99s: {ratio_beside:.0}× with the store on the same two cores");
}

/// `SNAPSHOT_REQUESTS` Pods requests over the 1,000 pods, one at a time, sorted by duration;
/// every fiftieth answer is checked to hold all the pods.
async fn snapshot_requests(adapter: &AdapterClient, path: &str) -> Vec<Duration> {
    let mut durations = Vec::with_capacity(SNAPSHOT_REQUESTS);
    for i in 0..SNAPSHOT_REQUESTS {
        let started = Instant::now();
        let body = adapter.bytes(path).await;
        durations.push(started.elapsed());
        if i % 50 == 0 {
            let list: Value = serde_json::from_slice(&body).expect("a list");
            assert_eq!(values(&list).len(), PODS);
        }
    }
    durations.sort();
    durations
}
