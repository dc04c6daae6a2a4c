//! Answers metric reads from one [`Snapshot`]: pure functions of (snapshot, request, now).
//!
//! The semantics of `docs/architecture.md` hold here (the answers are tabled in
//! `docs/contract.md`, Metric reads: what is returned): a Pods (or any wildcard) request returns
//! one item per object in the namespace that matches `labelSelector` and has a fresh sample
//! matching `metricLabelSelector` — and nothing else; a named object returns exactly one item or
//! a 404; an external request returns every fresh matching series or a 404. A metric not served
//! for the resource at all is a 404 naming the metric. Nothing here waits or allocates per
//! object beyond the items it returns.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::bodies::{self, Common, CustomVersion, ExternalMetricValue, Item};
use super::error::Error;
use super::request::{CustomRequest, ExternalRequest, Target};
use crate::adapter::store::{
    ExternalSeries, MetricLookup, Object, Objects, Sample, SampleTime, Snapshot, Timestamp,
    oldest_fresh,
};

/// The most items a list's storage is sized for before the objects are read: 1,024 items of
/// about 96 bytes stay below 128 KiB, a small allocation for any allocator (glibc's maps
/// larger ones on their own), even where a selector then matches a few of a large
/// namespace's pods; a larger list grows from there.
const PRESIZED_ITEMS: usize = 1024;
const _: () = assert!(PRESIZED_ITEMS * std::mem::size_of::<Item<'static>>() < 128 * 1024);

/// When a sample counts: taken at `now`, no older than `max_age`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Freshness {
    pub now: SystemTime,
    pub max_age: Duration,
}

impl Freshness {
    pub(crate) fn cutoff(self) -> SampleTime {
        oldest_fresh(self.now, self.max_age)
    }
}

/// What a read produced: the serialized body, how many items it holds, and the oldest sample
/// among them (the first to age past max-age, changing the answer). A clone shares the body.
#[derive(Clone)]
pub(crate) struct Answer {
    pub body: Bytes,
    /// The memory the body's buffer takes (its capacity), which may be more than its length.
    pub body_memory: usize,
    pub items: usize,
    pub oldest: Option<SampleTime>,
}

fn sample_for<'a>(
    object: &'a Object,
    request: &CustomRequest,
    lookup: &mut MetricLookup<'_, 'a>,
    cutoff: SampleTime,
) -> Option<&'a Sample> {
    lookup
        .get(&object.metrics)
        .filter(|sample| sample.is_newer_than(cutoff))
        .filter(|sample| {
            request
                .metric_selector
                .as_ref()
                .is_none_or(|selector| selector.matches(sample.labels()))
        })
}

fn metric_not_found(request: &CustomRequest, name: Option<&str>) -> Error {
    let selector = match (&request.target, &request.metric_selector) {
        (_, Some(metric_selector)) => Some(metric_selector.to_string()),
        (Target::All, None) => Some(request.label_selector.to_string()),
        (Target::Named(_), None) => None,
    };
    Error::MetricNotFound {
        metric: request.metric.clone(),
        resource: request.resource.to_string(),
        name: name.map(str::to_string),
        selector,
    }
}

/// The namespace a custom read is scoped to (`None` for a cluster-scoped resource), or why the
/// request cannot name one.
fn scope(request: &CustomRequest) -> Result<Option<&str>, Error> {
    // Root paths are for cluster-scoped resources; namespaced paths also serve cluster-scoped
    // ones (the HPA asks for a Node as /namespaces/{hpaNs}/nodes/{name}/{m}).
    match (&request.namespace, request.resource.is_namespaced()) {
        (Some(ns), true) => Ok(Some(ns.as_str())),
        (_, false) => Ok(None),
        (None, true) => Err(Error::BadRequest(format!(
            "{} is namespaced: use /namespaces/{{namespace}}/{}/…",
            request.resource, request.resource
        ))),
    }
}

/// The objects a custom read answers from, shared as the snapshot holds them (`None` where the
/// scope has none), once the metric is known to be served for the resource: everything of the
/// snapshot an answer depends on but the clock.
pub(crate) fn objects_read<'s>(
    snapshot: &'s Snapshot,
    request: &CustomRequest,
) -> Result<Option<&'s Arc<Objects>>, Error> {
    let scope = scope(request)?;
    if !snapshot.serves(&request.resource, &request.metric) {
        let name = match &request.target {
            Target::Named(name) => Some(name.as_str()),
            Target::All => None,
        };
        return Err(metric_not_found(request, name));
    }
    Ok(snapshot.shared_objects(scope, &request.resource))
}

/// Answers a custom-metrics read in `version` from `objects`, as [`objects_read`] found them.
pub(crate) fn custom(
    objects: Option<&Objects>,
    request: &CustomRequest,
    version: CustomVersion,
    freshness: Freshness,
) -> Result<Answer, Error> {
    let resource = &request.resource;
    let scope = scope(request)?;
    let selector_echo: Option<LabelSelector> = request
        .metric_selector
        .as_ref()
        .map(|s| s.to_label_selector());
    // what every item shares, looked up once rather than per object
    let common = Common {
        kind: resource.kind(),
        api_version: resource.api_version(),
        namespace: scope,
        metric_name: &request.metric,
        selector: selector_echo.as_ref(),
    };
    let mut stamps = Stamps::default();
    let items: Vec<Item<'_>> = match &request.target {
        Target::Named(name) => {
            let Some((name, object)) = objects.and_then(|o| o.get_key_value(name.as_str())) else {
                return Err(Error::ObjectNotFound {
                    resource: resource.clone(),
                    name: name.clone(),
                });
            };
            let mut lookup = MetricLookup::new(&request.metric);
            match sample_for(object, request, &mut lookup, freshness.cutoff()) {
                Some(sample) => vec![item(name, object, sample, &mut stamps)],
                None => return Err(metric_not_found(request, Some(name))),
            }
        }
        Target::All => {
            let cutoff = freshness.cutoff();
            let mut lookup = MetricLookup::new(&request.metric);
            // sized for every object up to a bound, rather than grown (and copied) a dozen
            // times on the way to a Deployment's thousand pods
            let mut items = Vec::with_capacity(objects.map_or(0, |o| o.len()).min(PRESIZED_ITEMS));
            items.extend(
                objects
                    .into_iter()
                    .flatten()
                    .filter(|(_, object)| request.label_selector.matches(&object.labels))
                    .filter_map(|(name, object)| {
                        let sample = sample_for(object, request, &mut lookup, cutoff)?;
                        Some(item(name, object, sample, &mut stamps))
                    }),
            );
            items
        }
    };
    let body = bodies::metric_value_list(version, &common, &items);
    Ok(Answer {
        body_memory: body.capacity(),
        body: body.into(),
        items: items.len(),
        oldest: stamps.oldest,
    })
}

fn item<'a>(
    name: &'a str,
    object: &'a Object,
    sample: &'a Sample,
    stamps: &mut Stamps,
) -> Item<'a> {
    Item {
        name,
        uid: object.uid.as_deref(),
        timestamp: stamps.of(sample.measured()),
        window_seconds: sample.window_seconds().map(i64::from),
        value: sample.milli(),
    }
}

/// The timestamps of one answer's items, by whole second: a thousand pods' values were
/// measured within a second or two of each other, so a few texts serve them all. Notes the
/// oldest on the way.
#[derive(Default)]
struct Stamps {
    recent: [Option<(i64, Timestamp)>; 2],
    next: usize,
    oldest: Option<SampleTime>,
}

impl Stamps {
    fn of(&mut self, time: SampleTime) -> Timestamp {
        self.oldest = Some(self.oldest.map_or(time, |oldest| oldest.min(time)));
        let second = time.whole_seconds();
        if let Some((_, text)) = self.recent.iter().flatten().find(|(s, _)| *s == second) {
            return *text;
        }
        let text = Timestamp::from(SystemTime::from(time));
        self.recent[self.next] = Some((second, text));
        self.next = (self.next + 1) % self.recent.len();
        text
    }
}

/// Answers an external-metrics read: every fresh series visible from the namespace whose labels
/// match the selector. No such series is a 404: an empty list would read as "no data" to the HPA
/// and an error either way, and the 404 says why.
pub fn external(
    snapshot: &Snapshot,
    request: &ExternalRequest,
    freshness: Freshness,
) -> Result<Answer, Error> {
    external_series(snapshot.external(&request.metric), request, freshness)
}

/// Answers an external-metrics read from `series` (a snapshot's, or a Prometheus answer).
pub(crate) fn external_series(
    series: &[ExternalSeries],
    request: &ExternalRequest,
    freshness: Freshness,
) -> Result<Answer, Error> {
    let cutoff = freshness.cutoff();
    let items: Vec<ExternalMetricValue<'_>> = series
        .iter()
        .filter(|series| {
            series
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == request.namespace)
        })
        .filter(|series| request.selector.matches(&series.labels))
        .filter(|series| series.sample.is_newer_than(cutoff))
        .map(|series| ExternalMetricValue {
            metric_name: &request.metric,
            metric_labels: &series.labels,
            timestamp: series.sample.timestamp(),
            window: series.sample.window_seconds().map(i64::from),
            value: series.sample.milli(),
        })
        .collect();
    if items.is_empty() {
        return Err(Error::MetricNotFound {
            metric: request.metric.clone(),
            resource: "namespaces".into(),
            name: Some(request.namespace.clone()),
            selector: Some(request.selector.to_string()),
        });
    }
    let body = bodies::external_metric_value_list(&items);
    Ok(Answer {
        body_memory: body.capacity(),
        body: body.into(),
        items: items.len(),
        oldest: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_the_timestamps_of_their_own_second() {
        let mut stamps = Stamps::default();
        let at = |millis: i64| {
            if millis >= 0 {
                SystemTime::UNIX_EPOCH + Duration::from_millis(millis as u64)
            } else {
                SystemTime::UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
            }
        };
        // seconds interleaved, as the pods of an answer are, and one before the epoch
        for millis in [
            1_782_907_205_100,
            1_782_907_206_900,
            1_782_907_205_999,
            1_782_907_207_000,
            1_782_907_206_001,
            -1_500,
        ] {
            assert_eq!(
                stamps.of(SampleTime::from(at(millis))),
                Timestamp::from(at(millis)),
                "{millis}"
            );
        }
    }
}
