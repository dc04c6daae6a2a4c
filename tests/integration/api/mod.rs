//! Every path of the metrics APIs × version × error case, answered by the router in-process and
//! compared as whole JSON bodies (`docs/contract.md`), one module per route family; the
//! fixture and the comparison helpers are here.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use kubemind::adapter::api::{self, Access, ApiState};
use kubemind::adapter::store::Readiness;
use kubemind::adapter::store::{ExternalSeries, Labels, Sample, SnapshotBuilder, Store, Timestamp};
use kubemind::adapter::telemetry::Telemetry;
use kubemind::resources::GroupResource;

mod custom;
mod discovery;
mod errors;
mod external;
mod kept;
mod service;

const MAX_AGE: Duration = Duration::from_secs(30);

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Fixture {
    app: axum::Router,
    /// The timestamp every fresh sample carries.
    ts: String,
}

fn fixture() -> Fixture {
    let sampled = SystemTime::now() - Duration::from_secs(5);
    let stale = SystemTime::now() - Duration::from_secs(120);
    let sample = |value: f64| Sample::new(value, sampled).expect("finite");
    let mut b = SnapshotBuilder::new();
    let pods = GroupResource::pods();
    let mut pod =
        |ns: &str, name: &str, pod_labels: &[(&str, &str)], metrics: Vec<(&str, Sample)>| {
            let object = b.object(Some(ns), &pods, name).expect("namespaced");
            object.labels = labels(pod_labels).into();
            for (metric, sample) in metrics {
                object.insert(metric, sample);
            }
        };
    pod(
        "demo",
        "triton-0",
        &[("app", "triton"), ("tier", "a")],
        vec![
            ("triton_queue_time_ms", sample(8000.0).with_window(Some(15))),
            (
                "requests_per_second",
                sample(1.5).with_labels(labels(&[("model", "resnet")])),
            ),
        ],
    );
    pod(
        "demo",
        "triton-1",
        &[("app", "triton"), ("tier", "b")],
        vec![("triton_queue_time_ms", sample(12.5).with_window(Some(15)))],
    );
    pod("demo", "triton-2", &[("app", "triton")], vec![]);
    pod(
        "demo",
        "triton-stale",
        &[("app", "triton")],
        vec![(
            "triton_queue_time_ms",
            Sample::new(99.0, stale).expect("finite"),
        )],
    );
    pod(
        "demo",
        "other-0",
        &[("app", "other")],
        vec![("triton_queue_time_ms", sample(1.0))],
    );
    pod(
        "elsewhere",
        "triton-0",
        &[("app", "triton")],
        vec![("triton_queue_time_ms", sample(5.0))],
    );
    let deployment = b
        .object(
            Some("demo"),
            &GroupResource::parse("deployments.apps"),
            "triton",
        )
        .expect("namespaced");
    deployment.labels = labels(&[("app", "triton")]).into();
    deployment.insert("triton_queue_time_ms_max", sample(8000.0));
    b.object(None, &GroupResource::parse("nodes"), "gpu-node-1")
        .expect("cluster-scoped")
        .insert("gpu_utilization_percent", sample(97.0));
    b.object(None, &GroupResource::namespaces(), "demo")
        .expect("cluster-scoped")
        .insert("queue_depth", sample(42.0));
    for (namespace, topic, value, time) in [
        (Some("demo"), "cv-jobs", 1200.0, sampled),
        (Some("demo"), "thumbnails", 5.0, sampled),
        (None, "global", 7.0, sampled),
        (Some("demo"), "old", 3.0, stale),
    ] {
        b.external(
            "kafka_consumergroup_lag",
            ExternalSeries {
                namespace: namespace.map(String::from),
                labels: labels(&[("topic", topic)]),
                sample: Sample::new(value, time)
                    .expect("finite")
                    .with_window(Some(30)),
            },
        );
    }
    let store = std::sync::Arc::new(Store::new(MAX_AGE));
    store.publish(b);
    let readiness = Readiness::default();
    readiness.set_ready();
    Fixture {
        app: api::router(ApiState {
            store,
            telemetry: std::sync::Arc::new(Telemetry::new()),
            readiness,
            access: Access::Open,
            external: None,
        }),
        ts: Timestamp::from(sampled).as_str().to_string(),
    }
}

struct Reply {
    code: StatusCode,
    content_type: String,
    body: Value,
    text: String,
}

async fn send(app: &axum::Router, method: Method, uri: &str, accept: Option<&str>) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let code = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Reply {
        code,
        content_type,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text,
    }
}

async fn get(app: &axum::Router, uri: &str) -> Reply {
    send(app, Method::GET, uri, Some("application/json, */*")).await
}

/// Asserts a 200 JSON answer with exactly this body.
async fn expect_json(app: &axum::Router, uri: &str, want: Value) {
    let reply = get(app, uri).await;
    assert_eq!(reply.code, StatusCode::OK, "{uri}: {}", reply.text);
    assert_eq!(reply.content_type, "application/json", "{uri}");
    assert_eq!(reply.body, want, "{uri}");
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// The 404 Status for a missing object: `details.kind` is the resource, `details.group` its group.
fn object_not_found(resource: &str, group: Option<&str>, name: &str) -> Value {
    let qualified = group.map_or(resource.to_string(), |g| format!("{resource}.{g}"));
    let mut details = json!({"name": name, "kind": resource});
    if let Some(group) = group {
        details["group"] = json!(group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": format!("{qualified} \"{name}\" not found"), "reason": "NotFound",
           "details": details, "code": 404})
}

/// Asserts a Status answer with exactly this body (and the code it names).
async fn expect_status(app: &axum::Router, uri: &str, want: Value) {
    let reply = get(app, uri).await;
    let code = want["code"].as_u64().expect("code") as u16;
    assert_eq!(reply.code.as_u16(), code, "{uri}: {}", reply.text);
    assert_eq!(reply.content_type, "application/json", "{uri}");
    assert_eq!(reply.body, want, "{uri}");
}

fn pod_v1beta1(
    ts: &str,
    ns: &str,
    name: &str,
    metric: &str,
    value: &str,
    window: Option<i64>,
) -> Value {
    let mut item = json!({
        "describedObject": {"kind": "Pod", "namespace": ns, "name": name, "apiVersion": "v1"},
        "metricName": metric, "timestamp": ts, "value": value, "selector": null,
    });
    if let Some(window) = window {
        item["window"] = json!(window);
    }
    item
}

fn pod_v1beta2(
    ts: &str,
    ns: &str,
    name: &str,
    metric: &str,
    value: &str,
    window: Option<i64>,
) -> Value {
    let mut item = json!({
        "describedObject": {"kind": "Pod", "namespace": ns, "name": name, "apiVersion": "v1"},
        "metric": {"name": metric, "selector": null}, "timestamp": ts, "value": value,
    });
    if let Some(window) = window {
        item["windowSeconds"] = json!(window);
    }
    item
}

/// A `triton_queue_time_ms` item for a pod in `demo`, in either version.
fn queue(version: &str, ts: &str, name: &str, value: &str, window: Option<i64>) -> Value {
    let metric = "triton_queue_time_ms";
    if version == "v1beta1" {
        pod_v1beta1(ts, "demo", name, metric, value, window)
    } else {
        pod_v1beta2(ts, "demo", name, metric, value, window)
    }
}

fn list(version: &str, items: Vec<Value>) -> Value {
    json!({"kind": "MetricValueList", "apiVersion": format!("custom.metrics.k8s.io/{version}"),
           "metadata": {}, "items": items})
}

const V1: &str = "/apis/custom.metrics.k8s.io/v1beta1";
const V2: &str = "/apis/custom.metrics.k8s.io/v1beta2";
const EXT: &str = "/apis/external.metrics.k8s.io/v1beta1";
