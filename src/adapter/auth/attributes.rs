//! What a request asks to do, in SubjectAccessReview terms (`docs/contract.md`, Authorization),
//! following `apiserver: pkg/endpoints/request/requestinfo.go`.
//!
//! | request | verb | resource / subresource / name |
//! |---|---|---|
//! | `…/namespaces/{ns}/{res}/{name or *}/{m}` and `…/{res}/{name or *}/{m}` | `get` | `{res}` / `{m}` / `{name}` |
//! | `…/namespaces/{ns}/metrics/{m}` | `get` | `metrics` / – / `{m}` |
//! | external `…/namespaces/{ns}/{m}` | `list` | `{m}` / – / – |
//! | anything else (`/apis…`, `/openapi…`, `/metrics`) | `get` | non-resource path |
//!
//! Segments are percent-decoded, so the wildcard `%2A` is authorized as `*`.

use k8s_openapi::api::authorization::v1::{NonResourceAttributes, ResourceAttributes};
use percent_encoding::percent_decode_str;

use crate::resources::{CUSTOM_GROUP, EXTERNAL_GROUP};

/// A resource request's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource {
    pub verb: &'static str,
    pub group: &'static str,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub subresource: Option<String>,
    pub name: Option<String>,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attributes {
    Resource(Resource),
    NonResource { path: String },
}

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

impl Attributes {
    /// The attributes of `GET path` (the query is not part of the path).
    pub fn of(path: &str) -> Attributes {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let non_resource = || Attributes::NonResource {
            path: path.to_string(),
        };
        let [apis, group, version, rest @ ..] = segments.as_slice() else {
            return non_resource();
        };
        let group = match *group {
            CUSTOM_GROUP if *apis == "apis" => CUSTOM_GROUP,
            EXTERNAL_GROUP if *apis == "apis" => EXTERNAL_GROUP,
            _ => return non_resource(),
        };
        let rest: Vec<String> = rest.iter().map(|s| decode(s)).collect();
        let resource = |verb,
                        namespace: Option<&String>,
                        resource: &String,
                        subresource: Option<&String>,
                        name: Option<&String>| {
            Attributes::Resource(Resource {
                verb,
                group,
                version: version.to_string(),
                namespace: namespace.cloned(),
                resource: resource.clone(),
                subresource: subresource.cloned(),
                name: name.cloned(),
            })
        };
        match (group, rest.as_slice()) {
            (EXTERNAL_GROUP, [namespaces, ns, metric]) if namespaces == "namespaces" => {
                resource("list", Some(ns), metric, None, None)
            }
            (CUSTOM_GROUP, [namespaces, ns, pseudo, metric])
                if namespaces == "namespaces" && pseudo == "metrics" =>
            {
                resource("get", Some(ns), pseudo, None, Some(metric))
            }
            (CUSTOM_GROUP, [namespaces, ns, res, name, metric]) if namespaces == "namespaces" => {
                resource("get", Some(ns), res, Some(metric), Some(name))
            }
            (CUSTOM_GROUP, [res, name, metric]) if res != "namespaces" => {
                resource("get", None, res, Some(metric), Some(name))
            }
            // discovery and malformed paths: authorized as the path, refused later if bad
            _ => non_resource(),
        }
    }

    pub(crate) fn resource_attributes(&self) -> Option<ResourceAttributes> {
        match self {
            Attributes::Resource(r) => Some(ResourceAttributes {
                verb: Some(r.verb.into()),
                group: Some(r.group.into()),
                version: Some(r.version.clone()),
                namespace: r.namespace.clone(),
                resource: Some(r.resource.clone()),
                subresource: r.subresource.clone(),
                name: r.name.clone(),
                ..ResourceAttributes::default()
            }),
            Attributes::NonResource { .. } => None,
        }
    }

    pub(crate) fn non_resource_attributes(&self) -> Option<NonResourceAttributes> {
        match self {
            Attributes::NonResource { path } => Some(NonResourceAttributes {
                path: Some(path.clone()),
                verb: Some("get".into()),
            }),
            Attributes::Resource(_) => None,
        }
    }

    /// The `Forbidden` message the API server would write, and the Status details.
    pub(crate) fn forbidden_message(&self, user: &str, reason: Option<&str>) -> String {
        let mut message = match self {
            Attributes::Resource(r) => {
                let name = r.name.as_deref().unwrap_or("");
                let target = match &r.subresource {
                    Some(sub) => format!("{}/{sub}", r.resource),
                    None => r.resource.clone(),
                };
                let scope = match &r.namespace {
                    Some(ns) => format!("in the namespace \"{ns}\""),
                    None => "at the cluster scope".to_string(),
                };
                format!(
                    "{}.{} \"{name}\" is forbidden: User \"{user}\" cannot {} resource \"{target}\" in API group \"{}\" {scope}",
                    r.resource, r.group, r.verb, r.group
                )
            }
            Attributes::NonResource { path } => {
                format!("forbidden: User \"{user}\" cannot get path \"{path}\"")
            }
        };
        if let Some(reason) = reason.filter(|r| !r.is_empty()) {
            message.push_str(": ");
            message.push_str(reason);
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(path: &str) -> Resource {
        match Attributes::of(path) {
            Attributes::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn maps_every_metric_path_as_the_api_server_does() {
        let pods = resource(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/%2A/triton_queue_time_ms",
        );
        assert_eq!(
            (
                pods.verb,
                pods.namespace.as_deref(),
                pods.resource.as_str(),
                pods.subresource.as_deref(),
                pods.name.as_deref()
            ),
            (
                "get",
                Some("demo"),
                "pods",
                Some("triton_queue_time_ms"),
                Some("*")
            )
        );
        let object = resource(
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/demo/deployments.apps/triton/m",
        );
        assert_eq!(
            (
                object.resource.as_str(),
                object.name.as_deref(),
                object.version.as_str()
            ),
            ("deployments.apps", Some("triton"), "v1beta1")
        );
        let node = resource("/apis/custom.metrics.k8s.io/v1beta2/nodes/gpu-1/m");
        assert_eq!((node.namespace, node.resource.as_str()), (None, "nodes"));
        let namespace =
            resource("/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/metrics/queue_depth");
        assert_eq!(
            (
                namespace.resource.as_str(),
                namespace.subresource,
                namespace.name.as_deref()
            ),
            ("metrics", None, Some("queue_depth"))
        );
        let external = resource("/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/kafka_lag");
        assert_eq!(
            (
                external.verb,
                external.group,
                external.resource.as_str(),
                external.name
            ),
            ("list", EXTERNAL_GROUP, "kafka_lag", None)
        );
        for path in [
            "/apis",
            "/apis/custom.metrics.k8s.io/v1beta2",
            "/openapi/v2",
            "/metrics",
            "/apis/other.io/v1/x/y/z",
        ] {
            assert_eq!(
                Attributes::of(path),
                Attributes::NonResource { path: path.into() }
            );
        }
    }

    #[test]
    fn forbidden_messages_match_the_api_server() {
        let pods = Attributes::of(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_requests",
        );
        assert_eq!(
            pods.forbidden_message("alice", None),
            "pods.custom.metrics.k8s.io \"*\" is forbidden: User \"alice\" cannot get resource \"pods/http_requests\" in API group \"custom.metrics.k8s.io\" in the namespace \"default\""
        );
        let node = Attributes::of("/apis/custom.metrics.k8s.io/v1beta2/nodes/n1/m");
        assert!(
            node.forbidden_message("bob", Some("no RBAC"))
                .ends_with("at the cluster scope: no RBAC")
        );
        assert_eq!(
            Attributes::of("/apis").forbidden_message("u", None),
            "forbidden: User \"u\" cannot get path \"/apis\""
        );
    }
}
