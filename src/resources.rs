//! Kubernetes group-resources as the metrics APIs name them (`pods`, `deployments.apps`, `nodes`).
//!
//! Owns the mapping from a `{resource}` path segment to a [`GroupResource`], including the bare
//! names humans type (`deployments` → `deployments.apps`), and what a described object needs:
//! its kind, apiVersion and whether it lives in a namespace. Discovery uses the scope so that all
//! entries under one parent agree on `namespaced` (`docs/contract.md`, Discovery documents).

/// The API group of the custom metrics API.
pub const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";
/// The API group of the external metrics API.
pub const EXTERNAL_GROUP: &str = "external.metrics.k8s.io";

use std::fmt;
use std::sync::Arc;

/// A resource in a group, printed as `resource.group` (or bare `resource` for the core group).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// `pods`, `deployments`, … always lower case and plural.
    pub resource: Arc<str>,
    /// `""` for the core group, `apps`, `networking.k8s.io`, …
    pub group: Arc<str>,
}

/// What is known about a well-known resource.
struct Known {
    resource: &'static str,
    group: &'static str,
    api_version: &'static str,
    kind: &'static str,
    namespaced: bool,
}

const fn known(
    resource: &'static str,
    group: &'static str,
    api_version: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> Known {
    Known {
        resource,
        group,
        api_version,
        kind,
        namespaced,
    }
}

/// Resources a metric can describe that we can name without asking the API server.
const KNOWN: &[Known] = &[
    known("pods", "", "v1", "Pod", true),
    known("services", "", "v1", "Service", true),
    known("namespaces", "", "v1", "Namespace", false),
    known("nodes", "", "v1", "Node", false),
    known("persistentvolumes", "", "v1", "PersistentVolume", false),
    known(
        "persistentvolumeclaims",
        "",
        "v1",
        "PersistentVolumeClaim",
        true,
    ),
    known(
        "replicationcontrollers",
        "",
        "v1",
        "ReplicationController",
        true,
    ),
    known("endpoints", "", "v1", "Endpoints", true),
    known("deployments", "apps", "apps/v1", "Deployment", true),
    known("statefulsets", "apps", "apps/v1", "StatefulSet", true),
    known("replicasets", "apps", "apps/v1", "ReplicaSet", true),
    known("daemonsets", "apps", "apps/v1", "DaemonSet", true),
    known("jobs", "batch", "batch/v1", "Job", true),
    known("cronjobs", "batch", "batch/v1", "CronJob", true),
    known(
        "ingresses",
        "networking.k8s.io",
        "networking.k8s.io/v1",
        "Ingress",
        true,
    ),
    known(
        "horizontalpodautoscalers",
        "autoscaling",
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        true,
    ),
];

impl GroupResource {
    pub fn new(resource: &str, group: &str) -> GroupResource {
        GroupResource {
            resource: resource.into(),
            group: group.into(),
        }
    }

    pub fn pods() -> GroupResource {
        GroupResource::new("pods", "")
    }

    pub fn namespaces() -> GroupResource {
        GroupResource::new("namespaces", "")
    }

    /// Reads a `{resource}` path segment: `resource.group`, or a bare name. A bare name of a
    /// well-known resource in a named group (`deployments`) resolves to that group.
    pub fn parse(segment: &str) -> GroupResource {
        let lower = segment.to_ascii_lowercase();
        match lower.split_once('.') {
            Some((resource, group)) => GroupResource::new(resource, group),
            None => match KNOWN.iter().find(|k| k.resource == lower) {
                Some(k) => GroupResource::new(k.resource, k.group),
                None => GroupResource::new(&lower, ""),
            },
        }
    }

    /// Reads a resource as prometheus-adapter's configuration names it: singular or plural, any
    /// case (`pod`, `Deployment` with group `apps`, `services`).
    pub(crate) fn from_config(resource: &str, group: &str) -> GroupResource {
        let lower = resource.to_ascii_lowercase();
        let group = group.to_ascii_lowercase();
        let found = KNOWN.iter().find(|k| {
            (k.resource == lower || k.kind.eq_ignore_ascii_case(&lower))
                && (group.is_empty() || k.group == group)
        });
        match found {
            Some(k) => GroupResource::new(k.resource, k.group),
            None => GroupResource::new(&lower, &group),
        }
    }

    /// The well-known resources' singular names and groups (`pod`, `deployment`/`apps`), for
    /// label templates such as `kubernetes_<<.Resource>>`.
    pub(crate) fn well_known_singulars() -> impl Iterator<Item = (String, &'static str)> {
        KNOWN.iter().map(|k| (k.kind.to_ascii_lowercase(), k.group))
    }

    fn known(&self) -> Option<&'static Known> {
        KNOWN
            .iter()
            .find(|k| k.resource == &*self.resource && k.group == &*self.group)
    }

    /// Whether objects of this resource live in a namespace. Unknown resources are assumed
    /// namespaced, as almost every custom resource is.
    pub(crate) fn is_namespaced(&self) -> bool {
        self.known().is_none_or(|k| k.namespaced)
    }

    /// The `kind` of a described object, when known.
    pub fn kind(&self) -> Option<&'static str> {
        self.known().map(|k| k.kind)
    }

    /// The `apiVersion` of a described object (`v1`, `apps/v1`), when known.
    pub(crate) fn api_version(&self) -> Option<&'static str> {
        self.known().map(|k| k.api_version)
    }
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_path_segments() {
        let cases = [
            ("pods", "pods", "", "Pod", Some("v1"), true),
            (
                "deployments.apps",
                "deployments",
                "apps",
                "Deployment",
                Some("apps/v1"),
                true,
            ),
            (
                "deployments",
                "deployments",
                "apps",
                "Deployment",
                Some("apps/v1"),
                true,
            ),
            (
                "StatefulSets",
                "statefulsets",
                "apps",
                "StatefulSet",
                Some("apps/v1"),
                true,
            ),
            ("nodes", "nodes", "", "Node", Some("v1"), false),
            (
                "ingresses.networking.k8s.io",
                "ingresses",
                "networking.k8s.io",
                "Ingress",
                Some("networking.k8s.io/v1"),
                true,
            ),
        ];
        for (segment, resource, group, kind, api_version, namespaced) in cases {
            let gr = GroupResource::parse(segment);
            assert_eq!((&*gr.resource, &*gr.group), (resource, group), "{segment}");
            assert_eq!(gr.kind(), Some(kind));
            assert_eq!(gr.api_version(), api_version);
            assert_eq!(gr.is_namespaced(), namespaced);
        }
        assert_eq!(
            GroupResource::parse("deployments").to_string(),
            "deployments.apps"
        );
        let custom = GroupResource::parse("widgets.example.com");
        assert_eq!(custom.to_string(), "widgets.example.com");
        assert_eq!(custom.kind(), None);
        assert!(custom.is_namespaced());
    }
}
