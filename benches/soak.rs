//! `make soak` (not part of `make test` or `make bench`): the standalone adapter under a steady,
//! realistic load for `SOAK_MINUTES` (10) minutes at `SOAK_RATE` (5,000) requests per second,
//! while its values change every second (the values file rewritten; the adapter re-reads it).
//!
//! The mix, per ten requests: six Pods reads over 1,000 pods, two object reads (a Deployment's
//! aggregate), one external read, one discovery. Requests are sent on a schedule over eight
//! keep-alive HTTPS connections with a client certificate. A request sent on time counts from
//! when it went out (forgiving the timer's millisecond of lateness, no more); one that went late
//! because its connection's last answer came after it was due counts from when it was due, so a
//! stall is not hidden by the requests it delayed.
//! Prints, per minute, the rate, errors, p50/p99 and the adapter's RSS; passes when every
//! minute's p99 is ≤ 1 ms, no request failed, and RSS grew by less than 5 MiB after the first
//! minute.
//!
//! First, for `SOAK_FLOOR_MINUTES` (1), the same schedule goes to the floor instead: a minimal
//! rustls server answering each of the mix's paths with the adapter's own answer, prebuilt,
//! after the same client-certificate check, while the adapter keeps re-reading its values. Its
//! p99 is what this machine allows any server at this rate; the adapter's median minute's p99
//! is printed against the floor's as a ratio (the serving budget's ≤ 2×), for information: the
//! soak passes or fails on the figures above.

mod common;
#[path = "common/floor.rs"]
mod floor;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Bytes;

use common::{Credentials, Sender, connect, millis, percentile, verdict};
use tokio::time::Instant;

const PODS: usize = 1_000;
const CONNECTIONS: usize = 8;
/// How late tokio's timer may wake a task that sleeps until a time (its resolution).
const TIMER_LATENESS: Duration = Duration::from_millis(1);
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

/// Whether the mix's `path` reads custom metrics (not their discovery), whose answers the
/// adapter keeps.
fn is_custom_read(path: &str) -> bool {
    path.starts_with(DISCOVERY) && path.len() > DISCOVERY.len()
}

fn minutes() -> u64 {
    std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10)
}

fn floor_minutes() -> u64 {
    std::env::var("SOAK_FLOOR_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(1)
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

/// Sends `path`; its body when the answer is a 200 of the expected shape.
async fn request(sender: &mut Sender, path: &str) -> Result<Bytes, String> {
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
    Ok(body)
}

/// One minute's figures.
#[derive(Default)]
struct Minute {
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
}

/// Every connection's share of one minute's schedule from `minute_start`, one request per
/// `period` per connection, the connections' schedules spread over one period.
async fn one_minute(
    senders: &mut [Option<Sender>],
    minute_start: Instant,
    period: Duration,
) -> Minute {
    let minute_end = minute_start + Duration::from_secs(60);
    let tasks: Vec<_> = senders
        .iter_mut()
        .enumerate()
        .map(|(connection, sender)| {
            let mut sender = sender.take().expect("a connection");
            let offset = period.mul_f64(connection as f64 / CONNECTIONS as f64);
            tokio::spawn(async move {
                let mut figures = Minute::default();
                let mut due = minute_start + offset;
                let mut n = connection;
                let mut free_since = Instant::now();
                while due < minute_end {
                    // on schedule, the request waits for its time and counts from when it
                    // goes out: the timer wakes up to a millisecond late, and that lateness
                    // is this generator's; a wake-up later still (the cores were busy) is
                    // counted past that millisecond. Behind schedule (the last answer came
                    // after this request was due), it goes at once and counts from when it
                    // was due.
                    let counted_from = if free_since < due {
                        tokio::time::sleep_until(due).await;
                        Instant::now().min(due + TIMER_LATENESS)
                    } else {
                        due
                    };
                    let path = MIX[n % MIX.len()];
                    n += 1;
                    let answer = request(&mut sender, path).await;
                    free_since = Instant::now();
                    match answer {
                        Ok(_) => figures.latencies.push(free_since - counted_from),
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
    let mut minute = Minute::default();
    for (slot, task) in senders.iter_mut().zip(tasks) {
        let (figures, sender) = task.await.expect("connection task");
        minute.latencies.extend(figures.latencies);
        minute.errors += figures.errors;
        if minute.first_error.is_none() {
            minute.first_error = figures.first_error;
        }
        *slot = Some(sender);
    }
    minute.latencies.sort();
    minute
}

/// `minutes` of the schedule against one server over fresh connections, a line printed per
/// minute (labelled `label` and its number); each minute's figures, rate and `rss_mib()`.
async fn run(
    credentials: &Credentials,
    minutes: u64,
    period: Duration,
    label: &str,
    rss_mib: impl Fn() -> f64,
) -> Vec<(Minute, f64, f64)> {
    let mut senders = Vec::new();
    for _ in 0..CONNECTIONS {
        senders.push(Some(connect(credentials).await));
    }
    let start = Instant::now();
    let mut results = Vec::new();
    for minute in 0..minutes {
        let minute_start = start + Duration::from_secs(60 * minute);
        let figures = one_minute(&mut senders, minute_start, period).await;
        let achieved = (figures.latencies.len() + figures.errors) as f64 / 60.0;
        let rss = rss_mib();
        println!(
            "{:>8} {:>10.0} {:>7} {:>12} {:>12} {:>10.1}",
            format!("{label}{}", minute + 1),
            achieved,
            figures.errors,
            millis(percentile(&figures.latencies, 0.50)),
            millis(percentile(&figures.latencies, 0.99)),
            rss
        );
        if let Some(error) = &figures.first_error {
            println!("         first error: {error}");
        }
        results.push((figures, achieved, rss));
    }
    results
}

fn main() {
    if floor::serve_if_asked() {
        return;
    }
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
        "{:>8} {:>10} {:>7} {:>12} {:>12} {:>10}",
        "minute", "req/s", "errors", "p50", "p99", "RSS MiB"
    );
    let floor_minutes = floor_minutes();
    let (floor_results, results, sent_again) = runtime.block_on(async {
        // warm up, and keep the adapter's answer to each path of the mix for the floor
        let mut sender = connect(&credentials).await;
        let mut answers: Vec<(&str, Bytes)> = Vec::new();
        for path in MIX.iter().cycle().take(200) {
            let body = request(&mut sender, path).await.expect("warm-up answers");
            if !answers.iter().any(|(known, _)| known == path) {
                answers.push((path, body));
            }
        }
        drop(sender);
        let period = Duration::from_secs_f64(CONNECTIONS as f64 / rate);

        let floor_results = if floor_minutes > 0 {
            let floor = floor::start(dir.path(), &answers, Some(&written.ca_pem));
            let floor_credentials = floor.credentials(&written);
            run(&floor_credentials, floor_minutes, period, "floor ", || {
                floor.rss_mib()
            })
            .await
        } else {
            Vec::new()
        };
        let kept_before = common::answers_sent_again(&credentials).await;
        let results = run(&credentials, minutes, period, "", || {
            kubemind::sim::process::status_kib(pid, "VmRSS:") as f64 / 1024.0
        })
        .await;
        let sent_again = common::answers_sent_again(&credentials).await - kept_before;
        (floor_results, results, sent_again)
    });
    stop.store(true, Ordering::Relaxed);
    let _ = changer.join();
    drop(adapter);

    let worst = |results: &[(Minute, f64, f64)]| {
        results
            .iter()
            .map(|(m, _, _)| percentile(&m.latencies, 0.99))
            .max()
            .unwrap_or_default()
    };
    let worst_p99 = worst(&results);
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
    if !floor_results.is_empty() && !results.is_empty() {
        // a typical minute of each: the worst of ten minutes against one of one would be
        // weighed against the adapter
        let median = |results: &[(Minute, f64, f64)]| {
            let mut p99s: Vec<Duration> = results
                .iter()
                .map(|(m, _, _)| percentile(&m.latencies, 0.99))
                .collect();
            p99s.sort();
            p99s[(p99s.len() - 1) / 2]
        };
        let (adapter_p99, floor_p99) = (median(&results), median(&floor_results));
        let floor_errors: usize = floor_results.iter().map(|(m, _, _)| m.errors).sum();
        println!(
            "{:<40} {:>14}",
            "median minute's p99: the adapter's",
            millis(adapter_p99)
        );
        println!(
            "{:<40} {:>14}   {:<12} {}",
            "  the floor's, same schedule",
            millis(floor_p99),
            "",
            if floor_errors == 0 {
                String::new()
            } else {
                format!("({floor_errors} errors)")
            }
        );
        println!(
            "{:<40} {:>14}   {:<12} {}",
            "  adapter's / the floor's",
            format!(
                "{:.2}x",
                adapter_p99.as_secs_f64() / floor_p99.as_secs_f64().max(f64::MIN_POSITIVE)
            ),
            "<= 2x",
            verdict(adapter_p99 <= floor_p99 * 2)
        );
    }
    let requests: usize = results
        .iter()
        .map(|(m, _, _)| m.latencies.len() + m.errors)
        .sum();
    let custom = MIX.iter().filter(|path| is_custom_read(path)).count();
    println!(
        "{:<40} {:>14}",
        "custom reads sent a kept answer",
        format!("{sent_again} of {}", requests * custom / MIX.len())
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
