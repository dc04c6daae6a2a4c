//! External metrics from Prometheus rules, read on demand: an HPA's selector is arbitrary, so
//! values cannot be evaluated ahead for every selector. The first read of a (metric, namespace,
//! selector) sends one query; identical reads in flight meanwhile wait on that same query
//! (coalesced by the cache); the answer serves every read for the rule interval. A selector read
//! once is then refreshed in the background every interval while it keeps being read, so the
//! HPA's reads every 15 s are answered from memory. When Prometheus fails, the last good answer keeps
//! serving until it is older than the max-age — then the read fails; it never turns into 0.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use moka::future::Cache;

use super::client::{PrometheusClient, QueryError};
use super::config::Rule;
use super::plan;
use crate::adapter::store::{ExternalSeries, Labels, Sample};
use crate::selector::Selector;

/// Distinct selectors remembered; an HPA has a few, a cluster some hundreds.
const MAX_KEYS: u64 = 10_000;
/// A selector not read for this long stops being refreshed.
const IDLE_AFTER: Duration = Duration::from_secs(300);

/// An external metric read: metric, namespace, selector (canonical text).
type Key = (String, String, String);
/// An answer: the series (stamped with the time Prometheus evaluated them), and when it came.
#[derive(Debug)]
pub struct Fetched {
    pub series: Vec<ExternalSeries>,
    pub fetched_at: Instant,
}

pub(crate) type Answer = Arc<Fetched>;

/// The external metrics a rule serves: metric → (rule, series name).
pub(crate) type Served = BTreeMap<String, (Arc<Rule>, String)>;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    BadSelector(String),
    #[error("Prometheus could not answer for {metric}: {cause}")]
    Unavailable { metric: String, cause: String },
}

pub struct ExternalQueries {
    client: Arc<PrometheusClient>,
    served: ArcSwap<Served>,
    /// Answers served as they are: kept two intervals, refreshed after three quarters of one.
    fresh: Cache<Key, Answer>,
    /// The last good answer per key, kept for the max-age: served while Prometheus fails.
    last_good: Cache<Key, Answer>,
    /// Keys read recently, with their selectors: refreshed in the background.
    demanded: Cache<Key, Selector>,
    max_age: Duration,
    interval: Duration,
}

impl ExternalQueries {
    pub fn new(
        client: Arc<PrometheusClient>,
        interval: Duration,
        max_age: Duration,
    ) -> ExternalQueries {
        ExternalQueries {
            client,
            served: ArcSwap::from_pointee(Served::new()),
            fresh: Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_live(interval * 2)
                .build(),
            last_good: Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_live(max_age)
                .build(),
            demanded: Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_idle(IDLE_AFTER)
                .build(),
            max_age,
            interval,
        }
    }

    /// Replaces the metrics served (from discovery).
    pub(crate) fn set_served(&self, served: Served) {
        self.served.store(Arc::new(served));
    }

    /// The external metrics served, for discovery.
    pub(crate) fn served_names(&self) -> BTreeSet<String> {
        self.served.load().keys().cloned().collect()
    }

    /// Reads `metric` for `namespace` and `selector`; `Ok(None)` when no rule serves it.
    pub async fn read(
        &self,
        metric: &str,
        namespace: &str,
        selector: &Selector,
    ) -> Result<Option<Answer>, ReadError> {
        let served = self.served.load();
        let Some((rule, series)) = served.get(metric) else {
            return Ok(None);
        };
        let query = plan::external_query(rule, series, namespace, selector)
            .map_err(ReadError::BadSelector)?;
        let key: Key = (
            metric.to_string(),
            namespace.to_string(),
            selector.to_string(),
        );
        self.demanded.insert(key.clone(), selector.clone()).await;
        let fetched = self
            .fresh
            .try_get_with(key.clone(), self.query(&key, query))
            .await;
        match fetched {
            Ok(answer) => Ok(Some(answer)),
            Err(cause) => match self.last_good.get(&key).await {
                Some(answer) => Ok(Some(answer)),
                None => Err(ReadError::Unavailable {
                    metric: metric.to_string(),
                    cause: cause.to_string(),
                }),
            },
        }
    }

    /// Sends one query and keeps its answer as the last good one.
    async fn query(&self, key: &Key, query: String) -> Result<Answer, QueryError> {
        let rows = self.client.instant("external", &query).await?;
        let series = rows
            .into_iter()
            .filter_map(|row| {
                let labels: Labels = row
                    .labels
                    .into_iter()
                    .filter(|(name, _)| name != "__name__")
                    .collect();
                Some(ExternalSeries {
                    namespace: None,
                    labels: labels.clone(),
                    sample: Sample::new(row.value, row.at)?.with_labels(labels),
                })
            })
            .collect();
        let answer = Arc::new(Fetched {
            series,
            fetched_at: Instant::now(),
        });
        self.last_good.insert(key.clone(), answer.clone()).await;
        Ok(answer)
    }

    /// Refreshes every selector read recently whose answer is three quarters of an interval
    /// old, so reads keep finding a fresh answer. Called every rule interval by the source.
    pub async fn refresh_demanded(&self) {
        let served = self.served.load();
        let keys: Vec<(Arc<Key>, Selector)> = self.demanded.iter().collect();
        for (key, selector) in keys {
            let recent = self
                .fresh
                .get(&*key)
                .await
                .is_some_and(|answer| answer.fetched_at.elapsed() < self.interval * 3 / 4);
            if recent {
                continue;
            }
            let (metric, namespace, _) = &*key;
            let Some((rule, series)) = served.get(metric) else {
                continue;
            };
            let Ok(query) = plan::external_query(rule, series, namespace, &selector) else {
                continue;
            };
            if let Ok(answer) = self.query(&key, query).await {
                self.fresh.insert((*key).clone(), answer).await;
            }
        }
    }

    /// The max-age of external answers.
    pub(crate) fn max_age(&self) -> Duration {
        self.max_age
    }

    /// When the freshest answer held was evaluated.
    pub(crate) fn newest(&self) -> Option<SystemTime> {
        self.last_good
            .iter()
            .flat_map(|(_, answer)| answer.series.iter().map(|s| s.sample.sample_time()).max())
            .max()
    }
}
