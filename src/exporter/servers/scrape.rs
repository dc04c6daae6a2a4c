//! Scraping the node's inference servers: every target concurrently, each under its own
//! timeout, so one slow or dead server never delays the others.
//!
//! A body is read up to [`MAX_BODY_BYTES`] and parsed with at most `max_samples` samples; a
//! large one (CPU work) is parsed on the blocking pool, never on the async thread (a server exposing thousands of models cannot
//! blow up memory). Each target keeps its previous reading, so signals are computed over the
//! time between two successful scrapes. Failures are counted by a bounded `reason`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use super::triton::{self, TritonReading, TritonSignals};
use super::vllm::{self, VllmReading, VllmSignals};
use crate::promtext;

/// Largest /metrics body read from a target.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerKind {
    Triton,
    Vllm,
}

impl ServerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Triton => "triton",
            ServerKind::Vllm => "vllm",
        }
    }

    pub fn parse(text: &str) -> Option<ServerKind> {
        match text {
            "triton" => Some(ServerKind::Triton),
            "vllm" => Some(ServerKind::Vllm),
            _ => None,
        }
    }

    /// Where the server exposes metrics unless annotated otherwise.
    pub(crate) fn default_port_and_path(self) -> (u16, &'static str) {
        match self {
            ServerKind::Triton => (8002, "/metrics"),
            ServerKind::Vllm => (8000, "/metrics"),
        }
    }
}

/// One inference server to scrape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub namespace: String,
    pub pod: String,
    pub kind: ServerKind,
    pub url: String,
}

impl Target {
    /// Reads `--static-target KIND:NAMESPACE/POD=URL`.
    pub(crate) fn parse_static(text: &str) -> Result<Target, String> {
        let usage = || format!("{text:?} is not KIND:NAMESPACE/POD=URL (KIND triton or vllm)");
        let (kind, rest) = text.split_once(':').ok_or_else(usage)?;
        let kind = ServerKind::parse(kind).ok_or_else(usage)?;
        let (pod, url) = rest.split_once('=').ok_or_else(usage)?;
        let (namespace, pod) = pod.split_once('/').ok_or_else(usage)?;
        if namespace.is_empty()
            || pod.is_empty()
            || !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(usage());
        }
        Ok(Target {
            namespace: namespace.into(),
            pod: pod.into(),
            kind,
            url: url.into(),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Reading {
    Triton(TritonReading),
    Vllm(VllmReading),
}

/// A server's signals over its last window.
#[derive(Debug, Clone, PartialEq)]
pub enum Signals {
    Triton(TritonSignals),
    Vllm(VllmSignals),
}

/// Why a scrape failed: one bounded label value per real cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureReason {
    /// No complete answer within `--scrape-timeout`.
    Timeout,
    /// No connection (refused, reset, DNS, TLS).
    Connect,
    /// An HTTP status other than 2xx or 3xx.
    Status,
    /// A 3xx: redirects are not followed, so another server's page is never taken for the
    /// pod's.
    Redirect,
    /// The body broke off.
    Body,
    /// The body is larger than the cap (16 MiB).
    BodyTooLarge,
    /// Not the Prometheus text format.
    Parse,
    /// More samples than `--max-samples-per-target`.
    Cardinality,
    /// The page's values give a signal that is not a finite number (an overflow, NaN): it is
    /// left out, never rendered.
    NonFinite,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::Connect => "connect",
            FailureReason::Status => "status",
            FailureReason::Redirect => "redirect",
            FailureReason::Body => "body",
            FailureReason::BodyTooLarge => "body_too_large",
            FailureReason::Parse => "parse",
            FailureReason::Cardinality => "cardinality",
            FailureReason::NonFinite => "non_finite",
        }
    }
}

/// What one target looks like after a round.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetReport {
    pub target: Target,
    pub up: bool,
    pub signals: Option<Signals>,
    pub last_success: Option<SystemTime>,
    pub failures: BTreeMap<FailureReason, u64>,
}

#[derive(Default)]
struct TargetState {
    previous: Option<(Reading, Instant)>,
    signals: Option<Signals>,
    last_success: Option<SystemTime>,
    failures: BTreeMap<FailureReason, u64>,
}

/// What the exporter remembers of each inference server between collections — its previous
/// reading, signals, last success and failures — and how one more reading (or failure)
/// changes it. The [`Scraper`] feeds it pages fetched over HTTP; the demo feeds it simulated
/// pages, through the same code.
#[derive(Default)]
pub(crate) struct Readings {
    states: HashMap<Target, TargetState>,
}

impl Readings {
    /// Forgets the targets no longer listed.
    pub(crate) fn retain(&mut self, targets: &[Target]) {
        self.states.retain(|target, _| targets.contains(target));
    }

    /// Records a page's text for `target` read at `at` (or why there is none): parsed as its
    /// kind says, with at most `max_samples` samples.
    pub(crate) fn record_page(
        &mut self,
        target: &Target,
        page: Result<&str, FailureReason>,
        at: Instant,
        max_samples: usize,
    ) -> TargetReport {
        let reading = page.and_then(|text| read(target.kind, text.as_bytes(), max_samples));
        self.record(target, reading, at)
    }

    fn record(
        &mut self,
        target: &Target,
        result: Result<Reading, FailureReason>,
        at: Instant,
    ) -> TargetReport {
        let state = self.states.entry(target.clone()).or_default();
        let up = match result {
            Ok(reading) => {
                if let Some((previous, then)) = &state.previous {
                    state.signals = signals(previous, &reading, at.duration_since(*then));
                }
                if state.signals.as_ref().is_some_and(|s| !s.is_finite()) {
                    *state.failures.entry(FailureReason::NonFinite).or_default() += 1;
                    state.signals = None;
                }
                state.previous = Some((reading, at));
                state.last_success = Some(SystemTime::now());
                true
            }
            Err(reason) => {
                *state.failures.entry(reason).or_default() += 1;
                state.signals = None;
                false
            }
        };
        TargetReport {
            target: target.clone(),
            up,
            signals: state.signals.clone(),
            last_success: state.last_success,
            failures: state.failures.clone(),
        }
    }
}

/// Scrapes targets over HTTP into [`Readings`].
pub struct Scraper {
    client: reqwest::Client,
    timeout: Duration,
    max_samples: usize,
    readings: Readings,
}

impl Scraper {
    pub fn new(timeout: Duration, max_samples: usize) -> Result<Scraper, reqwest::Error> {
        Ok(Scraper {
            client: crate::page_fetch::client(timeout)?,
            timeout,
            max_samples,
            readings: Readings::default(),
        })
    }

    /// Scrapes every target at once and reports on each; forgets targets no longer listed.
    pub async fn scrape_all(&mut self, targets: &[Target]) -> Vec<TargetReport> {
        self.readings.retain(targets);
        let rounds = targets.iter().map(|target| {
            let client = self.client.clone();
            let (timeout, max_samples) = (self.timeout, self.max_samples);
            async move {
                let result = tokio::time::timeout(timeout, fetch(&client, target, max_samples))
                    .await
                    .unwrap_or(Err(FailureReason::Timeout));
                (target, result, Instant::now())
            }
        });
        let results = futures::future::join_all(rounds).await;
        results
            .into_iter()
            .map(|(target, result, at)| self.readings.record(target, result, at))
            .collect()
    }
}

impl Signals {
    /// Every value is a finite number (huge gauges summed can overflow to infinity).
    pub fn is_finite(&self) -> bool {
        let values: Vec<Option<f64>> = match self {
            Signals::Triton(s) => vec![
                s.queue_time_seconds,
                s.queue_compute_ratio,
                Some(s.pending_requests),
                Some(s.request_rate),
                Some(s.rejected_rate),
            ],
            Signals::Vllm(s) => vec![
                Some(s.requests_waiting),
                Some(s.requests_running),
                s.kv_cache_usage_ratio,
                s.mean_queue_time_seconds,
                Some(s.request_rate),
            ],
        };
        values.into_iter().flatten().all(f64::is_finite)
    }
}

fn signals(previous: &Reading, current: &Reading, elapsed: Duration) -> Option<Signals> {
    match (previous, current) {
        (Reading::Triton(before), Reading::Triton(now)) => {
            triton::signals(before, now, elapsed).map(Signals::Triton)
        }
        (Reading::Vllm(before), Reading::Vllm(now)) => {
            vllm::signals(before, now, elapsed).map(Signals::Vllm)
        }
        _ => None,
    }
}

async fn fetch(
    client: &reqwest::Client,
    target: &Target,
    max_samples: usize,
) -> Result<Reading, FailureReason> {
    use crate::page_fetch::FetchError;
    let body = crate::page_fetch::fetch(client, &target.url, MAX_BODY_BYTES)
        .await
        .map_err(|e| match e {
            FetchError::Timeout => FailureReason::Timeout,
            FetchError::Connect => FailureReason::Connect,
            FetchError::Status(_) => FailureReason::Status,
            FetchError::Redirect(_) => FailureReason::Redirect,
            FetchError::Body => FailureReason::Body,
            FetchError::TooLarge => FailureReason::BodyTooLarge,
            FetchError::Parse => FailureReason::Parse,
        })?;
    let kind = target.kind;
    crate::page_fetch::parse(body, move |body| read(kind, body, max_samples))
        .await
        .map_err(|_| FailureReason::Parse)?
}

fn read(kind: ServerKind, body: &[u8], max_samples: usize) -> Result<Reading, FailureReason> {
    let text = std::str::from_utf8(body).map_err(|_| FailureReason::Parse)?;
    let exposition = promtext::parse_with_limit(text, max_samples).map_err(|e| match e {
        promtext::ParseError::TooManySamples { .. } => FailureReason::Cardinality,
        promtext::ParseError::Syntax { .. } => FailureReason::Parse,
    })?;
    Ok(match kind {
        ServerKind::Triton => Reading::Triton(TritonReading::from_exposition(&exposition)),
        ServerKind::Vllm => Reading::Vllm(VllmReading::from_exposition(&exposition)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_static_targets() {
        let target = Target::parse_static("triton:demo/triton-0=http://127.0.0.1:8002/metrics")
            .expect("valid");
        assert_eq!(
            (
                target.kind,
                target.namespace.as_str(),
                target.pod.as_str(),
                target.url.as_str()
            ),
            (
                ServerKind::Triton,
                "demo",
                "triton-0",
                "http://127.0.0.1:8002/metrics"
            )
        );
        for bad in [
            "triton:demo=http://x",
            "tgi:demo/p=http://x",
            "vllm:demo/p=ftp://x",
            "vllm:/p=http://x",
            "nonsense",
        ] {
            assert!(Target::parse_static(bad).is_err(), "{bad}");
        }
    }
}
