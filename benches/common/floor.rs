//! The floor: a minimal rustls HTTPS server that answers each known path with a prebuilt body,
//! so a bench can state the adapter's serving figures as ratios to what sending the same
//! answers costs at the least on the same machine, in the same run. It speaks HTTP/1.1 and
//! HTTP/2 (as the adapter does), verifies a client certificate when given a client CA (as the
//! adapter does), and runs as a process of its own: the bench starts itself again with
//! [`FLOOR`] set, and `main` calls [`serve_if_asked`] first.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::common::Server;

/// Set (to the folder of its files) when this binary runs as the floor server.
const FLOOR: &str = "KUBEMIND_BENCH_FLOOR";

/// A running floor server.
pub struct Floor {
    /// The server process, killed when this is dropped.
    process: Server,
    /// `host:port` on 127.0.0.1.
    pub address: String,
    /// Its self-signed certificate for `localhost`, to trust.
    pub certificate_pem: String,
}

/// Starts the floor as a separate process answering each of `routes` (a request's path and
/// query) with its body, and anything else with a 404; client certificates are required and
/// checked against `client_ca_pem` when it is given.
pub fn start(dir: &Path, routes: &[(&str, Bytes)], client_ca_pem: Option<&str>) -> Floor {
    let folder = dir.join("floor");
    std::fs::create_dir_all(&folder).expect("floor folder");
    let paths: Vec<&str> = routes.iter().map(|(path, _)| *path).collect();
    std::fs::write(folder.join("paths"), paths.join("\n")).expect("paths");
    for (i, (_, body)) in routes.iter().enumerate() {
        std::fs::write(folder.join(format!("body-{i}")), body).expect("body");
    }
    if let Some(pem) = client_ca_pem {
        std::fs::write(folder.join("client-ca.pem"), pem).expect("client CA");
    }
    let child = Command::new(std::env::current_exe().expect("this bench"))
        .env(FLOOR, &folder)
        .stdout(Stdio::null())
        .spawn()
        .expect("floor server starts");
    let process = Server(child);
    let start = Instant::now();
    let address_file = folder.join("address");
    while !address_file.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "floor server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    Floor {
        process,
        address: std::fs::read_to_string(&address_file).expect("address"),
        certificate_pem: std::fs::read_to_string(folder.join("floor.pem"))
            .expect("floor certificate"),
    }
}

impl Floor {
    /// How to reach the floor as the kubeconfig's user: its address, its certificate trusted,
    /// the kubeconfig's client certificate presented, over HTTP/1.1.
    pub fn credentials(
        &self,
        kubeconfig: &kubemind::adapter::kubeconfig::Credentials,
    ) -> crate::common::Credentials {
        let trusting_floor = kubemind::adapter::kubeconfig::Credentials {
            ca_pem: self.certificate_pem.clone(),
            ..kubeconfig.clone()
        };
        crate::common::Credentials {
            address: self.address.clone(),
            client: Arc::new(
                trusting_floor
                    .tls_client_config(&[b"http/1.1"])
                    .expect("client config"),
            ),
        }
    }

    /// The server's resident set, MiB.
    pub fn rss_mib(&self) -> f64 {
        kubemind::sim::process::status_kib(self.process.0.id(), "VmRSS:") as f64 / 1024.0
    }
}

/// Serves as the floor and returns true when this process was started as one by [`start`]
/// (it serves until killed); false otherwise.
pub fn serve_if_asked() -> bool {
    let Some(folder) = std::env::var_os(FLOOR) else {
        return false;
    };
    serve(&PathBuf::from(folder));
    true
}

fn serve(folder: &Path) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let paths = std::fs::read_to_string(folder.join("paths")).expect("paths");
    let routes: Arc<Vec<(String, Bytes)>> = Arc::new(
        paths
            .lines()
            .enumerate()
            .map(|(i, path)| {
                let body = std::fs::read(folder.join(format!("body-{i}"))).expect("body");
                (path.to_string(), Bytes::from(body))
            })
            .collect(),
    );
    let issued =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let key =
        PrivateKeyDer::from_pem_slice(issued.signing_key.serialize_pem().as_bytes()).expect("key");
    let builder = rustls::ServerConfig::builder();
    let builder = match std::fs::read(folder.join("client-ca.pem")) {
        Ok(client_ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in CertificateDer::pem_slice_iter(&client_ca).filter_map(Result::ok) {
                roots.add(certificate).expect("a CA certificate");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
        Err(_) => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(vec![issued.cert.der().clone()], key)
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        std::fs::write(folder.join("floor.pem"), issued.cert.pem()).expect("certificate file");
        // written last: its presence says the server is ready
        std::fs::write(
            folder.join("address"),
            listener.local_addr().expect("address").to_string(),
        )
        .expect("address file");
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, routes) = (acceptor.clone(), routes.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                    let wanted = request.uri().path_and_query().map(|p| p.as_str());
                    let body = routes
                        .iter()
                        .find(|(path, _)| Some(path.as_str()) == wanted)
                        .map(|(_, body)| body.clone());
                    async move {
                        let status = if body.is_some() { 200 } else { 404 };
                        hyper::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(http_body_util::Full::new(body.unwrap_or_default()))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
}
