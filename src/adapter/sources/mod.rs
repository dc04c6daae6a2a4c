//! Where the adapter's values come from. Each source builds whole snapshots and publishes them to
//! the store; none is ever called on the request path.
//!
//! - [`static_file`]: objects and values from a YAML/JSON file (standalone mode).
//! - [`exporter_page`]: one `kubemind exporter` page read onto the HPA catalogue.
//! - [`exporters`]: the direct path: exporter pods scraped every second.
//! - [`assemble`]: the cluster snapshot from the Kubernetes inventory and exporter pages, with
//!   workload aggregates.

pub mod assemble;
pub mod exporter_page;
pub mod exporters;
pub mod static_file;
