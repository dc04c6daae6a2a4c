//! The adapter's own telemetry, served at `/metrics` (OpenMetrics text, no global registry).
//!
//! | series | labels | meaning |
//! |---|---|---|
//! | `kubemind_adapter_request_duration_seconds` | route, code | request latency histogram |
//! | `kubemind_adapter_values_served_total` | api | metric items returned |
//! | `kubemind_adapter_answers_sent_again_total` | | custom reads answered with a kept answer, unchanged since an identical read built it |
//! | `kubemind_adapter_snapshot_age_seconds` | | time since the serving snapshot was built |
//! | `kubemind_adapter_snapshot_samples` | | samples held by the serving snapshot |
//! | `kubemind_adapter_snapshot_generation` | | publishes so far |
//! | `kubemind_adapter_source_refreshes_total` | source, result | source refreshes (`ok`, `error`) |
//! | `kubemind_adapter_tls_reloads_total` | result | serving-certificate reloads (`ok`, `error`) |
//! | `kubemind_adapter_source_newest_value_age_seconds` | source | age of the freshest value a source holds |
//! | `kubemind_adapter_exporter_page_age_seconds` | exporter | age of each exporter's last good page |
//! | `kubemind_adapter_exporter_scrape_round_duration_seconds` | | histogram: from a round's start until its last exporter answered or timed out |
//! | `kubemind_adapter_snapshot_assembly_duration_seconds` | | histogram: assembling and publishing one snapshot (cluster mode) |
//! | `kubemind_adapter_prometheus_queries_total` | purpose, result | PromQL queries sent (`discovery`, `rule`, `sample_times`, `external`) |
//! | `kubemind_adapter_prometheus_circuit_open` | | 1 while the circuit breaker holds queries back |
//! | `kubemind_adapter_connections_open` | | connections held now |
//! | `kubemind_adapter_connections_accepted_total` | | connections accepted |
//! | `kubemind_adapter_connections_refused_total` | reason | refused at a cap (`total`, `per_peer`) |
//! | `kubemind_adapter_connections_closed_total` | reason | closed by the server (`idle`, `evicted`, `handshake`) |
//!
//! Labels take values from fixed sets (routes, results), never raw error text.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::adapter::store::Snapshot;
use crate::serve::ConnectionStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    source: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExporterLabels {
    /// `namespace/pod` of an exporter: one per GPU node.
    exporter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    purpose: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s: the budget is 1 ms at p99, and the tail must still be visible.
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

/// Outcome label of a refresh or reload.
pub(crate) fn result_label(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

pub struct Telemetry {
    registry: Registry,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    values_served: Family<ApiLabels, Counter>,
    answers_sent_again: Counter,
    snapshot_age: Gauge<f64, AtomicU64>,
    snapshot_samples: Gauge,
    snapshot_generation: Gauge,
    source_refreshes: Family<RefreshLabels, Counter>,
    tls_reloads: Family<ResultLabels, Counter>,
    newest_value_age: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    exporter_page_age: Family<ExporterLabels, Gauge<f64, AtomicU64>>,
    scrape_rounds: Histogram,
    assemblies: Histogram,
    /// When each source's freshest value was measured; turned into ages when encoded.
    newest_value_at: Mutex<BTreeMap<&'static str, SystemTime>>,
    prometheus_queries: Family<QueryLabels, Counter>,
    prometheus_circuit_open: Gauge,
    connections: Arc<ConnectionStats>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    /// The server's connection accounting, registered here.
    pub fn connections(&self) -> Arc<ConnectionStats> {
        self.connections.clone()
    }

    pub fn new() -> Telemetry {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "kubemind_adapter_request_duration_seconds",
            "Time to answer a request, by route and HTTP code",
            requests.clone(),
        );
        let values_served = Family::<ApiLabels, Counter>::default();
        registry.register(
            "kubemind_adapter_values_served",
            "Metric items returned, by API",
            values_served.clone(),
        );
        let answers_sent_again = Counter::default();
        registry.register(
            "kubemind_adapter_answers_sent_again",
            "Custom-metrics reads answered with the body an identical earlier read built, nothing it was built from having changed since",
            answers_sent_again.clone(),
        );
        let snapshot_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "kubemind_adapter_snapshot_age_seconds",
            "Seconds since the snapshot being served was built",
            snapshot_age.clone(),
        );
        let snapshot_samples = Gauge::default();
        registry.register(
            "kubemind_adapter_snapshot_samples",
            "Samples held by the snapshot being served",
            snapshot_samples.clone(),
        );
        let snapshot_generation = Gauge::default();
        registry.register(
            "kubemind_adapter_snapshot_generation",
            "Snapshots published since start",
            snapshot_generation.clone(),
        );
        let source_refreshes = Family::<RefreshLabels, Counter>::default();
        registry.register(
            "kubemind_adapter_source_refreshes",
            "Source refreshes, by source and result",
            source_refreshes.clone(),
        );
        let tls_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "kubemind_adapter_tls_reloads",
            "Serving-certificate reloads after the files changed, by result",
            tls_reloads.clone(),
        );
        let newest_value_age = Family::<SourceLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "kubemind_adapter_source_newest_value_age_seconds",
            "Seconds since the freshest value a source holds was measured",
            newest_value_age.clone(),
        );
        let exporter_page_age = Family::<ExporterLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "kubemind_adapter_exporter_page_age_seconds",
            "Seconds since each exporter collected the last page read from it",
            exporter_page_age.clone(),
        );
        // 5 ms to 10 s: a round is bounded by --exporter-timeout
        let scrape_rounds = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register(
            "kubemind_adapter_exporter_scrape_round_duration_seconds",
            "Time from the start of a round of exporter scrapes until the last exporter answered or timed out",
            scrape_rounds.clone(),
        );
        // 1 ms to 4 s
        let assemblies = Histogram::new(exponential_buckets(0.001, 2.0, 13));
        registry.register(
            "kubemind_adapter_snapshot_assembly_duration_seconds",
            "Time to assemble one snapshot from the inventory and the sources' values and publish it",
            assemblies.clone(),
        );
        let prometheus_queries = Family::<QueryLabels, Counter>::default();
        registry.register(
            "kubemind_adapter_prometheus_queries",
            "PromQL queries sent to Prometheus, by purpose and result",
            prometheus_queries.clone(),
        );
        let prometheus_circuit_open = Gauge::default();
        registry.register(
            "kubemind_adapter_prometheus_circuit_open",
            "1 while the circuit breaker holds queries to Prometheus back",
            prometheus_circuit_open.clone(),
        );
        let connections = Arc::new(ConnectionStats::default());
        connections.register(&mut registry, "kubemind_adapter");
        Telemetry {
            connections,
            registry,
            newest_value_at: Mutex::default(),
            prometheus_queries,
            prometheus_circuit_open,
            newest_value_age,
            exporter_page_age,
            scrape_rounds,
            assemblies,
            requests,
            values_served,
            answers_sent_again,
            snapshot_age,
            snapshot_samples,
            snapshot_generation,
            source_refreshes,
            tls_reloads,
        }
    }

    pub fn observe_request(&self, route: &'static str, code: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { route, code })
            .observe(elapsed.as_secs_f64());
    }

    pub fn count_values_served(&self, api: &'static str, items: usize) {
        self.values_served
            .get_or_create(&ApiLabels { api })
            .inc_by(items as u64);
    }

    pub fn count_answer_sent_again(&self) {
        self.answers_sent_again.inc();
    }

    pub fn count_source_refresh(&self, source: &'static str, ok: bool) {
        self.source_refreshes
            .get_or_create(&RefreshLabels {
                source,
                result: result_label(ok),
            })
            .inc();
    }

    pub fn count_tls_reload(&self, ok: bool) {
        self.tls_reloads
            .get_or_create(&ResultLabels {
                result: result_label(ok),
            })
            .inc();
    }

    /// Records how old each exporter's page and the source's freshest value are at `now`; an
    /// exporter not listed any more loses its series.
    pub fn observe_exporter_pages(&self, ages: &[(String, f64)]) {
        self.exporter_page_age.clear();
        for (exporter, age) in ages {
            self.exporter_page_age
                .get_or_create(&ExporterLabels {
                    exporter: exporter.clone(),
                })
                .set(*age);
        }
    }

    /// Records how long one round of exporter scrapes took.
    pub fn observe_scrape_round(&self, took: Duration) {
        self.scrape_rounds.observe(took.as_secs_f64());
    }

    /// Records how long assembling and publishing one snapshot took.
    pub fn observe_assembly(&self, took: Duration) {
        self.assemblies.observe(took.as_secs_f64());
    }

    /// Records when the freshest value `source` holds was measured.
    pub fn observe_newest_value(&self, source: &'static str, measured_at: SystemTime) {
        if let Ok(mut newest) = self.newest_value_at.lock() {
            newest.insert(source, measured_at);
        }
    }

    pub fn count_prometheus_query(&self, purpose: &'static str, ok: bool) {
        self.prometheus_queries
            .get_or_create(&QueryLabels {
                purpose,
                result: result_label(ok),
            })
            .inc();
    }

    pub fn set_prometheus_circuit_open(&self, open: bool) {
        self.prometheus_circuit_open.set(i64::from(open));
    }

    /// Encodes everything, with the snapshot gauges read from `snapshot` now.
    pub fn encode(&self, snapshot: &Snapshot) -> String {
        let age = snapshot
            .built_at
            .and_then(|built| SystemTime::now().duration_since(built).ok())
            .map_or(0.0, |age| age.as_secs_f64());
        self.snapshot_age.set(age);
        self.snapshot_samples
            .set(i64::try_from(snapshot.sample_count()).unwrap_or(i64::MAX));
        self.snapshot_generation
            .set(i64::try_from(snapshot.generation).unwrap_or(i64::MAX));
        if let Ok(newest) = self.newest_value_at.lock() {
            let now = SystemTime::now();
            for (source, at) in newest.iter() {
                let age = now.duration_since(*at).map_or(0.0, |a| a.as_secs_f64());
                self.newest_value_age
                    .get_or_create(&SourceLabels { source })
                    .set(age);
            }
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
