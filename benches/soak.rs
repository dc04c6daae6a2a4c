//! `make soak` (not part of `make test` or `make bench`): the standalone adapter under a steady,
//! realistic load for `SOAK_MINUTES` (10) minutes at `SOAK_RATE` (5,000) requests per second,
//! while its values change every second (the values file rewritten; the adapter re-reads it).
//!
//! The mix, per ten requests: six Pods reads over 1,000 pods, two object reads (a Deployment's
//! aggregate), one external read, one discovery. Requests are sent on a schedule over eight
//! keep-alive HTTPS connections with a client certificate, and each latency is counted from
//! when the request was due, so a stall is not hidden by the requests it delayed. Prints, per
//! minute, the rate, errors, p50/p99 and the adapter's RSS; passes when every minute's p99 is
//! ≤ 1 ms, no request failed, and RSS grew by less than 5 MiB after the first minute.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;

use common::{Credentials, Sender, connect, millis, percentile, verdict};

const PODS: usize = 1_000;
const CONNECTIONS: usize = 8;
const PODS_READ: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/bench/pods/%2A/triton_queue_time_ms?labelSelector=app%3Dtriton";
const OBJECT_READ: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/bench/deployments.apps/triton/triton_queue_time_ms_max";
const EXTERNAL_READ: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/bench/kafka_consumergroup_lag?labelSelector=topic%3Dorders";
const DISCOVERY: &str = "/apis/custom.metrics.k8s.io/v1beta2";
/// Ten requests of the mix, in order.
const MIX: [&str; 10] = [
    PODS_READ,
    OBJECT_READ,
    PODS_READ,
    EXTERNAL_READ,
    PODS_READ,
    DISCOVERY,
    PODS_READ,
    OBJECT_READ,
    PODS_READ,
    PODS_READ,
];

fn minutes() -> u64 {
    std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10)
}

fn rate() -> f64 {
    std::env::var("SOAK_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5_000.0)
}

/// The values file at `tick`: every value moves each second.
fn values(tick: u64) -> String {
    let mut text = String::from("pods:\n");
    for i in 0..PODS {
        text.push_str(&format!(
            "  - {{namespace: bench, name: triton-{i:04}, labels: {{app: triton}}, metrics: {{triton_queue_time_ms: {}}}}}\n",
            (i as u64 * 3 + tick) % 5_000
        ));
    }
    text.push_str(&format!(
        "objects:\n  - {{namespace: bench, resource: deployments.apps, name: triton, metrics: {{triton_queue_time_ms_max: {}}}}}\n\
         external:\n  - {{namespace: bench, name: kafka_consumergroup_lag, labels: {{topic: orders}}, value: {}}}\n",
        4_000 + tick % 1_000,
        10_000 + tick
    ));
    text
}

/// Writes the values for `tick` whole (rename over the old file).
fn write_values(path: &Path, tick: u64) {
    let next = path.with_extension("next");
    std::fs::write(&next, values(tick)).expect("values");
    std::fs::rename(&next, path).expect("values in place");
}

/// Sends `path`; `Ok` when the answer is a 200 of the expected shape.
async fn request(sender: &mut Sender, path: &str) -> Result<(), String> {
    let response = sender
        .send_request(common::get(path))
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status != 200 {
        return Err(format!(
            "{status} for {path}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    let expected = if path == PODS_READ { PODS * 100 } else { 100 };
    if body.len() < expected {
        return Err(format!("{} bytes for {path}", body.len()));
    }
    Ok(())
}

/// One minute's figures.
#[derive(Default)]
struct Minute {
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (minutes, rate) = (minutes(), rate());
    let dir = tempfile::tempdir().expect("tempdir");
    let values_path = dir.path().join("values.yaml");
    write_values(&values_path, 0);
    let (adapter, written) = common::start_standalone_adapter(dir.path(), &values_path);
    let pid = adapter.0.id();
    let credentials = Arc::new(Credentials::of(&written));

    let stop = Arc::new(AtomicBool::new(false));
    let changer = {
        let (stop, path) = (stop.clone(), values_path.clone());
        std::thread::spawn(move || {
            let mut tick = 0;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                tick += 1;
                write_values(&path, tick);
            }
        })
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!();
    println!(
        "kubemind adapter soak: {minutes} min at {rate:.0} req/s over {CONNECTIONS} connections \
         (6 Pods reads over {PODS} pods, 2 object, 1 external, 1 discovery per 10), values changing every second"
    );
    println!(
        "adapter: --background-priority {} (the shipped Deployment's: idle)",
        common::background_priority()
    );
    println!();
    println!(
        "{:>6} {:>10} {:>7} {:>12} {:>12} {:>10}",
        "minute", "req/s", "errors", "p50", "p99", "RSS MiB"
    );
    let results: Vec<(Minute, f64, f64)> = runtime.block_on(async {
        // warm up
        let mut sender = connect(&credentials).await;
        for path in MIX.iter().cycle().take(200) {
            request(&mut sender, path).await.expect("warm-up answers");
        }
        drop(sender);
        let start = tokio::time::Instant::now();
        let period = Duration::from_secs_f64(CONNECTIONS as f64 / rate);
        let mut results = Vec::new();
        let mut senders = Vec::new();
        for _ in 0..CONNECTIONS {
            senders.push(connect(&credentials).await);
        }
        let mut senders: Vec<Option<Sender>> = senders.into_iter().map(Some).collect();
        for minute in 0..minutes {
            let minute_start = start + Duration::from_secs(60 * minute);
            let minute_end = minute_start + Duration::from_secs(60);
            let tasks: Vec<_> = senders
                .iter_mut()
                .enumerate()
                .map(|(connection, sender)| {
                    let mut sender = sender.take().expect("a connection");
                    // spread the connections' schedules over one period
                    let offset = period.mul_f64(connection as f64 / CONNECTIONS as f64);
                    tokio::spawn(async move {
                        let mut figures = Minute::default();
                        let mut due = minute_start + offset;
                        let mut n = connection;
                        while due < minute_end {
                            tokio::time::sleep_until(due).await;
                            let path = MIX[n % MIX.len()];
                            n += 1;
                            match request(&mut sender, path).await {
                                Ok(()) => figures.latencies.push(due.elapsed()),
                                Err(error) => {
                                    figures.errors += 1;
                                    figures.first_error.get_or_insert(error);
                                }
                            }
                            due += period;
                        }
                        (figures, sender)
                    })
                })
                .collect();
            let mut minute_figures = Minute::default();
            for (slot, task) in senders.iter_mut().zip(tasks) {
                let (figures, sender) = task.await.expect("connection task");
                minute_figures.latencies.extend(figures.latencies);
                minute_figures.errors += figures.errors;
                if minute_figures.first_error.is_none() {
                    minute_figures.first_error = figures.first_error;
                }
                *slot = Some(sender);
            }
            minute_figures.latencies.sort();
            let achieved = (minute_figures.latencies.len() + minute_figures.errors) as f64 / 60.0;
            let rss = kubemind::sim::process::status_kib(pid, "VmRSS:") as f64 / 1024.0;
            println!(
                "{:>6} {:>10.0} {:>7} {:>12} {:>12} {:>10.1}",
                minute + 1,
                achieved,
                minute_figures.errors,
                millis(percentile(&minute_figures.latencies, 0.50)),
                millis(percentile(&minute_figures.latencies, 0.99)),
                rss
            );
            if let Some(error) = &minute_figures.first_error {
                println!("       first error: {error}");
            }
            results.push((minute_figures, achieved, rss));
        }
        results
    });
    stop.store(true, Ordering::Relaxed);
    let _ = changer.join();
    drop(adapter);

    let worst_p99 = results
        .iter()
        .map(|(m, _, _)| percentile(&m.latencies, 0.99))
        .max()
        .unwrap_or_default();
    let errors: usize = results.iter().map(|(m, _, _)| m.errors).sum();
    let slowest = results
        .iter()
        .map(|(_, achieved, _)| *achieved)
        .fold(f64::INFINITY, f64::min);
    let after_first = results.first().map_or(0.0, |(_, _, rss)| *rss);
    let growth = results.last().map_or(0.0, |(_, _, rss)| *rss) - after_first;
    println!();
    println!("{:<40} {:>14}   budget", "figure", "measured");
    println!(
        "{:<40} {:>14}   {:<12} {}",
        "slowest minute's rate",
        format!("{slowest:.0} req/s"),
        ">= 5000",
        verdict(slowest >= 5_000.0 * 0.99)
    );
    println!(
        "{:<40} {:>14}   {:<12} {}",
        "worst minute's p99",
        millis(worst_p99),
        "<= 1 ms",
        verdict(worst_p99 <= Duration::from_millis(1))
    );
    println!(
        "{:<40} {:>14}   {:<12} {}",
        "errors",
        errors.to_string(),
        "0",
        verdict(errors == 0)
    );
    println!(
        "{:<40} {:>14}   {:<12} {}",
        "RSS growth after the first minute",
        format!("{growth:.1} MiB"),
        "< 5 MiB",
        verdict(growth < 5.0)
    );
    println!();
    let passed = errors == 0
        && worst_p99 <= Duration::from_millis(1)
        && growth < 5.0
        && slowest >= 5_000.0 * 0.99;
    if !passed {
        std::process::exit(1);
    }
}
