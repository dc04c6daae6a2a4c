//! Follows `kube-system/extension-apiserver-authentication`, where kube-apiserver publishes its
//! client CA, front-proxy CA, allowed names and header names, and puts every change in force:
//! the TLS layer trusts the new CAs for new connections, and [`Auth`] attributes and reads
//! certificates by the new settings. Flags set on the command line keep precedence.
//!
//! A watch (kube's watcher, with backoff) rather than a poll, so a CA rotation takes effect
//! within seconds. A ConfigMap that does not parse is logged and the trust in force is kept.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use rustls::pki_types::CertificateDer;

use super::Auth;
use super::trust::{Trust, TrustSources};
use crate::adapter::tls::ServerTls;

pub(crate) const NAMESPACE: &str = "kube-system";
pub const NAME: &str = "extension-apiserver-authentication";

/// What a change needs to be put in force.
pub(crate) struct TrustWatch {
    pub client: kube::Client,
    /// Values from flags, which win over the ConfigMap.
    pub flags: TrustSources,
    /// Client CAs trusted whatever the ConfigMap says (standalone's own CA).
    pub local_client_roots: Vec<CertificateDer<'static>>,
    pub auth: Arc<Auth>,
    pub tls: Arc<ServerTls>,
}

impl TrustWatch {
    /// Runs until the task is dropped.
    pub async fn run(self) {
        let api = Api::<ConfigMap>::namespaced(self.client.clone(), NAMESPACE);
        let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
        let mut changes = watcher(api, config)
            .default_backoff()
            .applied_objects()
            .boxed();
        let mut last_applied = None;
        while let Some(change) = changes.next().await {
            match change {
                Ok(configmap) => {
                    let data = configmap.data.unwrap_or_default();
                    if last_applied.as_ref() == Some(&data) {
                        continue;
                    }
                    match self.apply(&data) {
                        Ok(()) => {
                            tracing::info!("{NAMESPACE}/{NAME}: trust updated");
                            last_applied = Some(data);
                        }
                        Err(error) => {
                            tracing::error!(%error, "{NAMESPACE}/{NAME} refused; keeping the trust in force");
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "watching {NAMESPACE}/{NAME}; retrying");
                }
            }
        }
    }

    fn apply(&self, data: &std::collections::BTreeMap<String, String>) -> Result<(), ApplyError> {
        let sources = TrustSources::from_configmap(data)?.overridden_by(&self.flags);
        let trust = Trust::build(&sources, &self.local_client_roots)?;
        self.tls.set_client_roots(trust.roots.clone())?;
        self.auth.set_trust(trust);
        Ok(())
    }
}

/// Why a ConfigMap's trust was not put in force.
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error("{0}")]
    Trust(#[from] super::trust::Error),
    #[error("{0}")]
    Tls(#[from] crate::adapter::tls::Error),
}
