//! Process plumbing every role shares, a leaf that imports no role: the configuration error
//! that exits 64 naming the flag, duration flags, the shutdown signal, the CPU priority of
//! background threads, and the Kubernetes client built from a kubeconfig or the environment.

use std::future::Future;

/// A flag or file that cannot be used; the process exits 64 (EX_USAGE) naming it.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(flag: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            flag,
            message: message.into(),
        }
    }
}

/// Parses a duration flag (`250ms`, `1s`, `5m`).
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, humantime::DurationError> {
    humantime::parse_duration(text)
}

/// Registers for SIGTERM (what the kubelet sends) and SIGINT (Ctrl-C) now, and returns a future
/// that resolves on the first of them. Registering up front matters: a signal that arrives
/// before a handler exists kills the process without draining.
pub(crate) fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
    })
}

/// The CPU priority of a thread made for background work (the adapter's sources, a simulated
/// fleet standing for other machines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ThreadPriority {
    /// The same as every other thread: it takes its fair share of the cores whatever else
    /// runs beside it.
    #[default]
    Normal,
    /// The lowest there is: a thread that wakes preempts it at once. For a process in a
    /// control group of its own (a container).
    Idle,
}

impl ThreadPriority {
    /// Moves the calling thread to this priority; `Normal` leaves it as it is. `Idle` is
    /// Linux's `SCHED_IDLE`: the thread runs when no ordinary thread of its control group wants
    /// the core, and an ordinary thread that wakes preempts it at once instead of waiting out
    /// the kernel's time slice (a few milliseconds). No privilege is needed. A thread cannot be
    /// moved back, so only threads made for background work call this. Elsewhere than Linux
    /// it does nothing.
    pub fn apply_to_this_thread(self) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        if self == ThreadPriority::Idle {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: pid 0 is the calling thread; `param` outlives the call.
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Reads the kubeconfig a flag names, if it names one; the error names the flag and the file.
pub fn read_kubeconfig(
    flag: &'static str,
    path: Option<&std::path::Path>,
) -> Result<Option<kube::config::Kubeconfig>, ConfigError> {
    path.map(|path| {
        kube::config::Kubeconfig::read_from(path)
            .map_err(|e| ConfigError::new(flag, format!("{}: {e}", path.display())))
    })
    .transpose()
}

/// Why no Kubernetes client could be built.
#[derive(Debug, thiserror::Error)]
pub enum KubeClientError {
    #[error("the kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("no cluster configuration (in-cluster or $KUBECONFIG): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("the client: {0}")]
    Client(#[from] kube::Error),
}

/// A Kubernetes client from `kubeconfig`, or inferred (in-cluster, then `$KUBECONFIG`).
pub async fn kube_client(
    kubeconfig: Option<kube::config::Kubeconfig>,
) -> Result<kube::Client, KubeClientError> {
    let config = match kubeconfig {
        Some(kubeconfig) => {
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// An error and its causes, `outer: inner: …` — what a transport error alone hides ("error
/// sending request" over a refused certificate, tonic's "transport error").
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
