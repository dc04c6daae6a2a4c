//! KEDA's external-scaler protocol (`externalscaler.proto` of kedacore/keda, package
//! `externalscaler`: `IsActive`, `StreamIsActive`, `GetMetricSpec`, `GetMetrics`), served from
//! the same snapshot as the metrics APIs, so a `ScaledObject` can scale an idle GPU
//! deployment to zero on kubemind's signals — which the HPA alone cannot.
//!
//! A `ScaledObject` trigger of `type: external` (or `external-push`) points at the adapter's
//! `--keda-port` and says, in its metadata:
//!
//! | key | meaning |
//! |---|---|
//! | `metricName` | a catalogue pod metric (`triton_pending_requests`, `inference_request_rate`, …) |
//! | `labelSelector` | the workload's pods, in the ScaledObject's namespace |
//! | `targetValue` | the value per replica KEDA scales to (AverageValue) |
//! | `aggregation` | `sum` (default), `max` or `avg` over the pods |
//! | `activationWindow` | how long after the last request or pending one it stays active (default `5m`, at most `24h`) |
//!
//! The value is the aggregate over the selected pods' fresh values. Pods that exist without a
//! fresh value are an error (`UNAVAILABLE`), never 0, so KEDA keeps the current replicas; no
//! pod at all (scaled to zero) is 0. Active means a selected pod has pending or waiting
//! requests, or any request rate, or the metric itself above 0 — now or within the activation
//! window.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use futures::Stream;
use tonic::server::Grpc;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use super::store::{Store, oldest_fresh};
use crate::resources::GroupResource;
use crate::selector::Selector;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScaledObjectRef {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub namespace: String,
    #[prost(map = "string, string", tag = "3")]
    pub scaler_metadata: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct IsActiveResponse {
    #[prost(bool, tag = "1")]
    pub result: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetMetricSpecResponse {
    #[prost(message, repeated, tag = "1")]
    pub metric_specs: Vec<MetricSpec>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricSpec {
    #[prost(string, tag = "1")]
    pub metric_name: String,
    #[prost(int64, tag = "2")]
    pub target_size: i64,
    #[prost(double, tag = "3")]
    pub target_size_float: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetMetricsRequest {
    #[prost(message, optional, tag = "1")]
    pub scaled_object_ref: Option<ScaledObjectRef>,
    #[prost(string, tag = "2")]
    pub metric_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetMetricsResponse {
    #[prost(message, repeated, tag = "1")]
    pub metric_values: Vec<MetricValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricValue {
    #[prost(string, tag = "1")]
    pub metric_name: String,
    #[prost(int64, tag = "2")]
    pub metric_value: i64,
    #[prost(double, tag = "3")]
    pub metric_value_float: f64,
}

/// The service's gRPC path prefix.
pub const SERVICE: &str = "/externalscaler.ExternalScaler";
/// The signals that mean "requests are there", besides the trigger's own metric.
const ACTIVITY_METRICS: [&str; 3] = [
    "triton_pending_requests",
    "vllm_requests_waiting",
    "inference_request_rate",
];
const DEFAULT_ACTIVATION_WINDOW: Duration = Duration::from_secs(300);
/// The longest activation window a trigger may ask for; activity older than this is
/// forgotten, so triggers that stop asking do not pile up.
const MAX_ACTIVATION_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How often `StreamIsActive` looks again.
const STREAM_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregation {
    Sum,
    Max,
    Avg,
}

/// A trigger's metadata, checked.
#[derive(Debug, Clone)]
struct Trigger {
    namespace: String,
    metric: String,
    selector: Selector,
    target: f64,
    aggregation: Aggregation,
    activation_window: Duration,
}

fn invalid(message: String) -> Status {
    Status::invalid_argument(message)
}

impl Trigger {
    fn of(object: &ScaledObjectRef) -> Result<Trigger, Status> {
        let get = |key: &str| object.scaler_metadata.get(key).map(|v| v.trim());
        let metric = get("metricName")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| invalid("metadata.metricName is required".into()))?;
        let selector = Selector::parse(get("labelSelector").unwrap_or_default())
            .map_err(|e| invalid(format!("metadata.labelSelector: {e}")))?;
        let target = get("targetValue")
            .ok_or_else(|| invalid("metadata.targetValue is required".into()))?
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite() && *t > 0.0)
            .ok_or_else(|| invalid("metadata.targetValue must be a number above 0".into()))?;
        let aggregation = match get("aggregation").unwrap_or("sum") {
            "sum" => Aggregation::Sum,
            "max" => Aggregation::Max,
            "avg" => Aggregation::Avg,
            other => {
                return Err(invalid(format!(
                    "metadata.aggregation {other:?} is not sum, max or avg"
                )));
            }
        };
        let activation_window = match get("activationWindow") {
            Some(text) => crate::process::parse_duration(text)
                .map_err(|e| invalid(format!("metadata.activationWindow: {e}")))?,
            None => DEFAULT_ACTIVATION_WINDOW,
        };
        if activation_window > MAX_ACTIVATION_WINDOW {
            return Err(invalid(format!(
                "metadata.activationWindow must be at most {}",
                humantime::format_duration(MAX_ACTIVATION_WINDOW)
            )));
        }
        if object.namespace.is_empty() {
            return Err(invalid("the ScaledObject's namespace is required".into()));
        }
        Ok(Trigger {
            namespace: object.namespace.clone(),
            metric: metric.to_string(),
            selector,
            target,
            aggregation,
            activation_window,
        })
    }

    /// Where activity is remembered: one trigger, whatever ScaledObject names it.
    fn key(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.selector, self.metric)
    }
}

/// The scaler: the store it reads and when each trigger was last active.
pub struct Scaler {
    store: Arc<Store>,
    last_active: Mutex<HashMap<String, Instant>>,
}

impl Scaler {
    pub fn new(store: Arc<Store>) -> Scaler {
        Scaler {
            store,
            last_active: Mutex::default(),
        }
    }

    /// The selected pods' fresh values of each metric named; `None` when no pod is selected.
    fn fresh_values(&self, trigger: &Trigger, metrics: &[&str]) -> Option<Vec<Vec<f64>>> {
        let snapshot = self.store.load();
        let cutoff = oldest_fresh(SystemTime::now(), self.store.max_age());
        let objects = snapshot.objects(Some(&trigger.namespace), &GroupResource::pods())?;
        let pods: Vec<_> = objects
            .values()
            .filter(|pod| trigger.selector.matches(&pod.labels))
            .collect();
        if pods.is_empty() {
            return None;
        }
        Some(
            metrics
                .iter()
                .map(|metric| {
                    pods.iter()
                        .filter_map(|pod| pod.metrics.get(metric))
                        .filter(|sample| sample.is_newer_than(cutoff))
                        .map(|sample| sample.value())
                        .collect()
                })
                .collect(),
        )
    }

    /// The trigger's value: 0 with no pod selected, an error when pods have no fresh value.
    fn value(&self, trigger: &Trigger) -> Result<f64, Status> {
        let Some(values) = self.fresh_values(trigger, &[trigger.metric.as_str()]) else {
            return Ok(0.0);
        };
        let values = &values[0];
        if values.is_empty() {
            return Err(Status::unavailable(format!(
                "no fresh {} for the pods {} selects in {}: KEDA keeps the current replicas",
                trigger.metric, trigger.selector, trigger.namespace
            )));
        }
        let sum: f64 = values.iter().sum();
        Ok(match trigger.aggregation {
            Aggregation::Sum => sum,
            Aggregation::Max => values.iter().copied().fold(f64::MIN, f64::max),
            Aggregation::Avg => sum / values.len() as f64,
        })
    }

    /// Active now, or within the activation window; an error when pods exist but say nothing.
    fn is_active(&self, trigger: &Trigger) -> Result<bool, Status> {
        let mut metrics = vec![trigger.metric.as_str()];
        metrics.extend(ACTIVITY_METRICS);
        let busy = match self.fresh_values(trigger, &metrics) {
            None => false,
            Some(values) if values.iter().all(Vec::is_empty) => {
                return Err(Status::unavailable(format!(
                    "no fresh activity signal for the pods {} selects in {}",
                    trigger.selector, trigger.namespace
                )));
            }
            Some(values) => values.iter().flatten().any(|v| *v > 0.0),
        };
        let mut last_active = self
            .last_active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if busy {
            last_active.retain(|_, at| now.duration_since(*at) < MAX_ACTIVATION_WINDOW);
            last_active.insert(trigger.key(), now);
            return Ok(true);
        }
        Ok(last_active
            .get(&trigger.key())
            .is_some_and(|at| now.duration_since(*at) < trigger.activation_window))
    }
}

type ActiveStream = Pin<Box<dyn Stream<Item = Result<IsActiveResponse, Status>> + Send>>;

/// The four methods under [`SERVICE`], on an axum router (HTTP/2, as gRPC is).
pub fn router(scaler: Arc<Scaler>) -> Router {
    let is_active = {
        let scaler = scaler.clone();
        unary(move |object: ScaledObjectRef| {
            let scaler = scaler.clone();
            async move {
                let result = scaler.is_active(&Trigger::of(&object)?)?;
                Ok(IsActiveResponse { result })
            }
        })
    };
    let stream_is_active = {
        let scaler = scaler.clone();
        tower::service_fn(move |request: http::Request<Body>| {
            let scaler = scaler.clone();
            async move {
                let method = tower::service_fn(move |request: Request<ScaledObjectRef>| {
                    let scaler = scaler.clone();
                    async move {
                        let trigger = Trigger::of(request.get_ref())?;
                        let stream: ActiveStream = Box::pin(active_stream(scaler, trigger));
                        Ok::<_, Status>(Response::new(stream))
                    }
                });
                let mut grpc = Grpc::new(ProstCodec::default());
                Ok::<_, Infallible>(grpc.server_streaming(method, request).await)
            }
        })
    };
    let metric_spec = unary(|object: ScaledObjectRef| async move {
        let trigger = Trigger::of(&object)?;
        Ok(GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: trigger.metric.clone(),
                target_size: trigger.target.ceil() as i64,
                target_size_float: trigger.target,
            }],
        })
    });
    let metrics = unary(move |request: GetMetricsRequest| {
        let scaler = scaler.clone();
        async move {
            let object = request
                .scaled_object_ref
                .ok_or_else(|| invalid("scaledObjectRef is required".into()))?;
            let trigger = Trigger::of(&object)?;
            let value = scaler.value(&trigger)?;
            Ok(GetMetricsResponse {
                metric_values: vec![MetricValue {
                    metric_name: trigger.metric.clone(),
                    metric_value: value.round() as i64,
                    metric_value_float: value,
                }],
            })
        }
    });
    Router::new()
        .route_service(&format!("{SERVICE}/IsActive"), is_active)
        .route_service(&format!("{SERVICE}/StreamIsActive"), stream_is_active)
        .route_service(&format!("{SERVICE}/GetMetricSpec"), metric_spec)
        .route_service(&format!("{SERVICE}/GetMetrics"), metrics)
        // gRPC's answer for a method this server lacks (`StreamMetricSpec`, which KEDA
        // tries and then falls back from, or anything newer): a status, not an HTTP 404
        .fallback(|| async { Status::unimplemented("not served by kubemind").into_http::<Body>() })
}

/// A unary gRPC method as an HTTP service: decodes the request message, runs `handler`,
/// encodes its answer or its status.
fn unary<Q, R, F, Fut>(
    handler: F,
) -> impl tower::Service<
    http::Request<Body>,
    Response = http::Response<tonic::body::Body>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ Sync
+ 'static
where
    Q: prost::Message + Default + Send + 'static,
    R: prost::Message + Send + 'static,
    F: Fn(Q) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, Status>> + Send + 'static,
{
    tower::service_fn(move |request: http::Request<Body>| {
        let handler = handler.clone();
        async move {
            let method = tower::service_fn(move |request: Request<Q>| {
                let handler = handler.clone();
                async move { handler(request.into_inner()).await.map(Response::new) }
            });
            let mut grpc = Grpc::new(ProstCodec::default());
            Ok::<_, Infallible>(grpc.unary(method, request).await)
        }
    })
}

/// `StreamIsActive`: the activity now, then again whenever it changes (looked at every
/// second); an error ends the stream, and KEDA opens another.
fn active_stream(
    scaler: Arc<Scaler>,
    trigger: Trigger,
) -> impl Stream<Item = Result<IsActiveResponse, Status>> + Send {
    futures::stream::unfold(
        (scaler, trigger, None::<bool>, false),
        |(scaler, trigger, last, done)| async move {
            if done {
                return None;
            }
            loop {
                if last.is_some() {
                    tokio::time::sleep(STREAM_EVERY).await;
                }
                match scaler.is_active(&trigger) {
                    Ok(active) if Some(active) == last => continue,
                    Ok(active) => {
                        let response = IsActiveResponse { result: active };
                        return Some((Ok(response), (scaler, trigger, Some(active), false)));
                    }
                    Err(status) => return Some((Err(status), (scaler, trigger, last, true))),
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(pairs: &[(&str, &str)]) -> ScaledObjectRef {
        ScaledObjectRef {
            name: "triton".into(),
            namespace: "demo".into(),
            scaler_metadata: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn metadata_is_checked() {
        let trigger = Trigger::of(&object(&[
            ("metricName", "triton_pending_requests"),
            ("labelSelector", "app=triton"),
            ("targetValue", "4"),
            ("aggregation", "max"),
            ("activationWindow", "2m"),
        ]))
        .expect("valid");
        assert_eq!(trigger.aggregation, Aggregation::Max);
        assert_eq!(trigger.activation_window, Duration::from_secs(120));
        for bad in [
            vec![("labelSelector", "app=triton"), ("targetValue", "4")],
            vec![("metricName", "m"), ("targetValue", "0")],
            vec![("metricName", "m"), ("targetValue", "x")],
            vec![
                ("metricName", "m"),
                ("targetValue", "1"),
                ("aggregation", "median"),
            ],
            vec![
                ("metricName", "m"),
                ("targetValue", "1"),
                ("labelSelector", "a in ("),
            ],
            vec![
                ("metricName", "m"),
                ("targetValue", "1"),
                ("activationWindow", "25h"),
            ],
        ] {
            let error = Trigger::of(&object(&bad)).expect_err("invalid");
            assert_eq!(error.code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
    }
}
