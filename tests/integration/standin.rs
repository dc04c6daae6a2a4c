//! A minimal **stand-in** for kube-apiserver: no real API server can be installed here. It
//! answers only what kubemind asks of one — TokenReview, SubjectAccessReview (both counted,
//! so tests can prove caching), list/watch of `kube-system/extension-apiserver-authentication`,
//! and list/watch of pods, ReplicaSets, Deployments, StatefulSets, nodes and namespaces
//! (in pages when a limit is asked for, as metadata alone when that is asked for
//! (`PartialObjectMetadataList`); recording the pod field selector asked for); single objects a test puts at a path (an HPA,
//! a scale subresource), pods of a namespace by label selector, and — as kube-aggregator would —
//! the metrics APIs passed through to an adapter — over plain HTTP on 127.0.0.1, on a thread of
//! its own.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Who a token belongs to.
#[derive(Clone)]
pub struct TokenUser {
    pub name: &'static str,
    pub groups: Vec<&'static str>,
}

struct Shared {
    tokens: HashMap<String, TokenUser>,
    /// Users SubjectAccessReview allows; everyone else is denied.
    allowed_users: Vec<&'static str>,
    configmap: Mutex<(u64, BTreeMap<String, String>)>,
    events: broadcast::Sender<String>,
    token_reviews: AtomicUsize,
    access_reviews: Mutex<Vec<Value>>,
    /// Objects listed at each collection path (`/api/v1/pods`, `/apis/apps/v1/deployments`, …).
    collections: Mutex<HashMap<String, Vec<Value>>>,
    pod_field_selectors: Mutex<Vec<String>>,
    /// Collection paths listed with metadata alone (`as=PartialObjectMetadataList`).
    metadata_lists: Mutex<Vec<String>>,
    /// Single objects by path (`/apis/autoscaling/v2/namespaces/demo/horizontalpodautoscalers/x`).
    objects: Mutex<HashMap<String, Value>>,
    /// Where metrics API requests are passed: base URL and a client holding its credentials.
    metrics_backend: Mutex<Option<(String, reqwest::Client)>>,
}

pub struct StandIn {
    pub address: SocketAddr,
    shared: Arc<Shared>,
}

fn configmap_object(version: u64, data: &BTreeMap<String, String>) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system",
                     "resourceVersion": version.to_string(), "uid": "cm-1"},
        "data": data,
    })
}

async fn token_review(State(shared): State<Arc<Shared>>, Json(review): Json<Value>) -> Json<Value> {
    shared.token_reviews.fetch_add(1, Ordering::SeqCst);
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let status = match shared.tokens.get(token) {
        Some(user) => {
            json!({"authenticated": true, "user": {"username": user.name, "groups": user.groups}})
        }
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    };
    Json(
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": review["spec"], "status": status}),
    )
}

async fn access_review(
    State(shared): State<Arc<Shared>>,
    Json(review): Json<Value>,
) -> Json<Value> {
    let user = review["spec"]["user"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    shared
        .access_reviews
        .lock()
        .expect("lock")
        .push(review["spec"].clone());
    let status = if shared.allowed_users.contains(&user.as_str()) {
        json!({"allowed": true})
    } else {
        json!({"allowed": false, "reason": "RBAC: no rule allows it"})
    };
    Json(
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": review["spec"], "status": status}),
    )
}

async fn configmaps(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (version, data) = shared.configmap.lock().expect("lock").clone();
    if !is_watch(&query) {
        return Json(json!({"apiVersion": "v1", "kind": "ConfigMapList",
                           "metadata": {"resourceVersion": version.to_string()},
                           "items": [configmap_object(version, &data)]}))
        .into_response();
    }
    let receiver = shared.events.subscribe();
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(line) => return Some((Ok::<_, std::io::Error>(line), receiver)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    watch_response(stream)
}

fn is_watch(query: &HashMap<String, String>) -> bool {
    query.get("watch").is_some_and(|w| w == "true" || w == "1")
}

/// A watch: one JSON event a line, for as long as `events` lasts.
fn watch_response(
    events: impl futures::Stream<Item = Result<String, std::io::Error>> + Send + 'static,
) -> Response {
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(events))
        .expect("response")
}

/// List or watch any collection the test filled; watches report no changes.
async fn collection(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = uri.path().to_string();
    // `Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` (and
    // `as=PartialObjectMetadata` for a watch): metadata alone, as the API server answers it
    let metadata_only = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("as=PartialObjectMetadata"));
    if path == "/api/v1/pods"
        && let Some(selector) = query.get("fieldSelector")
    {
        shared
            .pod_field_selectors
            .lock()
            .expect("lock")
            .push(selector.clone());
    }
    if is_watch(&query) {
        // no changes to report: hold the watch open until the client gives up
        return watch_response(futures::stream::pending());
    }
    // pages of `limit` objects, as the API server returns them when asked (kube's watcher
    // lists 500 at a time); the continue token is the next page's offset
    let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok());
    let offset = query
        .get("continue")
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(0);
    let (page, next) = {
        let collections = shared.collections.lock().expect("lock");
        let items = collections.get(&path).map_or(&[][..], Vec::as_slice);
        match limit {
            Some(limit) if limit > 0 && offset + limit < items.len() => {
                (items[offset..offset + limit].to_vec(), Some(offset + limit))
            }
            _ => (items[offset.min(items.len())..].to_vec(), None),
        }
    };
    let mut metadata = json!({"resourceVersion": "7"});
    if let Some(next) = next {
        metadata["continue"] = json!(next.to_string());
    }
    if metadata_only {
        shared.metadata_lists.lock().expect("lock").push(path);
        let items: Vec<Value> = page
            .into_iter()
            .map(|item| {
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                       "metadata": item["metadata"]})
            })
            .collect();
        return Json(
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                           "metadata": metadata, "items": items}),
        )
        .into_response();
    }
    Json(json!({"apiVersion": "v1", "kind": "List", "metadata": metadata, "items": page}))
        .into_response()
}

/// Everything else: the metrics APIs passed through, a namespace's pods by label selector, or an
/// object the test put at this path.
async fn fallback(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let path = uri.path().to_string();
    if path.starts_with("/apis/custom.metrics.k8s.io/")
        || path.starts_with("/apis/external.metrics.k8s.io/")
    {
        let backend = shared.metrics_backend.lock().expect("lock").clone();
        let Some((base, client)) = backend else {
            return not_found();
        };
        let target = format!(
            "{base}{}",
            uri.path_and_query().map_or(path.as_str(), |p| p.as_str())
        );
        return match client.get(target).send().await {
            Ok(answer) => {
                let code = answer.status().as_u16();
                let body = answer.bytes().await.unwrap_or_default();
                Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .expect("response")
            }
            Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
        };
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let ["api", "v1", "namespaces", namespace, "pods"] = segments.as_slice() {
        let wanted: Vec<(String, String)> = query
            .get("labelSelector")
            .map(|s| {
                s.split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let pods: Vec<Value> = shared
            .collections
            .lock()
            .expect("lock")
            .get("/api/v1/pods")
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|pod| pod["metadata"]["namespace"] == *namespace)
            .filter(|pod| {
                wanted
                    .iter()
                    .all(|(k, v)| pod["metadata"]["labels"][k.as_str()] == v.as_str())
            })
            .collect();
        return Json(json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "7"}, "items": pods}))
            .into_response();
    }
    match shared.objects.lock().expect("lock").get(&path) {
        Some(object) => Json(object.clone()).into_response(),
        None => not_found(),
    }
}

fn not_found() -> Response {
    (
        axum::http::StatusCode::NOT_FOUND,
        Json(
            json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                    "message": "the server could not find the requested resource",
                    "reason": "NotFound", "code": 404}),
        ),
    )
        .into_response()
}

impl StandIn {
    pub fn start(
        tokens: HashMap<String, TokenUser>,
        allowed_users: Vec<&'static str>,
        configmap: BTreeMap<String, String>,
    ) -> StandIn {
        let (events, _) = broadcast::channel(16);
        let shared = Arc::new(Shared {
            tokens,
            allowed_users,
            configmap: Mutex::new((1, configmap)),
            events,
            token_reviews: AtomicUsize::new(0),
            access_reviews: Mutex::new(Vec::new()),
            collections: Mutex::new(HashMap::new()),
            pod_field_selectors: Mutex::new(Vec::new()),
            metadata_lists: Mutex::new(Vec::new()),
            objects: Mutex::new(HashMap::new()),
            metrics_backend: Mutex::new(None),
        });
        let app = axum::Router::new()
            .route(
                "/apis/authentication.k8s.io/v1/tokenreviews",
                post(token_review),
            )
            .route(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                post(access_review),
            )
            .route("/api/v1/namespaces/kube-system/configmaps", get(configmaps))
            .route("/api/v1/{resource}", get(collection))
            .route("/apis/apps/v1/{resource}", get(collection))
            .fallback(fallback)
            .with_state(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let address = listener.local_addr().expect("address");
        crate::util::on_a_runtime_of_its_own(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("stand-in serves");
        });
        StandIn { address, shared }
    }

    /// A kubeconfig pointing at this stand-in (plain HTTP, no credentials).
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("standin.kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster: {{server: \"http://{}\"}}\nusers:\n- name: standin\n  user: {{}}\ncontexts:\n- name: standin\n  context: {{cluster: standin, user: standin}}\ncurrent-context: standin\n",
            self.address
        );
        std::fs::write(&path, text).expect("kubeconfig");
        path
    }

    /// Replaces the ConfigMap's data and tells watchers.
    pub fn set_configmap(&self, data: BTreeMap<String, String>) {
        let mut current = self.shared.configmap.lock().expect("lock");
        current.0 += 1;
        current.1 = data;
        let event = json!({"type": "MODIFIED", "object": configmap_object(current.0, &current.1)});
        let _ = self.shared.events.send(format!("{event}\n"));
    }

    /// Replaces the pods listed.
    /// Serves `object` at `path` (a single GET).
    pub fn set_object(&self, path: &str, object: Value) {
        self.shared
            .objects
            .lock()
            .expect("lock")
            .insert(path.to_string(), object);
    }

    /// Passes metrics API requests to the adapter a kubeconfig written by `--kubeconfig-out`
    /// names, with its client certificate, as kube-aggregator passes them to the APIService.
    pub fn set_metrics_backend(&self, adapter_kubeconfig: &Path) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let credentials = kubemind::adapter::kubeconfig::read(adapter_kubeconfig)
            .expect("the adapter's kubeconfig");
        let identity = crate::util::client_identity(&credentials);
        let client = reqwest::Client::builder()
            .tls_backend_rustls()
            .add_root_certificate(
                reqwest::Certificate::from_pem(credentials.ca_pem.as_bytes()).expect("ca"),
            )
            .identity(identity)
            .build()
            .expect("client");
        *self.shared.metrics_backend.lock().expect("lock") = Some((credentials.server, client));
    }

    /// The pods listed now.
    pub fn pods(&self) -> Vec<Value> {
        self.shared
            .collections
            .lock()
            .expect("lock")
            .get("/api/v1/pods")
            .cloned()
            .unwrap_or_default()
    }

    pub fn set_pods(&self, pods: Vec<Value>) {
        self.set_collection("/api/v1/pods", pods);
    }

    /// Replaces the objects listed at a collection path, e.g. `/apis/apps/v1/deployments`.
    pub fn set_collection(&self, path: &str, objects: Vec<Value>) {
        self.shared
            .collections
            .lock()
            .expect("lock")
            .insert(path.to_string(), objects);
    }

    /// Every field selector pods were listed or watched with.
    pub fn pod_field_selectors(&self) -> Vec<String> {
        self.shared
            .pod_field_selectors
            .lock()
            .expect("lock")
            .clone()
    }

    /// Every collection path listed with metadata alone, in order.
    pub fn metadata_lists(&self) -> Vec<String> {
        self.shared.metadata_lists.lock().expect("lock").clone()
    }

    pub fn token_reviews(&self) -> usize {
        self.shared.token_reviews.load(Ordering::SeqCst)
    }

    /// Every SubjectAccessReview spec received, in order.
    pub fn access_reviews(&self) -> Vec<Value> {
        self.shared.access_reviews.lock().expect("lock").clone()
    }
}
