//! Which pod holds which GPU: the kubelet pod-resources API (`v1.PodResourcesLister/List`, gRPC
//! over a unix socket), and the device-ID forms device plugins hand out
//! (`docs/gpu-and-inference.md`, Kubelet pod-resources API).
//!
//! - [`list`] calls `List` once, with a deadline and a decode limit far above tonic's 4 MiB
//!   (a busy node's answer exceeds it).
//! - [`Attributions`] keeps the last good answer and refreshes it at most every few seconds:
//!   the kubelet rate-limits the API (100 QPS, burst 10) and every exporter would otherwise hit
//!   it on every collection. A failed refresh keeps serving the last good mapping.
//! - [`DeviceId::parse`] reads `GPU-<uuid>`, `GPU-<uuid>::<n>` (time-slicing/MPS replicas),
//!   `MIG-<uuid>` (also `::n`), GKE's `nvidia<N>`, `nvidia<N>/gi<M>`, `nvidia<N>/vgpu<K>`, and
//!   plain indexes.
//!
//! The messages are written here rather than generated: they follow
//! `k8s.io/kubelet/pkg/apis/podresources/v1/api.proto` (Apache-2.0), declaring only the fields
//! the exporter reads — protobuf skips the others (topology, CPU IDs, memory, dynamic
//! resources), so newer kubelets stay compatible.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tonic::transport::{Endpoint, Uri};

/// `ListPodResourcesRequest {}`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListPodResourcesRequest {}

/// `ListPodResourcesResponse { repeated PodResources pod_resources = 1; }`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodResourcesResponse {
    #[prost(message, repeated, tag = "1")]
    pub pod_resources: Vec<PodResources>,
}

/// `PodResources { string name = 1; string namespace = 2; repeated ContainerResources containers = 3; }`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodResources {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub namespace: String,
    #[prost(message, repeated, tag = "3")]
    pub containers: Vec<ContainerResources>,
}

/// `ContainerResources { string name = 1; repeated ContainerDevices devices = 2; … }`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerResources {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub devices: Vec<ContainerDevices>,
}

/// `ContainerDevices { string resource_name = 1; repeated string device_ids = 2; … }`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerDevices {
    #[prost(string, tag = "1")]
    pub resource_name: String,
    #[prost(string, repeated, tag = "2")]
    pub device_ids: Vec<String>,
}

/// The gRPC method path.
pub(crate) const LIST_PATH: &str = "/v1.PodResourcesLister/List";
/// Largest answer accepted (tonic's default is 4 MiB).
const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connecting to {socket}: {}", crate::process::error_chain(source))]
    Connect {
        socket: PathBuf,
        source: tonic::transport::Error,
    },
    #[error("List: {0}")]
    Call(#[from] tonic::Status),
    #[error("List timed out after {CALL_TIMEOUT:?}")]
    Timeout,
}

/// Calls `List` on the kubelet's socket.
pub async fn list(socket: &Path) -> Result<ListPodResourcesResponse, Error> {
    let path = socket.to_path_buf();
    let call = async {
        // the URI is required by the API and ignored by the connector
        let channel = Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .map_err(|source| Error::Connect {
                socket: socket.to_path_buf(),
                source,
            })?;
        let mut grpc =
            tonic::client::Grpc::new(channel).max_decoding_message_size(MAX_DECODE_BYTES);
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let response = grpc
            .unary(
                tonic::Request::new(ListPodResourcesRequest {}),
                tonic::codegen::http::uri::PathAndQuery::from_static(LIST_PATH),
                tonic_prost::ProstCodec::default(),
            )
            .await?;
        Ok(response.into_inner())
    };
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| Error::Timeout)?
}

/// A device ID as a device plugin hands it out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeviceId {
    /// A whole GPU by NVML UUID; `replica` for time-slicing or MPS shares (`::n`).
    Gpu { uuid: String, replica: Option<u32> },
    /// A MIG instance by its MIG UUID.
    Mig { uuid: String, replica: Option<u32> },
    /// A GPU by index (`0`, GKE `nvidia0`), optionally a GPU instance (`/gi1`) or vGPU (`/vgpu2`).
    Index {
        index: u32,
        gpu_instance: Option<u32>,
        vgpu: Option<u32>,
    },
}

impl DeviceId {
    /// Reads a device ID; `None` for forms that name no GPU.
    pub fn parse(id: &str) -> Option<DeviceId> {
        let id = id.trim();
        let (base, replica) = match id.split_once("::") {
            Some((base, n)) => (base, Some(n.parse().ok()?)),
            None => (id, None),
        };
        if base.starts_with("GPU-") && base.len() > 4 {
            return Some(DeviceId::Gpu {
                uuid: base.to_string(),
                replica,
            });
        }
        if base.starts_with("MIG-") && base.len() > 4 {
            return Some(DeviceId::Mig {
                uuid: base.to_string(),
                replica,
            });
        }
        if replica.is_some() {
            return None;
        }
        if let Ok(index) = base.parse::<u32>() {
            return Some(DeviceId::Index {
                index,
                gpu_instance: None,
                vgpu: None,
            });
        }
        let rest = base.strip_prefix("nvidia")?;
        let (index, sub) = match rest.split_once('/') {
            Some((index, sub)) => (index, Some(sub)),
            None => (rest, None),
        };
        let index = index.parse().ok()?;
        let (gpu_instance, vgpu) = match sub {
            None => (None, None),
            Some(sub) => match (sub.strip_prefix("gi"), sub.strip_prefix("vgpu")) {
                (Some(gi), _) => (Some(gi.parse().ok()?), None),
                (_, Some(vgpu)) => (None, Some(vgpu.parse().ok()?)),
                _ => return None,
            },
        };
        Some(DeviceId::Index {
            index,
            gpu_instance,
            vgpu,
        })
    }
}

/// A container holding a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Holder {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub resource_name: String,
}

/// Every GPU-like device held by a container, from one `List` answer. Resources not from
/// NVIDIA's or GKE's plugins (`nvidia.com/…`) are left out.
pub fn holders(response: &ListPodResourcesResponse) -> Vec<(DeviceId, Holder)> {
    let mut held = Vec::new();
    for pod in &response.pod_resources {
        for container in &pod.containers {
            for devices in &container.devices {
                if !devices.resource_name.starts_with("nvidia.com/") {
                    continue;
                }
                for id in &devices.device_ids {
                    if let Some(device) = DeviceId::parse(id) {
                        held.push((
                            device,
                            Holder {
                                namespace: pod.namespace.clone(),
                                pod: pod.name.clone(),
                                container: container.name.clone(),
                                resource_name: devices.resource_name.clone(),
                            },
                        ));
                    }
                }
            }
        }
    }
    held
}

/// The last good attribution, refreshed at most every `refresh`.
pub struct Attributions {
    socket: PathBuf,
    refresh: Duration,
    last_call: Option<Instant>,
    current: Vec<(DeviceId, Holder)>,
    /// Whether the last call succeeded.
    pub up: bool,
    /// An outage was logged and has not ended (log once per outage).
    reported: bool,
}

impl Attributions {
    pub fn new(socket: PathBuf, refresh: Duration) -> Attributions {
        Attributions {
            socket,
            refresh,
            last_call: None,
            current: Vec::new(),
            up: false,
            reported: false,
        }
    }

    /// The attribution, calling the kubelet first if the last call is older than `refresh`.
    pub async fn get(&mut self) -> &[(DeviceId, Holder)] {
        let due = self.last_call.is_none_or(|at| at.elapsed() >= self.refresh);
        if due {
            self.last_call = Some(Instant::now());
            match list(&self.socket).await {
                Ok(response) => {
                    if self.reported {
                        tracing::info!(socket = %self.socket.display(), "pod-resources answering again");
                        self.reported = false;
                    }
                    self.current = holders(&response);
                    self.up = true;
                }
                Err(error) => {
                    if !self.reported {
                        tracing::warn!(%error, "pod-resources unavailable; keeping the last attribution");
                        self.reported = true;
                    }
                    self.up = false;
                }
            }
        }
        &self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_device_id_form() {
        let uuid = "GPU-5f3c2a1e-0b6d-4c1f-9e2a-7d8b9c0a1b2c";
        let cases = [
            (
                uuid.to_string(),
                Some(DeviceId::Gpu {
                    uuid: uuid.into(),
                    replica: None,
                }),
            ),
            (
                format!("{uuid}::3"),
                Some(DeviceId::Gpu {
                    uuid: uuid.into(),
                    replica: Some(3),
                }),
            ),
            (
                "MIG-a1b2c3d4-e5f6".into(),
                Some(DeviceId::Mig {
                    uuid: "MIG-a1b2c3d4-e5f6".into(),
                    replica: None,
                }),
            ),
            (
                "MIG-a1b2c3d4-e5f6::1".into(),
                Some(DeviceId::Mig {
                    uuid: "MIG-a1b2c3d4-e5f6".into(),
                    replica: Some(1),
                }),
            ),
            (
                "nvidia0".into(),
                Some(DeviceId::Index {
                    index: 0,
                    gpu_instance: None,
                    vgpu: None,
                }),
            ),
            (
                "nvidia3/gi2".into(),
                Some(DeviceId::Index {
                    index: 3,
                    gpu_instance: Some(2),
                    vgpu: None,
                }),
            ),
            (
                "nvidia1/vgpu4".into(),
                Some(DeviceId::Index {
                    index: 1,
                    gpu_instance: None,
                    vgpu: Some(4),
                }),
            ),
            (
                "7".into(),
                Some(DeviceId::Index {
                    index: 7,
                    gpu_instance: None,
                    vgpu: None,
                }),
            ),
            ("GPU-".into(), None),
            ("GPU-x::y".into(), None),
            ("nvidia".into(), None),
            ("nvidia2/other".into(), None),
            ("7::1".into(), None),
            ("".into(), None),
            ("/dev/nvidia0".into(), None),
        ];
        for (id, want) in cases {
            assert_eq!(DeviceId::parse(&id), want, "{id:?}");
        }
    }

    #[test]
    fn keeps_only_gpu_resources() {
        let response = ListPodResourcesResponse {
            pod_resources: vec![PodResources {
                name: "triton-0".into(),
                namespace: "demo".into(),
                containers: vec![ContainerResources {
                    name: "server".into(),
                    devices: vec![
                        ContainerDevices {
                            resource_name: "nvidia.com/gpu".into(),
                            device_ids: vec!["GPU-a".into(), "GPU-b::2".into()],
                        },
                        ContainerDevices {
                            resource_name: "example.com/fpga".into(),
                            device_ids: vec!["0".into()],
                        },
                    ],
                }],
            }],
        };
        let held = holders(&response);
        assert_eq!(held.len(), 2);
        assert_eq!(
            held[1].0,
            DeviceId::Gpu {
                uuid: "GPU-b".into(),
                replica: Some(2)
            }
        );
        assert_eq!(
            (held[0].1.pod.as_str(), held[0].1.container.as_str()),
            ("triton-0", "server")
        );
    }
}
