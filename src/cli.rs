//! The command line: one binary, one subcommand per role, and the process exit codes.
//!
//! Flags are parsed here into plain structs (clap, with environment fallbacks); each role turns
//! its struct into resolved settings (files read, combinations checked) before anything binds.
//! A bad flag or file exits 64 (EX_USAGE) naming the flag; a failure while running exits 1.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "kubemind",
    version,
    about = "GPU- and queue-aware metrics for the Kubernetes HorizontalPodAutoscaler"
)]
pub struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "KUBEMIND_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// `kubemind demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Simulated time to run.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Scenarios to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cpu,l4,l7")]
    pub scenario: Vec<ScenarioName>,
    /// Simulated seconds per real second; 0 runs as fast as the machine can.
    #[arg(long, default_value_t = 30.0)]
    pub speed: f64,
    /// `text` for people, `json` for a machine-readable summary.
    #[arg(long, value_enum, default_value_t = DemoOutput::Text)]
    pub output: DemoOutput,
    /// Where to write the kubeconfig for kubectl (default: in the temporary directory).
    #[arg(long)]
    pub kubeconfig_out: Option<PathBuf>,
    /// Also draw the run — replicas and queue time over time, per scenario — as an SVG file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
}

/// `kubemind explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The HorizontalPodAutoscaler's name.
    pub hpa: String,
    /// Its namespace.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Kubeconfig (a cluster, or `kubemind demo`'s / a standalone adapter's); default:
    /// in-cluster, then $KUBECONFIG.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Read the HPA from this manifest instead of the API server.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// The target's pod selector, when its scale subresource cannot be read.
    #[arg(long)]
    pub selector: Option<String>,
}

/// A demo scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioName {
    /// An HPA on CPU, L4 balancing.
    Cpu,
    /// kubemind's HPA, L4 (per-connection) balancing.
    L4,
    /// kubemind's HPA, L7 (per-request) balancing.
    L7,
}

impl ScenarioName {
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioName::Cpu => "cpu",
            ScenarioName::L4 => "l4",
            ScenarioName::L7 => "l7",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoOutput {
    Text,
    Json,
}

/// A source of values in cluster mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// The exporter pods, scraped directly every second.
    Exporters,
    /// Rules evaluated against Prometheus.
    Prometheus,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve custom.metrics.k8s.io and external.metrics.k8s.io (the HPA's metrics APIs).
    Adapter(Box<AdapterArgs>),
    /// Sample GPUs and inference servers on this node and serve them as Prometheus /metrics.
    Exporter(Box<ExporterArgs>),
    /// Run the whole chain on this machine: simulated GPUs and servers, the adapter, an HPA.
    Demo(DemoArgs),
    /// Explain why an HPA does or does not scale, pod by pod.
    Explain(ExplainArgs),
}

pub use crate::process::ConfigError;
use crate::process::parse_duration;

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
    /// Let requests without credentials through as system:anonymous, to be authorized (and
    /// usually denied, 403) like any user; false answers them 401, as kube-apiserver's flag.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub anonymous_auth: bool,

    #[command(flatten)]
    pub connections: crate::serve::ConnectionArgs,

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

#[derive(Debug, clap::Args)]
pub struct ExporterArgs {
    /// Address for /metrics and /healthz (plain HTTP).
    #[arg(long, default_value = "0.0.0.0:9400", env = "KUBEMIND_LISTEN")]
    pub listen: std::net::SocketAddr,
    #[command(flatten)]
    pub connections: crate::serve::ConnectionArgs,
    /// How often GPUs and servers are sampled.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// The node's name, a label on every series (the DaemonSet sets it from the downward API).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// NVML library to load instead of libnvidia-ml.so.1 from the loader path.
    #[arg(long, env = "KUBEMIND_NVML_LIB")]
    pub nvml_lib: Option<PathBuf>,
    /// The kubelet's pod-resources socket.
    #[arg(long, default_value = "/var/lib/kubelet/pod-resources/kubelet.sock")]
    pub pod_resources_socket: PathBuf,
    /// How often the kubelet is asked which pod holds which GPU (it rate-limits the API).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub pod_resources_refresh: Duration,
    /// An inference server to scrape: KIND:NAMESPACE/POD=URL, KIND triton or vllm (repeatable).
    #[arg(long = "static-target")]
    pub static_targets: Vec<String>,
    /// Longest wait for one server's /metrics.
    #[arg(long, default_value = "800ms", value_parser = parse_duration)]
    pub scrape_timeout: Duration,
    /// Most samples read from one server per scrape.
    #[arg(long, default_value_t = 20_000)]
    pub max_samples_per_target: usize,
    /// Kubeconfig for watching this node's pods (default: in-cluster, then $KUBECONFIG).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Scrape only --static-target, without watching the node's annotated pods.
    #[arg(long)]
    pub no_pod_discovery: bool,
}

/// EX_USAGE: bad flags or configuration files.
const EXIT_CONFIG: u8 = 64;

/// Runs a parsed command line to completion and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    crate::logging::init(cli.log_format);
    match cli.command {
        Command::Adapter(args) => {
            let settings = match crate::adapter::Settings::from_args(*args) {
                Ok(settings) => settings,
                Err(error) => {
                    eprintln!("kubemind adapter: {error}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            run_async(crate::adapter::run(settings), Flavor::MultiThread)
        }
        Command::Exporter(args) => {
            let settings = match crate::exporter::Settings::from_args(*args) {
                Ok(settings) => settings,
                Err(error) => {
                    eprintln!("kubemind exporter: {error}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            // a light, mostly waiting workload: one async thread keeps its memory small
            run_async(crate::exporter::run(settings), Flavor::CurrentThread)
        }
        Command::Demo(args) => run_async(crate::demo::run(args), Flavor::MultiThread),
        Command::Explain(args) => run_async(crate::explain::run(args), Flavor::CurrentThread),
    }
}

/// Which tokio runtime a role runs on.
enum Flavor {
    MultiThread,
    CurrentThread,
}

fn run_async(job: impl Future<Output = anyhow::Result<()>>, flavor: Flavor) -> ExitCode {
    let runtime = match flavor {
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kubemind: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(job) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kubemind: {error:#}");
            ExitCode::FAILURE
        }
    }
}
