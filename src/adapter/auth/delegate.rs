//! Asks the API server who a bearer token belongs to (TokenReview) and whether a user may do
//! something (SubjectAccessReview), through one kube client, with answers cached.
//!
//! Both caches hold allow and deny answers for [`CACHE_TTL`] (`docs/contract.md`, Authorization)
//! and coalesce identical lookups in flight into one call, so a burst of HPA requests costs one
//! review. Errors are not cached. Tokens are keyed by their SHA-256, never stored as they are.
//! Every call has a deadline; the API server being slow never holds a request longer than that.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};
use moka::future::Cache;

use super::User;
use super::attributes::Attributes;

/// How long an answer is reused.
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(10);
/// Longest wait for the API server.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Cached answers held at most, per cache.
const CACHE_ENTRIES: u64 = 10_000;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{review} call failed: {message}")]
    Call {
        review: &'static str,
        message: String,
    },
    #[error("{review} call timed out after {CALL_TIMEOUT:?}")]
    Timeout { review: &'static str },
}

/// An authorization answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Option<String>,
}

/// The key an authorization answer is cached under: who, and what.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DecisionKey {
    user: String,
    uid: Option<String>,
    groups: Vec<String>,
    extra: BTreeMap<String, Vec<String>>,
    attributes: Attributes,
}

pub struct Delegate {
    client: kube::Client,
    tokens: Cache<[u8; 32], Option<User>>,
    decisions: Cache<DecisionKey, Decision>,
}

impl Delegate {
    pub fn new(client: kube::Client) -> Delegate {
        Delegate {
            client,
            tokens: Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(CACHE_TTL)
                .build(),
            decisions: Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(CACHE_TTL)
                .build(),
        }
    }

    /// The user a token belongs to; `None` when the API server says it is not authenticated.
    pub async fn authenticate_token(&self, token: &str) -> Result<Option<User>, Error> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        let client = self.client.clone();
        let token = token.to_string();
        self.tokens
            .try_get_with(key, async move { token_review(client, token).await })
            .await
            .map_err(|e: Arc<Error>| (*e).clone())
    }

    /// Whether `user` may do what `attributes` describe.
    pub async fn authorize(&self, user: &User, attributes: &Attributes) -> Result<Decision, Error> {
        let key = DecisionKey {
            user: user.name.clone(),
            uid: user.uid.clone(),
            groups: user.groups.clone(),
            extra: user.extra.clone(),
            attributes: attributes.clone(),
        };
        let client = self.client.clone();
        let review = subject_access_review(user, attributes);
        self.decisions
            .try_get_with(key, async move {
                let api = Api::<SubjectAccessReview>::all(client);
                let answer =
                    tokio::time::timeout(CALL_TIMEOUT, api.create(&PostParams::default(), &review))
                        .await
                        .map_err(|_| Error::Timeout {
                            review: "SubjectAccessReview",
                        })?
                        .map_err(|e| Error::Call {
                            review: "SubjectAccessReview",
                            message: e.to_string(),
                        })?;
                let status = answer.status.unwrap_or_default();
                Ok(Decision {
                    allowed: status.allowed && !status.denied.unwrap_or(false),
                    reason: status.reason.filter(|r| !r.is_empty()),
                })
            })
            .await
            .map_err(|e: Arc<Error>| (*e).clone())
    }
}

async fn token_review(client: kube::Client, token: String) -> Result<Option<User>, Error> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token),
            audiences: None,
        },
        ..TokenReview::default()
    };
    let api = Api::<TokenReview>::all(client);
    let answer = tokio::time::timeout(CALL_TIMEOUT, api.create(&PostParams::default(), &review))
        .await
        .map_err(|_| Error::Timeout {
            review: "TokenReview",
        })?
        .map_err(|e| Error::Call {
            review: "TokenReview",
            message: e.to_string(),
        })?;
    let status = answer.status.unwrap_or_default();
    if !status.authenticated.unwrap_or(false) {
        return Ok(None);
    }
    let info = status.user.unwrap_or_default();
    Ok(info
        .username
        .filter(|name| !name.is_empty())
        .map(|name| User {
            name,
            uid: info.uid.filter(|uid| !uid.is_empty()),
            groups: info.groups.unwrap_or_default(),
            extra: info.extra.unwrap_or_default(),
        }))
}

fn subject_access_review(user: &User, attributes: &Attributes) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            uid: user.uid.clone(),
            groups: Some(user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes: attributes.resource_attributes(),
            non_resource_attributes: attributes.non_resource_attributes(),
        },
        ..SubjectAccessReview::default()
    }
}
