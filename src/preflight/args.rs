//! `kubemind preflight`'s flags.

use std::path::PathBuf;

use clap::ValueEnum;

/// Which kustomization of `apiservice/` is about to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Overlay {
    /// Everything: custom.metrics.k8s.io and external.metrics.k8s.io (also `prometheus`,
    /// `cert-manager`, `generated`).
    Default,
    /// custom.metrics.k8s.io only, beside KEDA.
    CustomOnly,
    /// external.metrics.k8s.io only, beside prometheus-adapter.
    ExternalOnly,
}

/// `kubemind preflight`.
#[derive(Debug, Clone, clap::Args)]
pub struct PreflightArgs {
    /// The overlay about to be applied.
    #[arg(long, value_enum, default_value_t = Overlay::Default)]
    pub overlay: Overlay,
    /// Kubeconfig of the cluster; default: in-cluster, then $KUBECONFIG.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace of kubemind's adapter Service.
    #[arg(long, default_value = "kubemind")]
    pub service_namespace: String,
    /// The name of kubemind's adapter Service.
    #[arg(long, default_value = "kubemind-adapter")]
    pub service_name: String,
    /// Take over APIServices another Service serves (their HPAs break until they point back).
    #[arg(long)]
    pub force: bool,
}
