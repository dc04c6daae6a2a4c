//! The command line: one binary, one subcommand per role, and the process exit codes.
//!
//! Each role owns its flags (`adapter::args`, `exporter::args`, `demo::args`,
//! `explain::args`: plain clap structs with environment fallbacks) and turns them into resolved
//! settings (files read, combinations checked) before anything binds; this module only composes
//! them into one command line and dispatches. A bad flag or file exits 64 (EX_USAGE) naming the
//! flag; a failure while running exits 1.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::adapter::args::AdapterArgs;
use crate::demo::args::DemoArgs;
use crate::explain::args::ExplainArgs;
use crate::exporter::args::ExporterArgs;
use crate::logging::LogFormat;
use crate::preflight::args::PreflightArgs;

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
    /// Before installing: refuse to take over an APIService another Service (KEDA,
    /// prometheus-adapter) serves.
    Preflight(PreflightArgs),
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
        Command::Preflight(args) => run_async(crate::preflight::run(args), Flavor::CurrentThread),
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
