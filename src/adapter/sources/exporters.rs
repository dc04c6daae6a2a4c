//! The exporter source (the direct path): every `interval`, scrape each exporter pod's
//! `/metrics` concurrently under a timeout, keep each exporter's last good page, and hand the
//! pages' values to the publisher.
//!
//! Exporter pods are found in the pod cache by label selector. An exporter that stops answering,
//! or whose pod stops running or is replaced (a DaemonSet rollout), keeps its last page until
//! the page is older than `--max-age`: a rollout never blanks a node's values for the restart
//! window, and where two pages name the same pod or node the newer value wins.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::assemble::SourceValues;
use super::exporter_page::{self, ExporterPage};
use crate::adapter::kube::Cluster;
use crate::adapter::telemetry::Telemetry;
use crate::selector::Selector;

/// Largest page read from one exporter.
const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;
/// Most samples read from one exporter's page.
const MAX_SAMPLES: usize = 200_000;

pub(crate) struct ExporterSource {
    pub cluster: Cluster,
    pub selector: Selector,
    pub port: u16,
    pub interval: Duration,
    pub timeout: Duration,
    /// Values older than this are absent.
    pub max_age: Duration,
    pub telemetry: Arc<Telemetry>,
    /// Where each round's values go (to the publisher).
    pub values: watch::Sender<Arc<SourceValues>>,
}

impl ExporterSource {
    /// Runs until the task is dropped.
    pub async fn run(self) {
        if self.cluster.wait_until_ready().await.is_err() {
            tracing::error!("the Kubernetes caches stopped before their first list");
            return;
        }
        let client = match crate::page_fetch::client(self.timeout) {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "building the HTTP client for exporters");
                return;
            }
        };
        let mut pages: HashMap<(String, String), ExporterPage> = HashMap::new();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let exporters = self.cluster.running_pods(&self.selector);
            let now = SystemTime::now();
            pages.retain(|key, page| keep_page(key, page, &exporters, now, self.max_age));
            let scrapes = exporters.iter().map(|(namespace, name, ip)| {
                let client = client.clone();
                let host = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip.clone()
                };
                let url = format!("http://{host}:{}/metrics", self.port);
                async move {
                    (
                        (namespace.clone(), name.clone()),
                        fetch(&client, &url).await,
                    )
                }
            });
            let round = std::time::Instant::now();
            let results = futures::future::join_all(scrapes).await;
            self.telemetry.observe_scrape_round(round.elapsed());
            for (key, result) in results {
                match result {
                    Ok(page) => {
                        pages.insert(key, page);
                        self.telemetry.count_source_refresh("exporter", true);
                    }
                    Err(error) => {
                        tracing::debug!(exporter = %format!("{}/{}", key.0, key.1), %error, "exporter scrape failed");
                        self.telemetry.count_source_refresh("exporter", false);
                    }
                }
            }
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
            if let Some(newest) = pages.values().map(|page| page.collected_at).max() {
                self.telemetry.observe_newest_value("exporter", newest);
            }
            let values = SourceValues::from_exporter_pages(pages.values(), self.max_age);
            self.values.send_replace(Arc::new(values));
        }
    }
}

/// Whether to keep an exporter's last page: while its pod runs, and afterwards until its
/// values are older than `max_age` (they would be absent then anyway).
fn keep_page(
    (namespace, name): &(String, String),
    page: &ExporterPage,
    running: &[(String, String, String)],
    now: SystemTime,
    max_age: Duration,
) -> bool {
    let runs = running
        .iter()
        .any(|(ns, pod, _)| (ns, pod) == (namespace, name));
    let fresh = now
        .duration_since(page.collected_at)
        .is_ok_and(|age| age <= max_age)
        || page.collected_at > now;
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
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<ExporterPage, FetchError> {
    let body = crate::page_fetch::fetch(client, url, MAX_PAGE_BYTES).await?;
    crate::page_fetch::parse(body, |body| {
        let text = std::str::from_utf8(body).map_err(|_| FetchError::NotText)?;
        Ok(exporter_page::read(text, MAX_SAMPLES)?)
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
        let page = |age: u64| ExporterPage {
            node: Some("gpu-node-1".into()),
            collected_at: now - Duration::from_secs(age),
            pods: Default::default(),
            node_values: Default::default(),
        };
        let key = ("kubemind-exporter".to_string(), "exporter-old".to_string());
        let running = vec![(
            "kubemind-exporter".to_string(),
            "exporter-old".to_string(),
            "10.0.0.1".to_string(),
        )];
        assert!(
            keep_page(&key, &page(600), &running, now, max_age),
            "its pod runs"
        );
        // the rollout: the old pod is gone, its replacement not yet answering
        assert!(
            keep_page(&key, &page(3), &[], now, max_age),
            "fresh: kept through the restart"
        );
        assert!(
            !keep_page(&key, &page(11), &[], now, max_age),
            "past max-age: dropped"
        );
    }
}
