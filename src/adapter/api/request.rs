//! Turns a metric-read URL into a typed request, or a 400 that says what is wrong with it.
//!
//! Owns the path grammar of the metrics APIs below `/apis/<group>/<version>/` (see
//! `docs/contract.md`): each segment is percent-decoded (the wildcard arrives as `%2A`), must be
//! UTF-8, and must be a single name (not empty, `.`, `..`, and no `/` once decoded). Then each
//! segment is checked as Kubernetes checks names: a namespace is a DNS-1123 label, an object
//! name a DNS-1123 subdomain, a resource `plural[.group]` in the same alphabet, a metric name
//! letters, digits and `_:.-` — anything else (a NUL byte, say) is a 400, never an empty
//! answer. The query is decoded with `+` as a space; `labelSelector` and
//! `metricLabelSelector` are parsed, unknown parameters are ignored.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use super::error::Error;
use crate::resources::GroupResource;
use crate::selector::Selector;

/// Which object(s) a custom-metrics request describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One named object: the answer has exactly one item.
    Named(String),
    /// Every object (`*`) that matches the label selector.
    All,
}

/// A custom-metrics read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CustomRequest {
    /// The namespace in the path; `None` on the root-scoped form.
    pub namespace: Option<String>,
    pub resource: GroupResource,
    pub target: Target,
    pub metric: String,
    pub label_selector: Selector,
    pub metric_selector: Option<Selector>,
    /// Whether this is `/namespaces/{ns}/metrics/{m}` (the namespace's own metric).
    pub namespace_metric: bool,
}

/// An external-metrics read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExternalRequest {
    pub namespace: String,
    pub metric: String,
    pub selector: Selector,
}

fn invalid_path() -> Error {
    Error::BadRequest("invalid request path".into())
}

/// Splits the part of a path after `/apis/<group>/<version>/` into decoded, validated segments.
pub fn segments(rest: &str) -> Result<Vec<String>, Error> {
    rest.split('/').map(decode_segment).collect()
}

fn decode_segment(raw: &str) -> Result<String, Error> {
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Error::BadRequest("request path is not valid UTF-8".into()))?;
    match decoded.as_ref() {
        "" => Err(invalid_path()),
        "." | ".." => Err(Error::BadRequest(format!(
            "invalid request path: segment may not be {decoded:?}"
        ))),
        name if name.contains(['/', '%']) => Err(Error::BadRequest(format!(
            "invalid request path: segment {:?} may not contain '/' or '%'",
            truncate(name)
        ))),
        _ => Ok(decoded.into_owned()),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(128).collect()
}

/// Query parameters a metric read uses.
#[derive(Debug, Default, PartialEq)]
pub struct Query {
    pub label_selector: Option<String>,
    pub metric_label_selector: Option<String>,
}

/// Longest query string accepted.
const MAX_QUERY_LEN: usize = 2 * crate::selector::MAX_LEN + 1024;

/// Decodes `a=b&c=d` with `+` as a space; the first of repeated keys wins, as in Go's `Get`.
pub(crate) fn parse_query(raw: Option<&str>) -> Result<Query, Error> {
    let mut query = Query::default();
    let Some(raw) = raw else {
        return Ok(query);
    };
    if raw.len() > MAX_QUERY_LEN {
        return Err(Error::BadRequest(format!(
            "query string is longer than {MAX_QUERY_LEN} bytes"
        )));
    }
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match decode_query_part(key)?.as_ref() {
            "labelSelector" => &mut query.label_selector,
            "metricLabelSelector" => &mut query.metric_label_selector,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(decode_query_part(value)?.into_owned());
        }
    }
    Ok(query)
}

fn decode_query_part(part: &str) -> Result<Cow<'_, str>, Error> {
    let spaced: Cow<'_, str> = if part.contains('+') {
        Cow::Owned(part.replace('+', " "))
    } else {
        Cow::Borrowed(part)
    };
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|text| Cow::Owned(text.into_owned()))
        .map_err(|_| Error::BadRequest("query string is not valid UTF-8".into()))
}

fn parse_selector(parameter: &str, text: Option<&str>) -> Result<Option<Selector>, Error> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => Selector::parse(text)
            .map(Some)
            .map_err(|e| Error::BadRequest(format!("invalid {parameter}: {e}"))),
    }
}

/// A DNS-1123 label: 1–63 of `a-z`, `0-9`, `-`, starting and ending alphanumeric.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A DNS-1123 subdomain: up to 253 characters of dot-separated labels.
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// What a path segment is, for the 400 that names what is wrong with it.
#[derive(Debug, Clone, Copy)]
enum Segment {
    Namespace,
    Name,
    Resource,
    Metric,
}

fn check(kind: Segment, value: String) -> Result<String, Error> {
    let (valid, rule) = match kind {
        Segment::Namespace => (is_dns_label(&value), "a namespace is a DNS-1123 label"),
        Segment::Name => (
            value == "*" || is_dns_subdomain(&value),
            "an object name is a DNS-1123 subdomain",
        ),
        Segment::Resource => (
            is_dns_subdomain(&value),
            "a resource is plural[.group] in lowercase letters, digits, '-' and '.'",
        ),
        Segment::Metric => (
            (1..=253).contains(&value.len())
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_:.-".contains(&b)),
            "a metric name is letters, digits, '_', ':', '.' and '-'",
        ),
    };
    if valid {
        Ok(value)
    } else {
        Err(Error::BadRequest(format!(
            "invalid request path: {:?}: {rule}",
            truncate(&value)
        )))
    }
}

fn target(name: String) -> Result<Target, Error> {
    if name == "*" {
        Ok(Target::All)
    } else {
        check(Segment::Name, name).map(Target::Named)
    }
}

fn namespace(name: String) -> Result<String, Error> {
    if name == "*" {
        Err(Error::BadRequest(
            "invalid request path: the namespace may not be a wildcard".into(),
        ))
    } else {
        check(Segment::Namespace, name)
    }
}

/// Reads a custom-metrics path (segments after the version) and its query.
pub fn custom(segments: Vec<String>, query: &Query) -> Result<CustomRequest, Error> {
    let label_selector =
        parse_selector("labelSelector", query.label_selector.as_deref())?.unwrap_or_default();
    let metric_selector = parse_selector(
        "metricLabelSelector",
        query.metric_label_selector.as_deref(),
    )?;
    let mut parts = segments.into_iter();
    let first = parts.next().ok_or_else(invalid_path)?;
    let rest: Vec<String> = parts.collect();
    let request = |namespace, resource: String, name, metric, namespace_metric| {
        Ok(CustomRequest {
            namespace,
            resource: GroupResource::parse(&check(Segment::Resource, resource)?),
            target: target(name)?,
            metric: check(Segment::Metric, metric)?,
            label_selector: label_selector.clone(),
            metric_selector: metric_selector.clone(),
            namespace_metric,
        })
    };
    if first == "namespaces" {
        let mut rest = rest.into_iter();
        match (
            rest.next(),
            rest.next(),
            rest.next(),
            rest.next(),
            rest.next(),
        ) {
            (Some(ns), Some(pseudo), Some(metric), None, None) if pseudo == "metrics" => {
                let ns = namespace(ns)?;
                request(None, "namespaces".into(), ns, metric, true)
            }
            (Some(ns), Some(resource), Some(name), Some(metric), None) => {
                let ns = namespace(ns)?;
                request(Some(ns), resource, name, metric, false)
            }
            _ => Err(invalid_path()),
        }
    } else {
        match <[String; 2]>::try_from(rest) {
            Ok([name, metric]) => request(None, first, name, metric, false),
            Err(_) => Err(invalid_path()),
        }
    }
}

/// Reads an external-metrics path (`namespaces/{ns}/{metric}`) and its query.
pub fn external(segments: Vec<String>, query: &Query) -> Result<ExternalRequest, Error> {
    let selector =
        parse_selector("labelSelector", query.label_selector.as_deref())?.unwrap_or_default();
    match <[String; 3]>::try_from(segments) {
        Ok([first, ns, metric]) if first == "namespaces" => Ok(ExternalRequest {
            namespace: namespace(ns)?,
            metric: check(Segment::Metric, metric)?,
            selector,
        }),
        _ => Err(invalid_path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom_path(path: &str, query: Option<&str>) -> Result<CustomRequest, Error> {
        custom(segments(path)?, &parse_query(query)?)
    }

    #[test]
    fn decodes_the_wildcard_and_selectors() {
        let request = custom_path(
            "namespaces/demo/pods/%2A/triton_queue_time_ms",
            Some("labelSelector=app%3Dtriton%2Ctier+in+%28a%2Cb%29&pretty=true"),
        )
        .expect("valid");
        assert_eq!(request.namespace.as_deref(), Some("demo"));
        assert_eq!(request.resource, GroupResource::pods());
        assert_eq!(request.target, Target::All);
        assert_eq!(request.metric, "triton_queue_time_ms");
        assert_eq!(
            request.label_selector.to_string(),
            "app=triton,tier in (a,b)"
        );
        assert_eq!(request.metric_selector, None);
    }

    #[test]
    fn reads_every_path_shape() {
        let named = custom_path("namespaces/demo/deployments/triton/m", None).expect("valid");
        assert_eq!(named.resource, GroupResource::parse("deployments.apps"));
        assert_eq!(named.target, Target::Named("triton".into()));
        let node = custom_path("nodes/gpu-node-1/m", None).expect("valid");
        assert_eq!(node.namespace, None);
        assert_eq!(node.resource, GroupResource::parse("nodes"));
        let ns = custom_path("namespaces/demo/metrics/m", None).expect("valid");
        assert!(ns.namespace_metric);
        assert_eq!(ns.resource, GroupResource::namespaces());
        assert_eq!(ns.target, Target::Named("demo".into()));
        let with_metric_selector = custom_path(
            "namespaces/demo/pods/*/m",
            Some("metricLabelSelector=model%3Dresnet"),
        )
        .expect("valid");
        assert_eq!(
            with_metric_selector.metric_selector.map(|s| s.to_string()),
            Some("model=resnet".into())
        );
    }

    #[test]
    fn refuses_bad_paths() {
        let cases = [
            "namespaces/x/pods",
            "namespaces/x",
            "namespaces",
            "pods",
            "nodes/n",
            "nodes/n/m/extra",
            "namespaces/x/pods/*/m/extra",
            "namespaces//pods/*/m",
            "namespaces/x/pods/..%2F/m",
            "namespaces/x/pods/a%2Fb/m",
            "namespaces/x/pods/./m",
            "namespaces/%2A/pods/*/m",
            "namespaces/x/pods/%FF/m",
            // names as Kubernetes checks them
            "namespaces/demo%00/pods/*/m",
            "namespaces/Demo/pods/*/m",
            "namespaces/-demo/pods/*/m",
            "namespaces/demo/pods/triton%00/m",
            "namespaces/demo/pods/Triton/m",
            "namespaces/demo/po%20ds/*/m",
            "namespaces/demo/pods/*/m%00",
            "namespaces/demo/pods/*/m%20n",
            "nodes/gpu%0Anode/m",
        ];
        for path in cases {
            let err = custom_path(path, None).expect_err(path);
            assert_eq!(err.status_code(), 400, "{path}: {err}");
        }
    }

    #[test]
    fn refuses_bad_selectors() {
        let err = custom_path("namespaces/x/pods/*/m", Some("labelSelector=app%3D%3D%3D"))
            .expect_err("bad selector");
        assert!(
            err.to_string().starts_with("invalid labelSelector"),
            "{err}"
        );
        let err = custom_path("namespaces/x/pods/*/m", Some("metricLabelSelector=in"))
            .expect_err("bad selector");
        assert!(
            err.to_string().starts_with("invalid metricLabelSelector"),
            "{err}"
        );
        let err = parse_query(Some("labelSelector=%C3%28")).expect_err("bad utf-8");
        assert_eq!(err.status_code(), 400);
    }

    #[test]
    fn reads_external_paths() {
        let request = external(
            segments("namespaces/demo/kafka_consumergroup_lag").expect("valid"),
            &parse_query(Some("labelSelector=topic%3Dcv-jobs")).expect("valid"),
        )
        .expect("valid");
        assert_eq!(request.namespace, "demo");
        assert_eq!(request.metric, "kafka_consumergroup_lag");
        assert_eq!(request.selector.to_string(), "topic=cv-jobs");
        for path in ["namespaces/demo", "demo/m", "namespaces/demo/m/extra"] {
            let err = external(segments(path).unwrap_or_default(), &Query::default());
            assert!(err.is_err(), "{path}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_paths_and_queries(
            path in "[a-z0-9*%./_-]{0,12}(/[a-zA-Z0-9*%./_+-]{0,12}){0,6}",
            query in "\\PC{0,48}",
        ) {
            if let (Ok(segments), Ok(query)) = (segments(&path), parse_query(Some(&query))) {
                let _ = custom(segments.clone(), &query);
                let _ = external(segments, &query);
            }
        }

        #[test]
        fn every_error_is_a_client_error(
            path in "(namespaces|nodes|pods|%2A|\\*|%FF|%2F|\\.\\.)(/(demo|\\*|%2A|metrics|pods|%2F|x|)){0,5}",
            selector in "[a-z=!(), ]{0,16}",
        ) {
            let query = format!("labelSelector={selector}");
            let result = segments(&path).and_then(|s| custom(s, &parse_query(Some(&query))?));
            if let Err(error) = result {
                proptest::prop_assert_eq!(error.status_code(), 400);
            }
        }
    }

    #[test]
    fn first_repeated_parameter_wins() {
        let query = parse_query(Some("labelSelector=a%3D1&labelSelector=b%3D2")).expect("valid");
        assert_eq!(query.label_selector.as_deref(), Some("a=1"));
    }
}
