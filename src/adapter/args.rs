//! `kubemind adapter`'s flags, as parsed (clap, with environment fallbacks); [`super::Settings`]
//! resolves them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

use crate::process::{ThreadPriority, parse_duration};

/// A source of values in cluster mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// The exporter pods, scraped directly every second.
    Exporters,
    /// Rules evaluated against Prometheus.
    Prometheus,
}

#[derive(Debug, clap::Args)]
pub struct AdapterArgs {
    /// HTTPS port (0 picks a free one; the kubeconfig names the one bound).
    #[arg(long, default_value_t = 6443, env = "KUBEMIND_SECURE_PORT")]
    pub secure_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", env = "KUBEMIND_BIND_ADDRESS")]
    pub bind_address: Option<IpAddr>,
    /// PEM certificate chain to serve; re-read when it changes. Without it, a certificate is made at start-up.
    #[arg(long, env = "KUBEMIND_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, env = "KUBEMIND_TLS_PRIVATE_KEY_FILE")]
    pub tls_private_key_file: Option<PathBuf>,
    /// How often the certificate files are checked for changes.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,
    /// Extra DNS names or IPs for a generated serving certificate.
    #[arg(long = "tls-san")]
    pub tls_sans: Vec<String>,
    /// Values older than this are absent, never served.
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "KUBEMIND_MAX_AGE")]
    pub max_age: Duration,
    /// Serve values from --static-metrics instead of a cluster.
    #[arg(long)]
    pub standalone: bool,
    /// YAML or JSON file of objects and values (standalone mode); re-read when it changes.
    #[arg(long)]
    pub static_metrics: Option<PathBuf>,
    /// How often the static-metrics file is checked and its values re-stamped.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub static_refresh: Duration,
    /// Write a kubeconfig for kubectl (server, CA and a trusted client certificate) here.
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,

    /// Kubeconfig of the cluster (cluster mode); default: in-cluster, then $KUBECONFIG.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Label selector of the exporter pods to scrape (cluster mode).
    #[arg(long, default_value = "app.kubernetes.io/name=kubemind-exporter")]
    pub exporter_selector: String,
    /// The exporters' /metrics port.
    #[arg(long, default_value_t = 9400)]
    pub exporter_port: u16,
    /// How often every exporter is scraped.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub exporter_interval: Duration,
    /// Longest wait for one exporter.
    #[arg(long, default_value = "800ms", value_parser = parse_duration)]
    pub exporter_timeout: Duration,

    /// Where values come from (cluster mode), comma-separated. Default: exporters, plus
    /// prometheus when --prometheus-url is given. With prometheus and without exporters, the
    /// built-in rules read the exporters' series from Prometheus.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub sources: Option<Vec<SourceKind>>,
    /// Prometheus (or Thanos, Mimir, VictoriaMetrics) base URL, e.g. http://prometheus:9090.
    #[arg(long, env = "KUBEMIND_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// prometheus-adapter configuration file (rules, externalRules) to evaluate as well.
    #[arg(long)]
    pub prometheus_config: Option<PathBuf>,
    /// How often every rule is evaluated, and how long an external answer is reused.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub prometheus_interval: Duration,
    /// How often the rules' series are rediscovered (new metrics, namespaces).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub prometheus_discovery_interval: Duration,
    /// Deadline of one query (connect and answer).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub prometheus_timeout: Duration,
    /// Deadline of one discovery query: it counts every series a rule selects (seconds
    /// against a store of millions) and runs in the background, so it may take longer.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub prometheus_discovery_timeout: Duration,
    /// Values from Prometheus older than this are absent.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub prometheus_max_age: Duration,
    /// File holding a bearer token sent to Prometheus; re-read when it changes (a rotated
    /// service-account token).
    #[arg(long)]
    pub prometheus_bearer_token_file: Option<PathBuf>,
    /// CA bundle to verify Prometheus' certificate with.
    #[arg(long)]
    pub prometheus_ca_file: Option<PathBuf>,
    /// Do not verify Prometheus' certificate (testing only).
    #[arg(long)]
    pub prometheus_insecure_skip_tls_verify: bool,

    /// Kubeconfig of the API server to delegate to: TokenReview, SubjectAccessReview, and the
    /// kube-system/extension-apiserver-authentication ConfigMap (watched). Default: the cluster's
    /// own in cluster mode; in standalone mode, none (tokens refused, only system:masters).
    #[arg(long, env = "KUBEMIND_AUTHENTICATION_KUBECONFIG")]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// CA bundle for client certificates (user = CN, groups = O); overrides the ConfigMap.
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// CA bundle of the front proxy (the aggregator's client certificate); overrides the ConfigMap.
    #[arg(long)]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Front-proxy certificate CNs to trust, comma-separated (empty: any from its CA).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Vec<String>,
    /// Time for a client to complete the TLS handshake.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,
    /// Serve KEDA's external-scaler gRPC protocol on this port (same address and TLS as the
    /// APIs; 0 picks a free one), for ScaledObjects that scale idle deployments to zero.
    #[arg(long, env = "KUBEMIND_KEDA_PORT")]
    pub keda_port: Option<u16>,
    /// Let requests without credentials through as system:anonymous, to be authorized (and
    /// usually denied, 403) like any user; false answers them 401, as kube-apiserver's flag.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub anonymous_auth: bool,

    #[command(flatten)]
    pub connections: crate::serve::ConnectionArgs,
    /// CPU priority of the background work (scraping, reading pages, assembling snapshots):
    /// idle lets a request preempt it at once, for an adapter in a container of its own;
    /// normal gives it a fair share beside whatever else runs.
    #[arg(long, value_enum, default_value_t = ThreadPriority::Normal, env = "KUBEMIND_BACKGROUND_PRIORITY")]
    pub background_priority: ThreadPriority,

    /// Headers carrying the user name (default X-Remote-User).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_username_headers: Vec<String>,
    /// Headers carrying the user's UID (default X-Remote-Uid).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_uid_headers: Vec<String>,
    /// Headers carrying groups (default X-Remote-Group).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_group_headers: Vec<String>,
    /// Prefixes of headers carrying extras (default X-Remote-Extra-).
    #[arg(long, value_delimiter = ',')]
    pub requestheader_extra_headers_prefix: Vec<String>,
}
