//! Where the adapter's values come from. Each source builds whole snapshots and publishes them to
//! the store; none is ever called on the request path.
//!
//! - [`static_file`]: objects and values from a YAML/JSON file (standalone mode).

pub mod static_file;
