//! kubemind's integration tests: one binary, shared helpers in `util`.
//!
//! - `api`: every route × version × error case through the router, whole JSON bodies compared.
//! - `standalone`: the real binary over real TLS, read by the real kubectl.

mod api;
mod standalone;
mod util;
