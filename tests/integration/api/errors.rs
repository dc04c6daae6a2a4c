//! What goes wrong gets a Status: not found, bad requests, content negotiation and methods.

use super::*;

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
