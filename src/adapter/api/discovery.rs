//! Discovery documents: `APIGroupList` (`/apis`), `APIGroup` (`/apis/<g>`), `APIResourceList`
//! (`/apis/<g>/<v>`) and the v2 aggregated `APIGroupDiscoveryList` (`/apis` with its Accept).
//!
//! Everything is derived from the snapshot's catalogue, so discovery never waits on a backend and
//! always answers 200. Custom entries are `<groupResource>/<metric>` with one `namespaced` value
//! per parent resource (its scope), external entries the bare metric name (`docs/contract.md`,
//! Discovery documents).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, GroupVersionForDiscovery,
};
use serde_json::{Value, json};

use super::bodies::{CUSTOM_GROUP, CustomVersion, EXTERNAL_GROUP, EXTERNAL_GROUP_VERSION};
use crate::adapter::store::Catalogue;
use crate::resources::GroupResource;

fn group_version(group_version: &str, version: &str) -> GroupVersionForDiscovery {
    GroupVersionForDiscovery {
        group_version: group_version.into(),
        version: version.into(),
    }
}

/// `APIGroup` for one of our groups, or `None` for any other name.
pub(crate) fn api_group(name: &str) -> Option<APIGroup> {
    let versions: Vec<GroupVersionForDiscovery> = match name {
        CUSTOM_GROUP => CustomVersion::ALL
            .iter()
            .map(|v| group_version(v.group_version(), v.as_str()))
            .collect(),
        EXTERNAL_GROUP => vec![group_version(EXTERNAL_GROUP_VERSION, "v1beta1")],
        _ => return None,
    };
    Some(APIGroup {
        name: name.into(),
        preferred_version: versions.first().cloned(),
        versions,
        server_address_by_client_cidrs: None,
    })
}

/// `APIGroupList` with both groups, custom first. Go leaves the groups' own `kind` and
/// `apiVersion` empty (and so out); k8s-openapi writes them on every `APIGroup`, so they are
/// taken off here to match the aggregator's bytes.
pub(crate) fn api_group_list() -> Value {
    let list = APIGroupList {
        groups: [CUSTOM_GROUP, EXTERNAL_GROUP]
            .into_iter()
            .filter_map(api_group)
            .collect(),
    };
    let mut value = serde_json::to_value(list).unwrap_or_default();
    if let Some(groups) = value.get_mut("groups").and_then(Value::as_array_mut) {
        for group in groups.iter_mut().filter_map(Value::as_object_mut) {
            group.remove("kind");
            group.remove("apiVersion");
        }
    }
    value
}

fn api_resource(name: String, namespaced: bool, kind: &str) -> APIResource {
    APIResource {
        name,
        singular_name: String::new(),
        namespaced,
        kind: kind.into(),
        verbs: vec!["get".into()],
        ..APIResource::default()
    }
}

/// `APIResourceList` for a custom-metrics version.
pub(crate) fn custom_resources(catalogue: &Catalogue, version: CustomVersion) -> APIResourceList {
    APIResourceList {
        group_version: version.group_version().into(),
        resources: catalogue
            .custom
            .iter()
            .map(|(resource, metric)| {
                api_resource(
                    format!("{resource}/{metric}"),
                    resource.is_namespaced(),
                    "MetricValueList",
                )
            })
            .collect(),
    }
}

/// `APIResourceList` for the external-metrics version.
pub(crate) fn external_resources(catalogue: &Catalogue) -> APIResourceList {
    APIResourceList {
        group_version: EXTERNAL_GROUP_VERSION.into(),
        resources: catalogue
            .external
            .iter()
            .map(|metric| api_resource(metric.to_string(), true, "ExternalMetricValueList"))
            .collect(),
    }
}

fn scope(namespaced: bool) -> &'static str {
    if namespaced { "Namespaced" } else { "Cluster" }
}

/// The v2 aggregated discovery document for every group and version served.
pub fn aggregated(catalogue: &Catalogue) -> Value {
    let mut parents: BTreeMap<&GroupResource, Vec<&str>> = BTreeMap::new();
    for (resource, metric) in &catalogue.custom {
        parents.entry(resource).or_default().push(metric);
    }
    let custom_versions: Vec<Value> = CustomVersion::ALL
        .iter()
        .map(|version| {
            let resources: Vec<Value> = parents
                .iter()
                .map(|(resource, metrics)| {
                    json!({
                        "resource": resource.to_string(),
                        "scope": scope(resource.is_namespaced()),
                        "singularResource": "",
                        "verbs": [],
                        "responseKind": {"group": "", "version": "", "kind": ""},
                        "subresources": metrics.iter().map(|metric| json!({
                            "subresource": metric,
                            "verbs": ["get"],
                            "responseKind": {
                                "group": CUSTOM_GROUP,
                                "version": version.as_str(),
                                "kind": "MetricValueList",
                            },
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({"version": version.as_str(), "freshness": "Current", "resources": resources})
        })
        .collect();
    let external_resources: Vec<Value> = catalogue
        .external
        .iter()
        .map(|metric| {
            json!({
                "resource": metric.as_ref(),
                "scope": "Namespaced",
                "singularResource": "",
                "verbs": ["get"],
                "responseKind": {
                    "group": EXTERNAL_GROUP,
                    "version": "v1beta1",
                    "kind": "ExternalMetricValueList",
                },
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": [
            {"metadata": {"name": CUSTOM_GROUP}, "versions": custom_versions},
            {"metadata": {"name": EXTERNAL_GROUP}, "versions": [
                {"version": "v1beta1", "freshness": "Current", "resources": external_resources}
            ]},
        ],
    })
}
