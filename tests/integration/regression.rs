//! One test per bug fixed, named after what broke, at the smallest distance that shows it.
//! (Bugs whose reproduction needs the real Prometheus or a hostile peer keep their test where
//! that setup lives: the burst of identical external reads in `prometheus`, renegotiation and
//! silent connections in `connections`.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use kubemind::adapter::api::{self, Access, ApiState};
use kubemind::adapter::store::{Readiness, SnapshotBuilder, Store};
use kubemind::adapter::telemetry::Telemetry;
use kubemind::exporter::servers::scrape::{FailureReason, Scraper, ServerKind, Target};
use kubemind::sim::hpa::replicas::{object_value, pods_metric};
use kubemind::sim::hpa::{Autoscaler, Behavior, HpaSpec, MetricOutcome, PodState, Tolerances};

fn outcome(replicas: i32) -> [MetricOutcome; 1] {
    [MetricOutcome {
        name: "m".into(),
        proposal: Ok(replicas),
    }]
}

#[test]
fn missing_pods_at_a_usage_ratio_of_exactly_one_were_counted_as_zero() {
    // upstream leaves them out; counting them as 0 scaled 3 → 2
    let pods = [
        PodState::running("a"),
        PodState::running("b"),
        PodState::running("c"),
    ];
    let values = BTreeMap::from([("a".to_string(), 100_000), ("b".to_string(), 100_000)]);
    let calculation =
        pods_metric(3, &pods, &values, 100_000, Tolerances::default()).expect("a proposal");
    assert_eq!(calculation.replicas, 3);
}

#[test]
fn value_targets_counted_pods_that_were_not_ready() {
    let mut starting = PodState::running("b");
    starting.ready = false;
    let pods = [PodState::running("a"), starting];
    // ratio 3 × 1 pod Running and Ready, not × 2
    let calculation =
        object_value(2, &pods, 3_000, 1_000, Tolerances::default()).expect("a proposal");
    assert_eq!(calculation.replicas, 3);
}

#[test]
fn a_fresh_controller_scaled_down_at_once() {
    // upstream seeds its history with the current count: the first sync holds
    let mut hpa = Autoscaler::new(HpaSpec {
        min_replicas: 1,
        max_replicas: 10,
        behavior: Some(Behavior::default()),
    });
    assert_eq!(hpa.reconcile(6, &outcome(2), 0.0).desired, 6);
}

#[test]
fn the_scale_up_limit_ignored_a_scale_down_in_the_same_period() {
    let mut behavior = Behavior::default();
    behavior.scale_up.policies = vec![kubemind::sim::hpa::Policy::pods(1, 60)];
    behavior.scale_down.stabilization_seconds = 0;
    let mut hpa = Autoscaler::new(HpaSpec {
        min_replicas: 1,
        max_replicas: 20,
        behavior: Some(behavior),
    });
    assert_eq!(hpa.reconcile(8, &outcome(4), 0.0).desired, 4);
    // the period began at 8: 8 + 1 = 9, not 4 + 1
    assert_eq!(hpa.reconcile(4, &outcome(12), 20.0).desired, 9);
}

#[test]
fn explain_printed_a_scale_down_while_a_metric_was_failing() {
    let mut hpa = Autoscaler::new(HpaSpec {
        min_replicas: 1,
        max_replicas: 10,
        behavior: None,
    });
    let metrics = [
        MetricOutcome {
            name: "queue".into(),
            proposal: Ok(2),
        },
        MetricOutcome {
            name: "gpu".into(),
            proposal: Err("unable to get metric".into()),
        },
    ];
    assert_eq!(hpa.reconcile(5, &metrics, 0.0).desired, 5);
}

#[tokio::test]
async fn a_namespace_with_a_nul_byte_was_answered_200_with_no_items() {
    let store = Arc::new(Store::new(Duration::from_secs(30)));
    store.publish(SnapshotBuilder::new());
    let readiness = Readiness::default();
    readiness.set_ready();
    let app = api::router(ApiState {
        store,
        telemetry: Arc::new(Telemetry::new()),
        readiness,
        access: Access::Open,
        external: None,
    });
    let request = Request::get(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo%00/pods/%2A/triton_queue_time_ms",
    )
    .body(Body::empty())
    .expect("request");
    let response = app.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), 400);
}

/// Scrapes one target of `kind` at `url` twice (signals need two readings).
async fn scrape_twice(url: &str) -> kubemind::exporter::servers::scrape::TargetReport {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut scraper = Scraper::new(Duration::from_secs(5), 10_000).expect("client");
    let target = Target::new("demo", "p", ServerKind::Triton, url);
    let targets = [target];
    scraper.scrape_all(&targets).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    scraper.scrape_all(&targets).await.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_huge_pending_gauges_were_rendered_as_plus_inf() {
    let url = kubemind::sim::metrics_endpoint::serve(|n| {
        format!(
            "nv_inference_request_success{{model=\"a\",version=\"1\"}} {n}\n\
             nv_inference_pending_request_count{{model=\"a\",version=\"1\"}} 1e308\n\
             nv_inference_pending_request_count{{model=\"b\",version=\"1\"}} 1e308\n"
        )
    })
    .expect("serves");
    let report = scrape_twice(&url).await;
    assert!(report.signals.is_none(), "{:?}", report.signals);
    assert_eq!(report.failures.get(&FailureReason::NonFinite), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_target_reported_another_servers_values() {
    let elsewhere = kubemind::sim::metrics_endpoint::serve(|n| {
        format!("nv_inference_request_success{{model=\"a\",version=\"1\"}} {n}\n")
    })
    .expect("serves");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let elsewhere = elsewhere.clone();
            async move { axum::response::Redirect::temporary(&elsewhere) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/metrics", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let report = scrape_twice(&url).await;
    assert!(!report.up);
    assert!(report.signals.is_none());
    assert_eq!(report.failures.get(&FailureReason::Redirect), Some(&2));
}
