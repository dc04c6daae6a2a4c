//! `kubemind exporter`: the per-node DaemonSet that samples GPUs (NVML), maps them to pods
//! (kubelet pod-resources), scrapes the node's inference servers, and serves everything as
//! Prometheus `/metrics` from its last collection.
//!
//! - [`gpu`]: the NVML sampler thread.
//! - [`pods`]: GPU → pod attribution through the kubelet pod-resources API.
//! - [`servers`]: inference servers' signals from their counters (Triton, vLLM, SGLang, TGI,
//!   TorchServe, mapped), and the scrape loop.
//! - [`discovery`]: the node's pods annotated `kubemind.io/scrape`, from a kube reflector.
//! - [`processes`]: with `--per-process`, shared GPUs' compute processes attributed to pods.
//! - [`render`]: one collection as Prometheus text.
//!
//! [`run`] starts the sampler thread, a collection task every `--interval` (attribution,
//! scrapes, render), and a plain-HTTP server whose `/metrics` returns the last rendered page —
//! no work happens on the scrape path. A scraper whose `Accept` names
//! [`crate::exporter_page::VALUES_MEDIA_TYPE`] (the adapter) gets the same collection in
//! catalogue terms, a tenth of the size, prepared with the page. Targets are the node's
//! annotated pods plus any `--static-target`.

pub mod args;
pub mod discovery;
pub mod gpu;
pub mod pods;
pub mod processes;
pub mod render;
pub mod servers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::process::ConfigError;
use crate::serve::ConnectionStats;
use args::ExporterArgs;
use gpu::{GpuSnapshot, Sampler};
use pods::Attributions;
use servers::scrape::{Scraper, ServerKind, Target};

/// The exporter's resolved configuration.
pub struct Settings {
    pub listen: SocketAddr,
    /// What scrapers of `/metrics` may hold: connections, deadlines.
    pub limits: crate::serve::Limits,
    pub interval: Duration,
    pub node: String,
    pub nvml_lib: Option<PathBuf>,
    pub pod_resources_socket: PathBuf,
    pub pod_resources_refresh: Duration,
    pub targets: Vec<Target>,
    pub scrape_timeout: Duration,
    pub max_samples_per_target: usize,
    /// Watch the node's pods (with this kubeconfig, or the inferred configuration).
    pub pod_discovery: Option<Option<kube::config::Kubeconfig>>,
    /// `--per-process`: the host's `/proc`.
    pub per_process: Option<PathBuf>,
}

impl Settings {
    pub(crate) fn from_args(args: ExporterArgs) -> Result<Settings, ConfigError> {
        if args.interval < Duration::from_millis(100) {
            return Err(ConfigError::new("--interval", "must be at least 100ms"));
        }
        if args.scrape_timeout >= args.interval {
            return Err(ConfigError::new(
                "--scrape-timeout",
                "must be shorter than --interval, or collections overlap",
            ));
        }
        if args.node_name.trim().is_empty() {
            return Err(ConfigError::new(
                "--node-name",
                "must not be empty (NODE_NAME)",
            ));
        }
        let mut targets = args
            .static_targets
            .iter()
            .map(|t| Target::parse_static(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::new("--static-target", e))?;
        for mapping in &args.static_mappings {
            let problem =
                |what: &str| ConfigError::new("--static-mapping", format!("{mapping:?}: {what}"));
            let (pod, text) = mapping
                .split_once('=')
                .ok_or_else(|| problem("is not NAMESPACE/POD=MAPPING"))?;
            let target = targets
                .iter_mut()
                .find(|t| {
                    t.kind == ServerKind::Mapped && format!("{}/{}", t.namespace, t.pod) == pod
                })
                .ok_or_else(|| problem("names no --static-target mapped:NAMESPACE/POD=URL"))?;
            target.mapping = Some(text.to_string());
        }
        if let Some(t) = targets
            .iter()
            .find(|t| t.kind == ServerKind::Mapped && t.mapping.is_none())
        {
            return Err(ConfigError::new(
                "--static-target",
                format!("mapped:{}/{} has no --static-mapping", t.namespace, t.pod),
            ));
        }
        if args.per_process && args.no_pod_discovery {
            return Err(ConfigError::new(
                "--per-process",
                "needs the node's pods (their UIDs name the processes' cgroups): drop --no-pod-discovery",
            ));
        }
        let pod_discovery = if args.no_pod_discovery {
            None
        } else {
            Some(crate::process::read_kubeconfig(
                "--kubeconfig",
                args.kubeconfig.as_deref(),
            )?)
        };
        Ok(Settings {
            pod_discovery,
            per_process: args.per_process.then_some(args.proc_root),
            listen: args.listen,
            limits: args.connections.limits(CONNECTION_LIMITS),
            interval: args.interval,
            node: args.node_name,
            nvml_lib: args.nvml_lib,
            pod_resources_socket: args.pod_resources_socket,
            pod_resources_refresh: args.pod_resources_refresh,
            targets,
            scrape_timeout: args.scrape_timeout,
            max_samples_per_target: args.max_samples_per_target,
        })
    }
}

/// The exporter's connection limits, before flags: its scrapers are Prometheus and the
/// adapter replicas, a handful of connections.
pub const CONNECTION_LIMITS: crate::serve::Limits = crate::serve::Limits {
    max_connections: 256,
    max_connections_per_peer: 32,
    idle_timeout: Duration::from_secs(30),
    handshake_timeout: Duration::from_secs(10),
    header_read_timeout: Duration::from_secs(10),
    // room for the longest label selector, far from unbounded
    max_request_head_bytes: 128 * 1024,
    max_concurrent_streams: 256,
};
/// How long a stopping exporter lets a scrape in progress finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves until SIGTERM or Ctrl-C.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let shutdown =
        crate::process::shutdown_signal().context("registering for SIGTERM and SIGINT")?;
    let gpus = Arc::new(ArcSwap::from_pointee(GpuSnapshot::default()));
    let (stop_sampler, stopped) = std::sync::mpsc::channel();
    let sampler = Sampler {
        library: settings.nvml_lib.clone(),
        interval: settings.interval,
        published: gpus.clone(),
        per_process: settings.per_process.clone(),
    }
    .spawn(stopped)
    .context("starting the NVML sampler thread")?;

    let discovered = match &settings.pod_discovery {
        None => None,
        Some(kubeconfig) => match crate::process::kube_client(kubeconfig.clone()).await {
            Ok(client) => Some(discovery::watch_node_pods(client, &settings.node)),
            Err(error) => {
                tracing::warn!(%error, "no cluster configuration: scraping only --static-target");
                None
            }
        },
    };
    let page = Arc::new(ArcSwap::from_pointee(Page::default()));
    let (listen, limits, node) = (settings.listen, settings.limits, settings.node.clone());
    let collector = tokio::spawn(collect(settings, discovered, gpus, page.clone()));

    let connections = Arc::new(ConnectionStats::default());
    let app = axum::Router::new()
        .route(
            "/metrics",
            get({
                let (page, connections) = (page.clone(), connections.clone());
                move |headers: axum::http::HeaderMap| async move {
                    let page = page.load_full();
                    if crate::exporter_page::asks_for_values(&headers)
                        && let Some(values) = &page.values
                    {
                        return (
                            [
                                (
                                    header::CONTENT_TYPE,
                                    crate::exporter_page::VALUES_MEDIA_TYPE,
                                ),
                                (header::VARY, "Accept"),
                            ],
                            values.clone(),
                        )
                            .into_response();
                    }
                    let mut text = page.text.clone();
                    text.push_str(&connections.render("kubemind_exporter"));
                    (
                        [
                            (
                                header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            ),
                            (header::VARY, "Accept"),
                        ],
                        text,
                    )
                        .into_response()
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    let server = crate::serve::spawn(
        listen,
        None,
        app,
        crate::serve::Admission::new(limits, connections),
    )
    .await
    .with_context(|| format!("binding {listen}"))?;
    tracing::info!(address = %server.local_addr, %node, "serving /metrics");
    shutdown.await;
    server.shutdown(SHUTDOWN_GRACE).await;
    collector.abort();
    drop(stop_sampler);
    let _ = sampler.join();
    Ok(())
}

/// The last collection, in both forms `/metrics` serves.
#[derive(Debug, Default)]
struct Page {
    /// Prometheus text.
    text: String,
    /// The same in catalogue terms ([`crate::exporter_page::VALUES_MEDIA_TYPE`]).
    values: Option<axum::body::Bytes>,
}

impl Page {
    fn new(text: String) -> Page {
        let values = match crate::exporter_page::read(&text, usize::MAX) {
            Ok(read) => Some(read.to_values_json().into()),
            Err(error) => {
                // never expected of a rendered page; the text form still serves everyone
                tracing::warn!(%error, "reading the rendered page in catalogue terms");
                None
            }
        };
        Page { text, values }
    }
}

/// Every interval: ask who holds which GPU, scrape the servers, render the page.
async fn collect(
    settings: Settings,
    discovered: Option<kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Pod>>,
    gpus: Arc<ArcSwap<GpuSnapshot>>,
    page: Arc<ArcSwap<Page>>,
) {
    let mut attributions = Attributions::new(
        settings.pod_resources_socket,
        settings.pod_resources_refresh,
    );
    let mut scraper = match Scraper::new(settings.scrape_timeout, settings.max_samples_per_target) {
        Ok(scraper) => scraper,
        Err(error) => {
            tracing::error!(%error, "building the HTTP client for scrapes");
            return;
        }
    };
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let start = Instant::now();
        let holders = attributions.get().await.to_vec();
        let mut targets = settings.targets.clone();
        if let Some(store) = &discovered {
            targets.extend(discovery::targets(store));
            targets.sort();
            targets.dedup();
        }
        let servers = scraper.scrape_all(&targets).await;
        let snapshot = gpus.load_full();
        let shares = match (&settings.per_process, &discovered) {
            (Some(_), Some(store)) => processes::pod_shares(
                snapshot.gpus.iter().map(|g| g.processes.as_slice()),
                &discovery::pods_by_uid(store),
            ),
            _ => Default::default(),
        };
        let text = render::render(&render::Collection {
            node: &settings.node,
            gpus: &snapshot,
            holders: &holders,
            pod_resources_up: attributions.up,
            servers: &servers,
            pod_shares: &shares,
            duration: start.elapsed(),
            finished_at: SystemTime::now(),
        });
        page.store(Arc::new(Page::new(text)));
    }
}
