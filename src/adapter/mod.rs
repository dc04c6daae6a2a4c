//! `kubemind adapter`: the custom- and external-metrics API server.
//!
//! Startup and shutdown live here. [`Settings::from_args`] turns the raw flags into a resolved
//! configuration (files read, combinations checked) without binding anything, so a bad flag
//! exits 64 before a port opens. [`run`] then builds the store, starts the sources and the
//! certificate reloader, serves HTTPS until SIGTERM or Ctrl-C, and drains under a grace period.
//!
//! - [`api`]: routes and handlers; [`store`]: the snapshot; [`sources`]: what fills it;
//!   [`tls`]: certificates and the acceptor; [`telemetry`]: the adapter's own `/metrics`;
//!   [`kubeconfig`]: the file standalone mode writes for kubectl; [`local`]: the adapter served
//!   on 127.0.0.1 for `kubemind demo`.
//!
//! Two modes: standalone (values from a file, no cluster) and cluster (the Kubernetes caches,
//! and values from the exporters scraped every second and/or rules evaluated against
//! Prometheus; delegated authentication against the same API server).

pub mod api;
pub mod args;
pub mod auth;
pub mod kube;
pub mod kubeconfig;
pub mod local;
pub mod sources;
pub mod store;
pub mod telemetry;
pub mod tls;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::process::ConfigError;
use crate::selector::Selector;
use crate::serve;
use api::{Access, ApiState};
use args::{AdapterArgs, SourceKind};
use auth::Auth;
use auth::configmap::TrustWatch;
use auth::delegate::Delegate;
use auth::trust::{Trust, TrustSources};
use kube::Cluster;
use sources::exporters::ExporterSource;
use sources::prometheus;
use sources::prometheus::PrometheusSource;
use sources::prometheus::external::ExternalQueries;
use sources::publisher::Publisher;
use sources::static_file::{StaticFileSource, StaticMetrics};
use store::Readiness;
use store::Store;
use telemetry::Telemetry;
use tls::{CertificateReloader, LocalAuthority, ServerTls, ServingIdentity};

/// The longest a cluster snapshot goes unpublished: values age out and pods come and go on
/// this beat even when no source has anything new.
const PUBLISH_AT_LEAST_EVERY: Duration = Duration::from_secs(1);

/// How long in-flight requests may take to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Where the serving certificate comes from.
pub enum Certificates {
    /// Files, read once by [`Settings::from_args`] and re-read every `reload_interval`.
    Files {
        cert: PathBuf,
        key: PathBuf,
        reload_interval: Duration,
        initial: ServingIdentity,
        /// The chain as PEM, for the kubeconfig's CA data.
        chain_pem: String,
    },
    /// Made at start-up by a local CA, valid for these names.
    Generated { names: Vec<String> },
}

/// The resolved configuration of standalone mode.
pub struct Standalone {
    pub static_metrics: PathBuf,
    pub initial: StaticMetrics,
    pub refresh: Duration,
    pub kubeconfig_out: Option<PathBuf>,
}

/// The resolved configuration of cluster mode.
pub struct ClusterMode {
    /// `--kubeconfig`, or `None` to infer (in-cluster, then `$KUBECONFIG`).
    pub kubeconfig: Option<::kube::config::Kubeconfig>,
    /// The direct path, unless `--sources` leaves it out.
    pub exporters: Option<ExporterSettings>,
    pub prometheus: Option<PrometheusSettings>,
}

/// The direct path from the exporters.
pub struct ExporterSettings {
    pub selector: Selector,
    pub port: u16,
    pub interval: Duration,
    pub timeout: Duration,
}

/// The Prometheus source.
pub struct PrometheusSettings {
    pub endpoint: prometheus::client::Endpoint,
    /// Built-in rules (when the exporters are not scraped directly) and --prometheus-config.
    pub rules: prometheus::config::Rules,
    pub interval: Duration,
    pub discovery_interval: Duration,
    pub max_age: Duration,
}

/// Where values come from.
pub enum Mode {
    Standalone(Standalone),
    Cluster(Box<ClusterMode>),
}

/// Everything `run` needs, validated.
pub struct Settings {
    pub listen: SocketAddr,
    pub certificates: Certificates,
    pub max_age: Duration,
    pub mode: Mode,
    /// Trust given by flags (CA files read); the ConfigMap fills in the rest.
    pub trust_flags: TrustSources,
    /// Where TokenReview, SubjectAccessReview and the authentication ConfigMap come from.
    pub delegate: Option<::kube::config::Kubeconfig>,
    /// What clients may hold: connections, deadlines.
    pub limits: serve::Limits,
    /// `--anonymous-auth`.
    pub anonymous: bool,
}

impl Settings {
    /// Checks the flags and reads the files they name; touches no socket.
    pub fn from_args(args: AdapterArgs) -> Result<Settings, ConfigError> {
        if args.max_age.is_zero() {
            return Err(ConfigError::new("--max-age", "must be more than zero"));
        }
        if args.static_refresh.is_zero() {
            return Err(ConfigError::new(
                "--static-refresh",
                "must be more than zero",
            ));
        }
        let bind = args.bind_address.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let certificates = match (
            args.tls_cert_file.clone(),
            args.tls_private_key_file.clone(),
        ) {
            (Some(cert), Some(key)) => {
                let initial = ServingIdentity::load(&cert, &key)
                    .map_err(|e| ConfigError::new("--tls-cert-file", e.to_string()))?;
                let chain_pem = std::fs::read_to_string(&cert).map_err(|e| {
                    ConfigError::new("--tls-cert-file", format!("{}: {e}", cert.display()))
                })?;
                Certificates::Files {
                    cert,
                    key,
                    reload_interval: args.tls_reload_interval,
                    initial,
                    chain_pem,
                }
            }
            (None, None) => {
                let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
                if !bind.is_unspecified() && !bind.is_loopback() {
                    names.push(bind.to_string());
                }
                names.extend(args.tls_sans.iter().cloned());
                Certificates::Generated { names }
            }
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "--tls-private-key-file",
                    "is required with --tls-cert-file",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "--tls-cert-file",
                    "is required with --tls-private-key-file",
                ));
            }
        };
        let read_kubeconfig = |flag: &'static str, path: Option<PathBuf>| {
            path.map(|path| {
                ::kube::config::Kubeconfig::read_from(&path)
                    .map_err(|e| ConfigError::new(flag, format!("{}: {e}", path.display())))
            })
            .transpose()
        };
        let mode = if args.standalone {
            let Some(static_metrics) = args.static_metrics else {
                return Err(ConfigError::new(
                    "--static-metrics",
                    "standalone mode needs a file of values to serve",
                ));
            };
            let initial = StaticMetrics::load(&static_metrics)
                .map_err(|e| ConfigError::new("--static-metrics", e.to_string()))?;
            Mode::Standalone(Standalone {
                static_metrics,
                initial,
                refresh: args.static_refresh,
                kubeconfig_out: args.kubeconfig_out,
            })
        } else {
            if args.static_metrics.is_some() || args.kubeconfig_out.is_some() {
                return Err(ConfigError::new(
                    "--static-metrics",
                    "--static-metrics and --kubeconfig-out go with --standalone",
                ));
            }
            let sources = args.sources.clone().unwrap_or_else(|| {
                let mut sources = vec![SourceKind::Exporters];
                if args.prometheus_url.is_some() {
                    sources.push(SourceKind::Prometheus);
                }
                sources
            });
            let exporters = if sources.contains(&SourceKind::Exporters) {
                if args.exporter_timeout >= args.exporter_interval {
                    return Err(ConfigError::new(
                        "--exporter-timeout",
                        "must be shorter than --exporter-interval",
                    ));
                }
                Some(ExporterSettings {
                    selector: Selector::parse(&args.exporter_selector)
                        .map_err(|e| ConfigError::new("--exporter-selector", e.to_string()))?,
                    port: args.exporter_port,
                    interval: args.exporter_interval,
                    timeout: args.exporter_timeout,
                })
            } else {
                None
            };
            let prometheus = if sources.contains(&SourceKind::Prometheus) {
                Some(prometheus_settings(&args, exporters.is_none())?)
            } else {
                if args.prometheus_config.is_some() || args.prometheus_url.is_some() {
                    return Err(ConfigError::new(
                        "--sources",
                        "--prometheus-url and --prometheus-config need prometheus among --sources",
                    ));
                }
                None
            };
            if exporters.is_none() && prometheus.is_none() {
                return Err(ConfigError::new("--sources", "names no source"));
            }
            Mode::Cluster(Box::new(ClusterMode {
                kubeconfig: read_kubeconfig("--kubeconfig", args.kubeconfig.clone())?,
                exporters,
                prometheus,
            }))
        };
        let read_pem =
            |flag: &'static str, path: Option<PathBuf>| -> Result<Option<String>, ConfigError> {
                path.map(|path| {
                    let pem = std::fs::read_to_string(&path)
                        .map_err(|e| ConfigError::new(flag, format!("{}: {e}", path.display())))?;
                    if !pem.contains("-----BEGIN CERTIFICATE-----") {
                        return Err(ConfigError::new(
                            flag,
                            format!("{}: no PEM certificate", path.display()),
                        ));
                    }
                    Ok(pem)
                })
                .transpose()
            };
        let trust_flags = TrustSources {
            client_ca_pem: read_pem("--client-ca-file", args.client_ca_file)?,
            requestheader_ca_pem: read_pem(
                "--requestheader-client-ca-file",
                args.requestheader_client_ca_file,
            )?,
            allowed_names: args.requestheader_allowed_names,
            username_headers: args.requestheader_username_headers,
            uid_headers: args.requestheader_uid_headers,
            group_headers: args.requestheader_group_headers,
            extra_header_prefixes: args.requestheader_extra_headers_prefix,
        };
        Trust::build(&trust_flags, &[])
            .map_err(|e| ConfigError::new("--requestheader-*", e.to_string()))?;
        let delegate = read_kubeconfig(
            "--authentication-kubeconfig",
            args.authentication_kubeconfig,
        )?;
        Ok(Settings {
            listen: SocketAddr::new(bind, args.secure_port),
            certificates,
            max_age: args.max_age,
            mode,
            trust_flags,
            delegate,
            limits: serve::Limits {
                handshake_timeout: args.tls_handshake_timeout,
                ..args.connections.limits(CONNECTION_LIMITS)
            },
            anonymous: args.anonymous_auth,
        })
    }
}

/// Reads the Prometheus flags and the rule files they name.
fn prometheus_settings(
    args: &AdapterArgs,
    with_builtin_rules: bool,
) -> Result<PrometheusSettings, ConfigError> {
    let Some(url) = args.prometheus_url.clone() else {
        return Err(ConfigError::new(
            "--prometheus-url",
            "is required when prometheus is among --sources",
        ));
    };
    if reqwest::Url::parse(&url).is_err() || !url.starts_with("http") {
        return Err(ConfigError::new(
            "--prometheus-url",
            format!("{url:?} is not an http(s) URL"),
        ));
    }
    for (flag, value) in [
        ("--prometheus-interval", args.prometheus_interval),
        (
            "--prometheus-discovery-interval",
            args.prometheus_discovery_interval,
        ),
        ("--prometheus-timeout", args.prometheus_timeout),
        ("--prometheus-max-age", args.prometheus_max_age),
    ] {
        if value.is_zero() {
            return Err(ConfigError::new(flag, "must be more than zero"));
        }
    }
    let mut rules = if with_builtin_rules {
        prometheus::config::builtin()
    } else {
        prometheus::config::Rules::default()
    };
    if let Some(path) = &args.prometheus_config {
        rules.extend(
            prometheus::config::load(path)
                .map_err(|e| ConfigError::new("--prometheus-config", e.to_string()))?,
        );
    }
    if rules.rules.is_empty() {
        return Err(ConfigError::new(
            "--prometheus-config",
            "no rules to evaluate: the built-in rules apply only without the exporters source",
        ));
    }
    Ok(PrometheusSettings {
        endpoint: prometheus::client::Endpoint {
            url,
            timeout: args.prometheus_timeout,
            bearer_token_file: args.prometheus_bearer_token_file.clone(),
            ca_file: args.prometheus_ca_file.clone(),
            insecure_skip_tls_verify: args.prometheus_insecure_skip_tls_verify,
        },
        rules,
        interval: args.prometheus_interval,
        discovery_interval: args.prometheus_discovery_interval,
        max_age: args.prometheus_max_age,
    })
}

/// Serves until SIGTERM or Ctrl-C.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let shutdown =
        crate::process::shutdown_signal().context("registering for SIGTERM and SIGINT")?;
    let telemetry = Arc::new(Telemetry::new());
    // the store hides what is older than the longest max-age; the publisher applies each
    // source's own
    let longest_max_age = match &settings.mode {
        Mode::Cluster(cluster) => cluster
            .prometheus
            .as_ref()
            .map_or(settings.max_age, |p| settings.max_age.max(p.max_age)),
        Mode::Standalone(_) => settings.max_age,
    };
    let store = Arc::new(Store::new(longest_max_age));
    let readiness = Readiness::default();

    // A local CA signs the serving certificate when no files are given and, in standalone mode,
    // the kubeconfig's client certificate, which only it is trusted for.
    let authority = LocalAuthority::new("kubemind local CA").context("creating the local CA")?;
    let local_client_roots = match settings.mode {
        Mode::Standalone(_) => vec![authority.certificate()],
        Mode::Cluster(_) => Vec::new(),
    };
    // In a cluster, one client reads the API server; it is also the delegate unless told otherwise.
    let cluster_client = match &settings.mode {
        Mode::Cluster(cluster) => {
            Some(kube_client(cluster.kubeconfig.clone(), "--kubeconfig").await?)
        }
        Mode::Standalone(_) => None,
    };
    let trust = Trust::build(&settings.trust_flags, &local_client_roots)?;
    let (identity, server_ca_pem, reloader) = match settings.certificates {
        Certificates::Files {
            cert,
            key,
            reload_interval,
            initial,
            chain_pem,
        } => (initial, chain_pem, Some((cert, key, reload_interval))),
        Certificates::Generated { names } => (
            authority.serving_identity(&names)?,
            authority.certificate_pem().to_string(),
            None,
        ),
    };
    let tls = Arc::new(ServerTls::new(identity, trust.roots.clone())?);
    let delegate_client = match settings.delegate {
        Some(kubeconfig) => {
            Some(kube_client(Some(kubeconfig), "--authentication-kubeconfig").await?)
        }
        None => cluster_client.clone(),
    };
    let auth = Auth::new(trust, delegate_client.clone().map(Delegate::new));
    let auth = Arc::new(if settings.anonymous {
        auth
    } else {
        auth.without_anonymous()
    });

    let mut tasks = Vec::new();
    if let Some((cert_path, key_path, interval)) = reloader {
        tasks.push(tokio::spawn(
            CertificateReloader {
                cert_path,
                key_path,
                tls: tls.clone(),
                interval,
                telemetry: telemetry.clone(),
            }
            .run(),
        ));
    }
    if let Some(client) = delegate_client {
        tasks.push(tokio::spawn(
            TrustWatch {
                client,
                flags: settings.trust_flags.clone(),
                local_client_roots,
                auth: auth.clone(),
                tls: tls.clone(),
            }
            .run(),
        ));
    }
    let mut external = None;
    let kubeconfig_out = match settings.mode {
        Mode::Standalone(standalone) => {
            tasks.push(tokio::spawn(
                StaticFileSource {
                    path: standalone.static_metrics.clone(),
                    refresh: standalone.refresh,
                    store: store.clone(),
                    telemetry: telemetry.clone(),
                    readiness: readiness.clone(),
                }
                .run(standalone.initial),
            ));
            standalone.kubeconfig_out
        }
        Mode::Cluster(cluster) => {
            let client = cluster_client
                .clone()
                .context("cluster mode has a client")?;
            let kube = Cluster::watch(&client);
            let mut sources = Vec::new();
            if let Some(exporters) = cluster.exporters {
                let (values, receiver) = tokio::sync::watch::channel(Default::default());
                sources.push(receiver);
                tasks.push(tokio::spawn(
                    ExporterSource {
                        cluster: kube.clone(),
                        selector: exporters.selector,
                        port: exporters.port,
                        interval: exporters.interval,
                        timeout: exporters.timeout,
                        max_age: settings.max_age,
                        telemetry: telemetry.clone(),
                        values,
                    }
                    .run(),
                ));
            }
            if let Some(prometheus) = cluster.prometheus {
                let client = Arc::new(
                    prometheus::client::PrometheusClient::new(
                        &prometheus.endpoint,
                        telemetry.clone(),
                    )
                    .context("--prometheus-url")?,
                );
                let queries = Arc::new(ExternalQueries::new(
                    client.clone(),
                    prometheus.interval,
                    prometheus.max_age,
                ));
                external = Some(queries.clone());
                let (values, receiver) = tokio::sync::watch::channel(Default::default());
                sources.push(receiver);
                tasks.push(tokio::spawn(
                    PrometheusSource {
                        client,
                        rules: prometheus.rules,
                        interval: prometheus.interval,
                        discovery_interval: prometheus.discovery_interval,
                        max_age: prometheus.max_age,
                        external: queries,
                        telemetry: telemetry.clone(),
                        values,
                    }
                    .run(),
                ));
            }
            tasks.push(tokio::spawn(
                Publisher {
                    cluster: kube,
                    sources,
                    refresh: PUBLISH_AT_LEAST_EVERY,
                    store: store.clone(),
                    readiness: readiness.clone(),
                }
                .run(),
            ));
            None
        }
    };

    let connections = telemetry.connections();
    let app = api::router(ApiState {
        store,
        telemetry,
        readiness,
        access: Access::Checked(auth),
        external,
    });
    let server = serve::spawn(
        settings.listen,
        Some(tls.rustls_config()),
        app,
        settings.limits,
        connections,
    )
    .await
    .with_context(|| format!("binding {}", settings.listen))?;
    let bound = server.local_addr;
    let host = if bound.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        bound.ip()
    };
    let server_url = format!("https://{}", SocketAddr::new(host, bound.port()));
    tracing::info!(address = %bound, "serving the custom and external metrics APIs");
    if let Some(path) = &kubeconfig_out {
        local::write_kubeconfig(
            path,
            &server_url,
            server_ca_pem,
            &authority,
            "kubemind-standalone-user",
        )?;
        tracing::info!(
            kubeconfig = %path.display(),
            "try: kubectl --kubeconfig {} get --raw /apis/custom.metrics.k8s.io/v1beta2",
            path.display()
        );
    }

    shutdown.await;
    tracing::info!("shutting down; draining in-flight requests");
    for task in &tasks {
        task.abort();
    }
    server.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}

/// A kube client from a kubeconfig, or inferred (in-cluster, then `$KUBECONFIG`); errors name
/// `flag`.
async fn kube_client(
    kubeconfig: Option<::kube::config::Kubeconfig>,
    flag: &'static str,
) -> anyhow::Result<::kube::Client> {
    crate::process::kube_client(kubeconfig)
        .await
        .map_err(|error| match error {
            crate::process::KubeClientError::Infer(_) => {
                anyhow::anyhow!("{error}; use --standalone without a cluster")
            }
            other => anyhow::Error::new(other).context(flag),
        })
}

/// The adapter's connection limits, before flags. Behind kube-aggregator every request comes
/// from the API servers' few addresses, over few h2 connections: the per-address cap is for a
/// peer that is not the aggregator (kube-apiserver closes a silent connection at its own
/// read-header timeout, about 30 s; the idle timeout here is as long).
pub const CONNECTION_LIMITS: serve::Limits = serve::Limits {
    max_connections: 4096,
    max_connections_per_peer: 512,
    idle_timeout: Duration::from_secs(30),
    handshake_timeout: Duration::from_secs(10),
    header_read_timeout: Duration::from_secs(10),
    // room for the longest label selector, far from unbounded
    max_request_head_bytes: 128 * 1024,
    max_concurrent_streams: 256,
};
