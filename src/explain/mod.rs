//! `kubemind explain HPA [-n NS]`: why an HPA does or does not scale, pod by pod.
//!
//! It reads the HPA (from the API server, or `-f` a manifest), its target's scale subresource
//! (replicas and selector, or `--selector`) and pods, then fetches each metric through the
//! metrics APIs exactly as the HPA controller does (the same paths, through the kubeconfig's
//! server: the cluster's aggregator, or an adapter directly), and prints every value, the
//! controller's arithmetic with the numbers it uses, its decision, and findings in plain words
//! ([`analysis`]). For an HPA on a Kafka consumer group's lag it also reads the topic's
//! partition count (`kafka_topic_partitions`), when the adapter serves it.

pub mod analysis;
pub mod args;

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::Context as _;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::sim::hpa::PodState;
use analysis::{
    GpuActivity, HpaView, Inputs, Item, MetricKind, MetricRead, MetricSpec, Partitions,
};
use args::ExplainArgs;

/// The external metric kafka-exporter's partition count is served as (a rule in the
/// Prometheus overlay's examples).
const PARTITIONS_METRIC: &str = "kafka_topic_partitions";

/// Runs `explain`; prints the report.
pub async fn run(args: ExplainArgs) -> anyhow::Result<()> {
    let namespace = args.namespace.clone().unwrap_or_else(|| "default".into());
    let kubeconfig = crate::process::read_kubeconfig("--kubeconfig", args.kubeconfig.as_deref())?;
    let client = crate::process::kube_client(kubeconfig)
        .await
        .map_err(|error| match error {
            crate::process::KubeClientError::Infer(_) => {
                anyhow::anyhow!("{error}; pass --kubeconfig")
            }
            other => other.into(),
        })?;

    let hpa: HorizontalPodAutoscaler = match &args.file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("-f {}", path.display()))?;
            serde_norway::from_str(&text)
                .with_context(|| format!("-f {}: not a HorizontalPodAutoscaler", path.display()))?
        }
        None => Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &namespace)
            .get(&args.hpa)
            .await
            .with_context(|| format!("reading HorizontalPodAutoscaler {namespace}/{}", args.hpa))?,
    };
    let mut view = HpaView::from_hpa(&hpa, &namespace)?;
    let scale = read_scale(&client, &view).await;
    if let Some(scale) = &scale {
        view.current = scale.spec_replicas;
        view.status_replicas = scale.status_replicas;
    }
    let selector = match &args.selector {
        Some(selector) => Some(selector.clone()),
        None => scale.and_then(|s| s.selector),
    };
    let pods = match &selector {
        Some(selector) => list_pods(&client, &namespace, selector).await,
        None => None,
    };
    let mut reads = Vec::new();
    for spec in &view.metrics {
        let read = match metric_path(spec, &namespace, selector.as_deref()) {
            Some(path) => match get(&client, &path).await {
                Ok(list) => MetricRead {
                    spec: spec.clone(),
                    items: Ok(items(&list)),
                },
                Err(message) => MetricRead {
                    spec: spec.clone(),
                    items: Err(message),
                },
            },
            None => MetricRead {
                spec: spec.clone(),
                items: Err(match spec.kind {
                    MetricKind::Resource => {
                        "a Resource metric comes from metrics.k8s.io (metrics-server), not kubemind"
                            .into()
                    }
                    _ => "no --selector and no scale subresource: pods cannot be selected".into(),
                }),
            },
        };
        reads.push(read);
    }
    // kubemind's own word on balance, for a Deployment or StatefulSet target
    let imbalance = match view.target_resource.as_deref() {
        Some(resource @ ("deployments.apps" | "statefulsets.apps")) => get(
            &client,
            &format!(
                "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/{resource}/{}/request_imbalance_ratio",
                view.target_name
            ),
        )
        .await
        .ok()
        .and_then(|list| items(&list).first().map(|i| i.value)),
        _ => None,
    };
    let partitions = kafka_partitions(&client, &namespace, &view).await;
    let gpu_activity = gpu_activity(&client, &namespace, &view, selector.as_deref()).await;
    let report = analysis::analyze(Inputs {
        hpa: &view,
        pods: pods.as_deref(),
        selector: selector.as_deref(),
        reads: &reads,
        imbalance,
        partitions: partitions.as_ref(),
        gpu_activity: &gpu_activity,
        now: SystemTime::now(),
    });
    // a closed stdout (`| head`) is not an error worth a panic
    let _ = std::io::Write::write_all(&mut std::io::stdout(), analysis::render(&report).as_bytes());
    Ok(())
}

/// For an HPA on `gpu_utilization_percent` (or a workload aggregate of it): each selected
/// pod's utilization beside its GPM SM activity, where kubemind serves both.
async fn gpu_activity(
    client: &kube::Client,
    namespace: &str,
    view: &HpaView,
    selector: Option<&str>,
) -> Vec<GpuActivity> {
    let on_utilization = view
        .metrics
        .iter()
        .any(|m| m.name.starts_with("gpu_utilization_percent"));
    let Some(selector) = selector.filter(|_| on_utilization) else {
        return Vec::new();
    };
    let read = |metric: &str| {
        let path = format!(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/pods/*/{metric}?labelSelector={}",
            encode(selector)
        );
        async move { get(client, &path).await.ok().map(|list| items(&list)) }
    };
    let (Some(utilization), Some(sm_active)) = (
        read("gpu_utilization_percent").await,
        read("gpu_sm_active_percent").await,
    ) else {
        return Vec::new();
    };
    utilization
        .iter()
        .filter_map(|u| {
            let sm = sm_active.iter().find(|s| s.name == u.name)?;
            Some(GpuActivity {
                pod: u.name.clone(),
                utilization: u.value,
                sm_active: sm.value,
            })
        })
        .collect()
}

/// What the scale subresource says of the target.
struct ScaleView {
    spec_replicas: i32,
    status_replicas: i32,
    selector: Option<String>,
}

async fn read_scale(client: &kube::Client, view: &HpaView) -> Option<ScaleView> {
    let path = view.scale_path()?;
    let scale: k8s_openapi::api::autoscaling::v1::Scale =
        client.request(http_get(&path).ok()?).await.ok()?;
    let status = scale.status?;
    Some(ScaleView {
        spec_replicas: scale
            .spec
            .and_then(|s| s.replicas)
            .unwrap_or(status.replicas),
        status_replicas: status.replicas,
        selector: status.selector,
    })
}

async fn list_pods(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
) -> Option<Vec<PodState>> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(selector))
        .await
        .ok()?;
    Some(pods.items.iter().map(PodState::from_pod).collect())
}

/// The partition count of the topic a Kafka lag metric (`topic=NAME` in its selector) reads,
/// when the adapter serves [`PARTITIONS_METRIC`].
async fn kafka_partitions(
    client: &kube::Client,
    namespace: &str,
    view: &HpaView,
) -> Option<Partitions> {
    let lag = view.metrics.iter().find(|m| {
        m.kind == MetricKind::External && m.name.contains("kafka") && m.name.contains("lag")
    })?;
    let topic = lag
        .metric_selector
        .as_deref()?
        .split(',')
        .find_map(|term| term.trim().strip_prefix("topic="))?
        .to_string();
    let partitions = MetricSpec {
        kind: MetricKind::External,
        name: PARTITIONS_METRIC.into(),
        metric_selector: Some(format!("topic={topic}")),
        ..lag.clone()
    };
    let list = get(client, &metric_path(&partitions, namespace, None)?)
        .await
        .ok()?;
    let values = items(&list);
    (!values.is_empty()).then(|| Partitions {
        topic,
        count: values.iter().map(|i| i.value).sum(),
    })
}

fn http_get(path: &str) -> Result<http::Request<Vec<u8>>, http::Error> {
    http::Request::get(path).body(Vec::new())
}

/// GETs `path` through the client; a non-2xx answer is its Status message.
async fn get(client: &kube::Client, path: &str) -> Result<serde_json::Value, String> {
    let request = http_get(path).map_err(|e| e.to_string())?;
    match client.request::<serde_json::Value>(request).await {
        Ok(value) => Ok(value),
        Err(kube::Error::Api(status)) => Err(status.message),
        Err(error) => Err(error.to_string()),
    }
}

/// The request the HPA controller sends for a metric (`docs/contract.md`, How the HPA
/// controller consumes the values; upstream `pkg/controller/podautoscaler/metrics/client.go`).
/// `text` percent-encoded for a query parameter.
fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn metric_path(spec: &MetricSpec, namespace: &str, selector: Option<&str>) -> Option<String> {
    let custom = format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}");
    let metric_selector = spec
        .metric_selector
        .as_deref()
        .map(|s| format!("&metricLabelSelector={}", encode(s)))
        .unwrap_or_default();
    match spec.kind {
        MetricKind::Pods => Some(format!(
            "{custom}/pods/*/{}?labelSelector={}{metric_selector}",
            spec.name,
            encode(selector?)
        )),
        MetricKind::Object => {
            let object = spec.described.as_ref()?;
            if object.0 == "namespaces" {
                Some(format!("{custom}/metrics/{}", spec.name))
            } else {
                Some(format!("{custom}/{}/{}/{}", object.0, object.1, spec.name))
            }
        }
        MetricKind::External => Some(format!(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{}{}",
            spec.name,
            spec.metric_selector
                .as_deref()
                .map(|s| format!("?labelSelector={}", encode(s)))
                .unwrap_or_default()
        )),
        MetricKind::Resource => None,
    }
}

/// The items of a MetricValueList or ExternalMetricValueList.
fn items(list: &serde_json::Value) -> Vec<Item> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let name = item["describedObject"]["name"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    let labels: BTreeMap<String, String> =
                        serde_json::from_value(item["metricLabels"].clone()).unwrap_or_default();
                    labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                });
            let value = crate::quantity::Quantity::parse(item["value"].as_str()?).ok()?;
            let timestamp = item["timestamp"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(SystemTime::from);
            Some(Item {
                name,
                value: value.as_f64(),
                timestamp,
            })
        })
        .collect()
}
