//! Who is calling, and may they: authentication and authorization as a generic "delegating"
//! API server does them (`docs/contract.md`, Authentication and Authorization).
//!
//! Authentication, first success wins:
//! 1. a client certificate from the front-proxy CA whose CN is allowed → the user, uid, groups
//!    and extras from the configured `X-Remote-*` headers (trusted on this path only);
//! 2. a client certificate from the client CA → user = CN, groups = O;
//! 3. a bearer token → TokenReview ([`delegate`], cached);
//! 4. otherwise `system:anonymous` in `system:unauthenticated` — as the delegating
//!    authentication of Kubernetes' generic API server (k8s.io/apiserver) does by default,
//!    so an anonymous caller is then authorized like anyone (and usually denied: a 403). With
//!    `--anonymous-auth=false` (kube-apiserver's flag) a request without credentials is a 401.
//!
//! Identity headers are removed from every request that did not come through path 1, so a
//! handler can never read a spoofed one. A front-proxy certificate with a CN not in the allowed
//! list, or a token the API server rejects, is a 401. Every authenticated user is also in
//! `system:authenticated`.
//!
//! Authorization: `system:masters` is always allowed; everything else is a SubjectAccessReview
//! with the request's [`attributes`] (cached), and a denial is a 403 Status worded as the API
//! server words it. Health paths never reach this module.

pub mod attributes;
pub mod configmap;
pub mod delegate;
pub mod trust;

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::http::{HeaderMap, header};
use percent_encoding::percent_decode_str;
use rustls::pki_types::CertificateDer;

/// Why a request is refused; the API layer turns it into a `metav1.Status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No credential, or one that is not trusted (401).
    #[error("Unauthorized")]
    Unauthorized,
    /// Authenticated, but not allowed (403); worded as the API server words it, with the
    /// object asked for.
    #[error("{message}")]
    Forbidden {
        message: String,
        name: Option<String>,
        group: Option<String>,
        kind: Option<String>,
    },
    /// The access review could not be made (500).
    #[error("{0}")]
    Review(String),
}
use attributes::Attributes;
use delegate::Delegate;
use trust::{RequestHeaders, Signer, Trust};

pub(crate) const AUTHENTICATED: &str = "system:authenticated";
pub(crate) const UNAUTHENTICATED: &str = "system:unauthenticated";
pub(crate) const ANONYMOUS: &str = "system:anonymous";
pub(crate) const MASTERS: &str = "system:masters";

/// An authenticated (or anonymous) caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    fn anonymous() -> User {
        User {
            name: ANONYMOUS.into(),
            groups: vec![UNAUTHENTICATED.into()],
            ..User::default()
        }
    }

    fn authenticated(mut self) -> User {
        if !self.groups.iter().any(|g| g == AUTHENTICATED) {
            self.groups.push(AUTHENTICATED.into());
        }
        self
    }
}

/// The trust in force and the API server to delegate to.
pub struct Auth {
    trust: ArcSwap<Trust>,
    delegate: Option<Delegate>,
    /// A request without credentials is `system:anonymous` (else a 401).
    anonymous: bool,
}

impl Auth {
    /// Without a delegate, tokens are refused and only `system:masters` is authorized.
    /// Anonymous requests are allowed to reach authorization ([`Auth::without_anonymous`]).
    pub fn new(trust: Trust, delegate: Option<Delegate>) -> Auth {
        Auth {
            trust: ArcSwap::from_pointee(trust),
            delegate,
            anonymous: true,
        }
    }

    /// Refuses requests without credentials with a 401 (`--anonymous-auth=false`).
    pub(crate) fn without_anonymous(self) -> Auth {
        Auth {
            anonymous: false,
            ..self
        }
    }

    pub fn trust(&self) -> Arc<Trust> {
        self.trust.load_full()
    }

    /// Puts new trust in force for the following requests.
    pub(crate) fn set_trust(&self, trust: Trust) {
        self.trust.store(Arc::new(trust));
    }

    /// Identifies the caller; removes identity headers it must not trust.
    pub async fn authenticate(
        &self,
        chain: Option<&[CertificateDer<'static>]>,
        headers: &mut HeaderMap,
    ) -> Result<User, Error> {
        let trust = self.trust.load();
        let chain = chain.filter(|c| !c.is_empty());
        let signer = chain.map_or(Signer::Neither, |chain| trust.signer(chain));
        if let (Signer::FrontProxy, Some(front_proxy), Some(chain)) =
            (signer, &trust.front_proxy, chain)
        {
            let allowed = front_proxy.allowed_names.is_empty()
                || subject(&chain[0])
                    .0
                    .is_some_and(|cn| front_proxy.allowed_names.contains(&cn));
            if !allowed {
                strip(&front_proxy.headers, headers);
                return Err(Error::Unauthorized);
            }
            let user = user_from_headers(&front_proxy.headers, headers);
            strip(&front_proxy.headers, headers);
            if let Some(user) = user {
                return Ok(user.authenticated());
            }
        }
        // Nothing below may read identity headers: drop both the configured and the usual names.
        if let Some(front_proxy) = &trust.front_proxy {
            strip(&front_proxy.headers, headers);
        }
        strip(&trust.default_headers, headers);
        if let (Signer::ClientCa, Some(chain)) = (signer, chain) {
            let (common_name, organizations) = subject(&chain[0]);
            if let Some(name) = common_name.filter(|n| !n.is_empty()) {
                return Ok(User {
                    name,
                    groups: organizations,
                    ..User::default()
                }
                .authenticated());
            }
        }
        if let Some(token) = bearer_token(headers) {
            let Some(delegate) = &self.delegate else {
                return Err(Error::Unauthorized);
            };
            return match delegate.authenticate_token(&token).await {
                Ok(Some(user)) => Ok(user.authenticated()),
                Ok(None) => Err(Error::Unauthorized),
                Err(error) => {
                    tracing::warn!(%error, "token could not be reviewed");
                    Err(Error::Unauthorized)
                }
            };
        }
        if self.anonymous {
            Ok(User::anonymous())
        } else {
            Err(Error::Unauthorized)
        }
    }

    /// Allows `system:masters`; asks the API server about everyone else.
    pub async fn authorize(&self, user: &User, attributes: &Attributes) -> Result<(), Error> {
        if user.groups.iter().any(|g| g == MASTERS) {
            return Ok(());
        }
        let Some(delegate) = &self.delegate else {
            return Err(forbidden(
                user,
                attributes,
                Some("no authorizer is configured: only system:masters is allowed"),
            ));
        };
        match delegate.authorize(user, attributes).await {
            Ok(decision) if decision.allowed => Ok(()),
            Ok(decision) => Err(forbidden(user, attributes, decision.reason.as_deref())),
            Err(error) => Err(Error::Review(format!("authorizing the request: {error}"))),
        }
    }
}

fn forbidden(user: &User, attributes: &Attributes, reason: Option<&str>) -> Error {
    let message = attributes.forbidden_message(&user.name, reason);
    match attributes {
        Attributes::Resource(r) => Error::Forbidden {
            message,
            name: Some(r.name.clone().unwrap_or_default()),
            group: Some(r.group.to_string()),
            kind: Some(r.resource.clone()),
        },
        Attributes::NonResource { .. } => Error::Forbidden {
            message,
            name: None,
            group: None,
            kind: None,
        },
    }
}

/// The certificate's subject CN and O values.
fn subject(certificate: &CertificateDer<'_>) -> (Option<String>, Vec<String>) {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(certificate.as_ref()) else {
        return (None, Vec::new());
    };
    let subject = parsed.subject();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let organizations = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    (common_name, organizations)
}

fn values<'a>(
    headers: &'a HeaderMap,
    names: &'a [axum::http::HeaderName],
) -> impl Iterator<Item = &'a str> {
    names
        .iter()
        .flat_map(|name| headers.get_all(name).iter())
        .filter_map(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// The identity the front proxy asserted; `None` without a user name.
fn user_from_headers(config: &RequestHeaders, headers: &HeaderMap) -> Option<User> {
    let name = values(headers, &config.username).next()?.to_string();
    let uid = values(headers, &config.uid).next().map(str::to_string);
    let groups = values(headers, &config.group).map(str::to_string).collect();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (header, value) in headers {
        let Some(prefix) = config
            .extra_prefixes
            .iter()
            .find(|p| header.as_str().starts_with(p.as_str()))
        else {
            continue;
        };
        let key = percent_decode_str(&header.as_str()[prefix.len()..])
            .decode_utf8_lossy()
            .to_lowercase();
        if let Ok(value) = value.to_str() {
            extra.entry(key).or_default().push(value.to_string());
        }
    }
    Some(User {
        name,
        uid,
        groups,
        extra,
    })
}

fn strip(config: &RequestHeaders, headers: &mut HeaderMap) {
    for name in config.all_names(headers) {
        headers.remove(name);
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use trust::TrustSources;

    fn spoofed_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-remote-user", "admin"),
            ("x-remote-uid", "0"),
            ("x-remote-group", "system:masters"),
            ("x-remote-extra-scopes", "all"),
            ("x-my-user", "admin"),
            ("accept", "application/json"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        headers
    }

    #[tokio::test]
    async fn identity_headers_without_a_front_proxy_certificate_are_removed() {
        // without any front proxy configured: the standard names go
        let auth = Auth::new(
            Trust::build(&TrustSources::default(), &[]).expect("trust"),
            None,
        );
        let mut headers = spoofed_headers();
        let user = auth
            .authenticate(None, &mut headers)
            .await
            .expect("anonymous");
        assert_eq!(user, User::anonymous());
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["accept", "x-my-user"]);

        // with a front proxy that uses other names: those go too
        let ca = crate::adapter::tls::LocalAuthority::new("fp").expect("ca");
        let sources = TrustSources {
            requestheader_ca_pem: Some(ca.certificate_pem().to_string()),
            username_headers: vec!["X-My-User".into()],
            ..TrustSources::default()
        };
        let auth = Auth::new(Trust::build(&sources, &[]).expect("trust"), None);
        let mut headers = spoofed_headers();
        auth.authenticate(None, &mut headers)
            .await
            .expect("anonymous");
        let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn extras_are_lower_cased_and_percent_decoded() {
        let sources = TrustSources::default();
        let trust = Trust::build(&sources, &[]).expect("trust");
        let mut headers = HeaderMap::new();
        headers.insert("x-remote-user", HeaderValue::from_static("bob"));
        headers.append("x-remote-group", HeaderValue::from_static("a"));
        headers.append("x-remote-group", HeaderValue::from_static("b"));
        headers.insert(
            "x-remote-extra-acme.com%2fproject",
            HeaderValue::from_static("p1"),
        );
        let user = user_from_headers(&trust.default_headers, &headers).expect("a user");
        assert_eq!(user.name, "bob");
        assert_eq!(user.groups, ["a", "b"]);
        assert_eq!(
            user.extra.get("acme.com/project"),
            Some(&vec!["p1".to_string()])
        );
    }
}
