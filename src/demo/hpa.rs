//! The demo's autoscalers: the HPA controller's algorithm ([`crate::sim::hpa`]) fed the way the
//! controller feeds it, for exactly the HPA manifests the demo writes ([`manifest`]: no
//! `behavior`, so the controller's legacy path). The kubemind HPA reads each Pods metric
//! through the adapter's API — the same request path, the same `MetricValueList` parsed — and
//! an error or an empty list is a failed metric, never 0. The CPU HPA gets CPU as
//! metrics-server would report it, against a request of one core per pod.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt as _;

use super::world::World;
use crate::quantity::Quantity;
use crate::sim::hpa::replicas::{pods_metric, resource_utilization};
use crate::sim::hpa::{Autoscaler, HpaSpec, MetricOutcome, Milli, PodState};

/// What an HPA scales on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalingPolicy {
    /// `resource: cpu, target: Utilization 60`.
    Cpu,
    /// Pods metrics from kubemind: queue time 500 ms and GPU busy 70 % (AverageValue).
    Kubemind,
}

/// The HPAs' bounds.
pub(crate) const MIN_REPLICAS: i32 = 3;
pub(crate) const MAX_REPLICAS: i32 = 10;

/// The kubemind HPA's metrics and targets.
pub(crate) const KUBEMIND_METRICS: [(&str, f64); 2] = [
    ("triton_queue_time_ms", 500.0),
    ("gpu_utilization_percent", 70.0),
];
/// The CPU HPA's target utilization.
pub(crate) const CPU_TARGET_PERCENT: f64 = 60.0;

/// One metric as a sync read it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricRead {
    pub name: &'static str,
    pub target: f64,
    /// Values by pod, or why there were none.
    pub values: Result<BTreeMap<String, f64>, String>,
    pub proposal: Option<i32>,
}

impl MetricRead {
    pub fn average(&self) -> Option<f64> {
        let values = self.values.as_ref().ok()?;
        (!values.is_empty()).then(|| values.values().sum::<f64>() / values.len() as f64)
    }
}

/// What one sync decided.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyncOutcome {
    pub current: i32,
    pub desired: i32,
    pub scale_to: Option<i32>,
    pub reason: String,
    pub metrics: Vec<MetricRead>,
    /// The Deployment's `request_imbalance_ratio` as the adapter serves it.
    pub imbalance: Option<f64>,
}

pub(crate) struct Controller {
    policy: ScalingPolicy,
    namespace: String,
    autoscaler: Autoscaler,
}

/// Each simulated pod requests one core.
const CPU_REQUEST_MILLI: Milli = 1000;

fn milli(value: f64) -> Milli {
    (value * 1000.0).round() as Milli
}

/// GETs `path` from the adapter's router: the JSON body, or the Status message.
async fn get(reader: &Router, path: &str) -> Result<serde_json::Value, String> {
    let request = Request::get(path)
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let response = reader
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
        .await
        .map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(json["message"].as_str().unwrap_or("error").to_string());
    }
    Ok(json)
}

/// A `MetricValueList`'s values by described object name.
fn read_list(list: &serde_json::Value) -> Result<BTreeMap<String, f64>, String> {
    let mut values = BTreeMap::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let name = item["describedObject"]["name"].as_str().unwrap_or_default();
        let value = item["value"].as_str().unwrap_or_default();
        let quantity = Quantity::parse(value).map_err(|e| e.to_string())?;
        values.insert(name.to_string(), quantity.as_f64());
    }
    if values.is_empty() {
        return Err("no metrics returned from custom metrics API".into());
    }
    Ok(values)
}

/// The HPA manifest this controller stands for, with `replicas` as its current count: what
/// `kubemind explain -f` reads while the demo runs.
pub fn manifest(policy: ScalingPolicy, namespace: &str, replicas: i32) -> String {
    let metrics = match policy {
        ScalingPolicy::Cpu => format!(
            "  - type: Resource\n    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: {CPU_TARGET_PERCENT:.0}}}}}\n"
        ),
        ScalingPolicy::Kubemind => KUBEMIND_METRICS
            .iter()
            .map(|(name, target)| {
                format!(
                    "  - type: Pods\n    pods: {{metric: {{name: {name}}}, target: {{type: AverageValue, averageValue: \"{target:.0}\"}}}}\n"
                )
            })
            .collect(),
    };
    format!(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: triton, namespace: {namespace}}}\n\
         spec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: triton}}\n\
         \x20 minReplicas: {MIN_REPLICAS}\n  maxReplicas: {MAX_REPLICAS}\n  metrics:\n{metrics}\
         status: {{currentReplicas: {replicas}}}\n"
    )
}

impl Controller {
    pub fn new(policy: ScalingPolicy, namespace: &str) -> Controller {
        Controller {
            policy,
            namespace: namespace.to_string(),
            // what `manifest` writes: minReplicas, maxReplicas, no behavior
            autoscaler: Autoscaler::new(HpaSpec {
                min_replicas: MIN_REPLICAS,
                max_replicas: MAX_REPLICAS,
                behavior: None,
            }),
        }
    }

    pub fn policy(&self) -> ScalingPolicy {
        self.policy
    }

    /// One sync at simulated time `now`.
    pub async fn sync(&mut self, reader: &Router, world: &World, now: f64) -> SyncOutcome {
        let current = world.pods.len() as i32;
        let pods: Vec<PodState> = world
            .pods
            .iter()
            .map(|p| {
                if p.is_ready(world.now) {
                    PodState::running(&p.name)
                } else {
                    PodState::pending(&p.name)
                }
            })
            .collect();
        let mut metrics = Vec::new();
        match self.policy {
            ScalingPolicy::Cpu => {
                let values: BTreeMap<String, f64> = world
                    .ready_pods()
                    .map(|p| (p.name.clone(), p.cpu_percent()))
                    .collect();
                metrics.push(MetricRead {
                    name: "cpu",
                    target: CPU_TARGET_PERCENT,
                    values: Ok(values),
                    proposal: None,
                });
            }
            ScalingPolicy::Kubemind => {
                for (name, target) in KUBEMIND_METRICS {
                    let path = format!(
                        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{}/pods/%2A/{name}?labelSelector=app%3Dtriton",
                        self.namespace
                    );
                    let values = match get(reader, &path).await {
                        Ok(list) => read_list(&list),
                        Err(message) => Err(message),
                    };
                    metrics.push(MetricRead {
                        name,
                        target,
                        values,
                        proposal: None,
                    });
                }
            }
        }
        let tolerances = self.autoscaler.tolerances();
        for metric in &mut metrics {
            if let Ok(values) = &metric.values {
                let values: BTreeMap<String, Milli> =
                    values.iter().map(|(k, v)| (k.clone(), milli(*v))).collect();
                let calculation = match self.policy {
                    ScalingPolicy::Cpu => {
                        let usage = values
                            .iter()
                            .map(|(pod, percent)| {
                                (pod.clone(), percent * CPU_REQUEST_MILLI / 100_000)
                            })
                            .collect();
                        let requests = pods
                            .iter()
                            .map(|p| (p.name.clone(), CPU_REQUEST_MILLI))
                            .collect();
                        resource_utilization(
                            current,
                            &pods,
                            &usage,
                            &requests,
                            metric.target as i32,
                            tolerances,
                        )
                    }
                    ScalingPolicy::Kubemind => {
                        pods_metric(current, &pods, &values, milli(metric.target), tolerances)
                    }
                };
                metric.proposal = calculation.ok().map(|c| c.replicas);
            }
        }
        let imbalance = get(
            reader,
            &format!(
                "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{}/deployments.apps/triton/request_imbalance_ratio",
                self.namespace
            ),
        )
        .await
        .ok()
        .and_then(|list| read_list(&list).ok())
        .and_then(|values| values.values().next().copied());
        let outcomes: Vec<MetricOutcome> = metrics
            .iter()
            .map(|m| MetricOutcome {
                name: m.name.to_string(),
                proposal: match (&m.values, m.proposal) {
                    (_, Some(replicas)) => Ok(replicas),
                    (Err(message), None) => Err(message.clone()),
                    (Ok(_), None) => Err("no proposal from the values read".into()),
                },
            })
            .collect();
        let decision = self.autoscaler.reconcile(current, &outcomes, now);
        SyncOutcome {
            current,
            desired: decision.desired,
            scale_to: decision.rescale.then_some(decision.desired),
            reason: decision.reason,
            metrics,
            imbalance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::analysis::HpaView;
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;

    #[test]
    fn the_controller_simulates_exactly_the_manifest_it_writes() {
        for policy in [ScalingPolicy::Cpu, ScalingPolicy::Kubemind] {
            let text = manifest(policy, "demo-l7", 4);
            let hpa: HorizontalPodAutoscaler = serde_norway::from_str(&text).expect("an HPA");
            let view = HpaView::from_hpa(&hpa, "demo-l7").expect("a view");
            let controller = Controller::new(policy, "demo-l7");
            assert_eq!(view.spec, controller.autoscaler.spec, "{text}");
            assert_eq!(view.current, 4);
        }
    }
}
