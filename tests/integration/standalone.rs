//! The standalone adapter as a user runs it: the real binary over real TLS, read with the real
//! kubectl through the kubeconfig it writes; file reloads; certificate rotation.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;

use crate::fixtures::{resource_names, start_standalone_adapter};
use crate::util::{Process, kubectl_json, kubectl_raw, wait_for};

const VALUES: &str = r#"
pods:
  - {namespace: demo, name: triton-0, labels: {app: triton}, node: gpu-node-1,
     metrics: {triton_queue_time_ms: 8000, gpu_utilization_percent: 100}}
  - {namespace: demo, name: triton-1, labels: {app: triton}, node: gpu-node-2,
     metrics: {triton_queue_time_ms: 12.5, gpu_utilization_percent: 4}}
  - {namespace: demo, name: web-0, labels: {app: web}, metrics: {triton_queue_time_ms: 1}}
objects:
  - {namespace: demo, resource: deployments.apps, name: triton, metrics: {triton_queue_time_ms_max: 8000}}
  - {resource: namespaces, name: demo, metrics: {queue_depth: 42}}
external:
  - {namespace: demo, name: kafka_consumergroup_lag, labels: {topic: cv-jobs}, value: 1200}
  - {namespace: demo, name: kafka_consumergroup_lag, labels: {topic: thumbnails}, value: 3}
"#;

/// The adapter serving [`VALUES`], re-reading the file every 100 ms, with `extra` flags.
fn start_standalone(dir: &Path, extra: &[&str]) -> (Process, std::path::PathBuf) {
    let refresh = ["--static-refresh", "100ms"];
    start_standalone_adapter(dir, VALUES, &[&refresh[..], extra].concat())
}

fn item_values(list: &serde_json::Value) -> Vec<(String, String)> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let name = item["describedObject"]["name"]
                .as_str()
                .or(item["metricLabels"]["topic"].as_str())
                .unwrap_or_default();
            (
                name.to_string(),
                item["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn kubectl_reads_every_kind_of_metric() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_adapter, kubeconfig) = start_standalone(dir.path(), &[]);

    let discovery = kubectl_json(&kubeconfig, "/apis/custom.metrics.k8s.io/v1beta2");
    let names = resource_names(&discovery);
    assert_eq!(
        names,
        [
            "deployments.apps/triton_queue_time_ms_max",
            "namespaces/queue_depth",
            "pods/gpu_utilization_percent",
            "pods/triton_queue_time_ms",
        ]
    );
    let pods = kubectl_json(
        &kubeconfig,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/*/triton_queue_time_ms?labelSelector=app%3Dtriton",
    );
    assert_eq!(pods["kind"], "MetricValueList");
    assert_eq!(
        item_values(&pods),
        pairs(&[("triton-0", "8k"), ("triton-1", "12500m")])
    );
    let object = kubectl_json(
        &kubeconfig,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/demo/deployments.apps/triton/triton_queue_time_ms_max",
    );
    assert_eq!(item_values(&object), pairs(&[("triton", "8k")]));
    assert_eq!(object["items"][0]["metricName"], "triton_queue_time_ms_max");
    let namespace = kubectl_json(
        &kubeconfig,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/metrics/queue_depth",
    );
    assert_eq!(item_values(&namespace), pairs(&[("demo", "42")]));
    let external = kubectl_json(
        &kubeconfig,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/kafka_consumergroup_lag?labelSelector=topic%3Dcv-jobs",
    );
    assert_eq!(external["kind"], "ExternalMetricValueList");
    assert_eq!(
        external["items"][0]["metricLabels"],
        json!({"topic": "cv-jobs"})
    );
    assert_eq!(item_values(&external), pairs(&[("cv-jobs", "1200")]));

    let unknown = kubectl_raw(
        &kubeconfig,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/*/http_requests",
    );
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("Error from server (NotFound): the server could not find the metric http_requests for pods"),
        "{stderr}"
    );
    let bad = kubectl_raw(
        &kubeconfig,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/*/m?labelSelector=app%3D%3D%3D",
    );
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("Error from server (BadRequest): invalid labelSelector"),
        "{stderr}"
    );
}

#[tokio::test]
async fn h2_and_http1_are_both_offered() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_adapter, kubeconfig) = start_standalone(dir.path(), &[]);
    let credentials = kubemind::adapter::kubeconfig::read(&kubeconfig).expect("kubeconfig");
    let server = credentials.server;
    let ca = reqwest::Certificate::from_pem(credentials.ca_pem.as_bytes()).expect("ca pem");
    for (client, version) in [
        (
            reqwest::Client::builder().http2_prior_knowledge(),
            reqwest::Version::HTTP_2,
        ),
        (
            reqwest::Client::builder().http1_only(),
            reqwest::Version::HTTP_11,
        ),
    ] {
        let client = client
            .tls_backend_rustls()
            .add_root_certificate(ca.clone())
            .build()
            .expect("client");
        let response = client
            .get(format!("{server}/healthz"))
            .send()
            .await
            .expect("answer");
        assert_eq!(response.version(), version);
        assert_eq!(response.text().await.expect("body"), "ok");
    }
}

#[test]
fn file_changes_are_served_and_bad_files_keep_the_last_good_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (adapter, kubeconfig) = start_standalone(dir.path(), &[]);
    let uri =
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/triton-0/triton_queue_time_ms";
    assert_eq!(
        item_values(&kubectl_json(&kubeconfig, uri)),
        pairs(&[("triton-0", "8k")])
    );

    // replaced whole, as a ConfigMap volume or an editor's save does: a reader never sees a
    // file half written
    let values = dir.path().join("values.yaml");
    let replace = |text: &str| {
        let next = dir.path().join("values.yaml.next");
        std::fs::write(&next, text).expect("write");
        std::fs::rename(&next, &values).expect("rename");
    };
    replace(&VALUES.replace("triton_queue_time_ms: 8000", "triton_queue_time_ms: 250"));
    wait_for(Duration::from_secs(30), "the new value", || {
        (item_values(&kubectl_json(&kubeconfig, uri)) == pairs(&[("triton-0", "250")]))
            .then_some(())
    });

    replace("pods:\n  - {namespace: demo, nmae: broken}\n");
    wait_for(Duration::from_secs(30), "the error in the log", || {
        adapter.log().contains("unknown field `nmae`").then_some(())
    });
    let log = adapter.log();
    assert!(
        log.contains("values.yaml"),
        "the error names the file: {log}"
    );
    assert_eq!(
        item_values(&kubectl_json(&kubeconfig, uri)),
        pairs(&[("triton-0", "250")])
    );
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut adapter, kubeconfig) = start_standalone(dir.path(), &[]);
    kubectl_json(&kubeconfig, "/apis/custom.metrics.k8s.io/v1beta2");
    let status = adapter.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", adapter.log());
    assert!(adapter.log().contains("shutting down"));
}

#[test]
fn a_bad_file_at_start_exits_64_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let values = dir.path().join("broken.yaml");
    std::fs::write(
        &values,
        "pods:\n  - {namespace: demo, name: p, metrics: {m: 12x}}\n",
    )
    .expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kubemind"))
        .args([
            "adapter",
            "--standalone",
            "--secure-port",
            "0",
            "--static-metrics",
        ])
        .arg(&values)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--static-metrics"), "{stderr}");
    assert!(stderr.contains("broken.yaml"), "{stderr}");
    assert!(stderr.contains("invalid quantity \"12x\""), "{stderr}");
}

/// A TLS client that trusts `ca` and optionally presents a client certificate.
fn client_config(
    ca: &[CertificateDer<'static>],
    identity: Option<(
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca {
        roots.add(cert.clone()).expect("root");
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    Arc::new(match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    })
}

/// The certificate the server at `address` presents, and the status line of `GET path`.
async fn handshake(
    config: Arc<rustls::ClientConfig>,
    address: &str,
    path: &str,
) -> (CertificateDer<'static>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    let served = tls.get_ref().1.peer_certificates().expect("server cert")[0].clone();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let status = String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    (served, status)
}

struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

fn test_ca() -> TestCa {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "test serving CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("ca");
    TestCa {
        der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

/// Writes `dir/tls.crt` and `dir/tls.key` for localhost, signed by `ca`; returns the leaf.
fn write_serving_pair(ca: &TestCa, dir: &Path) -> CertificateDer<'static> {
    std::fs::create_dir_all(dir).expect("dir");
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("params");
    let cert = params.signed_by(&key, &ca.issuer).expect("leaf");
    std::fs::write(dir.join("tls.crt"), cert.pem()).expect("cert");
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("key");
    cert.der().clone()
}

#[tokio::test]
async fn serving_certificate_rotates_by_symlink_swap_without_dropping_requests_in_flight() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = test_ca();
    // the layout of a Secret volume: files behind a `..data` symlink that is swapped whole
    let first = write_serving_pair(&ca, &dir.path().join("..2026_01"));
    std::os::unix::fs::symlink("..2026_01", dir.path().join("..data")).expect("symlink");
    std::os::unix::fs::symlink("..data/tls.crt", dir.path().join("tls.crt")).expect("symlink");
    std::os::unix::fs::symlink("..data/tls.key", dir.path().join("tls.key")).expect("symlink");
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let (adapter, kubeconfig) = start_standalone(
        dir.path(),
        &[
            "--tls-cert-file",
            cert.to_str().expect("utf-8"),
            "--tls-private-key-file",
            key.to_str().expect("utf-8"),
            "--tls-reload-interval",
            "100ms",
        ],
    );
    let address = crate::util::kubeconfig_server(&kubeconfig)
        .trim_start_matches("https://")
        .to_string();
    let anonymous = client_config(std::slice::from_ref(&ca.der), None);
    let (served, status) = handshake(
        anonymous.clone(),
        &address,
        "/apis/custom.metrics.k8s.io/v1beta2",
    )
    .await;
    assert_eq!(served, first);
    assert!(
        status.contains(" 403 "),
        "no client certificate: anonymous: {status}"
    );
    let (_, status) = handshake(anonymous.clone(), &address, "/healthz").await;
    assert!(status.contains(" 200 "), "health is open: {status}");
    // kubectl, with the kubeconfig's client certificate and the file's CA, gets in
    kubectl_json(&kubeconfig, "/apis/custom.metrics.k8s.io/v1beta2");

    // a request in flight across the rotation: its connection is up and half its head is sent
    let in_flight = {
        use tokio::io::AsyncWriteExt;
        let tcp = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        let connector = tokio_rustls::TlsConnector::from(anonymous.clone());
        let mut tls = connector
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("handshake");
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .expect("write");
        tls
    };

    let second = write_serving_pair(&ca, &dir.path().join("..2026_02"));
    std::os::unix::fs::symlink("..2026_02", dir.path().join("..data_tmp")).expect("symlink");
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).expect("swap");
    let mut now_served = served;
    for _ in 0..200 {
        now_served = handshake(anonymous.clone(), &address, "/healthz").await.0;
        if now_served == second {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        now_served,
        second,
        "rotated certificate served; log:\n{}",
        adapter.log()
    );
    assert!(adapter.log().contains("serving certificate reloaded"));

    // the request in flight completes on its old connection
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = in_flight;
        tls.write_all(b"Connection: close\r\n\r\n")
            .await
            .expect("finish the head");
        let mut response = Vec::new();
        tls.read_to_end(&mut response).await.expect("read");
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("ok"), "{response}");
    }
}
