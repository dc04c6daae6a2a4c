//! Writes the kubeconfig of standalone mode: the adapter's address, the CA that signed its serving
//! certificate, and a client certificate the adapter trusts, so that
//! `kubectl --kubeconfig FILE get --raw …` works at once.
//!
//! The file holds a private key: it is written with mode 0600, through a temporary file and a
//! rename so a reader never sees half of it.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

/// What goes into the kubeconfig.
pub struct KubeconfigContents<'a> {
    pub server: String,
    pub ca_pem: &'a str,
    pub client_certificate_pem: &'a str,
    pub client_key_pem: &'a str,
}

const NAME: &str = "kubemind-standalone";

pub fn render(contents: &KubeconfigContents<'_>) -> Result<String, serde_norway::Error> {
    let config = Kubeconfig {
        clusters: vec![NamedCluster {
            name: NAME.into(),
            cluster: Some(Cluster {
                server: Some(contents.server.clone()),
                certificate_authority_data: Some(STANDARD.encode(contents.ca_pem)),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: NAME.into(),
            auth_info: Some(AuthInfo {
                client_certificate_data: Some(STANDARD.encode(contents.client_certificate_pem)),
                client_key_data: Some(STANDARD.encode(contents.client_key_pem).into()),
                ..AuthInfo::default()
            }),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: NAME.into(),
            context: Some(Context {
                cluster: NAME.into(),
                user: Some(NAME.into()),
                namespace: None,
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(NAME.into()),
        kind: Some("Config".into()),
        api_version: Some("v1".into()),
        ..Kubeconfig::default()
    };
    serde_norway::to_string(&config)
}

/// Writes the kubeconfig to `path` (mode 0600, atomically).
pub fn write(path: &Path, contents: &KubeconfigContents<'_>) -> std::io::Result<()> {
    let text = render(contents).map_err(std::io::Error::other)?;
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(directory)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_reads_back_what_we_write() {
        let text = render(&KubeconfigContents {
            server: "https://127.0.0.1:6443".into(),
            ca_pem: "CA",
            client_certificate_pem: "CERT",
            client_key_pem: "KEY",
        })
        .expect("renders");
        let parsed = Kubeconfig::from_yaml(&text).expect("kube parses it");
        assert_eq!(parsed.current_context.as_deref(), Some(NAME));
        let cluster = parsed.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority_data.as_deref(),
            Some(STANDARD.encode("CA").as_str())
        );
    }
}
