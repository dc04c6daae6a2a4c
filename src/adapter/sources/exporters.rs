//! The exporter source (the direct path): every `interval`, scrape each exporter pod's
//! `/metrics` under a timeout and hand the values to the publisher as each page arrives.
//! Pages are asked for in the compact values form
//! ([`exporter_page::VALUES_MEDIA_TYPE`]); an exporter that answers Prometheus text instead
//! (one older than the form) is read from its text.
//!
//! The source runs on the background runtime ([`crate::adapter::background`]), never on the
//! threads that serve requests: at a thousand exporters, fetching and reading pages is most of
//! what the adapter does, and a request must not wait behind it. There is no round barrier: a
//! scrape round starts every `interval` with one scrape per exporter that is not still busy
//! with its last one, and each page is read into samples as it arrives (a large one on the
//! blocking pool) and handed over within [`HAND_OVER_EVERY`] — a slow exporter delays only its
//! own values. At most [`SCRAPES_AT_ONCE`] scrapes run at a time, which bounds the memory pages
//! take in flight. A round's duration (first scrape started → last one done) is observed.
//!
//! Exporter pods are found in the pod cache by label selector. An exporter that stops answering,
//! or whose pod stops running or is replaced (a DaemonSet rollout), keeps its last page until
//! the page is older than `--max-age`: a rollout never blanks a node's values for the restart
//! window, and where two pages name the same pod or node the newer value wins.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::assemble::{SourceValues, ValuesPart};
use crate::adapter::kube::Cluster;
use crate::adapter::telemetry::Telemetry;
use crate::exporter_page::{self, ExporterPage};
use crate::page_fetch::KeptAliveClient;
use crate::selector::Selector;

/// Largest page read from one exporter.
const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;
/// Most samples (values, in the compact form) read from one exporter's page.
const MAX_SAMPLES: usize = 200_000;
/// Most scrapes in flight at once.
const SCRAPES_AT_ONCE: usize = 64;
/// Pages that arrived are handed to the publisher at most this long after.
const HAND_OVER_EVERY: Duration = Duration::from_millis(50);

pub(crate) struct ExporterSource {
    pub cluster: Cluster,
    pub selector: Selector,
    pub port: u16,
    pub interval: Duration,
    pub timeout: Duration,
    /// Values older than this are absent.
    pub max_age: Duration,
    pub telemetry: Arc<Telemetry>,
    /// Where the values go (to the publisher).
    pub values: watch::Sender<Arc<SourceValues>>,
}

/// An exporter pod: (namespace, name).
type ExporterKey = (String, String);

/// One exporter's last good page, as samples.
struct ScrapedPage {
    collected_at: SystemTime,
    part: Arc<ValuesPart>,
}

/// A round's start and the scrapes it still waits for.
struct Round {
    started: Instant,
    outstanding: usize,
}

impl ExporterSource {
    /// Runs until the task is dropped.
    pub async fn run(self) {
        if self.cluster.wait_until_ready().await.is_err() {
            tracing::error!("the Kubernetes caches stopped before their first list");
            return;
        }
        // one connection kept per exporter: a fresh one per scrape costs a handshake and a
        // teardown, most of the kernel's work at a thousand exporters
        let client = KeptAliveClient::new(self.timeout);
        let permits = Arc::new(Semaphore::new(SCRAPES_AT_ONCE));
        let mut pages: HashMap<ExporterKey, ScrapedPage> = HashMap::new();
        let mut in_flight: HashSet<ExporterKey> = HashSet::new();
        let mut scrapes: JoinSet<(ExporterKey, u64, Result<ScrapedPage, FetchError>)> =
            JoinSet::new();
        let mut rounds: HashMap<u64, Round> = HashMap::new();
        let mut next_round = 0u64;
        let mut changed = false;
        let mut handed_over = Instant::now();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let exporters = self.cluster.running_pods(&self.selector);
                    let running: HashSet<(&str, &str)> = exporters
                        .iter()
                        .map(|(namespace, name, _)| (namespace.as_str(), name.as_str()))
                        .collect();
                    let now = SystemTime::now();
                    let held = pages.len();
                    pages.retain(|(namespace, name), page| {
                        let runs = running.contains(&(namespace.as_str(), name.as_str()));
                        keep_page(runs, page.collected_at, now, self.max_age)
                    });
                    changed |= pages.len() != held;
                    self.observe_pages(&pages);
                    next_round += 1;
                    let mut started = 0;
                    for (namespace, name, ip) in exporters {
                        let key = (namespace, name);
                        if !in_flight.insert(key.clone()) {
                            continue; // still busy with the last round's scrape
                        }
                        let url = exporter_url(&ip, self.port);
                        let (client, permits) = (client.clone(), permits.clone());
                        let round = next_round;
                        scrapes.spawn(async move {
                            let result = match permits.acquire_owned().await {
                                Ok(_permit) => scrape(&client, &url).await,
                                Err(_) => Err(FetchError::Stopped),
                            };
                            (key, round, result)
                        });
                        started += 1;
                    }
                    if started > 0 {
                        rounds.insert(next_round, Round { started: Instant::now(), outstanding: started });
                    }
                }
                Some(joined) = scrapes.join_next(), if !scrapes.is_empty() => {
                    let Ok((key, round, result)) = joined else {
                        continue; // a scrape task panicked: its exporter stays marked busy
                    };
                    in_flight.remove(&key);
                    if let Some(open) = rounds.get_mut(&round) {
                        open.outstanding -= 1;
                        if open.outstanding == 0 {
                            self.telemetry.observe_scrape_round(open.started.elapsed());
                            rounds.remove(&round);
                        }
                    }
                    match result {
                        Ok(page) => {
                            pages.insert(key, page);
                            changed = true;
                            self.telemetry.count_source_refresh("exporter", true);
                        }
                        Err(error) => {
                            tracing::debug!(exporter = %format!("{}/{}", key.0, key.1), %error, "exporter scrape failed");
                            self.telemetry.count_source_refresh("exporter", false);
                        }
                    }
                }
                _ = tokio::time::sleep_until((handed_over + HAND_OVER_EVERY).into()), if changed => {
                    let parts = pages.values().map(|page| page.part.clone()).collect();
                    self.values.send_replace(Arc::new(SourceValues::exporters(parts, self.max_age)));
                    if let Some(newest) = pages.values().map(|page| page.collected_at).max() {
                        self.telemetry.observe_newest_value("exporter", newest);
                    }
                    changed = false;
                    handed_over = Instant::now();
                }
            }
        }
    }

    /// Each exporter's page age, for telemetry.
    fn observe_pages(&self, pages: &HashMap<ExporterKey, ScrapedPage>) {
        let now = SystemTime::now();
        let ages: Vec<(String, f64)> = pages
            .iter()
            .map(|((namespace, name), page)| {
                let age = now
                    .duration_since(page.collected_at)
                    .map_or(0.0, |a| a.as_secs_f64());
                (format!("{namespace}/{name}"), age)
            })
            .collect();
        self.telemetry.observe_exporter_pages(&ages);
    }
}

fn exporter_url(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("http://[{ip}]:{port}/metrics")
    } else {
        format!("http://{ip}:{port}/metrics")
    }
}

/// Whether to keep an exporter's last page: while its pod `runs`, and afterwards until its
/// values are older than `max_age` (they would be absent then anyway).
fn keep_page(runs: bool, collected_at: SystemTime, now: SystemTime, max_age: Duration) -> bool {
    let fresh = now
        .duration_since(collected_at)
        .is_ok_and(|age| age <= max_age)
        || collected_at > now;
    runs || fresh
}

/// Why an exporter's page could not be read.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("{0}")]
    Fetch(#[from] crate::page_fetch::FetchError),
    #[error("the page is not UTF-8")]
    NotText,
    #[error("{0}")]
    Page(#[from] exporter_page::PageError),
    #[error("the adapter is stopping")]
    Stopped,
}

/// Fetches one exporter's page and reads it into samples: where it is fetched (the background
/// runtime's thread), or on that runtime's blocking pool when it is large.
async fn scrape(client: &KeptAliveClient, url: &str) -> Result<ScrapedPage, FetchError> {
    let fetched = client
        .fetch_accepting(url, exporter_page::ACCEPT_VALUES_OR_TEXT, MAX_PAGE_BYTES)
        .await?;
    let values = fetched
        .content_type
        .as_deref()
        .is_some_and(exporter_page::is_values);
    crate::page_fetch::parse(fetched.body, move |body| {
        let page = if values {
            ExporterPage::from_values_json(body, MAX_SAMPLES)?
        } else {
            let text = std::str::from_utf8(body).map_err(|_| FetchError::NotText)?;
            exporter_page::read(text, MAX_SAMPLES)?
        };
        Ok(ScrapedPage {
            collected_at: page.collected_at,
            part: Arc::new(ValuesPart::from_exporter_page(&page)),
        })
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_exporters_page_stays_until_max_age() {
        let now = SystemTime::now();
        let max_age = Duration::from_secs(10);
        let page = |age: u64| now - Duration::from_secs(age);
        assert!(keep_page(true, page(600), now, max_age), "its pod runs");
        // the rollout: the old pod is gone, its replacement not yet answering
        assert!(
            keep_page(false, page(3), now, max_age),
            "fresh: kept through the restart"
        );
        assert!(
            !keep_page(false, page(11), now, max_age),
            "past max-age: dropped"
        );
    }
}
