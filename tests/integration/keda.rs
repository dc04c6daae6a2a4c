//! A client playing KEDA (tonic over HTTP/2 and TLS, the external-scaler protocol) against
//! the real adapter binary in standalone mode: the metric spec, the value summed over the
//! selected pods, activity turning false after the activation window once requests stop, the
//! push stream following it, a stale value an error rather than 0, and no pod at all (scaled to
//! zero) 0 and inactive.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::codegen::http::uri::PathAndQuery;

use kubemind::adapter::keda::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, ScaledObjectRef,
};

use crate::fixtures::start_standalone_adapter;
use crate::util::{listening_address, wait_for_async};

fn values(pending: u32, rate: u32) -> String {
    format!(
        "pods:\n\
         \x20 - {{namespace: demo, name: triton-0, labels: {{app: triton}}, metrics: {{triton_pending_requests: {pending}, inference_request_rate: {rate}}}}}\n\
         \x20 - {{namespace: demo, name: triton-1, labels: {{app: triton}}, metrics: {{triton_pending_requests: {pending}, inference_request_rate: 0}}}}\n\
         \x20 - {{namespace: demo, name: old-0, labels: {{app: old}}, metrics: {{triton_pending_requests: {{value: 9, age: 10m}}}}}}\n"
    )
}

/// A gRPC client over one HTTP/2 connection with the kubeconfig's CA.
struct Keda {
    grpc: tonic::client::Grpc<
        tower::util::BoxCloneService<
            http::Request<tonic::body::Body>,
            http::Response<hyper::body::Incoming>,
            hyper::Error,
        >,
    >,
}

impl Keda {
    async fn connect(address: SocketAddr, kubeconfig: &std::path::Path) -> Keda {
        let credentials = kubemind::adapter::kubeconfig::read(kubeconfig).expect("kubeconfig");
        let config = credentials.tls_client_config(&[b"h2"]).expect("TLS");
        let tcp = TcpStream::connect(address).await.expect("connect");
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("handshake");
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake::<_, tonic::body::Body>(TokioIo::new(tls))
            .await
            .expect("h2");
        tokio::spawn(connection);
        let service = tower::service_fn(move |request: http::Request<tonic::body::Body>| {
            let mut sender = sender.clone();
            async move { sender.send_request(request).await }
        });
        Keda {
            grpc: tonic::client::Grpc::with_origin(
                tower::util::BoxCloneService::new(service),
                format!("https://localhost:{}", address.port())
                    .parse()
                    .expect("origin"),
            ),
        }
    }

    /// `StreamIsActive` for the `app=…` trigger, open.
    async fn stream_is_active(&mut self, selector: &str) -> tonic::Streaming<IsActiveResponse> {
        self.grpc.ready().await.expect("ready");
        self.grpc
            .server_streaming(
                tonic::Request::new(trigger(selector)),
                PathAndQuery::from_static("/externalscaler.ExternalScaler/StreamIsActive"),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .expect("a stream")
            .into_inner()
    }

    async fn unary<Q, R>(&mut self, method: &'static str, message: Q) -> Result<R, tonic::Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc.ready().await.expect("ready");
        self.grpc
            .unary(
                tonic::Request::new(message),
                PathAndQuery::from_static(method),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .map(tonic::Response::into_inner)
    }
}

fn trigger(selector: &str) -> ScaledObjectRef {
    let metadata: HashMap<String, String> = [
        ("metricName", "triton_pending_requests"),
        ("labelSelector", selector),
        ("targetValue", "4"),
        ("activationWindow", "2s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    ScaledObjectRef {
        name: "triton".into(),
        namespace: "demo".into(),
        scaler_metadata: metadata,
    }
}

async fn value(keda: &mut Keda, selector: &str) -> Result<f64, tonic::Status> {
    let answer: GetMetricsResponse = keda
        .unary(
            "/externalscaler.ExternalScaler/GetMetrics",
            GetMetricsRequest {
                scaled_object_ref: Some(trigger(selector)),
                metric_name: "triton_pending_requests".into(),
            },
        )
        .await?;
    Ok(answer.metric_values[0].metric_value_float)
}

/// The value of `series` on the adapter's own `/metrics`, fetched with the kubeconfig's
/// certificate.
async fn adapter_series(kubeconfig: &std::path::Path, series: &str) -> f64 {
    let credentials = kubemind::adapter::kubeconfig::read(kubeconfig).expect("kubeconfig");
    let client = reqwest::Client::builder()
        .tls_backend_rustls()
        .add_root_certificate(
            reqwest::Certificate::from_pem(credentials.ca_pem.as_bytes()).expect("CA"),
        )
        .identity(crate::util::client_identity(&credentials))
        .build()
        .expect("client");
    let server = credentials.server.replace("127.0.0.1", "localhost");
    let page = client
        .get(format!("{server}/metrics"))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text");
    crate::util::series_value(&page, series)
}

async fn active(keda: &mut Keda, selector: &str) -> Result<bool, tonic::Status> {
    let answer: IsActiveResponse = keda
        .unary("/externalscaler.ExternalScaler/IsActive", trigger(selector))
        .await?;
    Ok(answer.result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_scales_to_zero_on_kubeminds_signals() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let (adapter, kubeconfig) = start_standalone_adapter(
        dir.path(),
        &values(3, 5),
        &["--keda-port", "0", "--static-refresh", "100ms"],
    );
    let address: SocketAddr = listening_address(&adapter, "serving KEDA's external scaler")
        .parse()
        .expect("address");
    let mut keda = Keda::connect(address, &kubeconfig).await;

    let spec: GetMetricSpecResponse = keda
        .unary(
            "/externalscaler.ExternalScaler/GetMetricSpec",
            trigger("app=triton"),
        )
        .await
        .expect("a spec");
    assert_eq!(spec.metric_specs.len(), 1);
    assert_eq!(spec.metric_specs[0].metric_name, "triton_pending_requests");
    assert_eq!(spec.metric_specs[0].target_size_float, 4.0);

    // 3 pending on each of the two pods: 6, and active
    assert_eq!(value(&mut keda, "app=triton").await.expect("a value"), 6.0);
    assert!(active(&mut keda, "app=triton").await.expect("activity"));

    // the push stream starts with the activity now
    let mut stream = keda.stream_is_active("app=triton").await;
    let first = stream.message().await.expect("a message").expect("one");
    assert!(first.result);
    // KEDA's connection is the adapter's too: counted, and under the same caps
    let open = adapter_series(&kubeconfig, "kubemind_adapter_connections_open").await;
    assert!(open >= 2.0, "KEDA's and this one, {open} counted");

    // requests stop: the value is 0 at once, activity ends after the 2 s window, pushed too
    std::fs::write(dir.path().join("values.yaml"), values(0, 0)).expect("values");
    wait_for_async(
        Duration::from_secs(30),
        "the value to fall to 0",
        || async {
            let mut keda = Keda::connect(address, &kubeconfig).await;
            (value(&mut keda, "app=triton").await.ok()? == 0.0).then_some(())
        },
    )
    .await;
    let pushed = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("pushed within 30 s")
        .expect("a message")
        .expect("one");
    assert!(!pushed.result, "inactive after the window");
    assert!(!active(&mut keda, "app=triton").await.expect("activity"));

    // a stale value is an error, never 0
    let stale = value(&mut keda, "app=old").await.expect_err("stale");
    assert_eq!(stale.code(), tonic::Code::Unavailable, "{stale}");
    // no pod at all: scaled to zero, 0 and inactive
    assert_eq!(value(&mut keda, "app=none").await.expect("a value"), 0.0);
    assert!(!active(&mut keda, "app=none").await.expect("activity"));
    // bad metadata is the caller's mistake
    let mut bad = trigger("app=triton");
    bad.scaler_metadata.remove("targetValue");
    let error = keda
        .unary::<_, GetMetricSpecResponse>("/externalscaler.ExternalScaler/GetMetricSpec", bad)
        .await
        .expect_err("invalid");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    // an optional method kubemind does not serve says so, as KEDA expects to fall back
    let missing = keda
        .unary::<_, GetMetricSpecResponse>(
            "/externalscaler.ExternalScaler/StreamMetricSpec",
            trigger("app=triton"),
        )
        .await
        .expect_err("unimplemented");
    assert_eq!(missing.code(), tonic::Code::Unimplemented, "{missing}");
}

/// Regression: the connection counted its request done once the response *headers* were sent,
/// so a push stream looked idle and was closed at `--idle-timeout`, cutting KEDA off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_stream_outlives_the_idle_timeout() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let (adapter, kubeconfig) = start_standalone_adapter(
        dir.path(),
        &values(3, 5),
        &[
            "--keda-port",
            "0",
            "--static-refresh",
            "100ms",
            "--idle-timeout",
            "1s",
        ],
    );
    let address: SocketAddr = listening_address(&adapter, "serving KEDA's external scaler")
        .parse()
        .expect("address");
    let mut keda = Keda::connect(address, &kubeconfig).await;
    let mut stream = keda.stream_is_active("app=triton").await;
    assert!(
        stream
            .message()
            .await
            .expect("a message")
            .expect("one")
            .result
    );

    // well past the idle timeout, its check and the closing grace, with nothing pushed
    tokio::time::sleep(Duration::from_secs(5)).await;
    std::fs::write(dir.path().join("values.yaml"), values(0, 0)).expect("values");
    let pushed = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("pushed within 30 s")
        .unwrap_or_else(|status| panic!("the stream was cut: {status}\n{}", adapter.log()))
        .expect("one");
    assert!(!pushed.result, "inactive after the window");
}
