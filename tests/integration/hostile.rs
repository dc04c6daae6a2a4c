//! 10,000 malformed or hostile requests against the real binary over real TLS: bad paths,
//! huge selectors, undecodable bytes, bad methods, oversized and malformed heads, slow clients.
//! The adapter must answer each with the right Status (or close a connection it cannot parse),
//! keep serving others meanwhile, stay within a memory bound, and never panic.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fixtures::start_standalone_adapter;

const VALUES: &str = r#"
pods:
  - {namespace: demo, name: triton-0, labels: {app: triton}, metrics: {q: 1}}
external:
  - {namespace: demo, name: lag, labels: {topic: t}, value: 5}
"#;

/// A client config with the kubeconfig's CA and client certificate (system:masters), so requests
/// get past authorization and reach the parsers.
fn client_config(kubeconfig: &std::path::Path) -> Arc<rustls::ClientConfig> {
    let credentials = kubemind::adapter::kubeconfig::read(kubeconfig).expect("kubeconfig");
    Arc::new(
        credentials
            .tls_client_config(&[b"http/1.1"])
            .expect("client config"),
    )
}

async fn connect(
    address: &str,
    config: &Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(address).await.expect("connect");
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake")
}

/// Writes raw bytes as a request and reads until the server closes; the status code, if any.
async fn raw_exchange(
    address: &str,
    config: &Arc<rustls::ClientConfig>,
    request: &[u8],
) -> Option<u16> {
    let mut stream = connect(address, config).await;
    if stream.write_all(request).await.is_err() {
        return None;
    }
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
}

/// A small deterministic generator, so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        choices[(self.next() % choices.len() as u64) as usize]
    }

    /// `len` random bytes, percent-encoded.
    fn encoded_bytes(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| format!("%{:02X}", self.next() as u8))
            .collect()
    }
}

/// A hostile but syntactically sendable request: the method and the URI.
fn hostile_uri(rng: &mut Rng, i: usize) -> (&'static str, String) {
    let prefix = rng.pick(&[
        "/apis/custom.metrics.k8s.io/v1beta2",
        "/apis/custom.metrics.k8s.io/v1beta1",
        "/apis/external.metrics.k8s.io/v1beta1",
        "/apis/custom.metrics.k8s.io/v9",
        "/apis/evil.example.com/v1",
    ]);
    let path = match i % 10 {
        0 => format!("/namespaces/demo/pods/{}/q", rng.encoded_bytes(8)),
        1 => format!("/namespaces/{}/pods/*/q", rng.encoded_bytes(4)),
        2 => "/namespaces/demo/pods/%2E%2E/q".to_string(),
        3 => format!("/{}", "a/".repeat((rng.next() % 40) as usize)),
        4 => {
            "/namespaces/demo/pods/*/q?labelSelector=".to_string()
                + &"app%3Dx%2C".repeat(1 + (rng.next() % 1500) as usize)
        }
        5 => format!(
            "/namespaces/demo/pods/*/q?labelSelector={}",
            rng.encoded_bytes(24)
        ),
        6 => format!(
            "/namespaces/demo/pods/*/q?metricLabelSelector={}&labelSelector=app%3D%3D",
            rng.encoded_bytes(12)
        ),
        7 => format!(
            "/namespaces/demo/{}",
            rng.pick(&["lag", "lag/x/y/z", "", "%FF%FE"])
        ),
        8 => {
            "/namespaces/demo/pods/*/q?labelSelector=tier+in+%28".to_string()
                + &"a%2C".repeat((rng.next() % 3000) as usize)
        }
        _ => format!("/{}?{}", rng.encoded_bytes(6), rng.encoded_bytes(6)),
    };
    let method = rng.pick(&["GET", "GET", "GET", "POST", "DELETE", "PUT"]);
    (method, format!("{prefix}{path}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_hostile_requests() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let (adapter, kubeconfig) = start_standalone_adapter(dir.path(), VALUES, &[]);
    let address = crate::util::kubeconfig_server(&kubeconfig)
        .trim_start_matches("https://")
        .to_string();
    let config = client_config(&kubeconfig);
    let rss_start = kubemind::sim::process::status_kib(adapter.child_id(), "VmRSS:");

    // slow clients: connections that send half a request head and stall, held open throughout
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut stream = connect(&address, &config).await;
        stream
            .write_all(b"GET /apis HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("write");
        stalled.push(stream);
    }

    // 9,800 hostile requests over keep-alive connections, four at a time
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let mut workers = Vec::new();
    for worker in 0..4u64 {
        let address = address.clone();
        let config = config.clone();
        workers.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (worker + 1));
            let mut sent = 0usize;
            let mut sender = new_sender(&address, &config).await;
            for i in 0..2_450 {
                if tokio::time::Instant::now() > deadline {
                    break;
                }
                let (method, uri) = hostile_uri(&mut rng, i);
                let Ok(request) = hyper::Request::builder()
                    .method(method)
                    .uri(uri.as_str())
                    .header("host", "localhost")
                    .header(
                        "accept",
                        rng.pick(&[
                            "application/json",
                            "*/*",
                            "application/vnd.kubernetes.protobuf",
                            "text/html",
                        ]),
                    )
                    .body(Full::new(Bytes::new()))
                else {
                    continue;
                };
                let response = match sender.send_request(request).await {
                    Ok(response) => response,
                    Err(_) => {
                        // the server closed a connection it would not keep: open another
                        sender = new_sender(&address, &config).await;
                        continue;
                    }
                };
                let code = response.status().as_u16();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                sent += 1;
                let json: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
                    panic!(
                        "{method} {uri}: not JSON: {}",
                        String::from_utf8_lossy(&body)
                    )
                });
                if code != 200 {
                    assert_eq!(json["kind"], "Status", "{method} {uri}");
                    assert_eq!(
                        json["code"].as_u64(),
                        Some(u64::from(code)),
                        "{method} {uri}"
                    );
                    assert!(
                        matches!(code, 400 | 404 | 405 | 406),
                        "{method} {uri}: {code} {json}"
                    );
                }
            }
            sent
        }));
    }
    let mut sent = 0;
    for worker in workers {
        sent += worker.await.expect("worker");
    }

    // 200 malformed heads on fresh connections: raw bytes no HTTP library would send
    let oversized = format!(
        "GET /apis HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    let many_headers = format!(
        "GET /apis HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "X-H: 1\r\n".repeat(200)
    );
    let cases: [(&[u8], &[u16]); 5] = [
        (b"GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/\xff\xfe/pods/*/q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &[400]),
        (b"GARBAGE\r\n\r\n", &[400]),
        (b"GET /apis HTTP/1.1\r\nHost: x\r\nbroken header line\r\n\r\n", &[400]),
        (oversized.as_bytes(), &[431, 400]),
        (many_headers.as_bytes(), &[431, 400]),
    ];
    for round in 0..40 {
        for (request, expected) in &cases {
            let code = raw_exchange(&address, &config, request).await;
            if let Some(code) = code {
                assert!(
                    expected.contains(&code),
                    "round {round}: {code} for {:?}",
                    String::from_utf8_lossy(&request[..40.min(request.len())])
                );
            }
            sent += 1;
        }
    }

    // meanwhile a good request is still answered, and the stalled heads were cut off
    let good = raw_exchange(
        &address,
        &config,
        b"GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/*/q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(good, Some(200));
    assert!(sent >= 9_900, "only {sent} hostile requests were sent");
    for mut stream in stalled {
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "a stalled client was never cut off");
    }
    let rss_end = kubemind::sim::process::status_kib(adapter.child_id(), "VmRSS:");
    assert!(
        rss_end < rss_start + 64 * 1024,
        "RSS grew from {rss_start} KiB to {rss_end} KiB over {sent} hostile requests"
    );
    assert!(!adapter.log().contains("panicked"), "{}", adapter.log());
}

async fn new_sender(
    address: &str,
    config: &Arc<rustls::ClientConfig>,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = connect(address, config).await;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http handshake");
    tokio::spawn(connection);
    sender
}
