//! Simulated parts of a GPU node, for tests, `make bench` and `kubemind demo`: a kubelet that
//! answers pod-resources `List` over a real gRPC server on a unix socket, and HTTP endpoints
//! that serve scripted `/metrics` pages (Triton or vLLM counters that advance per scrape).
//! The simulated NVML is a C library, built from `tests/nvml-sim/`.

pub mod hpa;
pub mod kubelet;
pub mod metrics_endpoint;
pub mod nvml;
pub mod process;
