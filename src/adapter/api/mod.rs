//! The HTTP surface of the adapter: every route, thin handlers over the store, and the layers.
//!
//! Routes (GET only; any other method is a 405 Status):
//!
//! | path | answer |
//! |---|---|
//! | `/healthz`, `/livez` | `ok` while the process serves |
//! | `/readyz` | `ok` once the first snapshot is published, else 500 |
//! | `/metrics` | the adapter's own telemetry (OpenMetrics text) |
//! | `/apis` | `APIGroupList`, or v2 `APIGroupDiscoveryList` when its Accept asks |
//! | `/apis/{group}` | `APIGroup` for `custom.metrics.k8s.io` / `external.metrics.k8s.io` |
//! | `/apis/{group}/{version}` | `APIResourceList` from the snapshot's catalogue |
//! | `/apis/custom.metrics.k8s.io/{v1beta1,v1beta2}/…` | `MetricValueList` ([`request::custom`]) |
//! | `/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}` | `ExternalMetricValueList` |
//! | `/openapi/v2`, `/openapi/v3`, `/openapi/v3/apis/{group}/{version}` | OpenAPI documents |
//! | anything else | 404 Status |
//!
//! Handlers `load()` the current snapshot and never await a backend; every failure is an
//! [`Error`] rendered as a `metav1.Status`. Every JSON answer carries `Content-Type:
//! application/json`, whatever the Accept header preferred.

mod bodies;
mod discovery;
mod error;
mod kept;
mod metrics;
mod negotiate;
mod openapi;
mod request;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Serialize;
use tower_http::limit::RequestBodyLimitLayer;

pub use bodies::{CUSTOM_GROUP, CustomVersion, EXTERNAL_GROUP};
pub use error::Error;

use crate::adapter::auth::Auth;
use crate::adapter::auth::attributes::Attributes;
use crate::adapter::sources::prometheus::external::{ExternalQueries, ReadError};
use crate::adapter::store::Readiness;
use crate::adapter::store::Store;
use crate::adapter::telemetry::Telemetry;
use crate::serve::PeerCertificates;
use kept::{KeptAnswers, ReadKey};
use metrics::Freshness;
use negotiate::Format;

/// Who may read metrics.
#[derive(Clone)]
pub enum Access {
    /// Any caller (tests that call the router directly).
    Open,
    /// Authenticated and authorized by [`Auth`] (every served mode).
    Checked(Arc<Auth>),
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
    pub telemetry: Arc<Telemetry>,
    pub readiness: Readiness,
    pub access: Access,
    /// External metrics read from Prometheus on demand, when that source is on.
    pub external: Option<Arc<ExternalQueries>>,
}

/// The route a response answered, recorded by the request-metrics layer (bounded set).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteLabel(pub &'static str);

/// Largest request body accepted: reads carry none.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Builds the router, with its own [kept answers](kept). Layers, innermost first: access check,
/// body limit, request metrics (so refusals are measured too).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(alive))
        .route("/livez", get(alive))
        .route("/readyz", get(ready))
        .route("/metrics", get(own_metrics))
        .route("/apis", get(apis))
        .route("/apis/{group}", get(group))
        .route("/apis/{group}/{version}", get(group_version))
        .route("/apis/{group}/{version}/{*rest}", get(read_metric))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_v3))
        .route(
            "/openapi/v3/apis/{group}/{version}",
            get(openapi_v3_group_version),
        )
        .fallback(|| async { labelled("unmatched", Err(Error::PathNotFound)) })
        .method_not_allowed_fallback(|| async {
            labelled("method_not_allowed", Err(Error::MethodNotAllowed))
        })
        .layer(Extension(Arc::new(KeptAnswers::default())))
        .layer(middleware::from_fn_with_state(state.clone(), check_access))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The first `N` raw (still percent-encoded) segments of the path, `""` where it has fewer.
/// Handlers read the path themselves rather than through axum's `Path`, whose rejection of
/// undecodable input would be plain text instead of a Status. Our groups and versions are plain
/// ASCII, so comparing raw segments is exact.
fn path_segments<const N: usize>(uri: &Uri) -> [&str; N] {
    let mut segments = uri.path().split('/').skip(1);
    std::array::from_fn(|_| segments.next().unwrap_or_default())
}

/// Attaches the route label to a handler's outcome.
fn labelled(route: &'static str, result: Result<Response, Error>) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(RouteLabel(route));
    response
}

fn json_body(bytes: impl Into<Bytes>) -> Response {
    json_with_type(bytes, HeaderValue::from_static("application/json"))
}

fn json_with_type(bytes: impl Into<Bytes>, content_type: HeaderValue) -> Response {
    let mut response = Response::new(Body::from(bytes.into()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

fn serialize(value: &impl Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Internal(format!("serializing response: {e}")))
}

fn is_health_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz")
}

/// Authenticates and authorizes every request but health checks; removes identity headers the
/// caller may not assert.
async fn check_access(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    let Access::Checked(auth) = &state.access else {
        return next.run(request).await;
    };
    if is_health_path(request.uri().path()) {
        return next.run(request).await;
    }
    let chain = request
        .extensions()
        .get::<PeerCertificates>()
        .and_then(|peer| peer.0.clone());
    let user = match auth
        .authenticate(chain.as_deref(), request.headers_mut())
        .await
    {
        Ok(user) => user,
        Err(error) => return labelled("unauthorized", Err(error.into())),
    };
    let attributes = Attributes::of(request.uri().path());
    if let Err(error) = auth.authorize(&user, &attributes).await {
        let route = match error {
            crate::adapter::auth::Error::Forbidden { .. } => "forbidden",
            _ => "authorization_error",
        };
        return labelled(route, Err(error.into()));
    }
    next.run(request).await
}

/// Records latency by route and code, and counts values served.
async fn observe(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let response = next.run(request).await;
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map_or("unmatched", |label| label.0);
    state
        .telemetry
        .observe_request(route, response.status().as_u16(), start.elapsed());
    response
}

async fn alive() -> Response {
    labelled("health", Ok("ok".into_response()))
}

async fn ready(State(state): State<ApiState>) -> Response {
    let response = if state.readiness.is_ready() {
        "ok".into_response()
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "readyz check failed: no snapshot published yet",
        )
            .into_response()
    };
    labelled("health", Ok(response))
}

async fn own_metrics(State(state): State<ApiState>) -> Response {
    let text = state.telemetry.encode(&state.store.load());
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    labelled("metrics", Ok(response))
}

async fn apis(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let result = (|| match negotiate::negotiate(&headers, true)? {
        Format::Json => serialize(&discovery::api_group_list()).map(json_body),
        Format::DiscoveryV2 => {
            let bytes = serialize(&discovery::aggregated(state.store.load().catalogue()))?;
            let mut hasher = DefaultHasher::new();
            bytes.hash(&mut hasher);
            let etag = format!("\"{:016X}\"", hasher.finish());
            let unchanged = headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes() == etag.as_bytes());
            let mut response = if unchanged {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                json_with_type(
                    bytes,
                    HeaderValue::from_static(negotiate::DISCOVERY_V2_CONTENT_TYPE),
                )
            };
            if let Ok(value) = HeaderValue::from_str(&etag) {
                response.headers_mut().insert(header::ETAG, value);
            }
            Ok(response)
        }
    })();
    labelled("discovery", result)
}

async fn group(uri: Uri, headers: HeaderMap) -> Response {
    let result = negotiate::negotiate(&headers, false).and_then(|_| {
        let [_, name] = path_segments(&uri);
        let group = discovery::api_group(name).ok_or(Error::PathNotFound)?;
        serialize(&group).map(json_body)
    });
    labelled("discovery", result)
}

async fn group_version(State(state): State<ApiState>, uri: Uri, headers: HeaderMap) -> Response {
    let result = negotiate::negotiate(&headers, false).and_then(|_| {
        let [_, group, version] = path_segments(&uri);
        let snapshot = state.store.load();
        let list = match (group, CustomVersion::parse(version)) {
            (CUSTOM_GROUP, Some(version)) => {
                discovery::custom_resources(snapshot.catalogue(), version)
            }
            (EXTERNAL_GROUP, _) if version == "v1beta1" => {
                discovery::external_resources(snapshot.catalogue())
            }
            _ => return Err(Error::PathNotFound),
        };
        serialize(&list).map(json_body)
    });
    labelled("discovery", result)
}

/// The API a metric read is for, from the group and version in its path.
enum MetricApi {
    Custom(CustomVersion),
    External,
}

async fn read_metric(
    State(state): State<ApiState>,
    Extension(kept): Extension<Arc<KeptAnswers>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let [_, group, version] = path_segments(&uri);
    let api = match (group, CustomVersion::parse(version)) {
        (CUSTOM_GROUP, Some(version)) => MetricApi::Custom(version),
        (EXTERNAL_GROUP, _) if version == "v1beta1" => MetricApi::External,
        _ => return labelled("unmatched", Err(Error::PathNotFound)),
    };
    let route = match api {
        MetricApi::Custom(_) => "custom",
        MetricApi::External => "external",
    };
    // The raw (still percent-encoded) rest of the path: segments are decoded one by one, so an
    // encoded '/' cannot split a name.
    let rest = uri.path().splitn(5, '/').nth(4).unwrap_or_default();
    let result = answer(&state, &kept, api, rest, uri.query(), &headers).await;
    if let Ok(answer) = &result {
        state.telemetry.count_values_served(route, answer.items);
    }
    labelled(route, result.map(|answer| json_body(answer.body)))
}

async fn answer(
    state: &ApiState,
    kept: &KeptAnswers,
    api: MetricApi,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<metrics::Answer, Error> {
    negotiate::negotiate(headers, false)?;
    let segments = request::segments(rest)?;
    let query_text = query;
    let query = request::parse_query(query)?;
    let snapshot = state.store.load();
    let freshness = Freshness {
        now: SystemTime::now(),
        max_age: state.store.max_age(),
    };
    match api {
        MetricApi::Custom(version) => {
            let request = request::custom(segments, &query)?;
            // Only answers with objects are kept: what an empty scope answers depends on
            // nothing a pointer could tell.
            let Some(objects) = metrics::objects_read(&snapshot, &request)? else {
                return metrics::custom(None, &request, version, freshness);
            };
            let key = ReadKey::new(version, rest, query_text);
            if let Some(answer) = kept.find(&key, objects, freshness) {
                state.telemetry.count_answer_sent_again();
                return Ok(answer);
            }
            let answer = metrics::custom(Some(objects), &request, version, freshness)?;
            kept.keep(key, objects, freshness, &answer);
            Ok(answer)
        }
        MetricApi::External => {
            let request = request::external(segments, &query)?;
            if let Some(queries) = &state.external {
                let read = queries
                    .read(&request.metric, &request.namespace, &request.selector)
                    .await;
                let answer = match read {
                    Ok(Some(answer)) => answer,
                    Ok(None) => return metrics::external(&snapshot, &request, freshness),
                    Err(ReadError::BadSelector(message)) => return Err(Error::BadRequest(message)),
                    Err(error @ ReadError::Unavailable { .. }) => {
                        return Err(Error::Unavailable(error.to_string()));
                    }
                };
                let freshness = Freshness {
                    max_age: queries.max_age(),
                    ..freshness
                };
                return metrics::external_series(&answer.series, &request, freshness);
            }
            metrics::external(&snapshot, &request, freshness)
        }
    }
}

async fn openapi_v2() -> Response {
    labelled("openapi", Ok(json_body(openapi::v2().to_vec())))
}

async fn openapi_v3() -> Response {
    labelled("openapi", Ok(json_body(openapi::v3_index().to_vec())))
}

async fn openapi_v3_group_version(uri: Uri) -> Response {
    let [_, _, _, group, version] = path_segments(&uri);
    let result = openapi::v3_group_version(&format!("{group}/{version}"))
        .map(|doc| json_body(doc.to_vec()))
        .ok_or(Error::PathNotFound);
    labelled("openapi", result)
}
