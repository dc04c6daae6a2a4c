//! Simulated parts of a GPU node and of the control plane, for tests, `make bench`, `kubemind
//! demo` and `kubemind explain`: a kubelet that answers pod-resources `List` over a real gRPC
//! server on a unix socket, HTTP endpoints that serve scripted `/metrics` pages (Triton or vLLM
//! counters that advance per scrape), a fleet of exporter pages on loopback addresses ([`fleet`]), and the HPA controller's algorithm ([`hpa`]). The
//! simulated NVML is a C library, built from `src/sim/nvml_sim.c`.

pub mod fleet;
pub mod hpa;
pub mod kubelet;
pub mod metrics_endpoint;
pub mod nvml;
pub mod process;
