//! The Prometheus source: rules evaluated against Prometheus (or Thanos, Mimir,
//! VictoriaMetrics) in the background, their values handed to the publisher.
//!
//! Every `interval`: rediscover what each rule serves when discovery is due ([`plan::units`];
//! every `discovery_interval`, and until it first succeeds), evaluate every unit — one query per
//! rule, metric, resource and namespace the cluster has (a store shared by many clusters holds
//! series of namespaces this one lacks), a few at a time, each with the query of its samples'
//! times ([`plan::sample_time_query`]) — and hand over the values stamped with when they were
//! sampled, not when Prometheus evaluated them, so `--prometheus-max-age` holds on a backend
//! that lags. A unit whose query fails keeps its last values, which turn
//! absent past the max-age; NaN, ±Inf and empty answers are absent, never 0. A circuit breaker
//! ([`breaker`]) stops the loop and the external reads from hammering a failing Prometheus.
//! External rules are read on demand ([`external`]).
//!
//! - [`config`]: prometheus-adapter's configuration format and the built-in rules.
//! - [`template`]: its `<<.Field>>` templates.
//! - [`client`]: the HTTP client, deadlines and breaker.
//! - [`token`]: the bearer token, followed through rotations.

pub mod breaker;
pub mod client;
pub mod config;
pub mod external;
pub mod plan;
pub mod template;
pub mod token;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt as _;
use tokio::sync::watch;

use super::assemble::{ObjectKey, SourceValues, Value, ValuesPart};
use crate::adapter::kube::Cluster;
use crate::adapter::telemetry::Telemetry;
use client::PrometheusClient;
use config::{Rule, Rules};
use external::ExternalQueries;
use plan::Unit;

/// Queries in flight at once: enough to finish a cycle of many namespaces quickly, few enough
/// not to burden Prometheus.
const CONCURRENT_QUERIES: usize = 8;
/// Most units evaluated per cycle; beyond it the rest are dropped with a warning.
const MAX_UNITS: usize = 20_000;

pub(crate) struct PrometheusSource {
    pub client: Arc<PrometheusClient>,
    /// The cluster's namespaces: a unit in a namespace the cluster does not have is not
    /// evaluated (a store shared by many clusters holds many such).
    pub cluster: Cluster,
    pub rules: Rules,
    pub interval: Duration,
    pub discovery_interval: Duration,
    pub max_age: Duration,
    pub external: Arc<ExternalQueries>,
    pub telemetry: Arc<Telemetry>,
    pub values: watch::Sender<Arc<SourceValues>>,
}

impl PrometheusSource {
    /// Runs until the task is dropped.
    pub async fn run(self) {
        if self.cluster.wait_until_ready().await.is_err() {
            tracing::error!("the Kubernetes caches stopped before their first list");
            return;
        }
        let rules: Vec<Arc<Rule>> = self.rules.rules.iter().cloned().map(Arc::new).collect();
        let mut units: BTreeSet<Unit> = BTreeSet::new();
        let mut discovered_at: Option<Instant> = None;
        let mut results: BTreeMap<Unit, Vec<(ObjectKey, Value)>> = BTreeMap::new();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let due = discovered_at.is_none_or(|at| at.elapsed() >= self.discovery_interval);
            if due && let Some(found) = self.discover(&rules).await {
                units = found;
                discovered_at = Some(Instant::now());
                results.retain(|unit, _| units.contains(unit));
            }
            let inventory = self.cluster.inventory();
            // the namespaces listed, and any a listed pod or workload is in
            let namespaces: HashSet<&str> = inventory
                .namespaces
                .iter()
                .map(|(name, _)| &**name)
                .chain(inventory.pods.iter().map(|pod| &*pod.namespace))
                .chain(inventory.workloads.iter().map(|w| &*w.namespace))
                .collect();
            let jobs: Vec<(Unit, String, String)> = units
                .iter()
                .filter(|unit| {
                    unit.namespace
                        .as_deref()
                        .is_none_or(|namespace| namespaces.contains(namespace))
                })
                .take(MAX_UNITS)
                .map(|unit| {
                    let rule = &rules[unit.rule];
                    (
                        unit.clone(),
                        plan::unit_query(rule, unit),
                        plan::sample_time_query(rule, unit),
                    )
                })
                .collect();
            let evaluations: Vec<_> = futures::stream::iter(jobs)
                .map(|(unit, query, times)| {
                    let client = self.client.clone();
                    async move {
                        let (answer, times) = tokio::join!(
                            client.instant("rule", &query),
                            client.instant("sample_times", &times)
                        );
                        (unit, query, answer, times)
                    }
                })
                .buffer_unordered(CONCURRENT_QUERIES)
                .collect()
                .await;
            let mut failures = 0;
            for (unit, query, answer, times) in evaluations {
                match answer {
                    Ok(rows) => {
                        if let Err(error) = &times {
                            tracing::debug!(rule = %rules[unit.rule].origin, %error, "sample times unknown: values keep the evaluation time");
                        }
                        let values = plan::read_unit(&unit, &rows, times.as_deref().ok());
                        results.insert(unit, values);
                    }
                    Err(error) => {
                        failures += 1;
                        tracing::debug!(rule = %rules[unit.rule].origin, %query, %error, "rule evaluation failed");
                    }
                }
            }
            if failures > 0 {
                tracing::warn!(
                    failures,
                    units = units.len(),
                    "Prometheus rule evaluations failed; their last values stay until the max-age"
                );
            }
            self.telemetry
                .count_source_refresh("prometheus", failures == 0);
            self.external.refresh_demanded().await;
            self.publish(&units, &results);
        }
    }

    /// Runs every rule's discovery query; `None` when any failed (the last discovery stays).
    async fn discover(&self, rules: &[Arc<Rule>]) -> Option<BTreeSet<Unit>> {
        let mut units = BTreeSet::new();
        let mut served = external::Served::new();
        for (index, rule) in rules.iter().enumerate() {
            let rows = match self
                .client
                .instant("discovery", &plan::discovery_query(rule))
                .await
            {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(rule = %rule.origin, %error, "Prometheus discovery failed");
                    return None;
                }
            };
            match rule.kind {
                config::RuleKind::Custom => units.extend(plan::units(index, rule, &rows)),
                config::RuleKind::External => {
                    for (metric, series) in plan::external_metrics(rule, &rows) {
                        served
                            .entry(metric)
                            .or_insert_with(|| (rule.clone(), series));
                    }
                }
            }
        }
        if units.len() > MAX_UNITS {
            tracing::warn!(
                units = units.len(),
                limit = MAX_UNITS,
                "more rule evaluations than the limit; the rest are skipped"
            );
        }
        self.external.set_served(served);
        Some(units)
    }

    fn publish(&self, units: &BTreeSet<Unit>, results: &BTreeMap<Unit, Vec<(ObjectKey, Value)>>) {
        let mut values = SourceValues {
            max_age: self.max_age,
            ..SourceValues::default()
        };
        for unit in units {
            values
                .declared
                .insert((unit.resource.clone(), unit.metric.clone()));
        }
        let mut newest: Option<SystemTime> = None;
        let mut objects: BTreeMap<ObjectKey, BTreeMap<String, Value>> = BTreeMap::new();
        for (unit, rows) in results {
            for (key, value) in rows {
                newest = newest.max(Some(value.at));
                objects
                    .entry(key.clone())
                    .or_default()
                    .insert(unit.metric.clone(), *value);
            }
        }
        values.parts = vec![Arc::new(ValuesPart::from_values(objects))];
        values.external = self.external.served_names();
        if let Some(newest) = newest.max(self.external.newest()) {
            self.telemetry.observe_newest_value("prometheus", newest);
        }
        self.values.send_replace(Arc::new(values));
    }
}
