use std::process::ExitCode;

use clap::Parser;

/// mimalloc: no lock for a request thread to wait on behind a background one (see
/// [`kubemind::process::tune_allocator`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    kubemind::process::tune_allocator();
    // Exactly one rustls crypto provider (ring), installed before any TLS object is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    kubemind::cli::run(kubemind::cli::Cli::parse())
}
