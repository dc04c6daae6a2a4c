//! `kubemind exporter`: the per-node DaemonSet that samples GPUs (NVML), maps them to pods
//! (kubelet pod-resources), scrapes the node's inference servers, and serves everything as
//! Prometheus `/metrics` from its last snapshot.
//!
//! - [`gpu`]: the NVML sampler thread.
//! - [`pods`]: GPU → pod attribution through the kubelet pod-resources API.
//! - [`servers`]: Triton and vLLM signals from their counters.
//!
//! Being built: the NVML sampler, the pod-resources client, the scrape loop and `/metrics`;
//! until then `kubemind exporter` says it is not built yet.

pub mod gpu;
pub mod pods;
pub mod servers;
