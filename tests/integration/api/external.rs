//! external.metrics.k8s.io reads, with and without a selector.

use super::*;

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
