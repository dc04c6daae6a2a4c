//! `make bench`: the adapter's serving path against its budget (`docs/architecture.md`,
//! Performance budget).
//!
//! Starts the release `kubemind adapter --standalone` as its own process with 1,000 pods in one
//! namespace, then drives it from this process over TLS (the kubeconfig's client certificate),
//! on 127.0.0.1 only, bounded in request count and time:
//!
//! - latency: one connection, one request at a time (what one HPA sync sees), p50/p99;
//! - throughput: several keep-alive connections at once, requests per second and p99;
//! - memory: the adapter's resident set after the load (and its peak);
//! - the answer's time in the router alone, built from a snapshot just published and sent again
//!   from the answers kept; and how many reads the adapter sent a kept answer to (it re-reads
//!   its values file and publishes every second, so it builds the answer about once a second);
//! - the floor, as ratios: the same two measurements against a minimal rustls HTTPS server
//!   (this bench re-run as its own process) that answers every request with the adapter's own
//!   answer, prebuilt, after the same client-certificate check — what any server must spend to
//!   send that answer. Budget: ≥ 50 % of its throughput, p99 within 2× of its p99, both
//!   measured in the same run on the same machine.
//!
//! Every answer is checked for status and size, and every 20th (and all warm-up answers) to hold
//! exactly 1,000 items, so a fast error cannot pass for a fast answer.
//! Figures vary with the machine and its load; compare runs on one machine.

mod common;
#[allow(dead_code)]
#[path = "common/floor.rs"]
mod floor;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Bytes;

use common::{Credentials, Sender, connect, millis, percentile, verdict};

const PODS: usize = 1_000;
const LATENCY_REQUESTS: usize = 2_000;
const THROUGHPUT_CONNECTIONS: usize = 8;
const THROUGHPUT_REQUESTS: usize = 20_000;
const TIME_LIMIT: Duration = Duration::from_secs(20);
const PATH: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/bench/pods/%2A/triton_queue_time_ms?labelSelector=app%3Dtriton";

fn write_values(path: &Path) {
    let mut text = String::from("pods:\n");
    for i in 0..PODS {
        text.push_str(&format!(
            "  - {{namespace: bench, name: triton-{i:04}, labels: {{app: triton, shard: \"{}\"}}, metrics: {{triton_queue_time_ms: {}.{}, gpu_utilization_percent: {}}}}}\n",
            i % 7,
            i * 3,
            i % 10,
            i % 100
        ));
    }
    // pods in another namespace and with other labels, which the request must skip
    for i in 0..200 {
        text.push_str(&format!(
            "  - {{namespace: other, name: web-{i}, labels: {{app: web}}, metrics: {{triton_queue_time_ms: 1}}}}\n"
        ));
    }
    std::fs::write(path, text).expect("write values");
}

/// Sends one request and checks the answer (status and size always, every item when `count`);
/// returns its latency.
async fn request(sender: &mut Sender, count: bool) -> Duration {
    let start = Instant::now();
    let response = sender
        .send_request(common::get(PATH))
        .await
        .expect("response");
    let status = response.status();
    let body = common::body_of(response).await;
    let elapsed = start.elapsed();
    assert_eq!(
        status,
        200,
        "{}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    assert!(
        body.len() > PODS * 100,
        "an answer of {} bytes is too short",
        body.len()
    );
    if count {
        let items = memchr::memmem::find_iter(&body, b"\"describedObject\"").count();
        assert_eq!(items, PODS, "every matching pod, once");
    }
    elapsed
}

/// The mean time for the router alone to answer the request (no TLS, no socket), in this
/// process: built from a snapshot just published, and sent again to the same read of the same
/// snapshot.
struct InProcess {
    built: Duration,
    sent_again: Duration,
}

/// Measures [`InProcess`] over a few hundred publishes of `values`.
fn in_process_answer_time(values: &Path) -> InProcess {
    use kubemind::adapter::api::{self, Access, ApiState};
    use kubemind::adapter::sources::static_file::StaticMetrics;
    use kubemind::adapter::store::Readiness;
    use kubemind::adapter::store::Store;
    use tower::ServiceExt;
    let metrics = StaticMetrics::load(values).expect("values");
    let store = Arc::new(Store::new(Duration::from_secs(30)));
    let app = api::router(ApiState {
        store: store.clone(),
        telemetry: Arc::new(kubemind::adapter::telemetry::Telemetry::new()),
        readiness: Readiness::default(),
        access: Access::Open,
        external: None,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let read = || async {
        let request = hyper::Request::get(PATH)
            .body(axum::body::Body::empty())
            .expect("request");
        let start = Instant::now();
        let response = app.clone().oneshot(request).await.expect("infallible");
        let body = common::body_of(response).await;
        let elapsed = start.elapsed();
        assert!(body.len() > 100_000);
        elapsed
    };
    runtime.block_on(async {
        let rounds = 500;
        let (mut built, mut sent_again) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..rounds {
            // a new snapshot (as every publish makes) before the first read, none before the second
            store.publish(metrics.snapshot(std::time::SystemTime::now()));
            built += read().await;
            sent_again += read().await;
        }
        InProcess {
            built: built / rounds,
            sent_again: sent_again / rounds,
        }
    })
}

/// The floor serving `body` at [`PATH`] after the same client-certificate check, and a client
/// configuration for it presenting the kubeconfig's client certificate.
fn start_floor(
    dir: &Path,
    body: Bytes,
    kubeconfig: &kubemind::adapter::kubeconfig::Credentials,
) -> (floor::Floor, Credentials) {
    let floor = floor::start(dir, &[(PATH, body)], Some(&kubeconfig.ca_pem));
    let credentials = floor.credentials(kubeconfig);
    (floor, credentials)
}

/// What one server gave: one-connection latencies and loaded latencies, sorted, and throughput.
struct Run {
    latencies: Vec<Duration>,
    loaded: Vec<Duration>,
    throughput: f64,
}

/// Reads sent before measuring, to warm connections, caches and the allocator.
const WARM_UP_REQUESTS: usize = 200;

impl Run {
    /// Every read sent, warm-up included.
    fn reads(&self) -> usize {
        WARM_UP_REQUESTS + self.latencies.len() + self.loaded.len()
    }
}

/// One connection, one request at a time; then [`THROUGHPUT_CONNECTIONS`] at once.
async fn measure(credentials: &Credentials) -> Run {
    let mut sender = connect(credentials).await;
    for _ in 0..WARM_UP_REQUESTS {
        request(&mut sender, true).await;
    }
    let mut latencies = Vec::with_capacity(LATENCY_REQUESTS);
    let deadline = Instant::now() + TIME_LIMIT;
    while latencies.len() < LATENCY_REQUESTS && Instant::now() < deadline {
        latencies.push(request(&mut sender, false).await);
    }
    latencies.sort();

    let per_connection = THROUGHPUT_REQUESTS / THROUGHPUT_CONNECTIONS;
    let mut senders = Vec::new();
    for _ in 0..THROUGHPUT_CONNECTIONS {
        senders.push(connect(credentials).await);
    }
    let started = Instant::now();
    let deadline = started + TIME_LIMIT;
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(per_connection);
                while times.len() < per_connection && Instant::now() < deadline {
                    let count = times.len() % 20 == 0;
                    times.push(request(&mut sender, count).await);
                }
                times
            })
        })
        .collect();
    let mut loaded = Vec::new();
    for task in tasks {
        loaded.extend(task.await.expect("load task"));
    }
    let elapsed = started.elapsed();
    loaded.sort();
    Run {
        latencies,
        throughput: loaded.len() as f64 / elapsed.as_secs_f64(),
        loaded,
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if floor::serve_if_asked() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let values: PathBuf = dir.path().join("values.yaml");
    write_values(&values);
    let in_process = in_process_answer_time(&values);
    let (adapter, written) = common::start_standalone_adapter(dir.path(), &values);
    let pid = adapter.0.id();
    let credentials = Credentials::of(&written);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let adapter_run = runtime.block_on(measure(&credentials));
    // the adapter is measured first and alone; its memory is read before the floor starts
    let rss = kubemind::sim::process::status_kib(pid, "VmRSS:");
    let peak = kubemind::sim::process::status_kib(pid, "VmHWM:");
    let sent_again = runtime.block_on(common::answers_sent_again(&credentials));
    let body = runtime.block_on(common::fetch(&credentials, PATH));
    let (floor, floor_credentials) = start_floor(dir.path(), body.clone(), &written);
    let floor_run = runtime.block_on(measure(&floor_credentials));
    drop(floor);
    let (latencies, throughput, loaded) = (
        &adapter_run.latencies,
        adapter_run.throughput,
        &adapter_run.loaded,
    );
    let p50 = percentile(latencies, 0.50);
    let p99 = percentile(latencies, 0.99);
    let loaded_p99 = percentile(loaded, 0.99);
    println!();
    println!(
        "kubemind adapter: Pods request over {PODS} pods, HTTPS/1.1 with a client certificate, 127.0.0.1"
    );
    println!(
        "(load from a separate process on the same machine; {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("{:<46} {:>14}   budget", "figure", "measured");
    println!(
        "{:<46} {:>14}   {:<16}",
        "latency p50, 1 connection",
        millis(p50),
        ""
    );
    println!(
        "{:<46} {:>14}   {:<16} {}",
        "latency p99, 1 connection",
        millis(p99),
        "<= 1 ms",
        verdict(p99 <= Duration::from_millis(1))
    );
    println!(
        "{:<46} {:>14}   {:<16} {}",
        format!("throughput, {THROUGHPUT_CONNECTIONS} connections"),
        format!("{throughput:.0} req/s"),
        ">= 5000 req/s",
        verdict(throughput >= 5000.0)
    );
    println!(
        "{:<46} {:>14}   {:<16}",
        format!("latency p99 under that load ({} requests)", loaded.len()),
        millis(loaded_p99),
        ""
    );
    println!(
        "{:<46} {:>14}   {:<16}",
        "answer time in-process (router only, no TLS)",
        format!(
            "{} / {}",
            millis(in_process.built),
            millis(in_process.sent_again)
        ),
        "built / sent again"
    );
    println!(
        "{:<46} {:>14}   {:<16}",
        "  reads the adapter sent a kept answer to",
        format!("{sent_again} of {}", adapter_run.reads()),
        "(a publish a second)"
    );
    let floor_p99 = percentile(&floor_run.latencies, 0.99);
    let floor_loaded_p99 = percentile(&floor_run.loaded, 0.99);
    let share = throughput / floor_run.throughput;
    println!(
        "{:<46} {:>14}   {:<16}",
        format!("floor: minimal rustls server, {} B prebuilt", body.len()),
        "",
        ""
    );
    println!(
        "{:<46} {:>14}   {:<16}",
        "  floor latency p50 / p99, 1 connection",
        format!(
            "{} / {}",
            millis(percentile(&floor_run.latencies, 0.5)),
            millis(floor_p99)
        ),
        ""
    );
    println!(
        "{:<46} {:>14}   {:<16}",
        format!("  floor throughput, {THROUGHPUT_CONNECTIONS} connections"),
        format!("{:.0} req/s", floor_run.throughput),
        ""
    );
    println!(
        "{:<46} {:>14}   {:<16}",
        "  floor latency p99 under that load",
        millis(floor_loaded_p99),
        ""
    );
    println!(
        "{:<46} {:>14}   {:<16} {}",
        "adapter throughput / floor's",
        format!("{:.0} %", share * 100.0),
        ">= 50 %",
        verdict(share >= 0.5)
    );
    println!(
        "{:<46} {:>14}   {:<16} {}",
        "adapter p99 / floor's p99, under load",
        format!(
            "{:.2}x",
            loaded_p99.as_secs_f64() / floor_loaded_p99.as_secs_f64()
        ),
        "<= 2x",
        verdict(loaded_p99 <= floor_loaded_p99 * 2)
    );
    println!(
        "{:<46} {:>14}   {:<16} {}",
        "adapter p99 / floor's p99, 1 connection",
        format!("{:.2}x", p99.as_secs_f64() / floor_p99.as_secs_f64()),
        "<= 2x",
        verdict(p99 <= floor_p99 * 2)
    );
    println!(
        "{:<46} {:>14}   {:<16}",
        "adapter RSS after load (peak)",
        format!(
            "{:.1} MiB ({:.1})",
            rss as f64 / 1024.0,
            peak as f64 / 1024.0
        ),
        ""
    );
    println!();
}
