//! kubemind's integration tests: one binary, shared helpers in `util` and `fixtures`.
//!
//! - `api`: every route × version × error case through the router, whole JSON bodies compared.
//! - `standalone`: the real binary over real TLS, read by the real kubectl.
//! - `cluster`: the direct path end to end: exporter binary → adapter in cluster mode → HPA requests.
//! - `prometheus`: the Prometheus source against the real Prometheus, and its faults.
//! - `prometheus_auth`: the same through an authenticating HTTPS proxy, with a rotated token.
//! - `victoria_metrics`: the Prometheus source against VictoriaMetrics, its lag and a path prefix.
//! - `exporter`: the exporter binary end to end, and promtool on its page.
//! - `hostile`: 10,000 malformed or hostile requests against the real binary.
//! - `nvml`: the GPU sampler through nvml-wrapper and a simulated libnvidia-ml.so.1.
//! - `podresources`: GPU → pod attribution against a real gRPC server on a unix socket.
//! - `security`: authentication and authorization, against `standin` (a minimal stand-in for
//!   kube-apiserver, which cannot be installed here).
//! - `demo`, `explain`: the two commands a person runs, from their output.
//! - `fleet`: one adapter scraping a hundred exporters (a simulated fleet on loopback addresses).
//! - `replicas`: two adapter replicas on the same exporters serve the same values.
//! - `dashboards`, `alerts`: every dashboard query against a real Prometheus; promtool on the
//!   alert rules.

mod alerts;
mod api;
mod catalogue;
mod cluster;
mod connections;
mod dashboards;
mod demo;
mod explain;
mod exporter;
mod fixtures;
mod fleet;
mod hostile;
mod image;
mod keda;
mod nvml;
mod podresources;
mod preflight;
mod prometheus;
mod prometheus_auth;
mod prometheus_server;
mod regression;
mod replicas;
mod security;
mod standalone;
mod standin;
mod util;
mod victoria_metrics;
