//! Scraping the node's inference servers: every target concurrently, each under its own
//! timeout, so one slow or dead server never delays the others.
//!
//! A body is read up to [`MAX_BODY_BYTES`] and parsed with at most `max_samples` samples; a
//! large one (CPU work) is parsed on the blocking pool, never on the async thread (a server exposing thousands of models cannot
//! blow up memory). Each target keeps its previous reading, so signals are computed over the
//! time between two successful scrapes. Failures are counted by a bounded `reason`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use super::recipe::{self, QueueReading, QueueSignals, Recipe};
use super::triton::{self, TritonReading, TritonSignals};
use crate::promtext;

/// Largest /metrics body read from a target.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerKind {
    Triton,
    Vllm,
    Sglang,
    Tgi,
    TorchServe,
    /// Any other server, read through its pod's mapping annotation.
    Mapped,
}

impl ServerKind {
    pub const ALL: [ServerKind; 6] = [
        ServerKind::Triton,
        ServerKind::Vllm,
        ServerKind::Sglang,
        ServerKind::Tgi,
        ServerKind::TorchServe,
        ServerKind::Mapped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Triton => "triton",
            ServerKind::Vllm => "vllm",
            ServerKind::Sglang => "sglang",
            ServerKind::Tgi => "tgi",
            ServerKind::TorchServe => "torchserve",
            ServerKind::Mapped => "mapped",
        }
    }

    pub fn parse(text: &str) -> Option<ServerKind> {
        ServerKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The names [`ServerKind::parse`] accepts, for messages.
    pub fn names() -> String {
        ServerKind::ALL.map(ServerKind::as_str).join(", ")
    }

    /// The port the server's metrics are on unless annotated otherwise (a mapped server has
    /// none: its port must be named). Every kind serves them on `/metrics`.
    pub(crate) fn default_port(self) -> Option<u16> {
        match self {
            ServerKind::Triton => Some(8002),
            ServerKind::Vllm => Some(8000),
            // `--enable-metrics` on the API port
            ServerKind::Sglang => Some(30000),
            // the router's port in the official image (PORT=80; the launcher's own default is 3000)
            ServerKind::Tgi => Some(80),
            // the metrics API (`metrics_address`, with metrics_mode=prometheus)
            ServerKind::TorchServe => Some(8082),
            ServerKind::Mapped => None,
        }
    }

    /// The built-in recipe of a kind read through one (all but Triton and mapped servers).
    fn recipe(self) -> Option<&'static Recipe> {
        match self {
            ServerKind::Vllm => Some(&recipe::VLLM),
            ServerKind::Sglang => Some(&recipe::SGLANG),
            ServerKind::Tgi => Some(&recipe::TGI),
            ServerKind::TorchServe => Some(&recipe::TORCHSERVE),
            ServerKind::Triton | ServerKind::Mapped => None,
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
    /// A mapped server's mapping, as written (`kubemind.io/metrics`, `--static-mapping`);
    /// read at every scrape, so a bad one is reported as the target's failure.
    pub mapping: Option<String>,
}

impl Target {
    /// A target of a built-in kind.
    pub fn new(namespace: &str, pod: &str, kind: ServerKind, url: &str) -> Target {
        Target {
            namespace: namespace.into(),
            pod: pod.into(),
            kind,
            url: url.into(),
            mapping: None,
        }
    }

    /// Reads `--static-target KIND:NAMESPACE/POD=URL`.
    pub(crate) fn parse_static(text: &str) -> Result<Target, String> {
        let usage = || {
            format!(
                "{text:?} is not KIND:NAMESPACE/POD=URL (KIND one of {})",
                ServerKind::names()
            )
        };
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
        Ok(Target::new(namespace, pod, kind, url))
    }

    /// The recipe this target is read with; a mapped target's mapping may not parse.
    fn recipe(&self) -> Result<Cow<'static, Recipe>, Failure> {
        if let Some(recipe) = self.kind.recipe() {
            return Ok(Cow::Borrowed(recipe));
        }
        let mapping = self.mapping.as_deref().unwrap_or_default();
        Recipe::parse_mapping(mapping)
            .map(Cow::Owned)
            .map_err(|e| Failure::new(FailureReason::Mapping, format!("mapping: {e}")))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Reading {
    Triton(TritonReading),
    /// Read with this recipe (kept, so a mapping is parsed once per scrape).
    Queue(Cow<'static, Recipe>, QueueReading),
}

/// A server's signals over its last window.
#[derive(Debug, Clone, PartialEq)]
pub enum Signals {
    Triton(TritonSignals),
    /// Any server read through a recipe (vLLM, SGLang, TGI, TorchServe, mapped).
    Queue(QueueSignals),
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
    /// A mapped server's mapping does not parse.
    Mapping,
    /// A series a mapped server's mapping names is not on its page.
    MissingSeries,
}

/// A failed scrape: its bounded reason, and what an operator needs to fix it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    reason: FailureReason,
    detail: String,
}

impl Failure {
    fn new(reason: FailureReason, detail: impl Into<String>) -> Failure {
        Failure {
            reason,
            detail: detail.into(),
        }
    }
}

impl From<FailureReason> for Failure {
    fn from(reason: FailureReason) -> Failure {
        Failure::new(reason, reason.as_str())
    }
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
            FailureReason::Mapping => "mapping",
            FailureReason::MissingSeries => "missing_series",
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
    /// The last scrape's failure, logged when it first appears, not at every scrape.
    failing: Option<FailureReason>,
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
        let reading = page
            .map_err(Failure::from)
            .and_then(|text| read(target, text.as_bytes(), max_samples));
        self.record(target, reading, at)
    }

    fn record(
        &mut self,
        target: &Target,
        result: Result<Reading, Failure>,
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
                if state.failing.take().is_some() {
                    tracing::info!(namespace = %target.namespace, pod = %target.pod, kind = target.kind.as_str(), "scraped again");
                }
                true
            }
            Err(failure) => {
                *state.failures.entry(failure.reason).or_default() += 1;
                state.signals = None;
                if state.failing.replace(failure.reason) != Some(failure.reason) {
                    tracing::warn!(
                        namespace = %target.namespace,
                        pod = %target.pod,
                        kind = target.kind.as_str(),
                        reason = failure.reason.as_str(),
                        problem = %failure.detail,
                        "scrape failed"
                    );
                }
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
    /// For `http://` targets (nearly all inference servers): no CA roots loaded.
    plain: reqwest::Client,
    /// For `https://` targets, verified against the system's roots: built when the first
    /// such target appears.
    verified: Option<reqwest::Client>,
    timeout: Duration,
    max_samples: usize,
    readings: Readings,
}

impl Scraper {
    pub fn new(timeout: Duration, max_samples: usize) -> Result<Scraper, reqwest::Error> {
        Ok(Scraper {
            plain: crate::page_fetch::plain_client(timeout)?,
            verified: None,
            timeout,
            max_samples,
            readings: Readings::default(),
        })
    }

    /// Scrapes every target at once and reports on each; forgets targets no longer listed.
    pub async fn scrape_all(&mut self, targets: &[Target]) -> Vec<TargetReport> {
        self.readings.retain(targets);
        if self.verified.is_none() && targets.iter().any(|t| t.url.starts_with("https://")) {
            self.verified = crate::page_fetch::client(self.timeout).ok();
        }
        let rounds = targets.iter().map(|target| {
            let client = match &self.verified {
                Some(verified) if target.url.starts_with("https://") => verified.clone(),
                _ => self.plain.clone(),
            };
            let (timeout, max_samples) = (self.timeout, self.max_samples);
            async move {
                let result = tokio::time::timeout(timeout, fetch(&client, target, max_samples))
                    .await
                    .unwrap_or(Err(FailureReason::Timeout.into()));
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
            Signals::Queue(s) => s.values().to_vec(),
        };
        values.into_iter().flatten().all(f64::is_finite)
    }
}

fn signals(previous: &Reading, current: &Reading, elapsed: Duration) -> Option<Signals> {
    match (previous, current) {
        (Reading::Triton(before), Reading::Triton(now)) => {
            triton::signals(before, now, elapsed).map(Signals::Triton)
        }
        (Reading::Queue(_, before), Reading::Queue(recipe, now)) => {
            recipe.signals(before, now, elapsed).map(Signals::Queue)
        }
        _ => None,
    }
}

async fn fetch(
    client: &reqwest::Client,
    target: &Target,
    max_samples: usize,
) -> Result<Reading, Failure> {
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
    let target = target.clone();
    crate::page_fetch::parse(body, move |body| read(&target, body, max_samples))
        .await
        .map_err(|_| Failure::from(FailureReason::Parse))?
}

fn read(target: &Target, body: &[u8], max_samples: usize) -> Result<Reading, Failure> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Failure::new(FailureReason::Parse, "the page is not UTF-8"))?;
    let exposition = promtext::parse_with_limit(text, max_samples).map_err(|e| match e {
        promtext::ParseError::TooManySamples { .. } => {
            Failure::new(FailureReason::Cardinality, e.to_string())
        }
        promtext::ParseError::Syntax { .. } => Failure::new(FailureReason::Parse, e.to_string()),
    })?;
    if target.kind == ServerKind::Triton {
        return Ok(Reading::Triton(TritonReading::from_exposition(&exposition)));
    }
    let recipe = target.recipe()?;
    match recipe.read(&exposition) {
        Ok(reading) => Ok(Reading::Queue(recipe, reading)),
        Err(missing) => Err(Failure::new(FailureReason::MissingSeries, missing)),
    }
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
            "tensorrt:demo/p=http://x",
            "vllm:demo/p=ftp://x",
            "vllm:/p=http://x",
            "nonsense",
        ] {
            assert!(Target::parse_static(bad).is_err(), "{bad}");
        }
    }
}
