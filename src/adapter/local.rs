//! The adapter served on 127.0.0.1 for a person at this machine (`kubemind demo`): HTTPS with a
//! certificate from a fresh local CA, only that CA's client certificates trusted, the same
//! connection limits as the adapter, and a kubeconfig written for kubectl with one of them (in
//! `system:masters`) — the kubeconfig standalone mode writes too ([`write_kubeconfig`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::api::{self, Access, ApiState};
use super::auth::Auth;
use super::auth::trust::{Trust, TrustSources};
use super::kubeconfig;
use super::store::Readiness;
use super::store::Store;
use super::telemetry::Telemetry;
use super::tls::{LocalAuthority, ServerTls};

/// A running local server.
pub struct LocalServer {
    pub url: String,
    server: crate::serve::Running,
}

impl LocalServer {
    pub async fn stop(self) {
        self.server.shutdown(Duration::from_secs(1)).await;
    }
}

/// Serves `store` on an ephemeral port of 127.0.0.1 and writes the kubeconfig to `kubeconfig_path`.
pub async fn serve(store: Arc<Store>, kubeconfig_path: &Path) -> anyhow::Result<LocalServer> {
    let authority = LocalAuthority::new("kubemind local CA").context("creating the local CA")?;
    let trust = Trust::build(&TrustSources::default(), &[authority.certificate()])?;
    let identity = authority.serving_identity(&["localhost".into(), "127.0.0.1".into()])?;
    let tls = Arc::new(ServerTls::new(identity, trust.roots.clone())?);
    let auth = Arc::new(Auth::new(trust, None));
    let telemetry = Arc::new(Telemetry::new());
    let connections = telemetry.connections();
    let app = api::router(ApiState {
        store,
        telemetry,
        readiness: Readiness::default(),
        access: Access::Checked(auth),
        external: None,
    });
    let server = crate::serve::spawn(
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0),
        Some(tls.rustls_config()),
        app,
        crate::serve::Admission::new(super::settings::CONNECTION_LIMITS, connections),
    )
    .await
    .context("the local server could not listen")?;
    let bound = server.local_addr;
    let url = format!("https://127.0.0.1:{}", bound.port());
    write_kubeconfig(
        kubeconfig_path,
        &url,
        authority.certificate_pem().to_string(),
        &authority,
        "kubemind-demo-user",
    )?;
    Ok(LocalServer { url, server })
}

/// Writes a kubeconfig for `server` (whose CA is `ca_pem`) with a client certificate from
/// `authority` for `user` in `system:masters`: the one credential the local server trusts.
pub(crate) fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: String,
    authority: &LocalAuthority,
    user: &str,
) -> anyhow::Result<()> {
    let client = authority.client_certificate(user, &["system:masters"])?;
    kubeconfig::write(
        path,
        &kubeconfig::Credentials {
            server: server.to_string(),
            ca_pem,
            client_certificate_pem: client.certificate,
            client_key_pem: client.key,
        },
    )
    .with_context(|| format!("writing the kubeconfig {}", path.display()))
}
