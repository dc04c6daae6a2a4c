//! A simulated GPU fleet for fan-in tests and `make bench`: many exporter pages, each on its
//! own loopback address (`127.0.0.0/8` all routes to `lo`), served from one process, and the
//! Kubernetes objects an API server would list for that fleet.
//!
//! Exporter `i` runs on node `gpu-node-{i}` at `127.1.{i / 250}.{i % 250 + 1}`. Its page is
//! rendered by the exporter's own renderer (so the adapter reads exactly what a real exporter
//! serves, collected "now"): `gpus` GPUs and `pods` Triton pods, pod `j` being
//! `infer-{j}/triton-{i}` in Deployment `triton-{i % 10}` of namespace `infer-{j}` — so each
//! `infer-{j}` namespace holds one pod per exporter. Like the exporter, a page is answered in
//! the compact values form to a scraper that asks for it (but by the first
//! [`FleetShape::text_only`] exporters). [`Fleet::set_pending`] changes one pod's
//! pending requests, for freshness measurements.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::exporter::gpu::{GpmActivity, GpuReading, GpuSnapshot};
use crate::exporter::pods::{DeviceId, Holder};
use crate::exporter::render::{Collection, render};
use crate::exporter::servers::scrape::{ServerKind, Signals, Target, TargetReport};
use crate::exporter::servers::triton::TritonSignals;
use crate::exporter_page::ExporterPage;
use crate::process::ThreadPriority;

/// The shape of the fleet.
#[derive(Debug, Clone, Copy)]
pub struct FleetShape {
    pub exporters: usize,
    pub gpus: usize,
    /// Inference pods per exporter page.
    pub pods: usize,
    /// Pods with no values (web front ends, batch jobs) the API server also lists.
    pub plain_pods: usize,
    /// Namespaces the plain pods are spread over.
    pub plain_namespaces: usize,
    /// The first `text_only` exporters answer Prometheus text whatever the scraper asks for,
    /// as exporters from before the compact values form do (an upgrade under way).
    pub text_only: usize,
}

/// Namespace of the exporter pods.
pub const EXPORTER_NAMESPACE: &str = "kubemind";
/// Deployments per inference namespace.
const DEPLOYMENTS: usize = 10;

struct Exporter {
    node: String,
    gpus: GpuSnapshot,
    holders: Vec<(DeviceId, Holder)>,
    servers: Vec<TargetReport>,
    /// The page in catalogue terms, read from a rendered page until the values change: only
    /// its collection time moves from one scrape to the next (the fleet's process shares the
    /// machine with the adapter it feeds, so it does not redo what a real exporter does once).
    values: Option<ExporterPage>,
}

/// The running fleet; its pages are served until the process ends.
pub struct Fleet {
    pub shape: FleetShape,
    /// The port every exporter listens on.
    pub port: u16,
    exporters: Arc<Vec<Mutex<Exporter>>>,
    scrapes: Arc<AtomicU64>,
}

/// The loopback address of exporter `i`.
pub fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// Namespace and name of exporter `i`'s inference pod `j`.
pub fn pod_name(i: usize, j: usize) -> (String, String) {
    (format!("infer-{j}"), format!("triton-{i}"))
}

fn exporter(shape: &FleetShape, i: usize) -> Exporter {
    let node = format!("gpu-node-{i}");
    let gpus = (0..shape.gpus)
        .map(|g| GpuReading {
            index: g as u32,
            uuid: format!("GPU-{i:06}-{g:02}"),
            name: "NVIDIA H100 80GB HBM3".into(),
            utilization_ratio: Some(0.5 + g as f64 / 100.0),
            memory_used_bytes: 40 << 30,
            memory_total_bytes: 80 << 30,
            power_watts: Some(420.0),
            temperature_celsius: Some(61.0),
            gpm_supported: true,
            gpm: Some(GpmActivity {
                sm_active: Some(0.61),
                sm_occupancy: Some(0.33),
                tensor_active: Some(0.42),
                dram_active: Some(0.27),
            }),
            mig: vec![],
            processes: vec![],
        })
        .collect();
    let mut holders = Vec::new();
    let mut servers = Vec::new();
    for j in 0..shape.pods {
        let (namespace, pod) = pod_name(i, j);
        holders.push((
            DeviceId::Gpu {
                uuid: format!("GPU-{i:06}-{:02}", j % shape.gpus.max(1)),
                replica: Some((j / shape.gpus.max(1)) as u32),
            },
            Holder {
                namespace: namespace.clone(),
                pod: pod.clone(),
                container: "triton".into(),
                resource_name: "nvidia.com/gpu".into(),
            },
        ));
        servers.push(TargetReport {
            target: Target::new(&namespace, &pod, ServerKind::Triton, ""),
            up: true,
            signals: Some(Signals::Triton(TritonSignals {
                queue_time_seconds: Some(0.012),
                queue_compute_ratio: Some(0.3),
                pending_requests: 3.0,
                request_rate: 40.0 + j as f64,
                rejected_rate: 0.0,
                stalled: false,
            })),
            last_success: None,
            failures: Default::default(),
        });
    }
    Exporter {
        node,
        gpus: GpuSnapshot {
            nvml_up: true,
            gpus,
            sampled_at: SystemTime::now(),
            collection: Duration::from_millis(2),
        },
        holders,
        servers,
        values: None,
    }
}

impl Fleet {
    /// Binds every exporter's address on one free port and serves their pages on a thread of
    /// its own (one runtime thread: the fleet stands for many machines, not for this one), at
    /// `priority`: `Normal` in tests, which must pass however busy the machine is; `Idle` in
    /// benches, where the fleet stands for other machines and yields the cores to the adapter
    /// measured and its client at once.
    pub fn start(shape: FleetShape, priority: ThreadPriority) -> std::io::Result<Fleet> {
        let exporters: Arc<Vec<Mutex<Exporter>>> = Arc::new(
            (0..shape.exporters)
                .map(|i| Mutex::new(exporter(&shape, i)))
                .collect(),
        );
        let (port, listeners) = bind_all(shape.exporters)?;
        let scrapes = Arc::new(AtomicU64::new(0));
        let (pages, counter) = (exporters.clone(), scrapes.clone());
        // the thread tells whether it runs as asked before it serves: a fleet meant to stand
        // apart that could not be lowered is an error, not a quietly different bench
        let (tell, told) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("fleet".into())
            .spawn(move || {
                let started = priority.apply_to_this_thread().and_then(|()| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                });
                let runtime = match started {
                    Ok(runtime) => {
                        let _ = tell.send(Ok(()));
                        runtime
                    }
                    Err(error) => {
                        let _ = tell.send(Err(error));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    for (i, listener) in listeners.into_iter().enumerate() {
                        let (pages, counter) = (pages.clone(), counter.clone());
                        let app = axum::Router::new().route(
                            "/metrics",
                            axum::routing::get(move |headers: axum::http::HeaderMap| {
                                counter.fetch_add(1, Ordering::Relaxed);
                                let text_only = i < shape.text_only;
                                let response = pages
                                    .get(i)
                                    .map(|exporter| answer(&headers, exporter, text_only))
                                    .unwrap_or_default();
                                // at idle priority, standing for other machines
                                crate::process::give_way();
                                async move { response }
                            }),
                        );
                        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                            continue;
                        };
                        tasks.spawn(async move {
                            let _ = axum::serve(listener, app).await;
                        });
                    }
                    tasks.join_all().await;
                });
            })?;
        told.recv().map_err(|_| {
            std::io::Error::other("the fleet's thread ended before it started serving")
        })??;
        Ok(Fleet {
            shape,
            port,
            exporters,
            scrapes,
        })
    }

    /// Sets the pending requests exporter `i` reports for its pod `j` from its next page on.
    pub fn set_pending(&self, i: usize, j: usize, pending: f64) {
        if let Some(exporter) = self.exporters.get(i)
            && let Ok(mut exporter) = exporter.lock()
            && let Some(report) = exporter.servers.get_mut(j)
            && let Some(Signals::Triton(signals)) = &mut report.signals
        {
            signals.pending_requests = pending;
            exporter.values = None;
        }
    }

    /// Pages served so far.
    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::Relaxed)
    }

    /// What the API server lists for this fleet, by collection path: the exporter pods (labelled
    /// as the DaemonSet labels them), the inference pods with their ReplicaSets and
    /// Deployments, the plain pods, nodes and namespaces.
    pub fn inventory(&self) -> Vec<(&'static str, Vec<Value>)> {
        let shape = self.shape;
        let mut pods = Vec::new();
        let mut replicasets = Vec::new();
        let mut deployments = Vec::new();
        let mut namespaces = vec![object("Namespace", None, EXPORTER_NAMESPACE, json!({}))];
        for i in 0..shape.exporters {
            let name = format!("kubemind-exporter-{i}");
            let labels = json!({"app.kubernetes.io/name": "kubemind-exporter"});
            let mut exporter = object("Pod", Some(EXPORTER_NAMESPACE), &name, labels);
            exporter["spec"] = json!({"nodeName": format!("gpu-node-{i}"), "containers": [{"name": "exporter", "image": "kubemind"}]});
            exporter["status"] = json!({"phase": "Running", "podIP": address(i).to_string(), "conditions": [{"type": "Ready", "status": "True"}]});
            pods.push(exporter);
        }
        let mut workload = |namespace: &str, deployment: &str, app: &str| {
            let labels = json!({"app": app, "deployment": deployment});
            let mut d = object("Deployment", Some(namespace), deployment, labels.clone());
            d["spec"] =
                json!({"replicas": 1, "selector": {"matchLabels": {"deployment": deployment}}});
            deployments.push(d);
            let rs_name = format!("{deployment}-5d9f7");
            let mut rs = object("ReplicaSet", Some(namespace), &rs_name, labels);
            rs["metadata"]["ownerReferences"] = owner("Deployment", deployment);
            replicasets.push(rs);
            rs_name
        };
        for j in 0..shape.pods {
            let namespace = format!("infer-{j}");
            namespaces.push(object("Namespace", None, &namespace, json!({})));
            let sets: Vec<String> = (0..DEPLOYMENTS)
                .map(|d| workload(&namespace, &format!("triton-{d}"), "triton"))
                .collect();
            for i in 0..shape.exporters {
                let (_, name) = pod_name(i, j);
                let labels =
                    json!({"app": "triton", "deployment": format!("triton-{}", i % DEPLOYMENTS)});
                pods.push(running_pod(
                    &namespace,
                    &name,
                    labels,
                    &sets[i % DEPLOYMENTS],
                    i,
                ));
            }
        }
        let per_namespace = shape.plain_pods.div_ceil(shape.plain_namespaces.max(1));
        for n in 0..shape.plain_namespaces {
            let namespace = format!("team-{n}");
            namespaces.push(object("Namespace", None, &namespace, json!({})));
            let set = workload(&namespace, "web", "web");
            for p in 0..per_namespace.min(shape.plain_pods.saturating_sub(n * per_namespace)) {
                let labels = json!({"app": "web", "deployment": "web"});
                pods.push(running_pod(
                    &namespace,
                    &format!("web-{p}"),
                    labels,
                    &set,
                    p,
                ));
            }
        }
        let nodes = (0..shape.exporters)
            .map(|i| {
                object(
                    "Node",
                    None,
                    &format!("gpu-node-{i}"),
                    json!({"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}),
                )
            })
            .collect();
        vec![
            ("/api/v1/pods", pods),
            ("/api/v1/nodes", nodes),
            ("/api/v1/namespaces", namespaces),
            ("/apis/apps/v1/replicasets", replicasets),
            ("/apis/apps/v1/deployments", deployments),
            ("/apis/apps/v1/statefulsets", Vec::new()),
        ]
    }
}

/// The page as the exporter renders it, collected now.
fn page_now(exporter: &Exporter) -> String {
    render(&Collection {
        node: &exporter.node,
        gpus: &exporter.gpus,
        holders: &exporter.holders,
        pod_resources_up: true,
        servers: &exporter.servers,
        pod_shares: &Default::default(),
        duration: Duration::from_millis(3),
        finished_at: SystemTime::now(),
    })
}

/// The page in the form the scraper asks for, as the exporter answers it.
fn answer(
    headers: &axum::http::HeaderMap,
    exporter: &Mutex<Exporter>,
    text_only: bool,
) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    let Ok(mut exporter) = exporter.lock() else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if text_only || !crate::exporter_page::asks_for_values(headers) {
        return page_now(&exporter).into_response();
    }
    if exporter.values.is_none() {
        exporter.values = crate::exporter_page::read(&page_now(&exporter), usize::MAX).ok();
    }
    let Some(values) = &mut exporter.values else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    values.collected_at = SystemTime::now();
    let content_type = crate::exporter_page::VALUES_MEDIA_TYPE;
    (
        [(header::CONTENT_TYPE, content_type)],
        values.to_values_json(),
    )
        .into_response()
}

/// Binds `count` loopback addresses on one port: a free port of the first address, tried on
/// every other one (another port if one of them has it taken).
fn bind_all(count: usize) -> std::io::Result<(u16, Vec<std::net::TcpListener>)> {
    let mut last_error = None;
    for _ in 0..20 {
        let first = std::net::TcpListener::bind((address(0), 0))?;
        let port = first.local_addr()?.port();
        let mut listeners = vec![first];
        let rest: std::io::Result<Vec<_>> = (1..count)
            .map(|i| std::net::TcpListener::bind(SocketAddr::from((address(i), port))))
            .collect();
        match rest {
            Ok(rest) => {
                listeners.extend(rest);
                for listener in &listeners {
                    listener.set_nonblocking(true)?;
                }
                return Ok((port, listeners));
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no common free port")))
}

fn object(kind: &str, namespace: Option<&str>, name: &str, labels: Value) -> Value {
    let api_version = match kind {
        "Deployment" | "ReplicaSet" => "apps/v1",
        _ => "v1",
    };
    let mut metadata = json!({"name": name, "uid": format!("{kind}-{}-{name}", namespace.unwrap_or("")), "resourceVersion": "1", "labels": labels});
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": metadata})
}

fn owner(kind: &str, name: &str) -> Value {
    json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": format!("{kind}-{name}"), "controller": true}])
}

fn running_pod(namespace: &str, name: &str, labels: Value, replicaset: &str, node: usize) -> Value {
    let mut pod = object("Pod", Some(namespace), name, labels);
    pod["metadata"]["ownerReferences"] = owner("ReplicaSet", replicaset);
    pod["spec"] = json!({"nodeName": format!("gpu-node-{node}"), "containers": [{"name": "c", "image": "i"}]});
    pod["status"] = json!({"phase": "Running", "podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]});
    pod
}
