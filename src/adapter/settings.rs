//! The adapter's settings: its flags ([`super::args::AdapterArgs`]) checked and the files they
//! name read, before anything binds — a bad one is a [`ConfigError`] naming the flag (exit 64).
//! [`Settings::from_args`] reads as its steps: certificates, where values come from, trust,
//! the delegate, connection limits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::args::{AdapterArgs, SourceKind};
use super::auth::trust::{Trust, TrustSources};
use super::sources::prometheus;
use super::sources::static_file::StaticMetrics;
use super::tls::ServingIdentity;
use crate::process::{ConfigError, read_kubeconfig};
use crate::selector::Selector;
use crate::serve;

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
    /// Where KEDA's external scaler is served (`--keda-port`), if anywhere.
    pub keda_listen: Option<SocketAddr>,
    /// The CPU priority of the background threads.
    pub background: crate::process::ThreadPriority,
}

impl Settings {
    /// Checks the flags and reads the files they name; touches no socket.
    pub(crate) fn from_args(args: AdapterArgs) -> Result<Settings, ConfigError> {
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
        let certificates = certificates(&args, bind)?;
        let mode = if args.standalone {
            Mode::Standalone(standalone(&args)?)
        } else {
            Mode::Cluster(Box::new(cluster(&args)?))
        };
        let trust_flags = trust_flags(&args)?;
        let delegate = read_kubeconfig(
            "--authentication-kubeconfig",
            args.authentication_kubeconfig.as_deref(),
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
            keda_listen: args.keda_port.map(|port| SocketAddr::new(bind, port)),
            background: args.background_priority,
        })
    }

    /// The longest any value may be served: the store hides what is older, the publisher
    /// applies each source's own max-age.
    pub(crate) fn longest_max_age(&self) -> Duration {
        match &self.mode {
            Mode::Cluster(cluster) => cluster
                .prometheus
                .as_ref()
                .map_or(self.max_age, |p| self.max_age.max(p.max_age)),
            Mode::Standalone(_) => self.max_age,
        }
    }
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

/// The serving certificate: both files, or neither (then one is made for localhost, the bind
/// address and `--tls-san`).
fn certificates(args: &AdapterArgs, bind: IpAddr) -> Result<Certificates, ConfigError> {
    match (
        args.tls_cert_file.clone(),
        args.tls_private_key_file.clone(),
    ) {
        (Some(cert), Some(key)) => {
            let initial = ServingIdentity::load(&cert, &key)
                .map_err(|e| ConfigError::new("--tls-cert-file", e.to_string()))?;
            let chain_pem = std::fs::read_to_string(&cert).map_err(|e| {
                ConfigError::new("--tls-cert-file", format!("{}: {e}", cert.display()))
            })?;
            Ok(Certificates::Files {
                cert,
                key,
                reload_interval: args.tls_reload_interval,
                initial,
                chain_pem,
            })
        }
        (None, None) => {
            let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            if !bind.is_unspecified() && !bind.is_loopback() {
                names.push(bind.to_string());
            }
            names.extend(args.tls_sans.iter().cloned());
            Ok(Certificates::Generated { names })
        }
        (Some(_), None) => Err(ConfigError::new(
            "--tls-private-key-file",
            "is required with --tls-cert-file",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            "--tls-cert-file",
            "is required with --tls-private-key-file",
        )),
    }
}

/// Standalone mode: the values file, read once now.
fn standalone(args: &AdapterArgs) -> Result<Standalone, ConfigError> {
    let Some(static_metrics) = args.static_metrics.clone() else {
        return Err(ConfigError::new(
            "--static-metrics",
            "standalone mode needs a file of values to serve",
        ));
    };
    let initial = StaticMetrics::load(&static_metrics)
        .map_err(|e| ConfigError::new("--static-metrics", e.to_string()))?;
    Ok(Standalone {
        static_metrics,
        initial,
        refresh: args.static_refresh,
        kubeconfig_out: args.kubeconfig_out.clone(),
    })
}

/// Cluster mode: which sources (`--sources`, by default the exporters, plus Prometheus when
/// its URL is given), each checked.
fn cluster(args: &AdapterArgs) -> Result<ClusterMode, ConfigError> {
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
        Some(prometheus_settings(args, exporters.is_none())?)
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
    Ok(ClusterMode {
        kubeconfig: read_kubeconfig("--kubeconfig", args.kubeconfig.as_deref())?,
        exporters,
        prometheus,
    })
}

/// The client and front-proxy CAs and request-header names given by flags, checked.
fn trust_flags(args: &AdapterArgs) -> Result<TrustSources, ConfigError> {
    let trust_flags = TrustSources {
        client_ca_pem: read_pem("--client-ca-file", args.client_ca_file.clone())?,
        requestheader_ca_pem: read_pem(
            "--requestheader-client-ca-file",
            args.requestheader_client_ca_file.clone(),
        )?,
        allowed_names: args.requestheader_allowed_names.clone(),
        username_headers: args.requestheader_username_headers.clone(),
        uid_headers: args.requestheader_uid_headers.clone(),
        group_headers: args.requestheader_group_headers.clone(),
        extra_header_prefixes: args.requestheader_extra_headers_prefix.clone(),
    };
    Trust::build(&trust_flags, &[])
        .map_err(|e| ConfigError::new("--requestheader-*", e.to_string()))?;
    Ok(trust_flags)
}

fn read_pem(flag: &'static str, path: Option<PathBuf>) -> Result<Option<String>, ConfigError> {
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
        (
            "--prometheus-discovery-timeout",
            args.prometheus_discovery_timeout,
        ),
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
            discovery_timeout: args.prometheus_discovery_timeout,
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
