//! Which client certificates and which identity headers are trusted.
//!
//! The values come from `kube-system/extension-apiserver-authentication` (list values are JSON
//! arrays; see `docs/contract.md`, Authentication), and flags override them for clusters that
//! differ. [`Trust`] is the built form: one verifier per CA, so a chain the handshake accepted
//! can be attributed to the front-proxy CA (identity from headers, if its CN is allowed) or to
//! the client CA (identity from the certificate). The union of the CAs goes to the TLS layer.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::HeaderName;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

/// The raw trust settings, before certificates are parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustSources {
    /// PEM CA bundle for client certificates (identity = CN, groups = O).
    pub client_ca_pem: Option<String>,
    /// PEM CA bundle for the aggregator's front-proxy certificate.
    pub requestheader_ca_pem: Option<String>,
    /// CNs a front-proxy certificate may carry; empty allows any from that CA.
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub uid_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_header_prefixes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{key}: not a JSON array of strings: {source}")]
    List {
        key: &'static str,
        source: serde_json::Error,
    },
    #[error("{what}: no PEM certificate found")]
    NoCertificate { what: &'static str },
    #[error("{what}: {source}")]
    Verifier {
        what: &'static str,
        source: rustls::server::VerifierBuilderError,
    },
    #[error("{0:?} is not a valid header name")]
    HeaderName(String),
}

fn json_list(data: &BTreeMap<String, String>, key: &'static str) -> Result<Vec<String>, Error> {
    match data.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|source| Error::List { key, source }),
    }
}

impl TrustSources {
    /// Reads the `extension-apiserver-authentication` ConfigMap's data.
    pub(crate) fn from_configmap(data: &BTreeMap<String, String>) -> Result<TrustSources, Error> {
        Ok(TrustSources {
            client_ca_pem: data.get("client-ca-file").cloned(),
            requestheader_ca_pem: data.get("requestheader-client-ca-file").cloned(),
            allowed_names: json_list(data, "requestheader-allowed-names")?,
            username_headers: json_list(data, "requestheader-username-headers")?,
            uid_headers: json_list(data, "requestheader-uid-headers")?,
            group_headers: json_list(data, "requestheader-group-headers")?,
            extra_header_prefixes: json_list(data, "requestheader-extra-headers-prefix")?,
        })
    }

    /// These settings with every value that `flags` sets taking precedence.
    pub(crate) fn overridden_by(mut self, flags: &TrustSources) -> TrustSources {
        fn take<T: Clone>(mine: &mut T, theirs: &T, set: bool) {
            if set {
                *mine = theirs.clone();
            }
        }
        take(
            &mut self.client_ca_pem,
            &flags.client_ca_pem,
            flags.client_ca_pem.is_some(),
        );
        take(
            &mut self.requestheader_ca_pem,
            &flags.requestheader_ca_pem,
            flags.requestheader_ca_pem.is_some(),
        );
        take(
            &mut self.allowed_names,
            &flags.allowed_names,
            !flags.allowed_names.is_empty(),
        );
        take(
            &mut self.username_headers,
            &flags.username_headers,
            !flags.username_headers.is_empty(),
        );
        take(
            &mut self.uid_headers,
            &flags.uid_headers,
            !flags.uid_headers.is_empty(),
        );
        take(
            &mut self.group_headers,
            &flags.group_headers,
            !flags.group_headers.is_empty(),
        );
        take(
            &mut self.extra_header_prefixes,
            &flags.extra_header_prefixes,
            !flags.extra_header_prefixes.is_empty(),
        );
        self
    }
}

/// Identity headers of the front proxy, lower-cased.
#[derive(Debug, Clone)]
pub struct RequestHeaders {
    pub username: Vec<HeaderName>,
    pub uid: Vec<HeaderName>,
    pub group: Vec<HeaderName>,
    /// Lower-cased prefixes of `X-Remote-Extra-<key>` headers.
    pub extra_prefixes: Vec<String>,
}

impl RequestHeaders {
    /// Every header name this configuration reads, so untrusted copies can be removed.
    pub(crate) fn all_names<'a>(&'a self, headers: &'a axum::http::HeaderMap) -> Vec<HeaderName> {
        let mut names: Vec<HeaderName> = self
            .username
            .iter()
            .chain(&self.uid)
            .chain(&self.group)
            .cloned()
            .collect();
        names.extend(
            headers
                .keys()
                .filter(|name| {
                    self.extra_prefixes
                        .iter()
                        .any(|prefix| name.as_str().starts_with(prefix.as_str()))
                })
                .cloned(),
        );
        names
    }
}

/// The front proxy: its CA, the CNs it may present, and the headers it sets.
#[derive(Debug)]
pub struct FrontProxy {
    verifier: Arc<dyn ClientCertVerifier>,
    pub allowed_names: Vec<String>,
    pub headers: RequestHeaders,
}

/// How long a chain's attribution is reused before it is verified again (expiry is noticed
/// within this time).
const SIGNER_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Trust in force; swapped whole when the ConfigMap or a CA file changes, which also discards
/// the cache of attributed chains.
pub struct Trust {
    pub front_proxy: Option<FrontProxy>,
    client_ca: Option<Arc<dyn ClientCertVerifier>>,
    /// Every CA, for the handshake (which only decides "some trusted CA signed it").
    pub roots: Vec<CertificateDer<'static>>,
    /// The standard header names, used to strip spoofed copies when no front proxy is configured.
    pub default_headers: RequestHeaders,
    /// Chains already attributed, by SHA-256 of their certificates: verifying a signature on
    /// every request of a keep-alive connection cost a tenth of the serving throughput.
    signers: moka::sync::Cache<[u8; 32], Signer>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("front_proxy", &self.front_proxy)
            .field("client_ca", &self.client_ca.is_some())
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

fn certificates(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        Err(Error::NoCertificate { what })
    } else {
        Ok(certs)
    }
}

fn verifier(
    roots: &[CertificateDer<'static>],
    what: &'static str,
) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    let mut store = RootCertStore::empty();
    let (_, _) = store.add_parsable_certificates(roots.iter().cloned());
    WebPkiClientVerifier::builder(Arc::new(store))
        .build()
        .map_err(|source| Error::Verifier { what, source })
}

fn header_names(names: &[String], default: &str) -> Result<Vec<HeaderName>, Error> {
    let names: Vec<&str> = if names.is_empty() {
        vec![default]
    } else {
        names.iter().map(String::as_str).collect()
    };
    names
        .into_iter()
        .map(|name| {
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| Error::HeaderName(name.to_string()))
        })
        .collect()
}

fn request_headers(sources: &TrustSources) -> Result<RequestHeaders, Error> {
    let prefixes = if sources.extra_header_prefixes.is_empty() {
        vec!["x-remote-extra-".to_string()]
    } else {
        sources
            .extra_header_prefixes
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect()
    };
    Ok(RequestHeaders {
        username: header_names(&sources.username_headers, "x-remote-user")?,
        uid: header_names(&sources.uid_headers, "x-remote-uid")?,
        group: header_names(&sources.group_headers, "x-remote-group")?,
        extra_prefixes: prefixes,
    })
}

/// Which trusted CA signed a presented chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signer {
    FrontProxy,
    ClientCa,
    Neither,
}

impl Trust {
    /// Builds verifiers from `sources`; `local_client_roots` are trusted as client CAs too (the
    /// standalone CA behind the written kubeconfig). Header lists left empty get the standard
    /// names (`X-Remote-User`, `X-Remote-Uid`, `X-Remote-Group`, `X-Remote-Extra-`).
    pub fn build(
        sources: &TrustSources,
        local_client_roots: &[CertificateDer<'static>],
    ) -> Result<Trust, Error> {
        let mut roots = Vec::new();
        let front_proxy = match &sources.requestheader_ca_pem {
            Some(pem) => {
                let cas = certificates(pem, "requestheader client CA")?;
                roots.extend(cas.iter().cloned());
                Some(FrontProxy {
                    verifier: verifier(&cas, "requestheader client CA")?,
                    allowed_names: sources.allowed_names.clone(),
                    headers: request_headers(sources)?,
                })
            }
            None => None,
        };
        let mut client_cas = local_client_roots.to_vec();
        if let Some(pem) = &sources.client_ca_pem {
            client_cas.extend(certificates(pem, "client CA")?);
        }
        roots.extend(client_cas.iter().cloned());
        let client_ca = if client_cas.is_empty() {
            None
        } else {
            Some(verifier(&client_cas, "client CA")?)
        };
        Ok(Trust {
            front_proxy,
            client_ca,
            roots,
            default_headers: request_headers(&TrustSources::default())?,
            signers: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(SIGNER_CACHE_TTL)
                .build(),
        })
    }

    /// Attributes a chain to the CA that signed it (front proxy first, as the API server does).
    pub(crate) fn signer(&self, chain: &[CertificateDer<'static>]) -> Signer {
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        for certificate in chain {
            digest.update(&(certificate.len() as u64).to_be_bytes());
            digest.update(certificate.as_ref());
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.finish().as_ref());
        self.signers.get_with(key, || self.verify_signer(chain))
    }

    fn verify_signer(&self, chain: &[CertificateDer<'static>]) -> Signer {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Signer::Neither;
        };
        let now = UnixTime::now();
        let signed_by = |verifier: &Arc<dyn ClientCertVerifier>| {
            verifier
                .verify_client_cert(leaf, intermediates, now)
                .is_ok()
        };
        if self
            .front_proxy
            .as_ref()
            .is_some_and(|fp| signed_by(&fp.verifier))
        {
            Signer::FrontProxy
        } else if self.client_ca.as_ref().is_some_and(signed_by) {
            Signer::ClientCa
        } else {
            Signer::Neither
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_configmap_json_arrays() {
        let data: BTreeMap<String, String> = [
            ("requestheader-allowed-names", r#"["front-proxy-client"]"#),
            ("requestheader-username-headers", r#"["X-Remote-User"]"#),
            ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
            (
                "requestheader-extra-headers-prefix",
                r#"["X-Remote-Extra-"]"#,
            ),
            ("requestheader-client-ca-file", "PEM"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sources = TrustSources::from_configmap(&data).expect("valid");
        assert_eq!(sources.allowed_names, ["front-proxy-client"]);
        assert_eq!(sources.uid_headers, Vec::<String>::new());
        assert_eq!(sources.requestheader_ca_pem.as_deref(), Some("PEM"));
        let bad: BTreeMap<String, String> = [(
            "requestheader-allowed-names".to_string(),
            "front-proxy-client".to_string(),
        )]
        .into();
        let error = TrustSources::from_configmap(&bad).expect_err("not JSON");
        assert!(
            error
                .to_string()
                .starts_with("requestheader-allowed-names: not a JSON array")
        );
    }

    #[test]
    fn flags_override_what_they_set() {
        let configmap = TrustSources {
            allowed_names: vec!["front-proxy-client".into()],
            username_headers: vec!["X-Remote-User".into()],
            ..TrustSources::default()
        };
        let flags = TrustSources {
            allowed_names: vec!["aggregator".into()],
            ..TrustSources::default()
        };
        let merged = configmap.overridden_by(&flags);
        assert_eq!(merged.allowed_names, ["aggregator"]);
        assert_eq!(merged.username_headers, ["X-Remote-User"]);
    }
}
