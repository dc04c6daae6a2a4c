//! `kubemind demo`'s flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

use crate::process::parse_duration;

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
