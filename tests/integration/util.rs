//! Shared helpers: the kubemind binary as a child process, kubectl, polling, certificates, a
//! runtime of its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `work` to its end on a single-threaded runtime on a thread of its own, as a process
/// of its own would run it: what the caller's runtime does never holds it up.
pub fn on_a_runtime_of_its_own<F>(work: F) -> std::thread::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work)
    })
}

/// A running `kubemind` process, killed when dropped.
pub struct Process {
    child: Child,
    pub stderr_path: PathBuf,
}

impl Process {
    /// Starts `kubemind ARGS…` with stderr captured to `dir/NAME.log`, logging at `info`
    /// (`TEST_RUST_LOG=kubemind=debug cargo test …` for more when a test fails).
    pub fn start(dir: &Path, name: &str, args: &[&str]) -> Process {
        Process::start_binary(Path::new(env!("CARGO_BIN_EXE_kubemind")), dir, name, args)
    }

    /// [`Process::start`] of another build of kubemind (the image's, in a bench).
    pub fn start_binary(binary: &Path, dir: &Path, name: &str, args: &[&str]) -> Process {
        Process::spawn(dir, name, Command::new(binary).args(args))
    }

    /// [`Process::start`] under a limit of `open_files` file descriptors (`ulimit -n`, soft
    /// and hard, as a container runtime sets it).
    pub fn start_with_open_files(
        dir: &Path,
        name: &str,
        args: &[&str],
        open_files: u64,
    ) -> Process {
        let script = format!("ulimit -n {open_files} && exec \"$0\" \"$@\"");
        let mut command = Command::new("sh");
        command
            .args(["-c", &script, env!("CARGO_BIN_EXE_kubemind")])
            .args(args);
        Process::spawn(dir, name, &mut command)
    }

    /// Starts `command` (kubemind run some other way: under `chroot`, say) as [`Process::start`]
    /// does.
    pub fn spawn(dir: &Path, name: &str, command: &mut Command) -> Process {
        let stderr_path = dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&stderr_path).expect("log file");
        let child = command
            .env(
                "RUST_LOG",
                std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("kubemind starts");
        Process { child, stderr_path }
    }

    /// Sends SIGTERM (as the kubelet does) and waits up to `limit` for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        wait_for(limit, "the process to exit after SIGTERM", || {
            self.child.try_wait().expect("try_wait")
        })
    }

    pub fn child_id(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Process {
    /// Kills the process; when a test is failing, prints its log first, so every failure
    /// shows what the processes it started said.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- log of {} ---\n{}",
                self.stderr_path.display(),
                self.log()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `limit` with `what`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `kubectl --kubeconfig KUBECONFIG get --raw URI`.
pub fn kubectl_raw(kubeconfig: &Path, uri: &str) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["get", "--raw", uri])
        .output()
        .expect("kubectl runs (is it installed?)")
}

/// `kubectl get --raw` that must succeed; returns the parsed JSON.
pub fn kubectl_json(kubeconfig: &Path, uri: &str) -> serde_json::Value {
    let output = kubectl_raw(kubeconfig, uri);
    assert!(
        output.status.success(),
        "kubectl get --raw {uri} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("kubectl printed JSON")
}

/// Reads the `server:` of a kubeconfig written by the adapter.
pub fn kubeconfig_server(kubeconfig: &Path) -> String {
    kubemind::adapter::kubeconfig::read(kubeconfig)
        .expect("the adapter's kubeconfig")
        .server
}

/// The value of `series` (a name with its labels, as written) on a text page, summed over the
/// lines it starts; 0 when absent.
pub fn series_value(page: &str, series: &str) -> f64 {
    page.lines()
        .filter(|line| line.starts_with(series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A kubeconfig's client certificate and key, as reqwest presents them.
pub fn client_identity(
    credentials: &kubemind::adapter::kubeconfig::Credentials,
) -> reqwest::Identity {
    let pem = format!(
        "{}{}",
        credentials.client_certificate_pem, credentials.client_key_pem
    );
    reqwest::Identity::from_pem(pem.as_bytes()).expect("identity")
}

/// Waits for the adapter to write its kubeconfig, then returns it.
pub fn wait_for_kubeconfig(process: &Process, path: &Path) -> PathBuf {
    wait_for(Duration::from_secs(30), "the adapter's kubeconfig", || {
        path.exists().then(|| path.to_path_buf())
    });
    // the file appears whole (rename), but make sure the server answers too
    let server = kubeconfig_server(path);
    assert!(
        server.starts_with("https://127.0.0.1:"),
        "{server}\n{}",
        process.log()
    );
    path.to_path_buf()
}

/// The `address=` a process logged on the line containing `marker` (its bound listener).
pub fn listening_address(process: &Process, marker: &str) -> String {
    wait_for(Duration::from_secs(30), marker, || {
        process
            .log()
            .lines()
            .find(|l| l.contains(marker))
            .and_then(|l| l.split("address=").nth(1))
            .map(|a| a.split_whitespace().next().unwrap_or_default().to_string())
    })
}

/// Starts the exporter (node gpu-node-1, 250 ms collections) with `args` added; returns it and
/// its /metrics URL once it listens.
pub fn start_exporter(
    dir: &std::path::Path,
    library: &std::path::Path,
    args: &[&str],
) -> (Process, String) {
    let mut all = vec![
        "exporter",
        "--listen",
        "127.0.0.1:0",
        "--node-name",
        "gpu-node-1",
        "--nvml-lib",
        library.to_str().expect("utf-8"),
        "--interval",
        "250ms",
        "--scrape-timeout",
        "200ms",
    ];
    all.extend_from_slice(args);
    let exporter = Process::start(dir, "exporter", &all);
    let address = listening_address(&exporter, "serving /metrics");
    (exporter, format!("http://{address}/metrics"))
}

/// [`start_exporter`] for a node whose pods are not discovered: GPUs attributed through the
/// kubelet's pod-resources `socket`, and the inference servers `targets`, each
/// `(kind:namespace/pod, URL)`; `extra` flags added.
pub fn start_node_exporter(
    dir: &std::path::Path,
    library: &std::path::Path,
    socket: &std::path::Path,
    targets: &[(&str, &str)],
    extra: &[&str],
) -> (Process, String) {
    let targets: Vec<String> = targets
        .iter()
        .map(|(pod, url)| format!("--static-target={pod}={url}"))
        .collect();
    let mut args = vec![
        "--pod-resources-socket",
        socket.to_str().expect("utf-8"),
        "--no-pod-discovery",
    ];
    args.extend(targets.iter().map(String::as_str));
    args.extend_from_slice(extra);
    start_exporter(dir, library, &args)
}

/// Polls `check` every 250 ms until it returns `Some`, or panics after `limit` with `what`.
pub async fn wait_for_async<T, F: Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Asserts `promtool check metrics` accepts `page`.
pub fn assert_promtool_accepts(page: &str) {
    use std::io::Write as _;
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus)");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("write");
    let output = check.wait_with_output().expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
