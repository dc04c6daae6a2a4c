//! Where the adapter's values come from. Each source builds whole snapshots and publishes them to
//! the store; none is ever called on the request path.
//!
//! - [`static_file`]: objects and values from a YAML/JSON file (standalone mode).
//! - [`exporters`]: the direct path: exporter pods scraped every second, each page read
//!   onto the HPA catalogue by [`crate::exporter_page`].
//! - [`prometheus`]: rules (built-in, and prometheus-adapter's format) evaluated against
//!   Prometheus; external metrics read on demand.
//! - [`assemble`]: the cluster snapshot from the Kubernetes inventory and every source's
//!   values, with workload aggregates; [`publisher`]: the task that publishes it.

pub mod assemble;
pub mod exporters;
pub mod prometheus;
pub mod publisher;
pub mod static_file;
