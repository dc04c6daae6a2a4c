//! What the end-to-end tests share: the demo workload (three Triton pods of one Deployment on
//! one GPU node) as Triton pages, as an exporter and as the API server's objects; the stand-in
//! API server knowing the HPA controller's token; the adapter in cluster mode with a serving
//! certificate; and an HTTPS client for it.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};

use crate::standin::{StandIn, TokenUser};
use crate::util::{Process, listening_address, start_node_exporter, wait_for_kubeconfig};
use kubemind::sim::metrics_endpoint;

/// The bearer token of the HPA controller's service account, which the stand-in reviews and
/// allows.
pub const HPA_TOKEN: &str = "hpa-token";

/// The stand-in API server, knowing [`HPA_TOKEN`] and listing the demo namespace
/// ([`demo_inventory`]).
pub fn hpa_standin() -> StandIn {
    let hpa = "system:serviceaccount:kube-system:horizontal-pod-autoscaler";
    let standin = StandIn::start(
        HashMap::from([(
            HPA_TOKEN.to_string(),
            TokenUser {
                name: hpa,
                groups: vec![],
            },
        )]),
        vec![hpa],
        Default::default(),
    );
    demo_inventory(&standin);
    standin
}

/// The port of a URL such as `http://127.0.0.1:9400/metrics`.
pub fn port_of(url: &str) -> String {
    url.trim_end_matches("/metrics")
        .rsplit(':')
        .next()
        .expect("a port")
        .to_string()
}

/// The demo node's exporter (no GPUs): triton-0 serving `busy` pages, triton-1 and triton-2
/// idle. Returns it and its /metrics URL.
pub fn start_demo_exporter(
    dir: &Path,
    busy: impl Fn(u64) -> String + Send + Sync + 'static,
) -> (Process, String) {
    let busy = metrics_endpoint::serve(busy).expect("serves");
    let idle_1 = metrics_endpoint::serve(|n| triton_page(n, 0, 0)).expect("serves");
    let idle_2 = metrics_endpoint::serve(|n| triton_page(n, 0, 0)).expect("serves");
    let library = kubemind::sim::nvml::build(dir).expect("cc");
    std::fs::write(dir.join("nvml-sim.conf"), "").expect("no GPUs");
    start_node_exporter(
        dir,
        &library,
        &dir.join("none.sock"),
        &[
            ("triton:demo/triton-0", &busy),
            ("triton:demo/triton-1", &idle_1),
            ("triton:demo/triton-2", &idle_2),
        ],
        &[],
    )
}

/// The adapter in cluster mode on `standin`, serving a certificate made in `dir`, with `extra`
/// flags; returns it, its address and a client sending [`HPA_TOKEN`].
pub fn start_cluster_adapter(
    dir: &Path,
    standin: &StandIn,
    extra: &[&str],
) -> (Process, String, AdapterClient) {
    let binary = Path::new(env!("CARGO_BIN_EXE_kubemind"));
    start_cluster_adapter_binary(binary, dir, standin, extra)
}

/// [`start_cluster_adapter`] with another build of kubemind (the image's, in a bench).
pub fn start_cluster_adapter_binary(
    binary: &Path,
    dir: &Path,
    standin: &StandIn,
    extra: &[&str],
) -> (Process, String, AdapterClient) {
    let (cert, key, ca_pem) = serving_certificate(dir);
    let kubeconfig = standin.kubeconfig(dir);
    let mut args = vec![
        "adapter",
        "--secure-port",
        "0",
        "--tls-cert-file",
        cert.to_str().expect("utf-8"),
        "--tls-private-key-file",
        key.to_str().expect("utf-8"),
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    let adapter = Process::start_binary(binary, dir, "adapter", &args);
    let address = listening_address(&adapter, "serving the custom and external metrics APIs");
    let client = AdapterClient::new(&address, &ca_pem, HPA_TOKEN);
    (adapter, address, client)
}

/// Triton: `rate` requests per scrape, each queued `queue_ms`.
pub fn triton_page(scrape: u64, rate: u64, queue_ms: u64) -> String {
    let n = scrape * rate;
    triton_text(n, n * queue_ms * 1000, if rate > 0 { 400 } else { 0 })
}

/// Triton's exposition for these counters: `success` requests (50 ms of compute each) that
/// waited `queue_us` in all, and `pending` queued now.
pub fn triton_text(success: u64, queue_us: u64, pending: u64) -> String {
    format!(
        "nv_inference_request_success{{model=\"resnet\",version=\"1\"}} {success}\n\
         nv_inference_queue_duration_us{{model=\"resnet\",version=\"1\"}} {queue_us}\n\
         nv_inference_compute_infer_duration_us{{model=\"resnet\",version=\"1\"}} {}\n\
         nv_inference_pending_request_count{{model=\"resnet\",version=\"1\"}} {pending}\n\
         nv_inference_request_failure{{model=\"resnet\",version=\"1\",reason=\"REJECTED\"}} 0\n",
        success * 50_000,
    )
}

pub fn pod(namespace: &str, name: &str, labels: Value, owner: Option<(&str, &str)>) -> Value {
    let owners = owner.map_or(json!([]), |(kind, name)| {
        json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": format!("{name}-uid"), "controller": true}])
    });
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("{name}-uid"), "resourceVersion": "7",
                     "labels": labels, "ownerReferences": owners},
        "spec": {"nodeName": "gpu-node-1", "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    })
}

pub fn serving_certificate(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("leaf");
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_path, leaf.pem()).expect("cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("key");
    (cert_path, key_path, ca_cert.pem())
}

/// The demo namespace as the API server lists it: Deployment `triton` (through ReplicaSet
/// `triton-7d4f9`) with pods triton-0..2, a pod `web-0` of no workload, an exporter pod, node
/// `gpu-node-1` and namespace `demo`.
pub fn demo_inventory(standin: &StandIn) {
    let triton = json!({"app": "triton"});
    standin.set_pods(vec![
        pod(
            "demo",
            "triton-0",
            triton.clone(),
            Some(("ReplicaSet", "triton-7d4f9")),
        ),
        pod(
            "demo",
            "triton-1",
            triton.clone(),
            Some(("ReplicaSet", "triton-7d4f9")),
        ),
        pod(
            "demo",
            "triton-2",
            triton.clone(),
            Some(("ReplicaSet", "triton-7d4f9")),
        ),
        pod("demo", "web-0", json!({"app": "web"}), None),
        pod(
            "kubemind",
            "kubemind-exporter-x1",
            json!({"app.kubernetes.io/name": "kubemind-exporter"}),
            None,
        ),
    ]);
    standin.set_collection(
        "/apis/apps/v1/replicasets",
        vec![json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "triton-7d4f9", "namespace": "demo", "uid": "rs-uid", "resourceVersion": "7",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "triton", "uid": "d-uid", "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "triton"}}}})],
    );
    standin.set_collection(
        "/apis/apps/v1/deployments",
        vec![json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "triton", "namespace": "demo", "uid": "d-uid", "resourceVersion": "7", "labels": {"app": "triton"}},
            "spec": {"selector": {"matchLabels": {"app": "triton"}}, "template": {"metadata": {"labels": {"app": "triton"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})],
    );
    standin.set_collection("/apis/apps/v1/statefulsets", vec![]);
    standin.set_collection(
        "/api/v1/nodes",
        vec![json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-node-1", "uid": "n-uid", "resourceVersion": "7"}})],
    );
    standin.set_collection(
        "/api/v1/namespaces",
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo", "uid": "ns-uid", "resourceVersion": "7"}})],
    );
}

/// The adapter in standalone mode serving `values` (the static values file's text) written in
/// `dir`, with `extra` flags; returns it and the kubeconfig it wrote once it answers.
pub fn start_standalone_adapter(
    dir: &Path,
    values: &str,
    extra: &[&str],
) -> (Process, std::path::PathBuf) {
    start_standalone_adapter_limited(dir, values, extra, None)
}

/// [`start_standalone_adapter`], under a limit of `open_files` file descriptors when given.
pub fn start_standalone_adapter_limited(
    dir: &Path,
    values: &str,
    extra: &[&str],
    open_files: Option<u64>,
) -> (Process, std::path::PathBuf) {
    let values_path = dir.join("values.yaml");
    std::fs::write(&values_path, values).expect("values");
    let kubeconfig = dir.join("kubeconfig");
    let mut args = vec![
        "adapter",
        "--standalone",
        "--secure-port",
        "0",
        "--static-metrics",
        values_path.to_str().expect("utf-8"),
        "--kubeconfig-out",
        kubeconfig.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    let adapter = match open_files {
        Some(limit) => Process::start_with_open_files(dir, "adapter", &args, limit),
        None => Process::start(dir, "adapter", &args),
    };
    let kubeconfig = wait_for_kubeconfig(&adapter, &kubeconfig);
    (adapter, kubeconfig)
}

/// An HTTPS client for the adapter, sending a bearer token.
#[derive(Clone)]
pub struct AdapterClient {
    pub http: reqwest::Client,
    base: String,
    token: &'static str,
    ca_pem: String,
}

impl AdapterClient {
    /// `address` is the adapter's `host:port`; `ca_pem` its serving CA.
    pub fn new(address: &str, ca_pem: &str, token: &'static str) -> AdapterClient {
        let http = reqwest::Client::builder()
            .tls_backend_rustls()
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("ca"))
            .build()
            .expect("client");
        let port = address.rsplit(':').next().unwrap_or_default();
        AdapterClient {
            http,
            base: format!("https://localhost:{port}"),
            token,
            ca_pem: ca_pem.to_string(),
        }
    }

    /// A client of the same adapter with connections of its own, for another runtime (a
    /// connection belongs to the runtime that opened it).
    #[allow(dead_code)]
    pub fn apart(&self) -> AdapterClient {
        let address = self.base.trim_start_matches("https://");
        AdapterClient::new(address, &self.ca_pem, self.token)
    }

    /// GETs `path`: the status code and the JSON body, or `None` when either failed.
    pub fn get(&self, path: String) -> impl Future<Output = Option<(u16, Value)>> + use<> {
        let request = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token);
        async move {
            let response = request.send().await.ok()?;
            let code = response.status().as_u16();
            Some((code, response.json::<Value>().await.ok()?))
        }
    }

    /// GETs `path`, which must answer 200, as bytes (nothing parsed: for timing; the benches).
    #[allow(dead_code)]
    pub async fn bytes(&self, path: &str) -> Vec<u8> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), 200);
        response.bytes().await.expect("body").to_vec()
    }

    /// GETs `metric` of the demo's Deployment `triton`, as the HPA reads an Object metric.
    pub fn demo_deployment(
        &self,
        metric: &str,
    ) -> impl Future<Output = Option<(u16, Value)>> + use<> {
        self.get(format!(
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/demo/deployments.apps/triton/{metric}"
        ))
    }

    /// Checks what the Deployment serves when its pods serve [`pinned_demo_pods`]: `_max` is
    /// triton-0's 8 s, and `request_imbalance_ratio` 3, every request on one of three pods.
    pub async fn assert_pinned_demo_deployment(&self) {
        let (code, body) = self
            .demo_deployment("triton_queue_time_ms_max")
            .await
            .expect("answer");
        assert_eq!(
            (code, values(&body)),
            (200, vec![("triton".to_string(), "8k".to_string())])
        );
        let (_, body) = self
            .demo_deployment("request_imbalance_ratio")
            .await
            .expect("answer");
        assert_eq!(
            values(&body),
            [("triton".to_string(), "3".to_string())],
            "every request on one of three pods"
        );
    }

    /// Reads [`DEMO_PODS_PATH`] every 250 ms until the three demo pods are served or `limit`
    /// passes; returns what was served last, for the caller to compare.
    pub async fn wait_for_demo_pods(&self, limit: Duration) -> Vec<(String, String)> {
        let started = Instant::now();
        let mut served = Vec::new();
        while started.elapsed() < limit {
            if let Some((200, body)) = self.get(DEMO_PODS_PATH.to_string()).await {
                served = values(&body);
                if served.len() == 3 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        served
    }

    /// `kubemind_adapter_source_newest_value_age_seconds` for `source` on the adapter's
    /// `/metrics`: how old its freshest value is; `None` when the gauge is absent.
    pub async fn newest_value_age(&self, source: &str) -> Option<f64> {
        let telemetry = self.text("/metrics").await;
        let gauge =
            format!("kubemind_adapter_source_newest_value_age_seconds{{source=\"{source}\"}} ");
        telemetry
            .contains(&gauge)
            .then(|| crate::util::series_value(&telemetry, &gauge))
    }

    /// GETs `path` as text.
    pub async fn text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token)
            .send()
            .await
            .expect("answer")
            .text()
            .await
            .expect("text")
    }
}

/// The demo HPA's Pods request: `triton_queue_time_ms` of the pods labelled `app=triton`.
pub const DEMO_PODS_PATH: &str = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/%2A/triton_queue_time_ms?labelSelector=app%3Dtriton";

/// What [`DEMO_PODS_PATH`] serves from [`start_demo_exporter`] with `triton_page(n, 20, 8000)`:
/// every request pinned to triton-0, queueing 8 s; the other two idle.
pub fn pinned_demo_pods() -> Vec<(String, String)> {
    [("triton-0", "8k"), ("triton-1", "0"), ("triton-2", "0")]
        .map(|(pod, value)| (pod.to_string(), value.to_string()))
        .to_vec()
}

/// The resource names an `APIResourceList` lists (`pods/triton_queue_time_ms`, …).
pub fn resource_names(discovery: &Value) -> Vec<&str> {
    discovery["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect()
}

/// (described object name, value) of each item of a MetricValueList.
pub fn values(list: &Value) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    (
                        i["describedObject"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        i["value"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
