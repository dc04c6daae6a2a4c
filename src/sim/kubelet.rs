//! A simulated kubelet pod-resources server: `v1.PodResourcesLister/List` over gRPC (tonic,
//! HTTP/2) on a unix socket, answering whatever [`Kubelet::answer`] holds and counting calls.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;

use crate::exporter::pods::{
    ContainerDevices, ContainerResources, LIST_PATH, ListPodResourcesRequest,
    ListPodResourcesResponse, PodResources,
};

/// The kubelet's answer, shared with the server.
#[derive(Clone, Default)]
pub struct Kubelet {
    pub answer: Arc<Mutex<ListPodResourcesResponse>>,
    calls: Arc<AtomicUsize>,
}

impl Kubelet {
    /// How many `List` calls were answered.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Replaces the answer.
    pub fn set(&self, pods: Vec<PodResources>) {
        if let Ok(mut answer) = self.answer.lock() {
            answer.pod_resources = pods;
        }
    }

    /// Serves on a new unix socket at `socket` until the task is dropped (needs a tokio runtime).
    pub fn serve(&self, socket: &Path) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let listener = tokio::net::UnixListener::bind(socket)?;
        let app = axum::Router::new()
            .route(LIST_PATH, axum::routing::post(list))
            .with_state(self.clone());
        Ok(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }))
    }
}

impl tonic::server::UnaryService<ListPodResourcesRequest> for Kubelet {
    type Response = ListPodResourcesResponse;
    type Future = std::future::Ready<Result<tonic::Response<Self::Response>, tonic::Status>>;

    fn call(&mut self, _: tonic::Request<ListPodResourcesRequest>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = self
            .answer
            .lock()
            .map(|a| a.clone())
            .map_err(|_| tonic::Status::internal("poisoned"));
        std::future::ready(answer.map(tonic::Response::new))
    }
}

async fn list(
    State(kubelet): State<Kubelet>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
    grpc.unary(kubelet, request)
        .await
        .map(axum::body::Body::new)
}

/// A pod whose one container `server` holds `ids` of `resource`.
pub fn pod(namespace: &str, name: &str, resource: &str, ids: &[&str]) -> PodResources {
    PodResources {
        name: name.into(),
        namespace: namespace.into(),
        containers: vec![ContainerResources {
            name: "server".into(),
            devices: vec![ContainerDevices {
                resource_name: resource.into(),
                device_ids: ids.iter().map(|s| s.to_string()).collect(),
            }],
        }],
    }
}
