//! One Prometheus (or anything speaking its HTTP API: Thanos, Mimir, VictoriaMetrics) behind a
//! circuit breaker. Every query has a connect and a whole-request deadline and carries the
//! current bearer token ([`super::token`]); long queries go by POST; the answer is read into
//! plain (labels, value, time) rows.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use prometheus_http_query::response::Data;

use super::breaker::Breaker;
use super::token::TokenFile;
use crate::adapter::telemetry::Telemetry;

/// Queries longer than this are sent as a form body: URLs have limits along the way.
const POST_ABOVE_BYTES: usize = 2048;

/// How to reach Prometheus.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    /// Deadline of one query.
    pub timeout: Duration,
    /// Deadline of one discovery query (purpose `discovery`).
    pub discovery_timeout: Duration,
    pub bearer_token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_tls_verify: bool,
}

/// One row of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub labels: HashMap<String, String>,
    pub value: f64,
    /// The evaluation time Prometheus reports for the row.
    pub at: SystemTime,
}

/// Why the client cannot be built from its flags.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--prometheus-ca-file {path}: {source}")]
    ReadCa {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("--prometheus-ca-file {path}: not a PEM bundle: {source}")]
    CaBundle {
        path: std::path::PathBuf,
        source: reqwest::Error,
    },
    #[error("--prometheus-bearer-token-file {0}")]
    Token(#[from] super::token::TokenError),
    #[error("the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("--prometheus-url {url}: {source}")]
    Url {
        url: String,
        source: prometheus_http_query::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("Prometheus is failing; queries are held back for a while (circuit open)")]
    CircuitOpen,
    #[error("{0}")]
    Failed(String),
}

pub struct PrometheusClient {
    client: prometheus_http_query::Client,
    timeout: Duration,
    discovery_timeout: Duration,
    /// Sent with every query, re-read when its file changes.
    token: Option<TokenFile>,
    breaker: Breaker,
    telemetry: Arc<Telemetry>,
}

impl PrometheusClient {
    pub fn new(
        endpoint: &Endpoint,
        telemetry: Arc<Telemetry>,
    ) -> Result<PrometheusClient, ClientError> {
        // each query's deadline is set per query (discovery has a longer one)
        let mut builder = reqwest::Client::builder()
            .connect_timeout(endpoint.timeout)
            .danger_accept_invalid_certs(endpoint.insecure_skip_tls_verify);
        if let Some(path) = &endpoint.ca_file {
            let pem = std::fs::read(path).map_err(|source| ClientError::ReadCa {
                path: path.clone(),
                source,
            })?;
            let bundle = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                ClientError::CaBundle {
                    path: path.clone(),
                    source,
                }
            })?;
            for certificate in bundle {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let token = endpoint
            .bearer_token_file
            .as_deref()
            .map(TokenFile::open)
            .transpose()?;
        let client = prometheus_http_query::Client::from(builder.build()?, &endpoint.url).map_err(
            |source| ClientError::Url {
                url: endpoint.url.clone(),
                source,
            },
        )?;
        Ok(PrometheusClient {
            client,
            timeout: endpoint.timeout,
            discovery_timeout: endpoint.discovery_timeout,
            token,
            breaker: Breaker::default(),
            telemetry,
        })
    }

    /// Evaluates `query` now. `purpose` labels the query count. Rows whose value is NaN or ±Inf
    /// are dropped: they are absent, never a number.
    pub async fn instant(
        &self,
        purpose: &'static str,
        query: &str,
    ) -> Result<Vec<Row>, QueryError> {
        if !self.breaker.allow(Instant::now()) {
            self.telemetry.set_prometheus_circuit_open(true);
            return Err(QueryError::CircuitOpen);
        }
        let mut builder = self.client.query(query);
        if let Some(token) = &self.token {
            builder = builder.header(reqwest::header::AUTHORIZATION, token.header());
        }
        let deadline = if purpose == "discovery" {
            self.discovery_timeout
        } else {
            self.timeout
        };
        let sent = async {
            if query.len() > POST_ABOVE_BYTES {
                builder.post().await
            } else {
                builder.get().await
            }
        };
        let answer = tokio::time::timeout(deadline, sent).await;
        // A query Prometheus refuses (bad PromQL) says nothing about its health; one it did
        // not answer in time does.
        let healthy = !matches!(answer, Ok(Err(prometheus_http_query::Error::Client(_))));
        self.breaker.record(healthy, Instant::now());
        self.telemetry
            .set_prometheus_circuit_open(self.breaker.is_open());
        self.telemetry
            .count_prometheus_query(purpose, matches!(answer, Ok(Ok(_))));
        let answer = answer.map_err(|_| {
            QueryError::Failed(format!(
                "no answer within {}",
                humantime::format_duration(deadline)
            ))
        })?;
        // with its causes: "failed to send request" alone does not say a certificate was refused
        let answer = answer.map_err(|e| QueryError::Failed(crate::process::error_chain(&e)))?;
        let rows = match answer.data() {
            Data::Vector(vector) => vector
                .iter()
                .filter(|row| row.sample().value().is_finite())
                .map(|row| Row {
                    labels: row.metric().clone(),
                    value: row.sample().value(),
                    at: to_system_time(row.sample().timestamp()),
                })
                .collect(),
            Data::Scalar(sample) if sample.value().is_finite() => vec![Row {
                labels: HashMap::new(),
                value: sample.value(),
                at: to_system_time(sample.timestamp()),
            }],
            Data::Scalar(_) => Vec::new(),
            Data::Matrix(_) => {
                return Err(QueryError::Failed(
                    "the query returned a range vector; rules must give an instant vector".into(),
                ));
            }
        };
        Ok(rows)
    }
}

fn to_system_time(seconds: f64) -> SystemTime {
    Duration::try_from_secs_f64(seconds)
        .map(|since| SystemTime::UNIX_EPOCH + since)
        .unwrap_or_else(|_| SystemTime::now())
}

/// A label value as a PromQL string literal (double-quoted, escaped).
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
