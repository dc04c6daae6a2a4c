//! The Prometheus source against the real Prometheus server (Debian package), which scrapes the
//! real exporter binary (simulated NVML, scripted Triton endpoints) and a scripted application;
//! the API server is the minimal stand-in (`standin`), list/watch only.
//!
//! The adapter runs with `--sources prometheus`: the built-in rules give the catalogue from the
//! exporter's series, and a prometheus-adapter configuration written as its users write them
//! (a per-pod rate of a counter, an external queue metric) is read unchanged. Then the faults:
//! 1,000 identical external reads at once send one query (counted in Prometheus' own query log);
//! Prometheus frozen — discovery still answers at once and the 1,000-pod request too; Prometheus
//! killed — values absent after the max-age, never 0; Prometheus back — the adapter recovers by
//! itself.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::fixtures::{
    DEMO_PODS_PATH, hpa_standin, pinned_demo_pods, pod, start_cluster_adapter, start_demo_exporter,
    triton_page, values,
};
use crate::prometheus_server::Prometheus;
use kubemind::sim::metrics_endpoint;

/// How often the adapter evaluates its rules and refreshes external reads.
const PROMETHEUS_INTERVAL: Duration = Duration::from_secs(1);

/// The adapter's deadline for one Prometheus query.
const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long values outlive a Prometheus that stopped answering: long enough for the
/// frozen-Prometheus reads to finish on a loaded machine.
const PROMETHEUS_MAX_AGE: Duration = Duration::from_secs(10);

/// Pods of the `big` namespace, all matched by one selector.
const BIG: usize = 1000;

/// A prometheus-adapter configuration as its users write them.
const ADAPTER_CONFIG: &str = r#"rules:
- seriesQuery: '{__name__=~"^http_requests_total$",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  name:
    matches: "^(.*)_total$"
    as: "${1}_per_second"
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[5s])) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: '{__name__="queue_depth",queue!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)'
"#;

/// The application's own /metrics: a request counter per pod (10 a scrape for triton-0, 1 for
/// every pod of `big`) and a queue gauge per queue.
fn application_page(scrape: u64) -> String {
    let mut page = String::from("# TYPE http_requests_total counter\n");
    page.push_str(&format!(
        "http_requests_total{{namespace=\"demo\",pod=\"triton-0\"}} {}\n",
        scrape * 10
    ));
    for i in 0..BIG {
        page.push_str(&format!(
            "http_requests_total{{namespace=\"big\",pod=\"big-{i}\"}} {scrape}\n"
        ));
    }
    page.push_str("# TYPE queue_depth gauge\n");
    page.push_str("queue_depth{namespace=\"demo\",queue=\"jobs\"} 42\n");
    page.push_str("queue_depth{namespace=\"demo\",queue=\"burst\"} 7\n");
    page.push_str("queue_depth{namespace=\"other\",queue=\"jobs\"} 1000\n");
    page
}

fn quantity(text: &str) -> f64 {
    kubemind::quantity::Quantity::parse(text)
        .unwrap_or_else(|e| panic!("{e}"))
        .as_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_rules_serve_the_hpa_and_survive_prometheus_failing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");

    // the node, as in the direct-path test, and an application with its own metrics
    let (exporter, exporter_url) = start_demo_exporter(dir.path(), |n| triton_page(n, 20, 8000));
    let application = metrics_endpoint::serve(application_page).expect("serves");
    let mut prometheus = Prometheus::start(
        dir.path(),
        &[
            ("kubemind-exporter", &exporter_url),
            ("application", &application),
        ],
    );

    let standin = hpa_standin();
    let mut pods = standin.pods();
    for i in 0..BIG {
        pods.push(pod("big", &format!("big-{i}"), json!({"app": "big"}), None));
    }
    standin.set_pods(pods);

    let config = dir.path().join("adapter.yaml");
    std::fs::write(&config, ADAPTER_CONFIG).expect("config");
    let prometheus_url = prometheus.url();
    let (adapter, _, client) = start_cluster_adapter(
        dir.path(),
        &standin,
        &[
            "--sources",
            "prometheus",
            "--prometheus-url",
            &prometheus_url,
            "--prometheus-config",
            config.to_str().expect("utf-8"),
            "--prometheus-interval",
            &humantime::format_duration(PROMETHEUS_INTERVAL).to_string(),
            "--prometheus-discovery-interval",
            "2s",
            "--prometheus-timeout",
            &humantime::format_duration(PROMETHEUS_TIMEOUT).to_string(),
            "--prometheus-max-age",
            &humantime::format_duration(PROMETHEUS_MAX_AGE).to_string(),
        ],
    );
    let context = || {
        format!(
            "adapter log:\n{}\nprometheus log:\n{}",
            adapter.log(),
            prometheus.log()
        )
    };

    // the built-in rules: the catalogue from the exporter's series in Prometheus
    let served = client.wait_for_demo_pods(Duration::from_secs(60)).await;
    assert_eq!(served, pinned_demo_pods(), "{}", context());
    client.assert_pinned_demo_deployment().await;

    // the prometheus-adapter rule, unchanged: a per-pod rate of a counter
    let rate_path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/%2A/http_requests_per_second?labelSelector=app%3Dtriton".to_string();
    // (a 5 s window with 1 s scrapes: the rate settles once the window is full)
    let rate = crate::util::wait_for_async(Duration::from_secs(30), "the rate rule", || async {
        let (code, body) = client.get(rate_path.clone()).await?;
        let served = values(&body);
        let settled = served.len() == 1 && (8.0..=12.0).contains(&quantity(&served[0].1));
        (code == 200 && settled).then_some(served)
    })
    .await;
    assert_eq!(
        rate[0].0, "triton-0",
        "10 requests a second, on triton-0 only"
    );

    // and its external rule, with the namespace and the selector as matchers
    let external = |selector: &str| {
        client.get(format!(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/queue_depth?labelSelector={selector}"
        ))
    };
    let (code, body) =
        crate::util::wait_for_async(Duration::from_secs(30), "the external rule", || async {
            external("queue%3Djobs")
                .await
                .filter(|(code, _)| *code == 200)
        })
        .await;
    assert_eq!(code, 200);
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["items"][0]["value"], "42");
    assert_eq!(body["items"][0]["metricLabels"]["queue"], "jobs");

    // 1,000 identical external reads at once, for a selector never read before. What the
    // product promises: reads in flight share one query, and while reads keep coming the
    // background refresh sends at most one more per three quarters of the rule interval. How
    // long the burst lasts depends on the machine, so the bound is counted from its duration.
    assert!(prometheus.queries_containing("burst").is_empty());
    let burst_start = jiff::Timestamp::now();
    let reads: Vec<_> = (0..1000).map(|_| external("queue%3Dburst")).collect();
    let answers = futures::future::join_all(reads).await;
    let burst_end = jiff::Timestamp::now();
    let ok = answers
        .iter()
        .filter(|a| {
            a.as_ref()
                .is_some_and(|(code, body)| *code == 200 && body["items"][0]["value"] == "7")
        })
        .count();
    assert_eq!(
        ok,
        1000,
        "{:?}",
        answers
            .iter()
            .find(|a| a.as_ref().is_none_or(|(c, _)| *c != 200))
    );
    // Prometheus writes its query log as queries finish: wait for the entry, not a fixed time
    let logged = crate::util::wait_for_async(Duration::from_secs(10), "the query log", || async {
        let logged = prometheus.queries_containing("burst");
        (!logged.is_empty()).then_some(logged)
    })
    .await;
    let sent = logged.iter().filter(|at| **at <= burst_end).count();
    let burst = burst_end.duration_since(burst_start).as_secs_f64();
    let refresh_spacing = PROMETHEUS_INTERVAL.as_secs_f64() * 3.0 / 4.0;
    // one for the reads, one per refresh spacing the burst lasted, one refresh under way
    let allowed = 2 + (burst / refresh_spacing).floor() as usize;
    assert!(
        (1..=allowed).contains(&sent),
        "1,000 reads over {burst:.2} s sent {sent} queries; at most {allowed} may be sent"
    );

    // the 1,000-pod Pods request: one query per namespace in the background, none per request
    let big_path = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/big/pods/%2A/http_requests_per_second?labelSelector=app%3Dbig".to_string();
    crate::util::wait_for_async(Duration::from_secs(30), "1,000 pods", || async {
        let (_, body) = client.get(big_path.clone()).await?;
        (values(&body).len() == BIG).then_some(())
    })
    .await;
    assert!(
        prometheus.queries_containing("big-1").is_empty(),
        "pods are grouped by, never listed in a query"
    );

    // Prometheus freezes (the worst failure: connections hang): reads are answered from
    // memory at once, discovery first
    prometheus.freeze();
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let (code, _) = client
            .get("/apis/custom.metrics.k8s.io/v1beta2".into())
            .await
            .expect("discovery");
        assert_eq!(code, 200);
        fastest = fastest.min(started.elapsed());
    }
    // waiting on the frozen Prometheus would take the whole query timeout
    assert!(
        fastest < PROMETHEUS_TIMEOUT / 2,
        "discovery took {fastest:?}: it must not wait on Prometheus"
    );
    let (code, body) = client.get(big_path.clone()).await.expect("answer");
    assert_eq!(
        (code, values(&body).len()),
        (200, BIG),
        "served from memory"
    );
    prometheus.thaw();

    // Prometheus dies: after the max-age its values are absent — never 0
    prometheus.kill();
    crate::util::wait_for_async(Duration::from_secs(30), "values to turn absent", || async {
        let (code, body) = client.get(DEMO_PODS_PATH.to_string()).await?;
        (code == 200 && values(&body).is_empty()).then_some(())
    })
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
    // the external answer was refreshed separately: it may live a moment longer, as 42
    crate::util::wait_for_async(
        PROMETHEUS_MAX_AGE * 3,
        "the external read to fail",
        || async {
            let (code, body) = external("queue%3Djobs").await?;
            if code == 200 {
                assert_eq!(body["items"][0]["value"], "42", "{body}");
            }
            (code == 503 && body["reason"] == "ServiceUnavailable").then_some(())
        },
    )
    .await;
    let (code, _) = client
        .get("/apis/custom.metrics.k8s.io/v1beta2".into())
        .await
        .expect("discovery");
    assert_eq!(code, 200);
    let telemetry = client.text("/metrics").await;
    assert!(
        telemetry.contains(
            "kubemind_adapter_prometheus_queries_total{purpose=\"rule\",result=\"error\"}"
        ),
        "{telemetry}"
    );
    assert!(
        telemetry
            .contains("kubemind_adapter_source_newest_value_age_seconds{source=\"prometheus\"}")
    );

    // Prometheus comes back: the adapter recovers by itself
    let phase = Instant::now();
    prometheus.restart();
    crate::util::wait_for_async(Duration::from_secs(90), "recovery", || async {
        let (_, body) = client.get(DEMO_PODS_PATH.to_string()).await?;
        (values(&body).len() == 3).then_some(())
    })
    .await;
    eprintln!("recovered after {:?}", phase.elapsed());
    drop(exporter);
}

#[test]
fn a_bad_rules_file_is_refused_at_start_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("adapter.yaml");
    std::fs::write(
        &config,
        "rules:\n- seriesQuery: 'x{pod!=\"\"}'\n  resources: {template: \"<<.Resource>>\"}\n  name: {matches: \"(unclosed\"}\n  metricsQuery: 'x'\n",
    )
    .expect("config");
    let output = Command::new(env!("CARGO_BIN_EXE_kubemind"))
        .args([
            "adapter",
            "--sources",
            "prometheus",
            "--prometheus-url",
            "http://127.0.0.1:9",
            "--prometheus-config",
        ])
        .arg(&config)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:4: rules[0]: name.matches: invalid regex",
            config.display()
        )),
        "{stderr}"
    );
}

/// The adapter's flags for the Prometheus source alone at `url`, evaluating every 500 ms.
pub fn prometheus_source_args<'a>(url: &'a str, max_age: &'a str) -> Vec<&'a str> {
    vec![
        "--sources",
        "prometheus",
        "--prometheus-url",
        url,
        "--prometheus-interval",
        "500ms",
        "--prometheus-discovery-interval",
        "2s",
        "--prometheus-max-age",
        max_age,
    ]
}

/// Values carry their samples' own times, not Prometheus' evaluation time: against a
/// Prometheus that scrapes every 10 s and an adapter with a 4 s max-age, a value turns absent
/// once its newest sample is 4 s old — although every evaluation still returns it — and is back
/// after the next scrape; the freshness gauge tells the samples' age. (Stamped with the
/// evaluation time, it would be served throughout, however old: what a lagging backend such as
/// VictoriaMetrics, which hides its newest 30 s by default, made of it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_carry_their_sample_times_not_the_evaluation_time() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_exporter, exporter_url) = start_demo_exporter(dir.path(), |n| triton_page(n, 20, 8000));
    let prometheus =
        Prometheus::start_with_interval(dir.path(), &[("kubemind-exporter", &exporter_url)], "10s");
    let standin = hpa_standin();
    let prometheus_url = prometheus.url();
    let (adapter, _, client) = start_cluster_adapter(
        dir.path(),
        &standin,
        &prometheus_source_args(&prometheus_url, "4s"),
    );
    let served = || async {
        let (code, body) = client.get(DEMO_PODS_PATH.to_string()).await?;
        Some(code == 200 && !values(&body).is_empty())
    };
    // first served after a scrape
    crate::util::wait_for_async(Duration::from_secs(60), "the first values", || async {
        served().await.filter(|s| *s)
    })
    .await;
    // then absent before the next scrape, with the freshness gauge past the max-age
    crate::util::wait_for_async(
        Duration::from_secs(30),
        "values to turn absent between two scrapes",
        || async { served().await.filter(|s| !*s) },
    )
    .await;
    let age = client
        .newest_value_age("prometheus")
        .await
        .expect("the freshness gauge");
    assert!(
        age > 4.0,
        "the freshness gauge tells the samples' age: {age:?}\n{}",
        adapter.log()
    );
    // and back after the next scrape
    crate::util::wait_for_async(
        Duration::from_secs(30),
        "values after the next scrape",
        || async { served().await.filter(|s| *s) },
    )
    .await;
    assert!(
        !prometheus.queries_containing("timestamp(").is_empty(),
        "the sample times are asked of Prometheus"
    );
}
