//! kubemind: GPU- and queue-aware metrics for the Kubernetes HorizontalPodAutoscaler.
//!
//! One crate, one binary, a folder per role: [`adapter`] serves the custom and external metrics
//! APIs from an in-memory snapshot. Shared pieces: [`catalogue`] (every metric name, once), [`quantity`] (Kubernetes quantities),
//! [`promtext`] (the Prometheus text format),
//! [`selector`] (label selectors), [`resources`] (group-resources), [`serve`] (the hardened
//! accept loop both servers listen with), [`page_fetch`] (a capped `/metrics` fetch),
//! [`exporter_page`] (an exporter page in catalogue terms, as text or as the compact values
//! form the adapter asks for),
//! [`process`] (signals, the kube client, configuration errors), [`cli`] (composes the roles'
//! flags and dispatches), [`logging`].

pub mod adapter;
pub mod catalogue;
pub mod cli;
pub mod demo;
pub mod explain;
pub mod exporter;
pub mod exporter_page;
pub mod logging;
pub mod page_fetch;
pub mod preflight;
pub mod process;
pub mod promtext;
pub mod quantity;
pub mod resources;
pub mod selector;
pub mod serve;
pub mod sim;
pub mod watch;
