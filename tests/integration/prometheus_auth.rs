//! The Prometheus source reaching a guarded Prometheus: the real Prometheus (Debian package)
//! behind a proxy that does what kube-rbac-proxy does in front of it in many clusters — HTTPS
//! with a certificate of its own CA, and only requests carrying an accepted bearer token pass.
//! The proxy is written here; Prometheus cannot check bearer tokens itself.
//!
//! The adapter verifies the proxy with `--prometheus-ca-file`, sends the token from
//! `--prometheus-bearer-token-file`, and follows the token through a rotation: the file is
//! replaced, the old token revoked, and values keep being served past the max-age.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::fixtures::{
    DEMO_PODS_PATH, hpa_standin, pinned_demo_pods, serving_certificate, start_cluster_adapter,
    start_demo_exporter, triton_page,
};
use crate::prometheus_server::Prometheus;
use crate::util::wait_for_async;

#[derive(Default)]
struct Guard {
    /// Tokens let through.
    accepted: Mutex<Vec<String>>,
    /// Requests by the token they carried ("" for none): (passed, refused).
    seen: Mutex<HashMap<String, (usize, usize)>>,
}

/// A guarding proxy in front of Prometheus on 127.0.0.1, over HTTPS.
struct GuardingProxy {
    url: String,
    guard: Arc<Guard>,
}

impl GuardingProxy {
    async fn start(dir: &std::path::Path, prometheus: String) -> (GuardingProxy, String) {
        let (cert, key, ca_pem) = serving_certificate(dir);
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
            .await
            .expect("proxy certificate");
        let guard = Arc::new(Guard::default());
        let upstream = reqwest::Client::new();
        let state = (guard.clone(), upstream, prometheus);
        let app = axum::Router::new().fallback(pass).with_state(state);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let address = listener.local_addr().expect("address");
        let server = axum_server::from_tcp_rustls(listener, tls).expect("listener");
        tokio::spawn(async move { server.serve(app.into_make_service()).await });
        let proxy = GuardingProxy {
            url: format!("https://{address}"),
            guard,
        };
        (proxy, ca_pem)
    }

    fn accept(&self, tokens: &[&str]) {
        *self.guard.accepted.lock().expect("lock") = tokens.iter().map(|t| t.to_string()).collect();
    }

    /// (passed, refused) of requests carrying `token`.
    fn seen(&self, token: &str) -> (usize, usize) {
        let seen = self.guard.seen.lock().expect("lock");
        seen.get(token).copied().unwrap_or_default()
    }

    fn report(&self) -> String {
        format!("{:?}", self.guard.seen.lock().expect("lock"))
    }
}

async fn pass(
    State((guard, upstream, prometheus)): State<(Arc<Guard>, reqwest::Client, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let accepted = guard.accepted.lock().expect("lock").contains(&token);
    {
        let mut seen = guard.seen.lock().expect("lock");
        let counts = seen.entry(token).or_default();
        if accepted {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }
    if !accepted {
        return (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = upstream.request(method, format!("{prometheus}{path}"));
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    match request.body(body).send().await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status().as_u16()).expect("status");
            let body = answer.bytes().await.unwrap_or_default();
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}

/// Replaces the token file in one step (a new file renamed over the old), as secret agents do.
fn rotate(path: &std::path::Path, token: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, format!("{token}\n")).expect("token");
    std::fs::rename(&next, path).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_prometheus_is_verified_and_a_rotated_token_followed() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_exporter, exporter_url) = start_demo_exporter(dir.path(), |n| triton_page(n, 20, 8000));
    let prometheus = Prometheus::start(dir.path(), &[("kubemind-exporter", &exporter_url)]);
    let proxy_dir = dir.path().join("proxy");
    std::fs::create_dir(&proxy_dir).expect("dir");
    let (proxy, proxy_ca) = GuardingProxy::start(&proxy_dir, prometheus.url()).await;
    proxy.accept(&["token-one"]);

    let token_file = dir.path().join("token");
    rotate(&token_file, "token-one");
    let ca_file = dir.path().join("prometheus-ca.crt");
    std::fs::write(&ca_file, proxy_ca).expect("ca");
    let standin = hpa_standin();
    let (adapter, _, client) = start_cluster_adapter(
        dir.path(),
        &standin,
        &[
            "--sources",
            "prometheus",
            "--prometheus-url",
            &proxy.url,
            "--prometheus-ca-file",
            ca_file.to_str().expect("utf-8"),
            "--prometheus-bearer-token-file",
            token_file.to_str().expect("utf-8"),
            "--prometheus-interval",
            "1s",
            "--prometheus-discovery-interval",
            "2s",
            "--prometheus-max-age",
            "5s",
        ],
    );
    let context = || {
        format!(
            "proxy saw {}\nadapter log:\n{}",
            proxy.report(),
            adapter.log()
        )
    };

    // through the proxy's TLS, verified with the CA given, and with the token
    let served = client.wait_for_demo_pods(Duration::from_secs(60)).await;
    assert_eq!(served, pinned_demo_pods(), "{}", context());
    let (passed, refused) = proxy.seen("token-one");
    assert!(passed > 0 && refused == 0, "{}", context());
    assert_eq!(
        proxy.seen(""),
        (0, 0),
        "every request carries the token: {}",
        context()
    );

    // the token rotates: the new one is valid once issued, and the old one stays valid for a
    // while, as with a kubelet-rotated token
    proxy.accept(&["token-one", "token-two"]);
    rotate(&token_file, "token-two");
    wait_for_async(Duration::from_secs(60), "the new token in use", || async {
        (proxy.seen("token-two").0 > 0).then_some(())
    })
    .await;

    // the old token is revoked: values keep coming, past the max-age, with the new one
    proxy.accept(&["token-two"]);
    let passed_before = proxy.seen("token-two").0;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let served = client.wait_for_demo_pods(Duration::from_secs(30)).await;
    assert_eq!(served, pinned_demo_pods(), "{}", context());
    assert!(proxy.seen("token-two").0 > passed_before, "{}", context());
    assert!(
        adapter.log().contains("Prometheus bearer token re-read"),
        "{}",
        context()
    );
    assert!(
        !adapter.log().contains("token-one") && !adapter.log().contains("token-two"),
        "a token never reaches the log: {}",
        context()
    );

    // without the CA the proxy's certificate is refused: nothing is sent, nothing served
    let other = dir.path().join("without-ca");
    std::fs::create_dir(&other).expect("dir");
    let other_token = other.join("token");
    rotate(&other_token, "token-three");
    let (unverified, _, unverified_client) = start_cluster_adapter(
        &other,
        &standin,
        &[
            "--sources",
            "prometheus",
            "--prometheus-url",
            &proxy.url,
            "--prometheus-bearer-token-file",
            other_token.to_str().expect("utf-8"),
            "--prometheus-interval",
            "1s",
        ],
    );
    wait_for_async(Duration::from_secs(60), "a refused certificate", || async {
        let log = unverified.log();
        log.lines()
            .any(|line| {
                line.contains("Prometheus discovery failed") && line.contains("UnknownIssuer")
            })
            .then_some(())
    })
    .await;
    let (code, _) = unverified_client
        .get(DEMO_PODS_PATH.to_string())
        .await
        .expect("answer");
    assert_eq!(code, 404, "{}", unverified.log());
    assert_eq!(proxy.seen("token-three"), (0, 0), "{}", context());
}
