use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Exactly one rustls crypto provider (ring), installed before any TLS object is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    kubemind::cli::run(kubemind::cli::Cli::parse())
}
