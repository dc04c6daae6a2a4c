//! What the adapter benches share: the standalone adapter started as its own process, an
//! HTTPS/1.1 client presenting the kubeconfig's client certificate, percentiles.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

/// A process killed when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kubemind adapter --standalone` on `values`; the process and what the kubeconfig it
/// wrote says.
pub fn start_standalone_adapter(
    dir: &Path,
    values: &Path,
) -> (Server, kubemind::adapter::kubeconfig::Credentials) {
    let kubeconfig = dir.join("kubeconfig");
    let child = Command::new(env!("CARGO_BIN_EXE_kubemind"))
        .args([
            "adapter",
            "--standalone",
            "--secure-port",
            "0",
            "--background-priority",
            &background_priority(),
            "--static-metrics",
        ])
        .arg(values)
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("adapter starts");
    let adapter = Server(child);
    let start = Instant::now();
    while !kubeconfig.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "adapter did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let written =
        kubemind::adapter::kubeconfig::read(&kubeconfig).expect("the adapter's kubeconfig");
    (adapter, written)
}

/// The adapter's `--background-priority` in a bench: the shipped Deployment's, `idle`, unless
/// `BENCH_BACKGROUND_PRIORITY` says otherwise (to compare the two side by side).
pub fn background_priority() -> String {
    std::env::var("BENCH_BACKGROUND_PRIORITY").unwrap_or_else(|_| "idle".into())
}

/// Where to connect and how.
pub struct Credentials {
    pub address: String,
    pub client: Arc<rustls::ClientConfig>,
}

impl Credentials {
    /// The server a kubeconfig names, with its CA and client certificate.
    pub fn of(written: &kubemind::adapter::kubeconfig::Credentials) -> Credentials {
        Credentials {
            address: written.server.trim_start_matches("https://").to_string(),
            client: Arc::new(
                written
                    .tls_client_config(&[b"http/1.1"])
                    .expect("client config"),
            ),
        }
    }
}

pub type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// One keep-alive HTTPS/1.1 connection.
pub async fn connect(credentials: &Credentials) -> Sender {
    let tcp = tokio::net::TcpStream::connect(&credentials.address)
        .await
        .expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let tls = tokio_rustls::TlsConnector::from(credentials.client.clone())
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("http handshake");
    tokio::spawn(connection);
    sender
}

/// A GET of `path` as the HPA's client sends it.
pub fn get(path: &str) -> hyper::Request<Empty<Bytes>> {
    hyper::Request::get(path)
        .header("host", "localhost")
        .header("accept", "application/json, */*")
        .body(Empty::new())
        .expect("a request for a constant path")
}

/// A response's whole body.
pub async fn body_of<B>(response: hyper::Response<B>) -> Bytes
where
    B: hyper::body::Body,
    B::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt;
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

/// The body of a GET of `path` on a connection of its own.
pub async fn fetch(credentials: &Credentials, path: &str) -> Bytes {
    let mut sender = connect(credentials).await;
    body_of(sender.send_request(get(path)).await.expect("response")).await
}

/// The adapter's count of custom reads it answered with an answer kept from an identical earlier
/// read, from its `/metrics`.
pub async fn answers_sent_again(credentials: &Credentials) -> u64 {
    let text = fetch(credentials, "/metrics").await;
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|line| line.strip_prefix("kubemind_adapter_answers_sent_again_total "))
        .and_then(|count| count.trim().parse().ok())
        .expect("the adapter counts the answers it sent again")
}

/// The `p` quantile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

pub fn millis(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

pub fn verdict(ok: bool) -> &'static str {
    if ok { "within budget" } else { "OVER BUDGET" }
}
