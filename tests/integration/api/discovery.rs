//! Discovery: the API group documents, v1 and the aggregated v2 form.

use super::*;

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
