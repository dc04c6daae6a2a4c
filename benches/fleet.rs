//! Fan-in at fleet size (`make bench`): one adapter in cluster mode against the stand-in API
//! server, scraping `FLEET_EXPORTERS` (1,000) exporters every second — each a page of 8 GPUs
//! and 16 Triton pods on its own loopback address, all served by this process — with
//! `FLEET_PLAIN_PODS` (10,000) more pods that carry no values across 50 namespaces. The
//! simulated exporters stand for other machines, so their thread runs at idle priority and
//! gives way after each page: they share the two cores, but a thread of the adapter or of
//! this client that wakes goes first, and one waiting for a core waits at most a page. Over
//! `FLEET_SECONDS` (30) it measures, side by side in one run and against the budget:
//!
//! - freshness: a value changed at one exporter → served by the adapter, p50/p99 over 60
//!   changes (six at a time, at exporters spread over the fleet);
//! - the adapter's CPU scraping alone (10 s in which nothing asks it anything), then while it
//!   also answers the reads below; its RSS, and the duration of one scrape round (its own
//!   histogram);
//! - a Pods request over 1,000 pods, p50/p99, sent every 5 ms on one connection while the
//!   scraping runs, from a thread and runtime of its own (as an API server is a process of
//!   its own);
//! - then, for as long again while the adapter goes on scraping, the same reads sent to
//!   the floor instead: a minimal rustls server answering with the adapter's own answer,
//!   prebuilt. Its p99 is what these two shared cores allow any server while the fleet is
//!   scraped; the adapter's is printed against it as a ratio as well. The adapter's window
//!   also carries the freshness probes (a few small reads a second), the floor's does not.
//!
//! The RSS budget is stated for 10,000 pods and 100,000 values; the default fleet holds more
//! than twice that. `FLEET_EXPORTERS=500 FLEET_PLAIN_PODS=1500` is the budget's shape (10,000
//! pods, ~105,000 values).
//!
//! The adapter measured is the image's build (`target/dist/kubemind`, which `make bench` builds
//! first) where it was built from the current sources; the release build otherwise.
//!
//! The setup is the integration test's (`tests/integration/fleet.rs`), included here.

#[allow(dead_code)]
mod common;
#[path = "common/dist.rs"]
mod dist;
#[allow(dead_code)]
#[path = "../tests/integration/fixtures.rs"]
mod fixtures;
#[allow(dead_code)]
#[path = "../tests/integration/fleet.rs"]
mod fleet;
#[allow(dead_code)]
#[path = "common/floor.rs"]
mod floor;
#[allow(dead_code)]
#[path = "../tests/integration/standin.rs"]
mod standin;
#[allow(dead_code)]
#[path = "../tests/integration/util.rs"]
mod util;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kubemind::process::ThreadPriority;
use kubemind::sim::fleet::FleetShape;
use kubemind::sim::process::{cpu_seconds, status_kib};

use common::{millis, verdict};
use dist::dist_binary;
use fleet::{change_and_wait, percentile};

const PODS_READ: &str =
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/infer-0/pods/%2A/triton_pending_requests";
const CHANGES: usize = 60;
/// Seconds the adapter's CPU is measured with nothing but scraping.
const QUIET_SECONDS: u64 = 10;
const AT_ONCE: usize = 6;

fn from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Mean and the upper bound of the bucket holding the 99th percentile of a histogram on the
/// adapter's `/metrics`, over its series whose labels include `labels` (`""`: all of one series).
fn histogram(page: &str, name: &str, labels: &str) -> (f64, String) {
    let value = |line: &str| {
        line.rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let mut sum = 0.0;
    let mut count = 0.0;
    let mut buckets = Vec::new();
    for line in page.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !rest.contains(labels) {
            continue;
        }
        if let Some(rest) = rest.strip_prefix("_bucket{") {
            let bound = rest.split("le=\"").nth(1).unwrap_or_default();
            let bound = bound.split('"').next().unwrap_or_default().to_string();
            buckets.push((bound, value(line)));
        } else if rest.starts_with("_sum") {
            sum = value(line);
        } else if rest.starts_with("_count") {
            count = value(line);
        }
    }
    let p99 = buckets
        .iter()
        .find(|(_, n)| *n >= count * 0.99)
        .map_or_else(|| "?".into(), |(bound, _)| format!("≤ {bound} s"));
    (if count > 0.0 { sum / count } else { 0.0 }, p99)
}

/// Sends [`PODS_READ`] every 5 ms on one connection until `done`, from a thread and runtime
/// of its own, as the API server is a process of its own: the simulated fleet, the stand-in and
/// the freshness probes never hold up the reads' client. Each read's time; every answer must
/// hold more than `min_bytes`.
fn reads_apart(
    client: fixtures::AdapterClient,
    done: Arc<AtomicBool>,
    min_bytes: usize,
) -> std::thread::JoinHandle<Vec<Duration>> {
    util::on_a_runtime_of_its_own(async move {
        let mut took = Vec::new();
        while !done.load(Ordering::Relaxed) {
            let start = Instant::now();
            let body = client.bytes(PODS_READ).await;
            took.push(start.elapsed());
            assert!(body.len() > min_bytes, "{} bytes", body.len());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        took
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") || floor::serve_if_asked() {
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench());
}

async fn bench() {
    let shape = FleetShape {
        exporters: from_env("FLEET_EXPORTERS", 1_000),
        gpus: 8,
        pods: 16,
        plain_pods: from_env("FLEET_PLAIN_PODS", 10_000),
        plain_namespaces: 50,
        text_only: from_env("FLEET_TEXT_ONLY", 0),
    };
    // the exporters' own pods, the inference pods, the pods without values
    let pods = shape.exporters * (1 + shape.pods) + shape.plain_pods;
    let seconds = from_env("FLEET_SECONDS", 30) as u64;
    println!(
        "fleet: {} exporters × ({} GPUs, {} Triton pods) + {} pods without values in {} namespaces; adapter in cluster mode, --exporter-interval 1s",
        shape.exporters, shape.gpus, shape.pods, shape.plain_pods, shape.plain_namespaces
    );
    let release = PathBuf::from(env!("CARGO_BIN_EXE_kubemind"));
    let (binary, build) = match dist_binary(&release) {
        Some(dist) => (dist, "dist, the image's build"),
        None => (
            release,
            "release: `cargo build --profile dist` (make bench does) to measure the image's build",
        ),
    };
    println!("  adapter binary: {build}");
    let started = Instant::now();
    // the simulated exporters stand for a thousand other machines: here they take only the
    // cores the adapter and the reads leave idle, and their CPU is not the adapter's
    println!("  simulated exporters: one thread of this process at idle priority (SCHED_IDLE)");
    // the adapter as the shipped Deployment runs it
    let priority = common::background_priority();
    let flags = [
        "--exporter-interval",
        "1s",
        "--background-priority",
        &priority,
    ];
    println!("  adapter flags: --background-priority {priority} (the shipped Deployment's: idle)");
    let under_test =
        Arc::new(fleet::start_binary(&binary, shape, ThreadPriority::Idle, &flags).await);
    println!(
        "  every exporter's values served {:.1} s after start",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pid = under_test.adapter.child_id();

    // the cost of scraping alone: nothing else asks the adapter anything (an HPA asks once per
    // HorizontalPodAutoscaler every 15 s)
    let quiet = Instant::now();
    let cpu_quiet = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(QUIET_SECONDS)).await;
    let scraping_cores = (cpu_seconds(pid) - cpu_quiet) / quiet.elapsed().as_secs_f64();

    let generation = |page: &str| util::series_value(page, "kubemind_adapter_snapshot_generation ");
    let sent_again =
        |page: &str| util::series_value(page, "kubemind_adapter_answers_sent_again_total ");
    let telemetry_before = under_test.client.text("/metrics").await;
    let generation_before = generation(&telemetry_before);
    let sent_again_before = sent_again(&telemetry_before);
    let cpu_before = cpu_seconds(pid);
    let window = Instant::now();
    let scrapes_before = under_test.fleet.scrapes();
    let done = Arc::new(AtomicBool::new(false));
    let reads = reads_apart(
        under_test.client.apart(),
        done.clone(),
        100 * shape.exporters,
    );
    // RSS each second
    let rss = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(status_kib(pid, "VmRSS:"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            peak
        })
    };
    // changes, six at a time, at exporters spread over the fleet
    let mut freshness = Vec::new();
    for batch in 0..CHANGES / AT_ONCE {
        let changes = (0..AT_ONCE).map(|k| {
            let n = batch * AT_ONCE + k;
            let i = (n * 7919) % shape.exporters;
            let under_test = under_test.clone();
            // at a time unrelated to the scrape schedule
            let phase = Duration::from_millis((n as u64 * 389) % 1_000);
            async move {
                tokio::time::sleep(phase).await;
                change_and_wait(&under_test, i, n % shape.pods, 10_000.0 + n as f64).await
            }
        });
        freshness.extend(futures::future::join_all(changes).await);
    }
    let left = Duration::from_secs(seconds).saturating_sub(window.elapsed());
    tokio::time::sleep(left).await;
    done.store(true, Ordering::Relaxed);
    let elapsed = window.elapsed().as_secs_f64();
    let pages_served = under_test.fleet.scrapes() - scrapes_before;
    let cores = (cpu_seconds(pid) - cpu_before) / elapsed;
    let mut reads = reads.join().expect("reads");
    let peak_rss = rss.await.expect("rss") as f64 / 1024.0;
    let telemetry = under_test.client.text("/metrics").await;
    let (round_mean, round_p99) = histogram(
        &telemetry,
        "kubemind_adapter_exporter_scrape_round_duration_seconds",
        "",
    );
    let (assembly_mean, assembly_p99) = histogram(
        &telemetry,
        "kubemind_adapter_snapshot_assembly_duration_seconds",
        "",
    );
    // the adapter's own view of its custom-metric reads: from request to answer, without the
    // TLS write, the network or the load generator's own wait for the CPU
    let (_, server_p99) = histogram(
        &telemetry,
        "kubemind_adapter_request_duration_seconds",
        "route=\"custom\",code=\"200\"",
    );
    let values = util::series_value(&telemetry, "kubemind_adapter_snapshot_samples ");
    let sent_again = sent_again(&telemetry) - sent_again_before;
    let publishes = generation(&telemetry) - generation_before;

    // the floor: the same reads of the same answer from a minimal server, the adapter scraping
    let answer = hyper::body::Bytes::from(under_test.client.bytes(PODS_READ).await);
    let dir = tempfile::tempdir().expect("tempdir");
    let floor = floor::start(dir.path(), &[(PODS_READ, answer)], None);
    let floor_client =
        fixtures::AdapterClient::new(&floor.address, &floor.certificate_pem, fixtures::HPA_TOKEN);
    let floor_done = Arc::new(AtomicBool::new(false));
    let floor_reads = reads_apart(floor_client, floor_done.clone(), 100 * shape.exporters);
    // as long as the adapter's window, so both p99s rest on as many reads
    tokio::time::sleep(Duration::from_secs_f64(elapsed)).await;
    floor_done.store(true, Ordering::Relaxed);
    let mut floor_reads = floor_reads.join().expect("the floor's reads");
    drop(floor);

    let (fresh_p50, fresh_p99) = (
        percentile(&mut freshness, 50.0),
        percentile(&mut freshness, 99.0),
    );
    let (read_p50, read_p99) = (percentile(&mut reads, 50.0), percentile(&mut reads, 99.0));
    println!(
        "  over {elapsed:.0} s ({} pages served, {values:.0} values in the adapter's snapshot):",
        pages_served
    );
    println!(
        "  freshness, change → served ({CHANGES} changes): p50 {}  p99 {}   budget p99 ≤ 2 s: {}",
        millis(fresh_p50),
        millis(fresh_p99),
        verdict(fresh_p99 <= Duration::from_secs(2))
    );
    println!(
        "  adapter CPU scraping ({QUIET_SECONDS} s with no requests): {:.1} % of one core   budget ≤ 20 %: {}",
        scraping_cores * 100.0,
        verdict(scraping_cores <= 0.2)
    );
    println!(
        "    and over those {elapsed:.0} s, answering a Pods request every 5 ms besides: {:.1} %",
        cores * 100.0,
    );
    println!(
        "  adapter RSS: peak {peak_rss:.1} MiB with {pods} pods and {values:.0} values   budget ≤ 40 MiB with 10,000 pods and ≥ 100,000 values: {}",
        verdict(peak_rss <= 40.0)
    );
    println!(
        "  scrape round: mean {:.0} ms, p99 {round_p99}; snapshots published: {:.1} a second, assembled in {:.1} ms mean, p99 {assembly_p99}",
        round_mean * 1000.0,
        publishes / elapsed,
        assembly_mean * 1000.0
    );
    println!(
        "  Pods request over {} pods while scraping ({} reads): p50 {}  p99 {}   budget p99 ≤ 1 ms: {}",
        shape.exporters,
        reads.len(),
        millis(read_p50),
        millis(read_p99),
        verdict(read_p99 <= Duration::from_millis(1))
    );
    println!("    the same reads as the adapter's own histogram sees them: p99 {server_p99}");
    println!(
        "    custom reads (these and the freshness probes) answered with an answer kept from an identical read: {}",
        sent_again as u64
    );
    let floor_p99 = percentile(&mut floor_reads, 99.0);
    println!(
        "    the same reads from the floor, a minimal server with the answer prebuilt, while the adapter scrapes ({} reads): p50 {}  p99 {}",
        floor_reads.len(),
        millis(percentile(&mut floor_reads, 50.0)),
        millis(floor_p99)
    );
    println!(
        "    adapter's p99 / the floor's: {:.2}x   (the serving budget's ≤ 2x: {})",
        read_p99.as_secs_f64() / floor_p99.as_secs_f64(),
        verdict(read_p99 <= floor_p99 * 2)
    );
}
