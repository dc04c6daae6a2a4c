//! custom.metrics.k8s.io reads: Pods with selectors in both versions, metric selectors, named objects, root-scoped nodes and namespace metrics, stale values.

use super::*;

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
