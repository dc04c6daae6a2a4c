//! The whole request path: any path and query bytes get a response, and every non-200 answer is
//! a `metav1.Status` whose `code` is the HTTP status.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use kubemind::adapter::api::{self, Access, ApiState};
use kubemind::adapter::store::Readiness;
use kubemind::adapter::sources::static_file::StaticMetrics;
use kubemind::adapter::store::Store;
use kubemind::adapter::telemetry::Telemetry;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const VALUES: &str = r#"
pods:
  - {namespace: demo, name: triton-0, labels: {app: triton}, metrics: {q: 1, r: {value: 2, labels: {model: a}}}}
objects:
  - {namespace: demo, resource: deployments.apps, name: triton, metrics: {q_max: 1}}
  - {resource: nodes, name: n, metrics: {g: 3}}
  - {resource: namespaces, name: demo, metrics: {d: 4}}
external:
  - {namespace: demo, name: lag, labels: {topic: t}, value: 5}
"#;

fn app() -> &'static (tokio::runtime::Runtime, axum::Router) {
    static APP: OnceLock<(tokio::runtime::Runtime, axum::Router)> = OnceLock::new();
    APP.get_or_init(|| {
        let store = Arc::new(Store::new(Duration::from_secs(30)));
        store.publish(StaticMetrics::parse(VALUES).expect("values").snapshot(SystemTime::now()));
        let router = api::router(ApiState {
            store,
            telemetry: Arc::new(Telemetry::new()),
            readiness: Readiness::default(),
            access: Access::Open,
            external: None,
        });
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        (runtime, router)
    })
}

fuzz_target!(|input: (bool, &[u8], &[u8])| {
    let (custom, path, query) = input;
    let prefix = if custom { "/apis/custom.metrics.k8s.io/v1beta2/" } else { "/apis/external.metrics.k8s.io/v1beta1/" };
    let mut uri = prefix.as_bytes().to_vec();
    uri.extend_from_slice(path);
    if !query.is_empty() {
        uri.push(b'?');
        uri.extend_from_slice(query);
    }
    let Ok(request) = Request::get(uri.as_slice()).body(Body::empty()) else {
        return; // not a URI any client can send
    };
    let (runtime, router) = app();
    runtime.block_on(async {
        let response = router.clone().oneshot(request).await.expect("infallible");
        let code = response.status().as_u16();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).expect("every answer is JSON");
        if code != 200 {
            assert_eq!(json["kind"], "Status");
            assert_eq!(json["code"].as_u64(), Some(u64::from(code)));
            assert!(matches!(code, 400 | 404), "unexpected {code}: {json}");
        }
    });
});
