//! `kubemind explain`'s flags.

use std::path::PathBuf;

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
