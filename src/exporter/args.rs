//! `kubemind exporter`'s flags, as parsed; [`super::Settings`] resolves them.

use std::path::PathBuf;
use std::time::Duration;

use crate::process::parse_duration;

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
    /// An inference server to scrape: KIND:NAMESPACE/POD=URL, KIND triton, vllm, sglang, tgi,
    /// torchserve or mapped (repeatable).
    #[arg(long = "static-target")]
    pub static_targets: Vec<String>,
    /// A mapped static target's mapping: NAMESPACE/POD=MAPPING, entries separated by `;`
    /// (the form of the kubemind.io/metrics annotation; repeatable).
    #[arg(long = "static-mapping")]
    pub static_mappings: Vec<String>,
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
    /// Attribute shared GPUs per process: each compute process's SM time and memory to its
    /// pod, through the host's /proc (needs hostPID: see the per-process overlay).
    #[arg(long)]
    pub per_process: bool,
    /// The host's /proc, where --per-process reads each GPU process's cgroup.
    #[arg(long, default_value = "/proc")]
    pub proc_root: PathBuf,
}
