//! Wire shapes of `MetricValueList` (custom v1beta1 and v1beta2) and `ExternalMetricValueList`.
//!
//! k8s-openapi has no types for these groups. Field names follow `docs/contract.md`, Bodies:
//! v1beta1 puts `metricName` and `selector` (always present, `null` when unset) on each item and
//! calls the window `window`; v1beta2 nests `metric{name,selector}` and calls it `windowSeconds`;
//! external items always carry `metricLabels`. Every list carries top-level `kind` and
//! `apiVersion`.
//! The structs borrow from the snapshot, so a response is written without copying values.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::adapter::store::{Labels, Timestamp};

pub use crate::resources::{CUSTOM_GROUP, EXTERNAL_GROUP};

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

    pub(crate) fn group_version(self) -> &'static str {
        match self {
            CustomVersion::V1beta1 => "custom.metrics.k8s.io/v1beta1",
            CustomVersion::V1beta2 => "custom.metrics.k8s.io/v1beta2",
        }
    }
}

pub(crate) const EXTERNAL_GROUP_VERSION: &str = "external.metrics.k8s.io/v1beta1";

/// What every item of one custom-metrics answer shares: the described objects' kind, apiVersion
/// and namespace, and the metric with its echoed selector. Rendered once per answer.
pub(crate) struct Common<'a> {
    pub kind: Option<&'static str>,
    pub api_version: Option<&'static str>,
    pub namespace: Option<&'a str>,
    pub metric_name: &'a str,
    pub selector: Option<&'a LabelSelector>,
}

/// What differs between the items of one answer: the object and its sample.
pub struct Item<'a> {
    pub name: &'a str,
    pub uid: Option<&'a str>,
    pub timestamp: Timestamp,
    pub window_seconds: Option<i64>,
    /// The quantity's milli-value, printed as the answer is written.
    pub value: i128,
}

/// One value of an external metric.
pub(crate) struct ExternalMetricValue<'a> {
    pub metric_name: &'a str,
    pub metric_labels: &'a Labels,
    pub timestamp: Timestamp,
    pub window: Option<i64>,
    /// The quantity's milli-value.
    pub value: i128,
}

// A Pods answer over a thousand pods is ~8,000 short strings; written through serde's
// formatter they cost more than everything else on the request path together (measured by
// `make bench`). The lists are therefore written directly into one buffer sized up front;
// strings that need no escaping (all names Kubernetes validates) are copied as they are, and
// any other string goes through serde_json's own escaper.

/// Bytes an item takes, about: enough to size the output buffer once.
const ITEM_BYTES: usize = 256;

/// Appends `text` as a JSON string literal.
fn push_str(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// Appends `,"key":"value"`-style members; `key` is a literal that needs no escaping.
fn push_member(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    push_str(out, value);
}

/// Like [`push_member`] for values this program produced from ASCII letters, digits and
/// punctuation other than `"` and `\\` (quantities, kinds, apiVersions): copied
/// without the escaping check.
fn push_own_member(out: &mut Vec<u8>, key: &str, value: &str) {
    debug_assert!(
        value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    );
    out.extend_from_slice(key.as_bytes());
    out.push(b'"');
    out.extend_from_slice(value.as_bytes());
    out.push(b'"');
}

/// `,"value":"<quantity>"`.
fn push_quantity(out: &mut Vec<u8>, milli: i128) {
    out.extend_from_slice(b",\"value\":\"");
    crate::quantity::write_milli(milli, out);
    out.push(b'"');
}

fn push_timestamp(out: &mut Vec<u8>, timestamp: &Timestamp) {
    out.extend_from_slice(b",\"timestamp\":\"");
    out.extend_from_slice(timestamp.as_bytes());
    out.push(b'"');
}

fn push_window(out: &mut Vec<u8>, key: &str, window: Option<i64>) {
    if let Some(window) = window {
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(window.to_string().as_bytes());
    }
}

fn push_selector(out: &mut Vec<u8>, selector: Option<&LabelSelector>) {
    match selector {
        Some(selector) => {
            let _ = serde_json::to_writer(&mut *out, selector);
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// Writes `{"kind":…,"apiVersion":…,"metadata":{},"items":[…]}` with one call per item.
fn list<T>(
    kind: &str,
    api_version: &str,
    items: &[T],
    mut item: impl FnMut(&mut Vec<u8>, &T),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + items.len() * ITEM_BYTES);
    push_member(&mut out, "{\"kind\":", kind);
    push_member(&mut out, ",\"apiVersion\":", api_version);
    out.extend_from_slice(b",\"metadata\":{},\"items\":[");
    for (i, value) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(&mut out, value);
    }
    out.extend_from_slice(b"]}");
    out
}

/// Serializes a `MetricValueList` in the requested version. The described object is written
/// `kind, namespace, name, uid, apiVersion`, each left out when unknown, as Go's `omitempty` does.
pub(crate) fn metric_value_list(
    version: CustomVersion,
    common: &Common<'_>,
    items: &[Item<'_>],
) -> Vec<u8> {
    // `{"describedObject":{"kind":…,"namespace":…,"name":` — then the item's name
    let mut object_head = b"{\"describedObject\":{".to_vec();
    if let Some(kind) = common.kind {
        push_own_member(&mut object_head, "\"kind\":", kind);
        object_head.push(b',');
    }
    if let Some(namespace) = common.namespace {
        push_member(&mut object_head, "\"namespace\":", namespace);
        object_head.push(b',');
    }
    object_head.extend_from_slice(b"\"name\":");
    // after the name (and uid): `,"apiVersion":…}` and the metric up to the timestamp
    let mut object_tail = Vec::new();
    if let Some(api_version) = common.api_version {
        push_own_member(&mut object_tail, ",\"apiVersion\":", api_version);
    }
    object_tail.push(b'}');
    let mut selector = Vec::new();
    push_selector(&mut selector, common.selector);
    let (window_key, item_tail) = match version {
        CustomVersion::V1beta1 => {
            push_member(&mut object_tail, ",\"metricName\":", common.metric_name);
            let mut tail = b",\"selector\":".to_vec();
            tail.extend_from_slice(&selector);
            (",\"window\":", tail)
        }
        CustomVersion::V1beta2 => {
            push_member(
                &mut object_tail,
                ",\"metric\":{\"name\":",
                common.metric_name,
            );
            object_tail.extend_from_slice(b",\"selector\":");
            object_tail.extend_from_slice(&selector);
            object_tail.push(b'}');
            (",\"windowSeconds\":", Vec::new())
        }
    };
    list(
        "MetricValueList",
        version.group_version(),
        items,
        |out, item| {
            out.extend_from_slice(&object_head);
            push_str(out, item.name);
            if let Some(uid) = item.uid {
                push_member(out, ",\"uid\":", uid);
            }
            out.extend_from_slice(&object_tail);
            push_timestamp(out, &item.timestamp);
            push_window(out, window_key, item.window_seconds);
            push_quantity(out, item.value);
            out.extend_from_slice(&item_tail);
            out.push(b'}');
        },
    )
}

/// Serializes an `ExternalMetricValueList`.
pub(crate) fn external_metric_value_list(items: &[ExternalMetricValue<'_>]) -> Vec<u8> {
    list(
        "ExternalMetricValueList",
        EXTERNAL_GROUP_VERSION,
        items,
        |out, item| {
            push_member(out, "{\"metricName\":", item.metric_name);
            out.extend_from_slice(b",\"metricLabels\":{");
            for (i, (key, value)) in item.metric_labels.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_str(out, key);
                out.push(b':');
                push_str(out, value);
            }
            out.push(b'}');
            push_timestamp(out, &item.timestamp);
            push_window(out, ",\"window\":", item.window);
            push_quantity(out, item.value);
            out.push(b'}');
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::SystemTime;

    #[test]
    fn strings_that_need_escaping_are_escaped() {
        let labels: Labels =
            [("quote\"key".to_string(), "back\\slash\nnewline".to_string())].into();
        let body = external_metric_value_list(&[ExternalMetricValue {
            metric_name: "lag",
            metric_labels: &labels,
            timestamp: Timestamp::from(SystemTime::UNIX_EPOCH),
            window: None,
            value: 1000,
        }]);
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(
            parsed["items"][0]["metricLabels"],
            json!({"quote\"key": "back\\slash\nnewline"})
        );
    }

    #[test]
    fn every_optional_field_is_left_out_or_null_as_go_does() {
        let common = Common {
            kind: None,
            api_version: None,
            namespace: None,
            metric_name: "m",
            selector: None,
        };
        let item = Item {
            name: "w",
            uid: Some("u-1"),
            timestamp: Timestamp::from(SystemTime::UNIX_EPOCH),
            window_seconds: None,
            value: 0,
        };
        let parse =
            |bytes: Vec<u8>| -> serde_json::Value { serde_json::from_slice(&bytes).expect("json") };
        let v1 = parse(metric_value_list(
            CustomVersion::V1beta1,
            &common,
            std::slice::from_ref(&item),
        ));
        assert_eq!(
            v1["items"][0],
            json!({"describedObject": {"name": "w", "uid": "u-1"}, "metricName": "m",
                   "timestamp": "1970-01-01T00:00:00Z", "value": "0", "selector": null})
        );
        let v2 = parse(metric_value_list(CustomVersion::V1beta2, &common, &[item]));
        assert_eq!(
            v2["items"][0],
            json!({"describedObject": {"name": "w", "uid": "u-1"}, "metric": {"name": "m", "selector": null},
                   "timestamp": "1970-01-01T00:00:00Z", "value": "0"})
        );
        let empty = parse(metric_value_list(CustomVersion::V1beta2, &common, &[]));
        assert_eq!(
            empty,
            json!({"kind": "MetricValueList", "apiVersion": "custom.metrics.k8s.io/v1beta2", "metadata": {}, "items": []})
        );
    }

    #[test]
    fn names_that_need_escaping_are_escaped_in_custom_lists() {
        let common = Common {
            kind: Some("Pod"),
            api_version: Some("v1"),
            namespace: Some("n\"s"),
            metric_name: "m\\x",
            selector: None,
        };
        let item = Item {
            name: "p\u{1}",
            uid: None,
            timestamp: Timestamp::from(SystemTime::UNIX_EPOCH),
            window_seconds: Some(15),
            value: 1000,
        };
        let parsed: serde_json::Value =
            serde_json::from_slice(&metric_value_list(CustomVersion::V1beta2, &common, &[item]))
                .expect("json");
        assert_eq!(
            parsed["items"][0],
            json!({"describedObject": {"kind": "Pod", "namespace": "n\"s", "name": "p\u{1}", "apiVersion": "v1"},
                   "metric": {"name": "m\\x", "selector": null}, "timestamp": "1970-01-01T00:00:00Z",
                   "windowSeconds": 15, "value": "1"})
        );
    }
}
