//! OpenAPI documents for the aggregator to merge into the cluster's: `/openapi/v2` (Swagger 2.0),
//! `/openapi/v3` (the per-group-version index) and `/openapi/v3/apis/<g>/<v>` (OpenAPI 3.0).
//!
//! Built once, from one description of the routes and schemas. Schemas reference only our own
//! definitions (Kubernetes types used inside them are inlined as objects), so merging never
//! depends on names from the cluster's spec.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use super::bodies::{CustomVersion, EXTERNAL_GROUP_VERSION};

const PREFIX: &str = "io.k8s.metrics.pkg.apis";

/// One route of one group-version.
struct Route {
    path: String,
    parameters: &'static [&'static str],
    response: String,
    description: &'static str,
}

fn schema_name(group_version: &str, kind: &str) -> String {
    let package = if group_version.starts_with("external") {
        "external_metrics"
    } else {
        "custom_metrics"
    };
    let version = group_version.rsplit('/').next().unwrap_or(group_version);
    format!("{PREFIX}.{package}.{version}.{kind}")
}

fn routes(group_version: &str) -> Vec<Route> {
    let base = format!("/apis/{group_version}");
    if group_version == EXTERNAL_GROUP_VERSION {
        return vec![Route {
            path: format!("{base}/namespaces/{{namespace}}/{{metric}}"),
            parameters: &["namespace", "metric"],
            response: schema_name(group_version, "ExternalMetricValueList"),
            description: "every series of an external metric that matches labelSelector",
        }];
    }
    let list = schema_name(group_version, "MetricValueList");
    vec![
        Route {
            path: format!("{base}/namespaces/{{namespace}}/{{resource}}/{{name}}/{{metric}}"),
            parameters: &["namespace", "resource", "name", "metric"],
            response: list.clone(),
            description: "a metric of one namespaced object, or of every object ('*') matching labelSelector",
        },
        Route {
            path: format!("{base}/namespaces/{{namespace}}/metrics/{{metric}}"),
            parameters: &["namespace", "metric"],
            response: list.clone(),
            description: "a metric describing the namespace itself",
        },
        Route {
            path: format!("{base}/{{resource}}/{{name}}/{{metric}}"),
            parameters: &["resource", "name", "metric"],
            response: list,
            description: "a metric of a cluster-scoped object, or of every one ('*') matching labelSelector",
        },
    ]
}

fn string_schema() -> Value {
    json!({"type": "string"})
}

fn schemas(group_version: &str, reference: &str) -> Map<String, Value> {
    let gvk = |kind: &str| {
        let (group, version) = group_version.split_once('/').unwrap_or(("", group_version));
        json!([{"group": group, "version": version, "kind": kind}])
    };
    let object = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let mut schemas = Map::new();
    let list = |kind: &str, item: &str| {
        json!({
            "type": "object",
            "required": ["items"],
            "properties": {
                "kind": string_schema(),
                "apiVersion": string_schema(),
                "metadata": object,
                "items": {"type": "array", "items": {"$ref": format!("{reference}{}", schema_name(group_version, item))}},
            },
            "x-kubernetes-group-version-kind": gvk(kind),
        })
    };
    if group_version == EXTERNAL_GROUP_VERSION {
        schemas.insert(
            schema_name(group_version, "ExternalMetricValueList"),
            list("ExternalMetricValueList", "ExternalMetricValue"),
        );
        schemas.insert(
            schema_name(group_version, "ExternalMetricValue"),
            json!({
                "type": "object",
                "required": ["metricName", "metricLabels", "timestamp", "value"],
                "properties": {
                    "metricName": string_schema(),
                    "metricLabels": {"type": "object", "additionalProperties": string_schema()},
                    "timestamp": {"type": "string", "format": "date-time"},
                    "window": {"type": "integer", "format": "int64"},
                    "value": string_schema(),
                },
            }),
        );
        return schemas;
    }
    schemas.insert(
        schema_name(group_version, "MetricValueList"),
        list("MetricValueList", "MetricValue"),
    );
    let mut value_properties = json!({
        "describedObject": object,
        "timestamp": {"type": "string", "format": "date-time"},
        "value": string_schema(),
    });
    if group_version.ends_with("v1beta1") {
        value_properties["metricName"] = string_schema();
        value_properties["selector"] = object.clone();
        value_properties["window"] = json!({"type": "integer", "format": "int64"});
    } else {
        value_properties["metric"] = json!({
            "type": "object",
            "required": ["name"],
            "properties": {"name": string_schema(), "selector": object},
        });
        value_properties["windowSeconds"] = json!({"type": "integer", "format": "int64"});
    }
    schemas.insert(
        schema_name(group_version, "MetricValue"),
        json!({"type": "object", "required": ["describedObject", "timestamp", "value"], "properties": value_properties}),
    );
    schemas
}

fn query_parameters(group_version: &str) -> Vec<(&'static str, &'static str)> {
    let mut parameters = vec![(
        "labelSelector",
        "selects the described objects (custom) or the series (external)",
    )];
    if group_version != EXTERNAL_GROUP_VERSION {
        parameters.push(("metricLabelSelector", "selects the metric series"));
    }
    parameters
}

fn group_versions() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = CustomVersion::ALL
        .iter()
        .map(|v| v.group_version())
        .collect();
    all.push(EXTERNAL_GROUP_VERSION);
    all
}

fn operation_id(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_matches(['{', '}']))
        .collect::<Vec<_>>()
        .join("_")
}

/// Swagger 2.0 for every group-version served.
pub fn v2() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut paths = Map::new();
        let mut definitions = Map::new();
        for group_version in group_versions() {
            definitions.extend(schemas(group_version, "#/definitions/"));
            for route in routes(group_version) {
                let mut parameters: Vec<Value> = route
                    .parameters
                    .iter()
                    .map(|name| json!({"name": name, "in": "path", "required": true, "type": "string"}))
                    .collect();
                parameters.extend(query_parameters(group_version).into_iter().map(
                    |(name, description)| json!({"name": name, "in": "query", "type": "string", "description": description, "uniqueItems": true}),
                ));
                paths.insert(
                    route.path.clone(),
                    json!({"get": {
                        "description": route.description,
                        "operationId": operation_id(&route.path),
                        "produces": ["application/json"],
                        "schemes": ["https"],
                        "parameters": parameters,
                        "responses": {
                            "200": {"description": "OK", "schema": {"$ref": format!("#/definitions/{}", route.response)}},
                            "401": {"description": "Unauthorized"},
                        },
                    }}),
                );
            }
        }
        serde_json::to_vec(&json!({
            "swagger": "2.0",
            "info": {"title": "kubemind metrics API", "version": env!("CARGO_PKG_VERSION")},
            "paths": paths,
            "definitions": definitions,
        }))
        .unwrap_or_default()
    })
}

/// OpenAPI 3.0 for one group-version, or `None` if it is not served.
pub(crate) fn v3_group_version(group_version: &str) -> Option<&'static [u8]> {
    static DOCS: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    let docs = DOCS.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|gv| (gv, v3_document(gv)))
            .collect()
    });
    docs.iter()
        .find(|(gv, _)| *gv == group_version)
        .map(|(_, doc)| doc.as_slice())
}

fn v3_document(group_version: &str) -> Vec<u8> {
    let mut paths = Map::new();
    for route in routes(group_version) {
        let mut parameters: Vec<Value> = route
            .parameters
            .iter()
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(query_parameters(group_version).into_iter().map(|(name, description)| {
            json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
        }));
        paths.insert(
            route.path.clone(),
            json!({"get": {
                "description": route.description,
                "operationId": operation_id(&route.path),
                "parameters": parameters,
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", route.response)}}}},
                    "401": {"description": "Unauthorized"},
                },
            }}),
        );
    }
    serde_json::to_vec(&json!({
        "openapi": "3.0.0",
        "info": {"title": "kubemind metrics API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": schemas(group_version, "#/components/schemas/")},
    }))
    .unwrap_or_default()
}

/// The `/openapi/v3` index: each group-version's document with a content hash in its URL.
pub(crate) fn v3_index() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut paths = Map::new();
        for group_version in group_versions() {
            let mut hasher = DefaultHasher::new();
            v3_group_version(group_version).hash(&mut hasher);
            paths.insert(
                format!("apis/{group_version}"),
                json!({"serverRelativeURL": format!("/openapi/v3/apis/{group_version}?hash={:016X}", hasher.finish())}),
            );
        }
        serde_json::to_vec(&json!({"paths": paths})).unwrap_or_default()
    })
}
