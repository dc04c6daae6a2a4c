//! Inference servers on the node: turning what Triton, vLLM, SGLang, TGI, TorchServe and any
//! mapped server expose into saturation signals.
//!
//! Each server kind has a *reading* (what one scrape of one pod holds, parsed with
//! [`crate::promtext`]) and *signals* computed from two consecutive readings: counters become
//! deltas over the window between them (a counter that went down was reset, and its current
//! value is the delta, as Prometheus `rate` does), gauges are taken as they are now. Triton has
//! its own reading ([`triton`]: stalls, queue/compute ratio, rejections); every other kind is
//! read through a [`recipe`].

pub mod recipe;
pub mod scrape;
pub mod triton;

use std::collections::HashMap;

use crate::promtext::Sample;

/// A series' identity within one family: its labels, sorted.
pub(crate) type SeriesKey = Vec<(String, String)>;

pub(crate) fn series_key(sample: &Sample<'_>) -> SeriesKey {
    let mut key: SeriesKey = sample
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    key.sort();
    key
}

/// Σ over series of how much each counter grew since `previous`. A series seen for the first
/// time adds nothing (a rate needs two readings); one that went down was reset, and adds its
/// current value.
pub(crate) fn summed_delta<K: Eq + std::hash::Hash>(
    previous: &HashMap<K, f64>,
    current: &HashMap<K, f64>,
) -> f64 {
    current
        .iter()
        .map(|(key, &now)| match previous.get(key) {
            None => 0.0,
            Some(&before) if now < before => now,
            Some(&before) => now - before,
        })
        .sum()
}
