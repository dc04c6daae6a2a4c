//! Every path of the metrics APIs × version × error case, answered by the router in-process and
//! compared as whole JSON bodies (`docs/contract.md`).

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
            object.labels = labels(pod_labels);
            for (metric, sample) in metrics {
                object.metrics.insert(metric.into(), sample);
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
    deployment.labels = labels(&[("app", "triton")]);
    deployment
        .metrics
        .insert("triton_queue_time_ms_max".into(), sample(8000.0));
    b.object(None, &GroupResource::parse("nodes"), "gpu-node-1")
        .expect("cluster-scoped")
        .metrics
        .insert("gpu_utilization_percent".into(), sample(97.0));
    b.object(None, &GroupResource::namespaces(), "demo")
        .expect("cluster-scoped")
        .metrics
        .insert("queue_depth".into(), sample(42.0));
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

#[tokio::test]
async fn discovery_documents() {
    let f = fixture();
    let custom_group = json!({"kind": "APIGroup", "apiVersion": "v1", "name": "custom.metrics.k8s.io",
        "versions": [
            {"groupVersion": "custom.metrics.k8s.io/v1beta2", "version": "v1beta2"},
            {"groupVersion": "custom.metrics.k8s.io/v1beta1", "version": "v1beta1"}],
        "preferredVersion": {"groupVersion": "custom.metrics.k8s.io/v1beta2", "version": "v1beta2"}});
    let external_group = json!({"kind": "APIGroup", "apiVersion": "v1", "name": "external.metrics.k8s.io",
        "versions": [{"groupVersion": "external.metrics.k8s.io/v1beta1", "version": "v1beta1"}],
        "preferredVersion": {"groupVersion": "external.metrics.k8s.io/v1beta1", "version": "v1beta1"}});
    let mut listed_groups = vec![custom_group.clone(), external_group.clone()];
    for group in &mut listed_groups {
        let object = group.as_object_mut().expect("object");
        object.remove("kind");
        object.remove("apiVersion");
    }
    expect_json(
        &f.app,
        "/apis",
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": listed_groups}),
    )
    .await;
    expect_json(&f.app, "/apis/custom.metrics.k8s.io", custom_group).await;
    expect_json(&f.app, "/apis/external.metrics.k8s.io", external_group).await;

    let entry = |name: &str, namespaced: bool, kind: &str| json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": ["get"]});
    for version in ["v1beta1", "v1beta2"] {
        expect_json(
            &f.app,
            &format!("/apis/custom.metrics.k8s.io/{version}"),
            json!({"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": format!("custom.metrics.k8s.io/{version}"),
            "resources": [
                entry("deployments.apps/triton_queue_time_ms_max", true, "MetricValueList"),
                entry("namespaces/queue_depth", false, "MetricValueList"),
                entry("nodes/gpu_utilization_percent", false, "MetricValueList"),
                entry("pods/requests_per_second", true, "MetricValueList"),
                entry("pods/triton_queue_time_ms", true, "MetricValueList"),
            ]}),
        )
        .await;
    }
    expect_json(
        &f.app,
        EXT,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "external.metrics.k8s.io/v1beta1",
               "resources": [entry("kafka_consumergroup_lag", true, "ExternalMetricValueList")]}),
    )
    .await;
    let not_found = status(
        404,
        "NotFound",
        "the server could not find the requested resource",
    );
    for uri in [
        "/apis/metrics.k8s.io",
        "/apis/custom.metrics.k8s.io/v1",
        "/apis/external.metrics.k8s.io/v1beta2",
        "/apis/custom.metrics.k8s.io/v1/namespaces/demo/pods/*/m",
        "/api/v1",
        "/",
    ] {
        expect_status(&f.app, uri, not_found.clone()).await;
    }
}

#[tokio::test]
async fn aggregated_discovery_v2() {
    let f = fixture();
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    let reply = send(&f.app, Method::GET, "/apis", Some(accept)).await;
    assert_eq!(reply.code, StatusCode::OK);
    assert_eq!(reply.content_type, accept);
    let subresource = |metric: &str, version: &str| {
        json!({"subresource": metric, "verbs": ["get"],
               "responseKind": {"group": "custom.metrics.k8s.io", "version": version, "kind": "MetricValueList"}})
    };
    let parent = |resource: &str, scope: &str, subresources: Vec<Value>| {
        json!({"resource": resource, "scope": scope, "singularResource": "", "verbs": [],
               "responseKind": {"group": "", "version": "", "kind": ""}, "subresources": subresources})
    };
    let version = |v: &str| {
        json!({"version": v, "freshness": "Current", "resources": [
            parent("deployments.apps", "Namespaced", vec![subresource("triton_queue_time_ms_max", v)]),
            parent("namespaces", "Cluster", vec![subresource("queue_depth", v)]),
            parent("nodes", "Cluster", vec![subresource("gpu_utilization_percent", v)]),
            parent("pods", "Namespaced", vec![subresource("requests_per_second", v), subresource("triton_queue_time_ms", v)]),
        ]})
    };
    assert_eq!(
        reply.body,
        json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": [
            {"metadata": {"name": "custom.metrics.k8s.io"}, "versions": [version("v1beta2"), version("v1beta1")]},
            {"metadata": {"name": "external.metrics.k8s.io"}, "versions": [
                {"version": "v1beta1", "freshness": "Current", "resources": [
                    {"resource": "kafka_consumergroup_lag", "scope": "Namespaced", "singularResource": "", "verbs": ["get"],
                     "responseKind": {"group": "external.metrics.k8s.io", "version": "v1beta1", "kind": "ExternalMetricValueList"}}]}]},
        ]})
    );
    // the aggregator polls with If-None-Match: an unchanged document is a 304
    let etag = f
        .app
        .clone()
        .oneshot(
            Request::get("/apis")
                .header(header::ACCEPT, accept)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible")
        .headers()
        .get(header::ETAG)
        .cloned()
        .expect("etag");
    let response = f
        .app
        .clone()
        .oneshot(
            Request::get("/apis")
                .header(header::ACCEPT, accept)
                .header(header::IF_NONE_MATCH, etag)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn pods_with_a_label_selector_in_both_versions() {
    let f = fixture();
    let ts = &f.ts;
    // wildcard as '*' and as '%2A'; selector with '+' for spaces, as the aggregator re-encodes it
    for version in ["v1beta1", "v1beta2"] {
        let base = format!("/apis/custom.metrics.k8s.io/{version}/namespaces/demo/pods");
        for wildcard in ["*", "%2A"] {
            expect_json(
                &f.app,
                &format!("{base}/{wildcard}/triton_queue_time_ms?labelSelector=app%3Dtriton"),
                list(
                    version,
                    vec![
                        queue(version, ts, "triton-0", "8k", Some(15)),
                        queue(version, ts, "triton-1", "12500m", Some(15)),
                    ],
                ),
            )
            .await;
        }
        expect_json(
            &f.app,
            &format!(
                "{base}/*/triton_queue_time_ms?labelSelector=app%3Dtriton%2Ctier+in+%28b%2Cc%29"
            ),
            list(
                version,
                vec![queue(version, ts, "triton-1", "12500m", Some(15))],
            ),
        )
        .await;
        // no selector: every pod in the namespace with a fresh value, and nothing from elsewhere
        expect_json(
            &f.app,
            &format!("{base}/*/triton_queue_time_ms"),
            list(
                version,
                vec![
                    queue(version, ts, "other-0", "1", None),
                    queue(version, ts, "triton-0", "8k", Some(15)),
                    queue(version, ts, "triton-1", "12500m", Some(15)),
                ],
            ),
        )
        .await;
        // a served metric with no matching pod is an empty list, not a 404
        expect_json(
            &f.app,
            &format!("{base}/*/triton_queue_time_ms?labelSelector=app%3Dnone"),
            list(version, vec![]),
        )
        .await;
        expect_json(
            &f.app,
            &format!("/apis/custom.metrics.k8s.io/{version}/namespaces/nowhere/pods/*/triton_queue_time_ms"),
            list(version, vec![]),
        )
        .await;
    }
}

#[tokio::test]
async fn metric_label_selector_filters_series_and_is_echoed() {
    let f = fixture();
    let ts = &f.ts;
    let described =
        json!({"kind": "Pod", "namespace": "demo", "name": "triton-0", "apiVersion": "v1"});
    let uri = "namespaces/demo/pods/*/requests_per_second?labelSelector=app%3Dtriton&metricLabelSelector=model%3Dresnet";
    expect_json(
        &f.app,
        &format!("{V2}/{uri}"),
        list("v1beta2", vec![json!({"describedObject": described, "timestamp": ts, "value": "1500m",
            "metric": {"name": "requests_per_second", "selector": {"matchLabels": {"model": "resnet"}}}})]),
    )
    .await;
    expect_json(
        &f.app,
        &format!("{V1}/{uri}"),
        list(
            "v1beta1",
            vec![
                json!({"describedObject": described, "timestamp": ts, "value": "1500m",
            "metricName": "requests_per_second", "selector": {"matchLabels": {"model": "resnet"}}}),
            ],
        ),
    )
    .await;
    expect_json(
        &f.app,
        &format!(
            "{V2}/namespaces/demo/pods/*/requests_per_second?metricLabelSelector=model%3Dbert"
        ),
        list("v1beta2", vec![]),
    )
    .await;
    expect_status(
        &f.app,
        &format!("{V2}/namespaces/demo/pods/triton-0/requests_per_second?metricLabelSelector=model%3Dbert"),
        status(404, "NotFound", "the server could not find the metric requests_per_second for pods triton-0 with selector model=bert"),
    )
    .await;
}

#[tokio::test]
async fn named_objects_have_exactly_one_item() {
    let f = fixture();
    let ts = &f.ts;
    expect_json(
        &f.app,
        &format!("{V1}/namespaces/demo/pods/triton-1/triton_queue_time_ms"),
        list(
            "v1beta1",
            vec![pod_v1beta1(
                ts,
                "demo",
                "triton-1",
                "triton_queue_time_ms",
                "12500m",
                Some(15),
            )],
        ),
    )
    .await;
    let deployment = |version: &str| {
        let described = json!({"kind": "Deployment", "namespace": "demo", "name": "triton", "apiVersion": "apps/v1"});
        let item = if version == "v1beta1" {
            json!({"describedObject": described, "metricName": "triton_queue_time_ms_max", "timestamp": ts, "value": "8k", "selector": null})
        } else {
            json!({"describedObject": described, "metric": {"name": "triton_queue_time_ms_max", "selector": null}, "timestamp": ts, "value": "8k"})
        };
        list(version, vec![item])
    };
    for version in ["v1beta1", "v1beta2"] {
        let base = format!("/apis/custom.metrics.k8s.io/{version}/namespaces/demo");
        // the HPA sends deployments.apps; humans type deployments
        expect_json(
            &f.app,
            &format!("{base}/deployments.apps/triton/triton_queue_time_ms_max"),
            deployment(version),
        )
        .await;
        expect_json(
            &f.app,
            &format!("{base}/deployments/triton/triton_queue_time_ms_max"),
            deployment(version),
        )
        .await;
    }
    // wildcard over objects of any resource, by label
    expect_json(
        &f.app,
        &format!("{V2}/namespaces/demo/deployments.apps/*/triton_queue_time_ms_max?labelSelector=app%3Dtriton"),
        deployment("v1beta2"),
    )
    .await;
}

#[tokio::test]
async fn root_scoped_nodes_and_namespace_metrics() {
    let f = fixture();
    let ts = &f.ts;
    let node = list(
        "v1beta2",
        vec![json!({
        "describedObject": {"kind": "Node", "name": "gpu-node-1", "apiVersion": "v1"},
        "metric": {"name": "gpu_utilization_percent", "selector": null}, "timestamp": ts, "value": "97"})],
    );
    expect_json(
        &f.app,
        &format!("{V2}/nodes/gpu-node-1/gpu_utilization_percent"),
        node.clone(),
    )
    .await;
    expect_json(
        &f.app,
        &format!("{V2}/nodes/*/gpu_utilization_percent"),
        node.clone(),
    )
    .await;
    // the HPA asks for a Node through its own namespace
    expect_json(
        &f.app,
        &format!("{V2}/namespaces/demo/nodes/gpu-node-1/gpu_utilization_percent"),
        node,
    )
    .await;
    expect_json(
        &f.app,
        &format!("{V1}/namespaces/demo/metrics/queue_depth"),
        list(
            "v1beta1",
            vec![json!({
            "describedObject": {"kind": "Namespace", "name": "demo", "apiVersion": "v1"},
            "metricName": "queue_depth", "timestamp": ts, "value": "42", "selector": null})],
        ),
    )
    .await;
    expect_status(
        &f.app,
        &format!("{V1}/namespaces/elsewhere/metrics/queue_depth"),
        object_not_found("namespaces", None, "elsewhere"),
    )
    .await;
}

#[tokio::test]
async fn external_metrics_with_a_selector() {
    let f = fixture();
    let ts = &f.ts;
    let item = |topic: &str, value: &str| {
        json!({"metricName": "kafka_consumergroup_lag", "metricLabels": {"topic": topic},
               "timestamp": ts, "window": 30, "value": value})
    };
    let external = |items: Vec<Value>| json!({"kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1", "metadata": {}, "items": items});
    expect_json(
        &f.app,
        &format!("{EXT}/namespaces/demo/kafka_consumergroup_lag?labelSelector=topic%3Dcv-jobs"),
        external(vec![item("cv-jobs", "1200")]),
    )
    .await;
    // every fresh series visible from the namespace (namespace-less ones from all); stale ones absent
    expect_json(
        &f.app,
        &format!("{EXT}/namespaces/demo/kafka_consumergroup_lag"),
        external(vec![
            item("cv-jobs", "1200"),
            item("thumbnails", "5"),
            item("global", "7"),
        ]),
    )
    .await;
    expect_json(
        &f.app,
        &format!("{EXT}/namespaces/other/kafka_consumergroup_lag"),
        external(vec![item("global", "7")]),
    )
    .await;
    expect_status(
        &f.app,
        &format!("{EXT}/namespaces/demo/kafka_consumergroup_lag?labelSelector=topic%3Dold"),
        status(404, "NotFound", "the server could not find the metric kafka_consumergroup_lag for namespaces demo with selector topic=old"),
    )
    .await;
    expect_status(
        &f.app,
        &format!("{EXT}/namespaces/demo/queue_messages_ready"),
        status(
            404,
            "NotFound",
            "the server could not find the metric queue_messages_ready for namespaces demo",
        ),
    )
    .await;
    expect_status(
        &f.app,
        &format!("{EXT}/namespaces/demo"),
        status(400, "BadRequest", "invalid request path"),
    )
    .await;
    expect_status(
        &f.app,
        &format!("{EXT}/kafka_consumergroup_lag"),
        status(400, "BadRequest", "invalid request path"),
    )
    .await;
}

#[tokio::test]
async fn stale_values_are_absent_never_zero() {
    let f = fixture();
    for version in [V1, V2] {
        let reply = get(
            &f.app,
            &format!(
                "{version}/namespaces/demo/pods/*/triton_queue_time_ms?labelSelector=app%3Dtriton"
            ),
        )
        .await;
        let names: Vec<&str> = reply.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|item| item["describedObject"]["name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["triton-0", "triton-1"],
            "stale and missing pods are left out"
        );
        expect_status(
            &f.app,
            &format!("{version}/namespaces/demo/pods/triton-stale/triton_queue_time_ms"),
            status(
                404,
                "NotFound",
                "the server could not find the metric triton_queue_time_ms for pods triton-stale",
            ),
        )
        .await;
    }
}

#[tokio::test]
async fn not_found_errors_name_what_is_missing() {
    let f = fixture();
    for version in [V1, V2] {
        expect_status(
            &f.app,
            &format!("{version}/namespaces/demo/pods/*/http_requests?labelSelector=app%3Dweb"),
            status(
                404,
                "NotFound",
                "the server could not find the metric http_requests for pods with selector app=web",
            ),
        )
        .await;
        expect_status(
            &f.app,
            &format!("{version}/namespaces/demo/pods/*/http_requests"),
            status(
                404,
                "NotFound",
                "the server could not find the metric http_requests for pods",
            ),
        )
        .await;
        expect_status(
            &f.app,
            &format!("{version}/namespaces/demo/pods/triton-2/triton_queue_time_ms"),
            status(
                404,
                "NotFound",
                "the server could not find the metric triton_queue_time_ms for pods triton-2",
            ),
        )
        .await;
        expect_status(
            &f.app,
            &format!("{version}/namespaces/demo/pods/web-1/triton_queue_time_ms"),
            object_not_found("pods", None, "web-1"),
        )
        .await;
        expect_status(
            &f.app,
            &format!("{version}/namespaces/demo/deployments.apps/web/triton_queue_time_ms_max"),
            object_not_found("deployments", Some("apps"), "web"),
        )
        .await;
        expect_status(
            &f.app,
            &format!("{version}/nodes/gpu-node-9/gpu_utilization_percent"),
            object_not_found("nodes", None, "gpu-node-9"),
        )
        .await;
        expect_status(
            &f.app,
            &format!("{version}/namespaces/demo/statefulsets.apps/triton/triton_queue_time_ms_max"),
            status(404, "NotFound", "the server could not find the metric triton_queue_time_ms_max for statefulsets.apps triton"),
        )
        .await;
    }
}

#[tokio::test]
async fn bad_requests_get_a_400_status() {
    let f = fixture();
    let cases = [
        ("namespaces/demo/pods", "invalid request path"),
        ("namespaces/demo", "invalid request path"),
        ("nodes/gpu-node-1", "invalid request path"),
        ("namespaces/demo/pods/*/m/extra", "invalid request path"),
        ("namespaces//pods/*/m", "invalid request path"),
        (
            "namespaces/%2A/pods/*/m",
            "invalid request path: the namespace may not be a wildcard",
        ),
        (
            "namespaces/demo/pods/a%2Fb/m",
            "invalid request path: segment \"a/b\" may not contain '/' or '%'",
        ),
        (
            "namespaces/demo/pods/%2E%2E/m",
            "invalid request path: segment may not be \"..\"",
        ),
        (
            "namespaces/demo/pods/%FF/m",
            "request path is not valid UTF-8",
        ),
        (
            "pods/*/triton_queue_time_ms",
            "pods is namespaced: use /namespaces/{namespace}/pods/…",
        ),
        (
            "namespaces/demo/pods/*/triton_queue_time_ms?labelSelector=app%3D%3D%3Dx",
            "invalid labelSelector: unable to parse requirement at byte 5 of \"app===x\": found '=', expected a value",
        ),
        (
            "namespaces/demo/pods/*/triton_queue_time_ms?labelSelector=tier+in+%28a",
            "invalid labelSelector: unable to parse requirement at byte 10 of \"tier in (a\": found end of input, expected ',' or ')'",
        ),
        (
            "namespaces/demo/pods/*/triton_queue_time_ms?metricLabelSelector=%21",
            "invalid metricLabelSelector: unable to parse requirement at byte 1 of \"!\": found end of input, expected a label key",
        ),
        (
            "namespaces/demo/pods/*/m?labelSelector=%C3%28",
            "query string is not valid UTF-8",
        ),
    ];
    for version in [V1, V2] {
        for (path, message) in cases {
            expect_status(
                &f.app,
                &format!("{version}/{path}"),
                status(400, "BadRequest", message),
            )
            .await;
        }
    }
    let huge = "a%3Db%2C".repeat(5000);
    let reply = get(
        &f.app,
        &format!("{V2}/namespaces/demo/pods/*/m?labelSelector={huge}"),
    )
    .await;
    assert_eq!(reply.code, StatusCode::BAD_REQUEST, "{}", reply.text);
}

#[tokio::test]
async fn content_negotiation_and_methods() {
    let f = fixture();
    let uri = format!("{V2}/namespaces/demo/pods/triton-0/triton_queue_time_ms");
    // the HPA prefers protobuf but accepts anything: it gets JSON, labelled as JSON
    for accept in [
        Some("application/vnd.kubernetes.protobuf, */*"),
        None,
        Some("application/*"),
    ] {
        let reply = send(&f.app, Method::GET, &uri, accept).await;
        assert_eq!(reply.code, StatusCode::OK, "{accept:?}");
        assert_eq!(reply.content_type, "application/json", "{accept:?}");
        assert_eq!(reply.body["kind"], "MetricValueList");
    }
    let reply = send(
        &f.app,
        Method::GET,
        &uri,
        Some("application/vnd.kubernetes.protobuf"),
    )
    .await;
    assert_eq!(reply.code, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(reply.content_type, "application/json");
    assert_eq!(
        reply.body,
        status(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json"
        )
    );
    for path in ["/apis", "/apis/custom.metrics.k8s.io/v1beta2"] {
        let reply = send(
            &f.app,
            Method::GET,
            path,
            Some("application/vnd.kubernetes.protobuf"),
        )
        .await;
        assert_eq!(reply.code, StatusCode::NOT_ACCEPTABLE, "{path}");
    }
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let reply = send(&f.app, method.clone(), &uri, None).await;
        assert_eq!(reply.code, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(
            reply.body,
            status(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource"
            )
        );
    }
}

#[tokio::test]
async fn openapi_health_and_own_metrics() {
    let f = fixture();
    let v2 = get(&f.app, "/openapi/v2").await;
    assert_eq!(v2.code, StatusCode::OK);
    assert_eq!(v2.body["swagger"], "2.0");
    let paths = v2.body["paths"].as_object().expect("paths");
    assert!(paths.contains_key(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/{resource}/{name}/{metric}"
    ));
    assert!(
        paths.contains_key("/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}")
    );
    // every $ref points at a definition in the same document
    for reference in v2.text.split("\"$ref\":\"#/definitions/").skip(1) {
        let name = reference.split('"').next().expect("name");
        assert!(
            v2.body["definitions"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }
    let index = get(&f.app, "/openapi/v3").await;
    assert_eq!(index.code, StatusCode::OK);
    for gv in [
        "custom.metrics.k8s.io/v1beta1",
        "custom.metrics.k8s.io/v1beta2",
        "external.metrics.k8s.io/v1beta1",
    ] {
        let url = index.body["paths"][format!("apis/{gv}")]["serverRelativeURL"]
            .as_str()
            .expect("serverRelativeURL");
        let doc = get(&f.app, url).await;
        assert_eq!(doc.code, StatusCode::OK, "{url}");
        assert_eq!(doc.body["openapi"], "3.0.0");
        assert!(!doc.body["paths"].as_object().expect("paths").is_empty());
    }
    expect_status(
        &f.app,
        "/openapi/v3/apis/metrics.k8s.io/v1beta1",
        status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    )
    .await;

    for path in ["/healthz", "/livez", "/readyz"] {
        let reply = get(&f.app, path).await;
        assert_eq!(
            (reply.code, reply.text.as_str()),
            (StatusCode::OK, "ok"),
            "{path}"
        );
    }
    let _ = get(
        &f.app,
        &format!("{V2}/namespaces/demo/pods/*/triton_queue_time_ms"),
    )
    .await;
    let metrics = get(&f.app, "/metrics").await;
    assert_eq!(metrics.code, StatusCode::OK);
    for series in [
        "kubemind_adapter_request_duration_seconds_bucket{",
        "route=\"custom\",code=\"200\"",
        "kubemind_adapter_values_served_total{api=\"custom\"} 3",
        "kubemind_adapter_snapshot_age_seconds ",
        "kubemind_adapter_snapshot_samples 13",
        "kubemind_adapter_snapshot_generation 1",
    ] {
        assert!(
            metrics.text.contains(series),
            "missing {series} in\n{}",
            metrics.text
        );
    }
}

#[tokio::test]
async fn not_ready_until_the_first_snapshot() {
    let app = api::router(ApiState {
        store: std::sync::Arc::new(Store::new(MAX_AGE)),
        telemetry: std::sync::Arc::new(Telemetry::new()),
        readiness: Readiness::default(),
        access: Access::Open,
        external: None,
    });
    assert_eq!(
        get(&app, "/readyz").await.code,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(get(&app, "/healthz").await.code, StatusCode::OK);
    // discovery answers 200 whatever the state of the sources
    let reply = get(&app, "/apis/custom.metrics.k8s.io/v1beta2").await;
    assert_eq!(reply.code, StatusCode::OK);
    assert_eq!(reply.body["resources"], json!([]));
}

#[tokio::test]
async fn anonymous_callers_are_forbidden_without_a_delegate() {
    use kubemind::adapter::auth::{
        Auth,
        trust::{Trust, TrustSources},
    };
    let trust = Trust::build(&TrustSources::default(), &[]).expect("empty trust");
    let app = api::router(ApiState {
        store: std::sync::Arc::new(Store::new(MAX_AGE)),
        telemetry: std::sync::Arc::new(Telemetry::new()),
        readiness: Readiness::default(),
        access: Access::Checked(std::sync::Arc::new(Auth::new(trust, None))),
        external: None,
    });
    expect_status(
        &app,
        "/apis/custom.metrics.k8s.io/v1beta2",
        status(403, "Forbidden", "forbidden: User \"system:anonymous\" cannot get path \"/apis/custom.metrics.k8s.io/v1beta2\": no authorizer is configured: only system:masters is allowed"),
    )
    .await;
    // a spoofed identity header changes nothing without a front-proxy certificate
    let response = app
        .clone()
        .oneshot(
            Request::get("/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/*/m")
                .header("x-remote-user", "admin")
                .header("x-remote-group", "system:masters")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // a bearer token cannot be reviewed without a delegate
    let response = app
        .clone()
        .oneshot(
            Request::get("/apis")
                .header("authorization", "Bearer abc")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(&app, "/healthz").await.code, StatusCode::OK);
}
