//! `kubemind adapter`: the custom- and external-metrics API server.
//!
//! Startup and shutdown live here. [`Settings::from_args`] turns the raw flags into a resolved
//! configuration (files read, combinations checked) without binding anything, so a bad flag
//! exits 64 before a port opens. [`run`] then builds the store, starts the sources and the
//! certificate reloader, serves HTTPS until SIGTERM or Ctrl-C, and drains under a grace period.
//!
//! - [`api`]: routes and handlers; [`store`]: the snapshot; [`sources`]: what fills it;
//!   [`tls`]: certificates and the acceptor; [`telemetry`]: the adapter's own `/metrics`;
//!   [`kubeconfig`]: the file standalone mode writes for kubectl; [`local`]: the adapter served
//!   on 127.0.0.1 for `kubemind demo`.
//!
//! Two modes: standalone (values from a file, no cluster) and cluster (the Kubernetes caches,
//! and values from the exporters scraped every second and/or rules evaluated against
//! Prometheus; delegated authentication against the same API server).

pub mod api;
pub mod args;
pub mod settings;

pub use settings::{CONNECTION_LIMITS, Settings};
use settings::{Certificates, Mode};
pub mod auth;
pub mod background;
mod cache;
pub mod keda;
pub mod kube;
pub mod kubeconfig;
pub mod local;
mod pods;
pub mod sources;
pub mod store;
pub mod telemetry;
pub mod tls;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::serve;
use api::{Access, ApiState};
use auth::Auth;
use auth::configmap::TrustWatch;
use auth::delegate::Delegate;
use auth::trust::{Trust, TrustSources};
use background::Background;
use kube::Cluster;
use sources::exporters::ExporterSource;
use sources::prometheus;
use sources::prometheus::PrometheusSource;
use sources::prometheus::external::ExternalQueries;
use sources::publisher::Publisher;
use sources::static_file::StaticFileSource;
use store::Readiness;
use store::Store;
use telemetry::Telemetry;
use tls::{CertificateReloader, LocalAuthority, ServerTls};

/// The longest a cluster snapshot goes unpublished: values age out and pods come and go on
/// this beat even when no source has anything new.
const PUBLISH_AT_LEAST_EVERY: Duration = Duration::from_secs(1);

/// How long in-flight requests may take to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the adapter until SIGTERM: security (TLS, trust, authentication), then the sources,
/// then the API server; on the signal, stops the sources and drains the server.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let shutdown =
        crate::process::shutdown_signal().context("registering for SIGTERM and SIGINT")?;
    let telemetry = Arc::new(Telemetry::new());
    let store = Arc::new(Store::new(settings.longest_max_age()));
    let readiness = Readiness::default();
    // In a cluster, one client reads the API server; it is also the delegate unless told otherwise.
    let cluster_client = match &settings.mode {
        Mode::Cluster(cluster) => {
            Some(kube_client(cluster.kubeconfig.clone(), "--kubeconfig").await?)
        }
        Mode::Standalone(_) => None,
    };
    let Settings {
        listen,
        certificates,
        max_age,
        mode,
        trust_flags,
        delegate,
        limits,
        anonymous,
        keda_listen,
        background,
    } = settings;
    let security = start_security(
        SecurityInputs {
            standalone: matches!(mode, Mode::Standalone(_)),
            certificates,
            trust_flags,
            delegate,
            anonymous,
        },
        cluster_client.clone(),
        &telemetry,
    )
    .await?;
    let background = Background::start(background).context("starting the background thread")?;
    let sources = start_sources(
        mode,
        &background,
        max_age,
        cluster_client,
        &store,
        &readiness,
        &telemetry,
    )?;
    // one admission for both listeners: the caps and the open-file budget are the process's
    let admission = serve::Admission::new(limits, telemetry.connections());
    let keda = match keda_listen {
        Some(address) => {
            let scaler = Arc::new(keda::Scaler::new(store.clone()));
            let server = serve::spawn(
                address,
                Some(security.tls.rustls_config()),
                keda::router(scaler),
                admission.clone(),
            )
            .await
            .with_context(|| format!("binding --keda-port {address}"))?;
            tracing::info!(address = %server.local_addr, "serving KEDA's external scaler");
            Some(server)
        }
        None => None,
    };
    let app = api::router(ApiState {
        store,
        telemetry,
        readiness,
        access: Access::Checked(security.auth.clone()),
        external: sources.external,
    });
    let server = serve::spawn(listen, Some(security.tls.rustls_config()), app, admission)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(address = %server.local_addr, "serving the custom and external metrics APIs");
    if let Some(path) = &sources.kubeconfig_out {
        write_standalone_kubeconfig(path, server.local_addr, &security)?;
    }

    shutdown.await;
    tracing::info!("shutting down; draining in-flight requests");
    for task in security.tasks.iter().chain(&sources.tasks) {
        task.abort();
    }
    if let Some(keda) = keda {
        keda.shutdown(SHUTDOWN_GRACE).await;
    }
    server.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}

/// What [`start_security`] reads of the settings.
struct SecurityInputs {
    standalone: bool,
    certificates: Certificates,
    trust_flags: TrustSources,
    delegate: Option<::kube::config::Kubeconfig>,
    anonymous: bool,
}

/// TLS, trust and authentication, and the tasks that keep them current.
struct Security {
    tls: Arc<ServerTls>,
    auth: Arc<Auth>,
    /// Signs a generated serving certificate, and the standalone kubeconfig's client one.
    authority: LocalAuthority,
    /// The CA a client verifies the serving certificate with.
    server_ca_pem: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The serving identity (files, or made by a local CA), the trusted client CAs, the delegate
/// for tokens and access reviews; the tasks that reload certificates and follow the
/// authentication ConfigMap.
async fn start_security(
    inputs: SecurityInputs,
    cluster_client: Option<::kube::Client>,
    telemetry: &Arc<Telemetry>,
) -> anyhow::Result<Security> {
    // A local CA signs the serving certificate when no files are given and, in standalone mode,
    // the kubeconfig's client certificate, which only it is trusted for.
    let authority = LocalAuthority::new("kubemind local CA").context("creating the local CA")?;
    let local_client_roots = if inputs.standalone {
        vec![authority.certificate()]
    } else {
        Vec::new()
    };
    let trust = Trust::build(&inputs.trust_flags, &local_client_roots)?;
    let (identity, server_ca_pem, reloader) = match inputs.certificates {
        Certificates::Files {
            cert,
            key,
            reload_interval,
            initial,
            chain_pem,
        } => (initial, chain_pem, Some((cert, key, reload_interval))),
        Certificates::Generated { names } => (
            authority.serving_identity(&names)?,
            authority.certificate_pem().to_string(),
            None,
        ),
    };
    let tls = Arc::new(ServerTls::new(identity, trust.roots.clone())?);
    let delegate_client = match inputs.delegate {
        Some(kubeconfig) => {
            Some(kube_client(Some(kubeconfig), "--authentication-kubeconfig").await?)
        }
        None => cluster_client,
    };
    let auth = Auth::new(trust, delegate_client.clone().map(Delegate::new));
    let auth = Arc::new(if inputs.anonymous {
        auth
    } else {
        auth.without_anonymous()
    });
    let mut tasks = Vec::new();
    if let Some((cert_path, key_path, interval)) = reloader {
        tasks.push(tokio::spawn(
            CertificateReloader {
                cert_path,
                key_path,
                tls: tls.clone(),
                interval,
                telemetry: telemetry.clone(),
            }
            .run(),
        ));
    }
    if let Some(client) = delegate_client {
        tasks.push(tokio::spawn(
            TrustWatch {
                client,
                flags: inputs.trust_flags,
                local_client_roots,
                auth: auth.clone(),
                tls: tls.clone(),
            }
            .run(),
        ));
    }
    Ok(Security {
        tls,
        auth,
        authority,
        server_ca_pem,
        tasks,
    })
}

/// The running sources.
struct Sources {
    /// External metrics read from Prometheus on demand, when that source is on.
    external: Option<Arc<ExternalQueries>>,
    /// Standalone mode: where to write the kubeconfig once the port is bound.
    kubeconfig_out: Option<PathBuf>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Standalone: the static file. Cluster: the Kubernetes caches, the exporters and Prometheus as
/// configured, and the publisher that joins them into the store.
fn start_sources(
    mode: Mode,
    background: &Background,
    max_age: Duration,
    cluster_client: Option<::kube::Client>,
    store: &Arc<Store>,
    readiness: &Readiness,
    telemetry: &Arc<Telemetry>,
) -> anyhow::Result<Sources> {
    let cluster = match mode {
        Mode::Standalone(standalone) => {
            let task = background.spawn(
                StaticFileSource {
                    path: standalone.static_metrics.clone(),
                    refresh: standalone.refresh,
                    store: store.clone(),
                    telemetry: telemetry.clone(),
                    readiness: readiness.clone(),
                }
                .run(standalone.initial),
            );
            return Ok(Sources {
                external: None,
                kubeconfig_out: standalone.kubeconfig_out,
                tasks: vec![task],
            });
        }
        Mode::Cluster(cluster) => cluster,
    };
    let client = cluster_client.context("cluster mode has a client")?;
    let kube = Cluster::watch(&client);
    let mut tasks = Vec::new();
    let mut sources = Vec::new();
    let mut external = None;
    if let Some(exporters) = cluster.exporters {
        let (values, receiver) = tokio::sync::watch::channel(Default::default());
        sources.push(receiver);
        tasks.push(
            background.spawn(
                ExporterSource {
                    cluster: kube.clone(),
                    selector: exporters.selector,
                    port: exporters.port,
                    interval: exporters.interval,
                    timeout: exporters.timeout,
                    max_age,
                    telemetry: telemetry.clone(),
                    values,
                }
                .run(),
            ),
        );
    }
    if let Some(prometheus) = cluster.prometheus {
        let client = Arc::new(
            prometheus::client::PrometheusClient::new(&prometheus.endpoint, telemetry.clone())
                .context("--prometheus-url")?,
        );
        let queries = Arc::new(ExternalQueries::new(
            client.clone(),
            prometheus.interval,
            prometheus.max_age,
        ));
        external = Some(queries.clone());
        let (values, receiver) = tokio::sync::watch::channel(Default::default());
        sources.push(receiver);
        tasks.push(
            background.spawn(
                PrometheusSource {
                    client,
                    cluster: kube.clone(),
                    rules: prometheus.rules,
                    interval: prometheus.interval,
                    discovery_interval: prometheus.discovery_interval,
                    max_age: prometheus.max_age,
                    external: queries,
                    telemetry: telemetry.clone(),
                    values,
                }
                .run(),
            ),
        );
    }
    tasks.push(
        background.spawn(
            Publisher {
                cluster: kube,
                sources,
                refresh: PUBLISH_AT_LEAST_EVERY,
                store: store.clone(),
                readiness: readiness.clone(),
                telemetry: telemetry.clone(),
            }
            .run(),
        ),
    );
    Ok(Sources {
        external,
        kubeconfig_out: None,
        tasks,
    })
}

/// Standalone mode: a kubeconfig for kubectl, naming the bound address, the serving CA and a
/// client certificate the local CA signed.
fn write_standalone_kubeconfig(
    path: &std::path::Path,
    bound: SocketAddr,
    security: &Security,
) -> anyhow::Result<()> {
    let host = if bound.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        bound.ip()
    };
    let server_url = format!("https://{}", SocketAddr::new(host, bound.port()));
    local::write_kubeconfig(
        path,
        &server_url,
        security.server_ca_pem.clone(),
        &security.authority,
        "kubemind-standalone-user",
    )?;
    tracing::info!(
        kubeconfig = %path.display(),
        "try: kubectl --kubeconfig {} get --raw /apis/custom.metrics.k8s.io/v1beta2",
        path.display()
    );
    Ok(())
}

/// A kube client from a kubeconfig, or inferred (in-cluster, then `$KUBECONFIG`); errors name
/// `flag`.
async fn kube_client(
    kubeconfig: Option<::kube::config::Kubeconfig>,
    flag: &'static str,
) -> anyhow::Result<::kube::Client> {
    crate::process::kube_client(kubeconfig)
        .await
        .map_err(|error| match error {
            crate::process::KubeClientError::Infer(_) => {
                anyhow::anyhow!("{error}; use --standalone without a cluster")
            }
            other => anyhow::Error::new(other).context(flag),
        })
}
