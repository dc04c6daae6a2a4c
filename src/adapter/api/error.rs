//! `api::Error`: every way a request can fail, and its one rendering as a `metav1.Status`.
//!
//! Handlers return `Result<_, Error>`; [`IntoResponse`] picks the HTTP code, `reason` and message
//! (`docs/contract.md`, Errors) and always sets `Content-Type: application/json`, so client-go
//! turns the body into a typed error. Client mistakes (4xx) are not logged as errors; a 500
//! carries a generic message and its cause goes to the log only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

use crate::resources::GroupResource;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Malformed path, selector or query (400).
    #[error("{0}")]
    BadRequest(String),
    /// No credential, or one that is not trusted (401).
    #[error("Unauthorized")]
    Unauthorized,
    /// Authenticated, but not allowed (403); worded as the API server words it.
    #[error("{message}")]
    Forbidden {
        message: String,
        name: Option<String>,
        group: Option<String>,
        kind: Option<String>,
    },
    /// The metric is not served for this target (404).
    #[error("{}", metric_not_found_message(.metric, .resource, .name.as_deref(), .selector.as_deref()))]
    MetricNotFound {
        metric: String,
        /// The resource as requested (`pods`, `deployments.apps`, `namespaces`).
        resource: String,
        name: Option<String>,
        selector: Option<String>,
    },
    /// The described object does not exist (404).
    #[error("{resource} \"{name}\" not found")]
    ObjectNotFound {
        resource: GroupResource,
        name: String,
    },
    /// A path this server does not serve (404).
    #[error("the server could not find the requested resource")]
    PathNotFound,
    /// Only GET is served (405).
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// The Accept header allows no JSON (406).
    #[error("only the following media types are accepted: application/json")]
    NotAcceptable,
    /// A backend needed for this read cannot answer now (503); retried by the client.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected state; the cause is logged, not sent (500).
    #[error("Internal error occurred: {0}")]
    Internal(String),
}

fn metric_not_found_message(
    metric: &str,
    resource: &str,
    name: Option<&str>,
    selector: Option<&str>,
) -> String {
    let mut message = format!("the server could not find the metric {metric} for {resource}");
    if let Some(name) = name {
        message.push(' ');
        message.push_str(name);
    }
    if let Some(selector) = selector.filter(|s| !s.is_empty()) {
        message.push_str(" with selector ");
        message.push_str(selector);
    }
    message
}

impl Error {
    pub(crate) fn status_code(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            Error::MetricNotFound { .. } | Error::ObjectNotFound { .. } | Error::PathNotFound => {
                StatusCode::NOT_FOUND
            }
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "BadRequest",
            Error::Unauthorized => "Unauthorized",
            Error::Forbidden { .. } => "Forbidden",
            Error::MetricNotFound { .. } | Error::ObjectNotFound { .. } | Error::PathNotFound => {
                "NotFound"
            }
            Error::MethodNotAllowed => "MethodNotAllowed",
            Error::NotAcceptable => "NotAcceptable",
            Error::Unavailable(_) => "ServiceUnavailable",
            Error::Internal(_) => "InternalError",
        }
    }

    fn details(&self) -> Option<StatusDetails> {
        match self {
            Error::ObjectNotFound { resource, name } => Some(StatusDetails {
                name: Some(name.clone()),
                kind: Some(resource.resource.to_string()),
                group: (!resource.group.is_empty()).then(|| resource.group.to_string()),
                ..StatusDetails::default()
            }),
            Error::Forbidden {
                name, group, kind, ..
            } if kind.is_some() => Some(StatusDetails {
                name: name.clone(),
                group: group.clone(),
                kind: kind.clone(),
                ..StatusDetails::default()
            }),
            Error::Internal(cause) => Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    message: Some(cause.clone()),
                    ..StatusCause::default()
                }]),
                ..StatusDetails::default()
            }),
            _ => None,
        }
    }

    /// The `metav1.Status` body for this error.
    pub(crate) fn to_status(&self) -> Status {
        Status {
            status: Some("Failure".into()),
            message: Some(self.to_string()),
            reason: Some(self.reason().into()),
            details: self.details(),
            code: Some(i32::from(self.status_code().as_u16())),
            ..Status::default()
        }
    }
}

impl From<crate::adapter::auth::Error> for Error {
    fn from(error: crate::adapter::auth::Error) -> Error {
        use crate::adapter::auth::Error as Auth;
        match error {
            Auth::Unauthorized => Error::Unauthorized,
            Auth::Forbidden {
                message,
                name,
                group,
                kind,
            } => Error::Forbidden {
                message,
                name,
                group,
                kind,
            },
            Auth::Review(cause) => Error::Internal(cause),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        // k8s-openapi writes `kind: Status` and `apiVersion: v1` itself.
        let bytes = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut response = (self.status_code(), bytes).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use serde_json::json;

    async fn render(error: Error) -> (StatusCode, String, serde_json::Value) {
        let response = error.into_response();
        let code = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (
            code,
            content_type,
            serde_json::from_slice(&bytes).expect("json"),
        )
    }

    #[tokio::test]
    async fn renders_the_contract_status_bodies() {
        let cases = [
            (
                Error::MetricNotFound {
                    metric: "http_requests".into(),
                    resource: "pods".into(),
                    name: None,
                    selector: None,
                },
                json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                       "message":"the server could not find the metric http_requests for pods",
                       "reason":"NotFound","code":404}),
            ),
            (
                Error::MetricNotFound {
                    metric: "http_requests".into(),
                    resource: "pods".into(),
                    name: Some("web-1".into()),
                    selector: Some("app=web".into()),
                },
                json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                       "message":"the server could not find the metric http_requests for pods web-1 with selector app=web",
                       "reason":"NotFound","code":404}),
            ),
            (
                Error::ObjectNotFound {
                    resource: GroupResource::pods(),
                    name: "web-1".into(),
                },
                json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                       "message":"pods \"web-1\" not found","reason":"NotFound",
                       "details":{"name":"web-1","kind":"pods"},"code":404}),
            ),
            (
                Error::ObjectNotFound {
                    resource: GroupResource::parse("deployments"),
                    name: "web".into(),
                },
                json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                       "message":"deployments.apps \"web\" not found","reason":"NotFound",
                       "details":{"name":"web","group":"apps","kind":"deployments"},"code":404}),
            ),
            (
                Error::BadRequest("invalid request path".into()),
                json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                       "message":"invalid request path","reason":"BadRequest","code":400}),
            ),
            (
                Error::Unauthorized,
                json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                       "message":"Unauthorized","reason":"Unauthorized","code":401}),
            ),
            (
                Error::NotAcceptable,
                json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                       "message":"only the following media types are accepted: application/json",
                       "reason":"NotAcceptable","code":406}),
            ),
            (
                Error::Internal("snapshot unreadable".into()),
                json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                       "message":"Internal error occurred: snapshot unreadable","reason":"InternalError",
                       "details":{"causes":[{"message":"snapshot unreadable"}]},"code":500}),
            ),
        ];
        for (error, want) in cases {
            let expected_code = error.status_code();
            let (code, content_type, body) = render(error).await;
            assert_eq!(code, expected_code);
            assert_eq!(content_type, "application/json");
            assert_eq!(body, want);
        }
    }
}
