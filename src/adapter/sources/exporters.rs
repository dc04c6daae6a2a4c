//! The exporter source (the direct path): every `interval`, scrape each exporter pod's
//! `/metrics` concurrently under a timeout, keep each exporter's last good page, and hand the
//! pages' values to the publisher.
//!
//! Exporter pods are found in the pod cache by label selector; an exporter that disappears
//! takes its page with it, and one that stops answering keeps its last page, whose values turn
//! absent once older than `--max-age`.

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
            pages.retain(|key, _| {
                exporters
                    .iter()
                    .any(|(ns, name, _)| (ns, name) == (&key.0, &key.1))
            });
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
            for (key, result) in futures::future::join_all(scrapes).await {
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
