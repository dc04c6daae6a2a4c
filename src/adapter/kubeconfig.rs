//! The kubeconfig of standalone mode: the adapter's address, the CA that signed its serving
//! certificate, and a client certificate the adapter trusts, so that
//! `kubectl --kubeconfig FILE get --raw …` works at once. [`write`] makes it; [`read`] gives
//! the same [`Credentials`] back to other clients (tests, `make bench`).
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

/// What the kubeconfig holds, all PEM but the server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub server: String,
    pub ca_pem: String,
    pub client_certificate_pem: String,
    pub client_key_pem: String,
}

/// Why a kubeconfig could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("kubeconfig {path}: {problem}")]
pub struct ReadError {
    pub path: std::path::PathBuf,
    pub problem: String,
}

impl Credentials {
    /// A TLS client configuration that trusts the CA and presents the client certificate,
    /// offering `alpn` (needs a rustls crypto provider installed).
    pub fn tls_client_config(&self, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, rustls::Error> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for certificate in
            CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()).filter_map(Result::ok)
        {
            roots.add(certificate)?;
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.client_certificate_pem.as_bytes())
                .filter_map(Result::ok)
                .collect();
        let key = PrivateKeyDer::from_pem_slice(self.client_key_pem.as_bytes())
            .map_err(|e| rustls::Error::General(format!("client key: {e}")))?;
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

/// Reads back a kubeconfig [`write`] made (its first cluster and user).
pub fn read(path: &Path) -> Result<Credentials, ReadError> {
    let fail = |problem: String| ReadError {
        path: path.into(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let config = Kubeconfig::from_yaml(&text).map_err(|e| fail(e.to_string()))?;
    let cluster = config
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| fail("no cluster".into()))?;
    let user = config
        .auth_infos
        .first()
        .and_then(|u| u.auth_info.as_ref())
        .ok_or_else(|| fail("no user".into()))?;
    let decode = |what: &str, b64: Option<&str>| {
        let bytes = STANDARD
            .decode(b64.ok_or_else(|| fail(format!("no {what}")))?)
            .map_err(|e| fail(format!("{what}: {e}")))?;
        String::from_utf8(bytes).map_err(|e| fail(format!("{what}: {e}")))
    };
    let key = {
        use secrecy::ExposeSecret;
        user.client_key_data
            .as_ref()
            .map(|k| k.expose_secret().to_string())
    };
    Ok(Credentials {
        server: cluster
            .server
            .clone()
            .ok_or_else(|| fail("no server".into()))?,
        ca_pem: decode(
            "certificate-authority-data",
            cluster.certificate_authority_data.as_deref(),
        )?,
        client_certificate_pem: decode(
            "client-certificate-data",
            user.client_certificate_data.as_deref(),
        )?,
        client_key_pem: decode("client-key-data", key.as_deref())?,
    })
}

const NAME: &str = "kubemind-standalone";

pub fn render(contents: &Credentials) -> Result<String, serde_norway::Error> {
    let config = Kubeconfig {
        clusters: vec![NamedCluster {
            name: NAME.into(),
            cluster: Some(Cluster {
                server: Some(contents.server.clone()),
                certificate_authority_data: Some(STANDARD.encode(&contents.ca_pem)),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: NAME.into(),
            auth_info: Some(AuthInfo {
                client_certificate_data: Some(STANDARD.encode(&contents.client_certificate_pem)),
                client_key_data: Some(STANDARD.encode(&contents.client_key_pem).into()),
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
pub fn write(path: &Path, contents: &Credentials) -> std::io::Result<()> {
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

    fn credentials() -> Credentials {
        Credentials {
            server: "https://127.0.0.1:6443".into(),
            ca_pem: "CA".into(),
            client_certificate_pem: "CERT".into(),
            client_key_pem: "KEY".into(),
        }
    }

    #[test]
    fn we_read_back_what_we_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kubeconfig");
        write(&path, &credentials()).expect("writes");
        assert_eq!(read(&path).expect("reads"), credentials());
        let error = read(&dir.path().join("missing")).expect_err("no file");
        assert!(error.to_string().contains("missing"), "{error}");
    }

    #[test]
    fn kube_reads_back_what_we_write() {
        let text = render(&credentials()).expect("renders");
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
