//! HTTPS for the adapter: the serving identity, client-certificate verification, hot reload, and
//! the acceptor that hands each connection's verified peer certificates to the handlers.
//!
//! - [`ServingIdentity::load`] reads `--tls-cert-file` / `--tls-private-key-file`;
//!   [`LocalAuthority`] makes a CA and certificates signed by it when no files are given (and, in
//!   standalone mode, the client certificate written into the kubeconfig).
//! - [`server_config`] builds a rustls config offering h2 and HTTP/1.1. Client certificates are
//!   requested, never required: a certificate that does not chain to the trusted roots fails the
//!   handshake, no certificate at all is left to the access check.
//! - [`ServerTls`] holds the live config and rebuilds it when the serving certificate or the
//!   trusted client CAs change; [`CertificateReloader`] re-reads the files every interval and
//!   hands changes to it (Secret volumes change by symlink swap, which file watchers miss). New
//!   connections get the new configuration; established ones finish on the old.
//!
//! The connections themselves — handshake deadline, caps, the verified peer certificates handed
//! to the handlers — are [`crate::serve`]'s.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::adapter::telemetry::Telemetry;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no PEM private key found (PKCS#8, PKCS#1 or SEC1)")]
    NoPrivateKey { path: PathBuf },
    #[error("building the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("trusted client CA: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct ServingIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ServingIdentity {
    fn clone(&self) -> Self {
        ServingIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl ServingIdentity {
    /// Reads a PEM chain and key (blocking file I/O).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<ServingIdentity, Error> {
        let cert_pem = std::fs::read(cert_path).map_err(|source| Error::Read {
            path: cert_path.into(),
            source,
        })?;
        let key_pem = std::fs::read(key_path).map_err(|source| Error::Read {
            path: key_path.into(),
            source,
        })?;
        ServingIdentity::from_pem(&cert_pem, cert_path, &key_pem, key_path)
    }

    fn from_pem(
        cert_pem: &[u8],
        cert_path: &Path,
        key_pem: &[u8],
        key_path: &Path,
    ) -> Result<ServingIdentity, Error> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .filter_map(Result::ok)
            .collect();
        if chain.is_empty() {
            return Err(Error::NoCertificate {
                path: cert_path.into(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| Error::NoPrivateKey {
            path: key_path.into(),
        })?;
        Ok(ServingIdentity { chain, key })
    }
}

/// A certificate authority made at start-up, for serving and client certificates when no files
/// are given.
pub(crate) struct LocalAuthority {
    issuer: Issuer<'static, KeyPair>,
    certificate: CertificateDer<'static>,
    certificate_pem: String,
}

/// A certificate with its key, in PEM.
pub(crate) struct IssuedPem {
    pub certificate: String,
    pub key: String,
}

fn distinguished_name(common_name: &str, organizations: &[&str]) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    for organization in organizations {
        name.push(DnType::OrganizationName, *organization);
    }
    name
}

impl LocalAuthority {
    pub fn new(common_name: &str) -> Result<LocalAuthority, Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = distinguished_name(common_name, &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let certificate = params.self_signed(&key)?;
        Ok(LocalAuthority {
            certificate_pem: certificate.pem(),
            certificate: certificate.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    pub(crate) fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    pub fn certificate(&self) -> CertificateDer<'static> {
        self.certificate.clone()
    }

    fn issue(
        &self,
        subject_alt_names: Vec<String>,
        common_name: &str,
        organizations: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<(rcgen::Certificate, KeyPair), Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(subject_alt_names)?;
        params.distinguished_name = distinguished_name(common_name, organizations);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        let certificate = params.signed_by(&key, &self.issuer)?;
        Ok((certificate, key))
    }

    /// A serving certificate for the given DNS names and IP addresses.
    pub(crate) fn serving_identity(&self, names: &[String]) -> Result<ServingIdentity, Error> {
        let common_name = names.first().map_or("kubemind", String::as_str);
        let (certificate, key) = self.issue(
            names.to_vec(),
            common_name,
            &[],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        Ok(ServingIdentity {
            chain: vec![certificate.der().clone(), self.certificate()],
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        })
    }

    /// A client certificate: user = `common_name`, groups = `organizations`.
    pub(crate) fn client_certificate(
        &self,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<IssuedPem, Error> {
        let (certificate, key) = self.issue(
            Vec::new(),
            common_name,
            organizations,
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        Ok(IssuedPem {
            certificate: certificate.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// The rustls server configuration: h2 and HTTP/1.1; client certificates from `client_roots`
/// requested and verified when presented.
pub(crate) fn server_config(
    identity: ServingIdentity,
    client_roots: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let builder = rustls::ServerConfig::builder();
    let mut config = if client_roots.is_empty() {
        builder
            .with_no_client_auth()
            .with_single_cert(identity.chain, identity.key)?
    } else {
        let mut roots = RootCertStore::empty();
        for root in client_roots {
            roots.add(root.clone())?;
        }
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
            .allow_unauthenticated()
            .build()?;
        builder
            .with_client_cert_verifier(verifier)
            .with_single_cert(identity.chain, identity.key)?
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The live TLS configuration: the serving identity and the trusted client CAs, rebuilt into a
/// new rustls config (swapped atomically) whenever either changes.
pub(crate) struct ServerTls {
    config: RustlsConfig,
    parts: std::sync::Mutex<(ServingIdentity, Vec<CertificateDer<'static>>)>,
}

impl ServerTls {
    pub fn new(
        identity: ServingIdentity,
        client_roots: Vec<CertificateDer<'static>>,
    ) -> Result<ServerTls, Error> {
        let config = RustlsConfig::from_config(server_config(identity.clone(), &client_roots)?);
        Ok(ServerTls {
            config,
            parts: std::sync::Mutex::new((identity, client_roots)),
        })
    }

    /// The config the listener serves with (follows every rebuild).
    pub(crate) fn rustls_config(&self) -> RustlsConfig {
        self.config.clone()
    }

    /// Serves `identity` to new connections.
    pub(crate) fn set_identity(&self, identity: ServingIdentity) -> Result<(), Error> {
        self.rebuild(|parts| parts.0 = identity)
    }

    /// Trusts exactly `roots` for client certificates on new connections.
    pub(crate) fn set_client_roots(
        &self,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<(), Error> {
        self.rebuild(|parts| parts.1 = roots)
    }

    fn rebuild(
        &self,
        change: impl FnOnce(&mut (ServingIdentity, Vec<CertificateDer<'static>>)),
    ) -> Result<(), Error> {
        // A poisoned lock only means another rebuild panicked; its data is still whole.
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (parts.0.clone(), parts.1.clone());
        change(&mut next);
        let config = server_config(next.0.clone(), &next.1)?;
        self.config.reload_from_config(config);
        *parts = next;
        Ok(())
    }
}

/// Watches the serving certificate files and hands changes to [`ServerTls`].
pub(crate) struct CertificateReloader {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub tls: Arc<ServerTls>,
    pub interval: Duration,
    pub telemetry: Arc<Telemetry>,
}

impl CertificateReloader {
    /// Runs until the task is dropped. A file that fails to parse is logged and counted; the
    /// last good certificate stays in use.
    pub async fn run(self) {
        let mut last = read_pair(&self.cert_path, &self.key_path).await.ok();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let current = match read_pair(&self.cert_path, &self.key_path).await {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "serving certificate unreadable; keeping the current one");
                    continue;
                }
            };
            if last.as_ref() == Some(&current) {
                continue;
            }
            let identity =
                ServingIdentity::from_pem(&current.0, &self.cert_path, &current.1, &self.key_path);
            match identity.and_then(|identity| self.tls.set_identity(identity)) {
                Ok(()) => {
                    self.telemetry.count_tls_reload(true);
                    tracing::info!(cert = %self.cert_path.display(), "serving certificate reloaded");
                }
                Err(error) => {
                    self.telemetry.count_tls_reload(false);
                    tracing::error!(%error, "new serving certificate refused; keeping the current one");
                }
            }
            last = Some(current);
        }
    }
}

async fn read_pair(cert: &Path, key: &Path) -> io::Result<(Vec<u8>, Vec<u8>)> {
    Ok((tokio::fs::read(cert).await?, tokio::fs::read(key).await?))
}
