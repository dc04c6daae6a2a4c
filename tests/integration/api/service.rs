//! The server around the APIs: OpenAPI, health, its own metrics, readiness, anonymous callers.

use super::*;

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
