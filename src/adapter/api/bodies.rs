//! Wire shapes of `MetricValueList` (custom v1beta1 and v1beta2) and `ExternalMetricValueList`.
//!
//! k8s-openapi has no types for these groups. Field names follow CONTRACT.md §1.5: v1beta1 puts
//! `metricName` and `selector` (always present, `null` when unset) on each item and calls the
//! window `window`; v1beta2 nests `metric{name,selector}` and calls it `windowSeconds`; external
//! items always carry `metricLabels`. Every list carries top-level `kind` and `apiVersion`.
//! The structs borrow from the snapshot, so a response is serialized without copying values.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;

use crate::adapter::store::{Labels, Timestamp};

pub const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";
pub const EXTERNAL_GROUP: &str = "external.metrics.k8s.io";

/// The custom-metrics versions served, preferred first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomVersion {
    V1beta2,
    V1beta1,
}

impl CustomVersion {
    pub const ALL: [CustomVersion; 2] = [CustomVersion::V1beta2, CustomVersion::V1beta1];

    pub fn parse(version: &str) -> Option<CustomVersion> {
        match version {
            "v1beta1" => Some(CustomVersion::V1beta1),
            "v1beta2" => Some(CustomVersion::V1beta2),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CustomVersion::V1beta1 => "v1beta1",
            CustomVersion::V1beta2 => "v1beta2",
        }
    }

    pub fn group_version(self) -> &'static str {
        match self {
            CustomVersion::V1beta1 => "custom.metrics.k8s.io/v1beta1",
            CustomVersion::V1beta2 => "custom.metrics.k8s.io/v1beta2",
        }
    }
}

pub const EXTERNAL_GROUP_VERSION: &str = "external.metrics.k8s.io/v1beta1";

/// `metadata: {}` on lists.
#[derive(Serialize)]
pub struct ListMeta {}

/// A core/v1 ObjectReference with only the fields we know; the HPA reads only `name`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<&'a str>,
}

/// One value of a custom metric, version-neutral; serialized through [`MetricValueList`].
pub struct MetricValue<'a> {
    pub described_object: ObjectReference<'a>,
    pub metric_name: &'a str,
    pub selector: Option<&'a LabelSelector>,
    pub timestamp: Timestamp,
    pub window_seconds: Option<i64>,
    pub value: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemV1beta1<'a> {
    described_object: &'a ObjectReference<'a>,
    metric_name: &'a str,
    timestamp: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<i64>,
    value: &'a str,
    selector: Option<&'a LabelSelector>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemV1beta2<'a> {
    described_object: &'a ObjectReference<'a>,
    metric: MetricIdentifier<'a>,
    timestamp: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_seconds: Option<i64>,
    value: &'a str,
}

#[derive(Serialize)]
struct MetricIdentifier<'a> {
    name: &'a str,
    selector: Option<&'a LabelSelector>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct List<'a, T> {
    kind: &'static str,
    api_version: &'static str,
    metadata: ListMeta,
    items: &'a [T],
}

/// Serializes a `MetricValueList` in the requested version.
pub fn metric_value_list(version: CustomVersion, items: &[MetricValue<'_>]) -> Vec<u8> {
    let result = match version {
        CustomVersion::V1beta1 => {
            let items: Vec<ItemV1beta1<'_>> = items
                .iter()
                .map(|item| ItemV1beta1 {
                    described_object: &item.described_object,
                    metric_name: item.metric_name,
                    timestamp: item.timestamp,
                    window: item.window_seconds,
                    value: item.value,
                    selector: item.selector,
                })
                .collect();
            serde_json::to_vec(&List {
                kind: "MetricValueList",
                api_version: version.group_version(),
                metadata: ListMeta {},
                items: &items,
            })
        }
        CustomVersion::V1beta2 => {
            let items: Vec<ItemV1beta2<'_>> = items
                .iter()
                .map(|item| ItemV1beta2 {
                    described_object: &item.described_object,
                    metric: MetricIdentifier {
                        name: item.metric_name,
                        selector: item.selector,
                    },
                    timestamp: item.timestamp,
                    window_seconds: item.window_seconds,
                    value: item.value,
                })
                .collect();
            serde_json::to_vec(&List {
                kind: "MetricValueList",
                api_version: version.group_version(),
                metadata: ListMeta {},
                items: &items,
            })
        }
    };
    // Serializing plain structs of strings and integers into a Vec cannot fail.
    result.unwrap_or_default()
}

/// One value of an external metric.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricValue<'a> {
    pub metric_name: &'a str,
    pub metric_labels: &'a Labels,
    pub timestamp: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
    pub value: &'a str,
}

/// Serializes an `ExternalMetricValueList`.
pub fn external_metric_value_list(items: &[ExternalMetricValue<'_>]) -> Vec<u8> {
    serde_json::to_vec(&List {
        kind: "ExternalMetricValueList",
        api_version: EXTERNAL_GROUP_VERSION,
        metadata: ListMeta {},
        items,
    })
    .unwrap_or_default()
}
