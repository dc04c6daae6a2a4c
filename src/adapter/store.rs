//! The adapter's in-memory state: an immutable [`Snapshot`] of objects and metric samples,
//! swapped atomically by the sources and read lock-free by every request.
//!
//! Sources build a whole snapshot with [`SnapshotBuilder`] and [`Store::publish`] it; handlers
//! [`Store::load`] the current one and never wait on a writer or a backend. A sample keeps the
//! time it was measured; one older than `--max-age` is absent to readers ([`Sample::is_fresh`]).
//! NaN and ±Inf never enter a snapshot: they have no quantity and would read as a value.
//!
//! The snapshot holds, per scope, the objects a metric can describe (pods, workloads, nodes, and
//! namespaces for `/namespaces/{ns}/metrics/{m}`) with their labels and samples, plus external
//! series. It also precomputes the discovery catalogue, so discovery is a lookup.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use compact_str::CompactString;

use crate::process::giving_way;
use crate::resources::GroupResource;

pub type Labels = BTreeMap<String, String>;

/// One measured value of one metric, ready to serve: 24 bytes, with no allocation of its own
/// unless its series has labels, its quantity is beyond what 64 bits of milli-units hold or its
/// window is beyond 18 hours. A
/// fleet-size snapshot holds hundreds of thousands of these (`benches/fleet.rs`), so each byte
/// here is a fraction of a megabyte there.
///
/// The value is kept as the exact milli-value of its canonical quantity — what the HPA reads
/// — and printed when served ([`Sample::quantity`]): integer printing, a few dozen
/// nanoseconds, where a string held ready would take 24 bytes a value. What the adapter
/// computes from values (a workload's aggregates, KEDA's answers) starts from the same
/// milli-values ([`Sample::value`]), so a workload's `_sum` is the sum of what its pods serve.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The quantity's milli-value, or [`HELD_APART`] when it does not fit (then it is in
    /// `rare`).
    milli: i64,
    /// When the value was measured (never "now" at serving time), and the window it was
    /// computed over when it is a rate or an average, in one word.
    measured: TimeAndWindow,
    /// What few samples have: labels of the series, a quantity too large for `milli`, a window
    /// too long for `measured`.
    rare: Option<Box<Rare>>,
}

/// The parts of a sample most samples do not have.
#[derive(Debug, Clone, PartialEq, Default)]
struct Rare {
    /// Labels of the metric series itself, matched by `metricLabelSelector`.
    labels: Labels,
    /// The milli-value when it is beyond `i64` (a magnitude of 9.2e15 or more).
    milli: Option<i128>,
    /// The window when [`TimeAndWindow`] cannot hold it (negative, or longer than 18 hours).
    window_seconds: Option<i32>,
}

/// `Sample::milli` when the milli-value is held in `Rare` (no quantity has this milli-value:
/// it would be beyond the HPA's own int64 arithmetic, so it is held apart anyway).
const HELD_APART: i64 = i64::MIN;

// A layout change that grows every sample should be a decision, not an accident.
const _: () = assert!(std::mem::size_of::<Sample>() <= 24);

/// A sample's [`SampleTime`] (the high 48 bits, two's complement) and its window (the low 16
/// bits: 0 for none, else the window in seconds plus one, so up to 65,534 s), in 8 bytes.
/// Nearly every window is a rate's or an average's of seconds to minutes; a longer one is
/// held in [`Rare`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct TimeAndWindow(u64);

impl TimeAndWindow {
    const WINDOW_BITS: u32 = 16;
    /// Window codes above this do not exist (the code is the window plus one).
    const LONGEST_WINDOW: i32 = u16::MAX as i32 - 1;

    fn new(at: SampleTime) -> TimeAndWindow {
        // `at` is within 48 bits (SampleTime saturates there), so the shift loses nothing
        TimeAndWindow((at.0 as u64) << Self::WINDOW_BITS)
    }

    fn time(self) -> SampleTime {
        // the arithmetic shift brings the sign back
        SampleTime((self.0 as i64) >> Self::WINDOW_BITS)
    }

    /// The window, if one is held here; `None` also when it is too long (see `fits`).
    fn window_seconds(self) -> Option<i32> {
        let code = (self.0 & u64::from(u16::MAX)) as i32;
        (code != 0).then(|| code - 1)
    }

    /// Whether `window_seconds` can be held here.
    fn fits(window_seconds: i32) -> bool {
        (0..=Self::LONGEST_WINDOW).contains(&window_seconds)
    }

    /// With `window_seconds` held (`None` clears it); `window_seconds` must [`fit`](Self::fits).
    fn with_window(self, window_seconds: Option<i32>) -> TimeAndWindow {
        let code = window_seconds
            .filter(|w| Self::fits(*w))
            .map_or(0, |w| w + 1) as u64;
        TimeAndWindow(self.0 & !u64::from(u16::MAX) | code)
    }
}

/// The labels of a series that has none.
static NO_LABELS: Labels = Labels::new();

impl Sample {
    /// A sample, or `None` when the value has no quantity (NaN, ±Inf): such a value is absent.
    pub fn new(value: f64, sample_time: SystemTime) -> Option<Sample> {
        let exact = crate::quantity::milli(value)?;
        let (milli, rare) = match i64::try_from(exact) {
            Ok(milli) if milli != HELD_APART => (milli, None),
            _ => (
                HELD_APART,
                Some(Box::new(Rare {
                    milli: Some(exact),
                    ..Rare::default()
                })),
            ),
        };
        Some(Sample {
            milli,
            measured: TimeAndWindow::new(SampleTime::from(sample_time)),
            rare,
        })
    }

    /// The quantity's exact milli-value (what [`Sample::quantity`] prints).
    pub fn milli(&self) -> i128 {
        match &self.rare {
            Some(rare) if self.milli == HELD_APART => rare.milli.unwrap_or(0),
            _ => i128::from(self.milli),
        }
    }

    /// The canonical quantity string the HPA reads (`1500m`, `12k`).
    pub fn quantity(&self) -> CompactString {
        crate::quantity::format_milli(self.milli())
    }

    /// The value as served: its quantity's milli-value over 1000 (a measured 0.1234 is
    /// 0.124, rounded away from zero as the HPA rounds it).
    pub fn value(&self) -> f64 {
        self.milli() as f64 / 1000.0
    }

    /// When the value was measured (to the millisecond).
    pub fn sample_time(&self) -> SystemTime {
        self.measured().into()
    }

    /// The same, as held: for comparing samples' ages.
    pub(crate) fn measured(&self) -> SampleTime {
        self.measured.time()
    }

    /// `sample_time` as RFC 3339 UTC with second precision, as served.
    pub fn timestamp(&self) -> Timestamp {
        Timestamp::from(self.sample_time())
    }

    /// The window the value was computed over, when it is a rate or an average.
    pub fn window_seconds(&self) -> Option<i32> {
        self.measured
            .window_seconds()
            .or_else(|| self.rare.as_ref().and_then(|rare| rare.window_seconds))
    }

    /// Sets the window the value was computed over; one longer than `i32::MAX` seconds (68
    /// years) is not a window and is dropped.
    pub fn with_window(mut self, window_seconds: Option<i64>) -> Sample {
        let window_seconds = window_seconds.and_then(|w| i32::try_from(w).ok());
        self.measured = self.measured.with_window(window_seconds);
        let held_apart = window_seconds.filter(|w| !TimeAndWindow::fits(*w));
        match (&mut self.rare, held_apart) {
            (Some(rare), _) => rare.window_seconds = held_apart,
            (None, None) => {}
            (None, Some(_)) => {
                self.rare = Some(Box::new(Rare {
                    window_seconds: held_apart,
                    ..Rare::default()
                }))
            }
        }
        self
    }

    pub fn with_labels(mut self, labels: Labels) -> Sample {
        match (&mut self.rare, labels.is_empty()) {
            (Some(rare), _) => rare.labels = labels,
            (None, true) => {}
            (None, false) => {
                self.rare = Some(Box::new(Rare {
                    labels,
                    ..Rare::default()
                }))
            }
        }
        self
    }

    /// Labels of the metric series itself (empty for most).
    pub fn labels(&self) -> &Labels {
        self.rare.as_ref().map_or(&NO_LABELS, |rare| &rare.labels)
    }

    /// True unless the sample is older than `max_age` at `now`. Samples from the future (clock
    /// skew between nodes) count as fresh.
    pub fn is_fresh(&self, now: SystemTime, max_age: Duration) -> bool {
        self.is_newer_than(oldest_fresh(now, max_age))
    }

    /// True if the sample was taken at or after `cutoff` (see [`oldest_fresh`]); one comparison,
    /// for loops over many samples.
    pub(crate) fn is_newer_than(&self, cutoff: SampleTime) -> bool {
        self.measured() >= cutoff
    }
}

/// A sample's time: milliseconds since the Unix epoch (rounded down), within 48 bits — the
/// years 2492 BC to AD 6432, saturating outside them — so that a sample holds it and its window
/// in one word (a `SystemTime` takes 16 bytes). Timestamps are served to the second; the
/// millisecond keeps freshness and "which is newer" exact enough for a scrape every second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SampleTime(i64);

impl SampleTime {
    /// The latest time held; the earliest is its negation.
    const LATEST_MILLIS: i64 = (1 << 47) - 1;

    /// Whole seconds since the Unix epoch (rounded down, before it too).
    pub fn whole_seconds(self) -> i64 {
        self.0.div_euclid(1_000)
    }
}

impl From<SystemTime> for SampleTime {
    fn from(time: SystemTime) -> SampleTime {
        let millis = match time.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            // rounded down before the epoch too: 1.5 ms before it is -2 ms
            Err(before) => {
                let before = before.duration();
                let whole = i64::try_from(before.as_millis()).unwrap_or(i64::MAX);
                let part = i64::from(before.subsec_nanos() % 1_000_000 != 0);
                whole.saturating_add(part).saturating_neg()
            }
        };
        SampleTime(millis.clamp(-Self::LATEST_MILLIS, Self::LATEST_MILLIS))
    }
}

impl From<SampleTime> for SystemTime {
    fn from(time: SampleTime) -> SystemTime {
        let since_epoch = Duration::from_millis(time.0.unsigned_abs());
        if time.0 >= 0 {
            SystemTime::UNIX_EPOCH + since_epoch
        } else {
            SystemTime::UNIX_EPOCH - since_epoch
        }
    }
}

/// The oldest sample time still fresh at `now` under `max_age`.
pub(crate) fn oldest_fresh(now: SystemTime, max_age: Duration) -> SampleTime {
    SampleTime::from(now.checked_sub(max_age).unwrap_or(SystemTime::UNIX_EPOCH))
}

/// An RFC 3339 UTC timestamp with second precision (`2026-07-01T12:00:05Z`), held inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Timestamp([u8; 20]);

impl Timestamp {
    pub fn as_str(&self) -> &str {
        // Built only from ASCII digits and separators in `From<SystemTime>`.
        std::str::from_utf8(&self.0).unwrap_or("1970-01-01T00:00:00Z")
    }

    /// The same text as bytes, without the UTF-8 check (for writing bodies).
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl From<SystemTime> for Timestamp {
    /// jiff does the calendar; the fixed-width digits are written here, since every item of an
    /// answer is stamped (a thousand per Pods read) and a format string costs more than the
    /// arithmetic.
    fn from(time: SystemTime) -> Timestamp {
        let instant = jiff::Timestamp::try_from(time).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let civil = jiff::tz::Offset::UTC.to_datetime(instant);
        let mut bytes = *b"1970-01-01T00:00:00Z";
        let year = civil.year();
        if !(0..=9999).contains(&year) {
            return Timestamp(bytes);
        }
        let fields = [
            (0, 4, year as u32),
            (5, 2, civil.month() as u32),
            (8, 2, civil.day() as u32),
            (11, 2, civil.hour() as u32),
            (14, 2, civil.minute() as u32),
            (17, 2, civil.second() as u32),
        ];
        for (at, width, mut value) in fields {
            for digit in bytes[at..at + width].iter_mut().rev() {
                *digit = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        Timestamp(bytes)
    }
}

impl std::fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An object's samples by metric name: a short list (a pod has a dozen metrics) sorted by
/// name. At fleet size there are hundreds of thousands of these, and a sorted list holds its
/// samples in a fraction of the bytes of a hash map and in one place, which is what assembling
/// and reading them spend their time on; a lookup is a few comparisons.
///
/// The names are a list of their own, shared: the pods of one exporter page, and the pods of
/// every page from the same kind of server, have the same metrics, so [`SharedNames`] gives
/// them one list between them, and each sample costs its 24 bytes and no name.
#[derive(Debug, Clone, Default)]
pub struct MetricSamples {
    /// Sorted, unique; `samples[i]` is a sample of `names[i]`.
    names: Arc<Vec<Arc<str>>>,
    samples: Vec<Sample>,
    /// No sample is older than this (`None` while there is none): whether all are fresh is
    /// one comparison. A replaced sample may leave it lower than the oldest held, never higher.
    oldest: Option<SampleTime>,
}

impl PartialEq for MetricSamples {
    fn eq(&self, other: &MetricSamples) -> bool {
        self.names == other.names && self.samples == other.samples
    }
}

/// One metric looked up in the samples of many objects of one snapshot, remembering where it
/// sits in the last list of names searched. Objects with the same metrics share their list
/// ([`SharedNames`]), so a Pods request over a thousand pods, each on another node, searches
/// again only where the list changes from one pod to the next — where pods of different
/// servers alternate, at each change — not at every pod: the search (a pointer chase per name
/// compared) was half of building a Pods answer at fleet size.
pub struct MetricLookup<'m, 's> {
    metric: &'m str,
    /// The last list searched (by address) and the metric's place in it.
    last: Option<(&'s Vec<Arc<str>>, Option<usize>)>,
}

impl<'m, 's> MetricLookup<'m, 's> {
    pub fn new(metric: &'m str) -> MetricLookup<'m, 's> {
        MetricLookup { metric, last: None }
    }

    /// The metric's sample in `samples`: what [`MetricSamples::get`] answers.
    pub fn get(&mut self, samples: &'s MetricSamples) -> Option<&'s Sample> {
        let names: &'s Vec<Arc<str>> = &samples.names;
        let at = match self.last {
            Some((last, at)) if std::ptr::eq(last, names) => at,
            _ => {
                let at = samples.position(self.metric).ok();
                self.last = Some((names, at));
                at
            }
        };
        samples.samples.get(at?)
    }
}

/// The samples of every object that has none, shared.
static NO_SAMPLES: LazyLock<Arc<MetricSamples>> = LazyLock::new(Arc::default);

impl MetricSamples {
    /// No samples, shared rather than allocated (most objects of a cluster have none).
    pub fn none() -> Arc<MetricSamples> {
        NO_SAMPLES.clone()
    }

    fn from_parts(names: Arc<Vec<Arc<str>>>, samples: Vec<Sample>) -> MetricSamples {
        let oldest = samples.iter().map(Sample::measured).min();
        MetricSamples {
            names,
            samples,
            oldest,
        }
    }

    fn position(&self, metric: &str) -> Result<usize, usize> {
        self.names.binary_search_by(|name| (**name).cmp(metric))
    }

    pub fn get(&self, metric: &str) -> Option<&Sample> {
        let at = self.position(metric).ok()?;
        self.samples.get(at)
    }

    /// Sets `metric`'s sample; returns the one it replaced. The names are copied first if
    /// another object shares them and `metric` is new.
    pub fn insert(&mut self, metric: Arc<str>, sample: Sample) -> Option<Sample> {
        let measured = sample.measured();
        self.oldest = Some(self.oldest.map_or(measured, |oldest| oldest.min(measured)));
        match self.position(&metric) {
            Ok(at) => Some(std::mem::replace(&mut self.samples[at], sample)),
            Err(at) => {
                Arc::make_mut(&mut self.names).insert(at, metric);
                self.samples.insert(at, sample);
                None
            }
        }
    }

    /// True if every sample was taken at or after `cutoff` (see [`Sample::is_newer_than`]).
    pub(crate) fn all_newer_than(&self, cutoff: SampleTime) -> bool {
        self.oldest.is_none_or(|oldest| oldest >= cutoff)
    }

    pub fn contains_key(&self, metric: &str) -> bool {
        self.position(metric).is_ok()
    }

    /// In name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Sample)> {
        self.names.iter().zip(&self.samples)
    }

    pub fn keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.names.iter()
    }

    pub fn values(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Whether `other` holds the very same list of names (shared, not merely equal): a
    /// walk over many objects can pass over the names it has already seen in one comparison.
    pub(crate) fn shares_names_with(&self, other: &MetricSamples) -> bool {
        Arc::ptr_eq(&self.names, &other.names)
    }
}

/// Gives objects the same list of metric names when their names are the same, so each
/// distinct list is held once in the process: a page's pods, the pods of every page from the
/// same kind of server, one Prometheus evaluation's objects. The last list given is remembered
/// here, so objects built one after another with the same metrics (a page's pods) do not
/// reach the process-wide set ([`NameLists`]).
#[derive(Debug, Default)]
pub struct SharedNames {
    last: Option<Arc<Vec<Arc<str>>>>,
}

impl SharedNames {
    /// The samples, as [`MetricSamples::from_iter`] makes them, with the one list of their
    /// names held in the process.
    pub fn samples<I: IntoIterator<Item = (Arc<str>, Sample)>>(
        &mut self,
        samples: I,
    ) -> MetricSamples {
        let (names, samples) = sorted_unique(samples);
        let names = match &self.last {
            Some(last) if **last == names => Arc::clone(last),
            _ => {
                let names = NameLists::shared(names);
                self.last = Some(Arc::clone(&names));
                names
            }
        };
        MetricSamples::from_parts(names, samples)
    }
}

/// Every distinct list of metric names that objects hold, once. Only the sources' background
/// work builds samples, so the lock is taken off the request path, and mostly not at all
/// ([`SharedNames`] remembers its last list). Lists no object holds any more are dropped when
/// a new list comes and the set has doubled since it was last swept, so it holds at most 64
/// lists or twice those in use at the last sweep.
struct NameLists {
    lists: HashSet<Arc<Vec<Arc<str>>>>,
    /// The set's size at which to sweep next.
    sweep_at: usize,
}

static NAME_LISTS: LazyLock<std::sync::Mutex<NameLists>> =
    LazyLock::new(|| std::sync::Mutex::new(NameLists::default()));

impl Default for NameLists {
    fn default() -> Self {
        NameLists {
            lists: HashSet::new(),
            sweep_at: NameLists::FEWEST_BEFORE_SWEEP,
        }
    }
}

impl NameLists {
    const FEWEST_BEFORE_SWEEP: usize = 64;

    /// The process's list equal to `names`, which becomes it if there is none.
    fn shared(names: Vec<Arc<str>>) -> Arc<Vec<Arc<str>>> {
        NAME_LISTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .share(names)
    }

    /// The list equal to `names` in this set, which becomes it if there is none.
    fn share(&mut self, names: Vec<Arc<str>>) -> Arc<Vec<Arc<str>>> {
        if let Some(known) = self.lists.get(&names) {
            return Arc::clone(known);
        }
        if self.lists.len() >= self.sweep_at {
            self.lists.retain(|list| Arc::strong_count(list) > 1);
            self.sweep_at = (self.lists.len() * 2).max(Self::FEWEST_BEFORE_SWEEP);
        }
        let names = Arc::new(names);
        self.lists.insert(Arc::clone(&names));
        names
    }
}

/// Names and samples in name order; a later sample of the same metric replaces an earlier one.
fn sorted_unique<I: IntoIterator<Item = (Arc<str>, Sample)>>(
    samples: I,
) -> (Vec<Arc<str>>, Vec<Sample>) {
    let mut samples: Vec<(Arc<str>, Sample)> = samples.into_iter().collect();
    // stable: of equal names the later stays last, and is the one kept
    if !samples.is_sorted_by(|a, b| a.0 < b.0) {
        samples.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let mut names: Vec<Arc<str>> = Vec::with_capacity(samples.len());
    let mut kept: Vec<Sample> = Vec::with_capacity(samples.len());
    for (metric, sample) in samples {
        match (names.last(), kept.last_mut()) {
            (Some(last), Some(held)) if *last == metric => *held = sample,
            _ => {
                names.push(metric);
                kept.push(sample);
            }
        }
    }
    names.shrink_to_fit();
    kept.shrink_to_fit();
    (names, kept)
}

impl FromIterator<(Arc<str>, Sample)> for MetricSamples {
    /// A later sample of the same metric replaces an earlier one.
    fn from_iter<I: IntoIterator<Item = (Arc<str>, Sample)>>(samples: I) -> MetricSamples {
        let (names, samples) = sorted_unique(samples);
        MetricSamples::from_parts(Arc::new(names), samples)
    }
}

/// For tests: `samples["metric"]`, panicking when absent (serving code uses `get`).
#[cfg(test)]
impl std::ops::Index<&str> for MetricSamples {
    type Output = Sample;

    fn index(&self, metric: &str) -> &Sample {
        match self.get(metric) {
            Some(sample) => sample,
            None => panic!("no sample of {metric}"),
        }
    }
}

/// An object a metric can describe: a pod, a workload, a node, a namespace. Its parts are
/// shared: labels with the inventory, samples with the source that made them, so an
/// object whose values did not change costs a snapshot three reference counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Object {
    pub labels: Arc<Labels>,
    pub uid: Option<Arc<str>>,
    pub metrics: Arc<MetricSamples>,
}

impl Object {
    /// Sets `metric`'s sample (copying the samples first if another snapshot shares them).
    pub fn insert(&mut self, metric: &str, sample: Sample) {
        Arc::make_mut(&mut self.metrics).insert(Arc::from(metric), sample);
    }
}

/// One series of an external metric.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalSeries {
    /// The namespace it belongs to; `None` makes it visible from every namespace.
    pub namespace: Option<String>,
    pub labels: Labels,
    pub sample: Sample,
}

/// Objects of one resource, by name, in name order.
pub type Objects = BTreeMap<Arc<str>, Object>;

/// Scope key: `Some(namespace)` for namespaced resources, `None` for cluster-scoped ones.
pub(crate) type ScopeKey = (Option<Arc<str>>, GroupResource);

/// An immutable view of everything the API serves.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Increases with every publish; 0 is the empty snapshot before the first source answered.
    pub generation: u64,
    /// When the snapshot was assembled.
    pub built_at: Option<SystemTime>,
    objects: HashMap<ScopeKey, Arc<Objects>>,
    external: HashMap<Arc<str>, Vec<ExternalSeries>>,
    catalogue: Catalogue,
    sample_count: usize,
    /// The inventory it was assembled from (cluster mode), and the namespaces where some object
    /// had a value: the next assembly from the same inventory takes over every other
    /// namespace's objects as they are.
    pub(crate) assembled_from: Option<Arc<Inventory>>,
    pub(crate) valued_namespaces: HashSet<Arc<str>>,
}

/// The (resource, metric) pairs and external metric names discovery lists.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Catalogue {
    pub custom: BTreeSet<(GroupResource, Arc<str>)>,
    pub external: BTreeSet<Arc<str>>,
}

impl Snapshot {
    /// Frees this snapshot's objects a few at a time, [giving way](giving_way) between them: a
    /// fleet's snapshot takes milliseconds to free, which a background thread at idle priority
    /// would otherwise spend holding a core a request thread waits for. Objects still shared
    /// with the current snapshot stay.
    fn free_in_pieces(self) {
        for (_, objects) in self.objects {
            let Some(objects) = Arc::into_inner(objects) else {
                continue;
            };
            giving_way(objects).for_each(drop);
        }
    }

    /// The objects of `resource` in `namespace` (`None` for cluster-scoped resources).
    pub fn objects(&self, namespace: Option<&str>, resource: &GroupResource) -> Option<&Objects> {
        self.shared_objects(namespace, resource).map(Arc::as_ref)
    }

    /// [`Snapshot::objects`] as shared. Published objects never change: a snapshot that takes
    /// a scope over as it was holds the same `Arc`, and one that changes it holds a new one.
    pub(crate) fn shared_objects(
        &self,
        namespace: Option<&str>,
        resource: &GroupResource,
    ) -> Option<&Arc<Objects>> {
        self.objects
            .get(&(namespace.map(Arc::from), resource.clone()))
    }

    /// Every scope of a namespaced resource, with its objects.
    pub(crate) fn namespaced_scopes(
        &self,
    ) -> impl Iterator<Item = (&Arc<str>, &ScopeKey, &Arc<Objects>)> {
        self.objects
            .iter()
            .filter_map(|(key, objects)| Some((key.0.as_ref()?, key, objects)))
    }

    /// Every series of an external metric, in every namespace.
    pub fn external(&self, metric: &str) -> &[ExternalSeries] {
        self.external.get(metric).map_or(&[], Vec::as_slice)
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Number of samples held (custom and external), for telemetry.
    pub(crate) fn sample_count(&self) -> usize {
        self.sample_count
    }

    /// Whether `metric` is served for `resource` at all (in any scope).
    pub fn serves(&self, resource: &GroupResource, metric: &str) -> bool {
        self.catalogue
            .custom
            .contains(&(resource.clone(), Arc::from(metric)))
    }
}

/// Assembles a [`Snapshot`]; sources fill one and hand it to [`Store::publish`].
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    objects: HashMap<ScopeKey, Arc<Objects>>,
    external: HashMap<Arc<str>, Vec<ExternalSeries>>,
    declared: BTreeSet<(GroupResource, Arc<str>)>,
    declared_external: BTreeSet<Arc<str>>,
    pub(crate) assembled_from: Option<Arc<Inventory>>,
    pub(crate) valued_namespaces: HashSet<Arc<str>>,
}

impl SnapshotBuilder {
    pub fn new() -> SnapshotBuilder {
        SnapshotBuilder::default()
    }

    /// The object `name` of `resource`, created with no labels if new. `namespace` is ignored
    /// for cluster-scoped resources and required (else `None` is returned) for namespaced ones.
    pub fn object(
        &mut self,
        namespace: Option<&str>,
        resource: &GroupResource,
        name: &str,
    ) -> Option<&mut Object> {
        self.shared_object(
            namespace.map(Arc::from).as_ref(),
            resource,
            &Arc::from(name),
        )
    }

    /// [`SnapshotBuilder::object`] for names the caller already holds as shared strings (the
    /// inventory's): no name is copied.
    pub(crate) fn shared_object(
        &mut self,
        namespace: Option<&Arc<str>>,
        resource: &GroupResource,
        name: &Arc<str>,
    ) -> Option<&mut Object> {
        let scope = if resource.is_namespaced() {
            Some(Arc::clone(namespace?))
        } else {
            None
        };
        let objects = self.objects.entry((scope, resource.clone())).or_default();
        Some(Arc::make_mut(objects).entry(Arc::clone(name)).or_default())
    }

    /// Puts `objects` into `scope`, replacing any of the same name there: a scope's objects
    /// in one go, in one sorted build rather than one search each.
    pub(crate) fn put_objects(&mut self, scope: ScopeKey, objects: Vec<(Arc<str>, Object)>) {
        match self.objects.entry(scope) {
            Entry::Occupied(mut held) => {
                Arc::make_mut(held.get_mut()).extend(objects);
            }
            Entry::Vacant(scope) => {
                scope.insert(Arc::new(objects.into_iter().collect()));
            }
        }
    }

    /// Serves a scope's objects as another snapshot holds them (shared, not copied).
    pub(crate) fn take_over(&mut self, scope: ScopeKey, objects: Arc<Objects>) {
        self.objects.insert(scope, objects);
    }

    /// Lists `metric` for `resource` in discovery even while no object has a value for it.
    pub(crate) fn declare(&mut self, resource: &GroupResource, metric: &str) {
        self.declared.insert((resource.clone(), Arc::from(metric)));
    }

    /// Lists the external metric `metric` in discovery; its values are read on demand.
    pub(crate) fn declare_external(&mut self, metric: &str) {
        self.declared_external.insert(Arc::from(metric));
    }

    pub fn external(&mut self, metric: &str, series: ExternalSeries) {
        self.external
            .entry(Arc::from(metric))
            .or_default()
            .push(series);
    }

    pub fn build(self, generation: u64, built_at: SystemTime) -> Snapshot {
        let mut catalogue = Catalogue {
            custom: self.declared,
            external: self.declared_external,
        };
        let mut sample_count = 0;
        // Objects mostly share their list of metric names (one list per page, see
        // `SharedNames`) and their names (one string per name, from the catalogue): an object
        // whose list is the previous object's is passed over, and each name is looked up in
        // the catalogue once per scope, not once per sample.
        let mut seen: HashSet<*const u8, foldhash::fast::RandomState> = HashSet::default();
        for ((_, resource), objects) in &self.objects {
            seen.clear();
            let mut last: Option<&MetricSamples> = None;
            for object in objects.values() {
                sample_count += object.metrics.len();
                if last.is_some_and(|last| last.shares_names_with(&object.metrics)) {
                    continue;
                }
                last = Some(&object.metrics);
                for metric in object.metrics.keys() {
                    if seen.insert(metric.as_ptr()) {
                        catalogue.custom.insert((resource.clone(), metric.clone()));
                    }
                }
            }
        }
        for (metric, series) in &self.external {
            sample_count += series.len();
            catalogue.external.insert(metric.clone());
        }
        Snapshot {
            generation,
            built_at: Some(built_at),
            objects: self.objects,
            external: self.external,
            catalogue,
            sample_count,
            assembled_from: self.assembled_from,
            valued_namespaces: self.valued_namespaces,
        }
    }
}

/// The current snapshot, swapped whole. Readers never block; a publish is one pointer swap.
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
    /// The snapshot the last publish replaced, until [`Store::free_retired`] finds no reader
    /// holding it, or the next publish.
    retired: std::sync::Mutex<Option<Arc<Snapshot>>>,
    generation: AtomicU64,
    max_age: Duration,
}

impl Store {
    pub fn new(max_age: Duration) -> Store {
        Store {
            current: ArcSwap::from_pointee(Snapshot::default()),
            retired: std::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            max_age,
        }
    }

    /// Makes a snapshot built from `builder` the one every following request reads.
    ///
    /// The snapshot it replaces is kept, to be freed by the publisher once no request reads
    /// it ([`Store::free_retired`]) or at the next publish: freeing a large snapshot falls to
    /// a request's thread only if that request still reads it after the next publish.
    pub fn publish(&self, builder: SnapshotBuilder) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let replaced = self
            .current
            .swap(Arc::new(builder.build(generation, SystemTime::now())));
        let freed = self
            .retired
            .lock()
            .map(|mut retired| retired.replace(replaced));
        if let Some(snapshot) = freed.ok().flatten().and_then(Arc::into_inner) {
            snapshot.free_in_pieces();
        }
    }

    /// Frees the snapshot the last publish replaced, here and now, unless a reader still
    /// holds it; true once it is gone. A publisher that calls this shortly after publishing
    /// holds one snapshot's worth of replaced values for milliseconds rather than until the
    /// next publish.
    pub fn free_retired(&self) -> bool {
        let Ok(mut retired) = self.retired.lock() else {
            return false;
        };
        match retired.take() {
            Some(snapshot) if Arc::strong_count(&snapshot) > 1 => {
                *retired = Some(snapshot);
                false
            }
            freed => {
                drop(retired);
                if let Some(snapshot) = freed.and_then(Arc::into_inner) {
                    snapshot.free_in_pieces();
                }
                true
            }
        }
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Samples older than this are absent.
    pub(crate) fn max_age(&self) -> Duration {
        self.max_age
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_infinity_are_absent() {
        let now = SystemTime::now();
        assert!(Sample::new(f64::NAN, now).is_none());
        assert!(Sample::new(f64::INFINITY, now).is_none());
        assert_eq!(
            Sample::new(0.0, now).map(|s| s.quantity()),
            Some("0".into())
        );
    }

    #[test]
    fn a_sample_serves_the_quantity_its_value_formats_to_at_every_magnitude() {
        let now = SystemTime::now();
        // 9.3e15 and beyond: the milli-value no longer fits 64 bits and is held apart
        for value in [
            1.5,
            -0.009,
            12_000.0,
            0.1 + 0.2,
            9.2e15,
            9.3e15,
            -4e20,
            9.9e29,
        ] {
            let sample = Sample::new(value, now).expect("finite");
            assert_eq!(
                Some(sample.quantity()),
                crate::quantity::format(value),
                "{value}"
            );
            assert!(sample.labels().is_empty());
            let labelled = sample.with_labels(Labels::from([("gpu".into(), "0".into())]));
            assert_eq!(Some(labelled.quantity()), crate::quantity::format(value));
            assert_eq!(labelled.labels()["gpu"], "0");
        }
        assert!(Sample::new(1e30, now).is_none(), "beyond MAX_MAGNITUDE");
        // the value computed with is the value served: its milli-value, rounded away from zero
        let value = |v: f64| Sample::new(v, now).expect("finite").value();
        assert_eq!(value(0.1234), 0.124);
        assert_eq!(value(-0.0091), -0.01);
        assert_eq!(value(0.1 + 0.2), 0.3);
        assert_eq!(value(37.5), 37.5);
        assert_eq!(value(9.3e15), 9.3e15);
    }

    #[test]
    fn sample_times_keep_milliseconds_round_down_and_saturate_outside_their_range() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_782_907_205_123_456_789);
        let to_the_milli = SystemTime::UNIX_EPOCH + Duration::from_millis(1_782_907_205_123);
        assert_eq!(SystemTime::from(SampleTime::from(at)), to_the_milli);
        assert_eq!(SampleTime::from(at).whole_seconds(), 1_782_907_205);
        // before the epoch, rounded down as well: 1.5 ms before it is 2 ms before it
        let before_epoch = SystemTime::UNIX_EPOCH - Duration::from_nanos(1_500_000);
        assert_eq!(
            SystemTime::from(SampleTime::from(before_epoch)),
            SystemTime::UNIX_EPOCH - Duration::from_millis(2)
        );
        assert_eq!(SampleTime::from(before_epoch).whole_seconds(), -1);
        assert!(SampleTime::from(before_epoch) < SampleTime::from(SystemTime::UNIX_EPOCH));
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(5_000 * 365 * 86_400);
        assert_eq!(SampleTime::from(far), SampleTime(SampleTime::LATEST_MILLIS));
        let long_ago = SystemTime::UNIX_EPOCH - Duration::from_secs(5_000 * 365 * 86_400);
        assert_eq!(
            SampleTime::from(long_ago),
            SampleTime(-SampleTime::LATEST_MILLIS)
        );
        // a sample holds its time exactly, at either end of the range and either side of 0
        for time in [at, before_epoch, far, long_ago, SystemTime::UNIX_EPOCH] {
            let sample = Sample::new(1.0, time)
                .expect("finite")
                .with_window(Some(60));
            assert_eq!(sample.measured(), SampleTime::from(time));
            assert_eq!(sample.window_seconds(), Some(60));
        }
        let sample = Sample::new(1.0, at).expect("finite");
        assert_eq!(sample.sample_time(), to_the_milli);
        assert!(sample.is_fresh(at + Duration::from_secs(5), Duration::from_secs(5)));
        assert!(!sample.is_fresh(at + Duration::from_secs(6), Duration::from_secs(5)));
    }

    #[test]
    fn windows_up_to_eighteen_hours_are_held_inline_and_longer_ones_apart() {
        let now = SystemTime::now();
        for window in [
            0,
            1,
            30,
            300,
            65_534,
            65_535,
            86_400,
            i64::from(i32::MAX),
            -5,
        ] {
            let sample = Sample::new(2.5, now)
                .expect("finite")
                .with_window(Some(window));
            assert_eq!(
                sample.window_seconds(),
                i32::try_from(window).ok(),
                "{window}"
            );
            assert_eq!(
                sample.rare.is_some(),
                !(0..=65_534).contains(&window),
                "{window}"
            );
            assert_eq!(sample.quantity(), "2500m");
            assert_eq!(sample.measured(), SampleTime::from(now));
            // labels and a window held apart live side by side
            let labelled = sample.with_labels(Labels::from([("gpu".into(), "0".into())]));
            assert_eq!(labelled.window_seconds(), i32::try_from(window).ok());
            assert_eq!(labelled.labels()["gpu"], "0");
            // and a window set again replaces the one before, wherever it was held
            let replaced = labelled.with_window(Some(60));
            assert_eq!(replaced.window_seconds(), Some(60));
            assert_eq!(replaced.with_window(None).window_seconds(), None);
        }
        let not_a_window = Sample::new(1.0, now)
            .expect("finite")
            .with_window(Some(i64::from(i32::MAX) + 1));
        assert_eq!(not_a_window.window_seconds(), None);
        assert!(not_a_window.rare.is_none());
    }

    #[test]
    fn timestamps_are_rfc3339_seconds_utc() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(1_782_907_205_900);
        assert_eq!(Timestamp::from(time).as_str(), "2026-07-01T12:00:05Z");
        // before the epoch, and the turn of a leap year, against jiff's own formatting
        for seconds in [-86_401, 951_782_400, 1_709_164_799, 4_102_444_800] {
            let instant = jiff::Timestamp::from_second(seconds).expect("in range");
            assert_eq!(
                Timestamp::from(SystemTime::from(instant)).as_str(),
                instant.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
            );
        }
    }

    #[test]
    fn freshness_follows_max_age() {
        let now = SystemTime::now();
        let sample = Sample::new(1.0, now - Duration::from_secs(30)).expect("finite");
        assert!(sample.is_fresh(now, Duration::from_secs(30)));
        assert!(!sample.is_fresh(now, Duration::from_secs(29)));
        let future = Sample::new(1.0, now + Duration::from_secs(5)).expect("finite");
        assert!(future.is_fresh(now, Duration::from_secs(1)));
    }

    #[test]
    fn metric_samples_are_found_by_name_and_the_later_of_two_wins() {
        let now = SystemTime::now();
        let sample = |value| Sample::new(value, now).expect("finite");
        let mut samples: MetricSamples = [
            (Arc::from("zeta"), sample(1.0)),
            (Arc::from("alpha"), sample(2.0)),
            (Arc::from("zeta"), sample(3.0)),
        ]
        .into_iter()
        .collect();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples.get("zeta").map(|s| s.value()), Some(3.0));
        assert_eq!(samples.insert("mid".into(), sample(4.0)), None);
        assert_eq!(
            samples
                .insert("alpha".into(), sample(5.0))
                .map(|s| s.value()),
            Some(2.0)
        );
        let names: Vec<&str> = samples.keys().map(|k| &**k).collect();
        assert_eq!(names, ["alpha", "mid", "zeta"]);
        assert!(samples.get("absent").is_none());
    }

    #[test]
    fn objects_with_the_same_metrics_share_one_list_of_names() {
        let now = SystemTime::now();
        let sample = |value| Sample::new(value, now).expect("finite");
        let mut shared = SharedNames::default();
        let queue: Arc<str> = Arc::from("queue");
        let busy: Arc<str> = Arc::from("busy");
        let mut first = shared.samples([(queue.clone(), sample(1.0)), (busy.clone(), sample(2.0))]);
        // the same names, given in another order and as other strings of the same text
        let second = shared.samples([
            (Arc::from("queue"), sample(3.0)),
            (Arc::from("busy"), sample(4.0)),
        ]);
        assert!(first.shares_names_with(&second));
        assert_eq!(second.get("busy").map(|s| s.value()), Some(4.0));
        let other = shared.samples([(busy.clone(), sample(5.0))]);
        assert!(!other.shares_names_with(&second));
        // a new metric on one object leaves the others' names as they were
        first.insert(Arc::from("vram"), sample(6.0));
        assert!(!first.shares_names_with(&second));
        assert_eq!(
            first.keys().map(|k| &**k).collect::<Vec<_>>(),
            ["busy", "queue", "vram"]
        );
        assert_eq!(
            second.keys().map(|k| &**k).collect::<Vec<_>>(),
            ["busy", "queue"]
        );
        assert_eq!(second.get("vram"), None);
        // replacing a value of a known metric keeps the list shared
        let mut third = shared.samples([(busy.clone(), sample(7.0))]);
        assert!(third.shares_names_with(&other));
        third.insert(busy, sample(8.0));
        assert!(third.shares_names_with(&other));
        assert_eq!(other.get("busy").map(|s| s.value()), Some(5.0));
    }

    #[test]
    fn objects_built_apart_share_their_list_and_lists_no_one_holds_are_dropped() {
        let now = SystemTime::now();
        let sample = |value| Sample::new(value, now).expect("finite");
        // two pages, each built with its own `SharedNames`, as two exporters' pages are
        let page = |base: f64| {
            SharedNames::default().samples([
                (Arc::from("kubemind-test-busy"), sample(base)),
                (Arc::from("kubemind-test-queue"), sample(base + 1.0)),
            ])
        };
        assert!(page(1.0).shares_names_with(&page(2.0)));

        let mut lists = NameLists::default();
        let list = |text: String| vec![Arc::<str>::from(text)];
        let held: Vec<_> = (0..10)
            .map(|i| lists.share(list(format!("held-{i}"))))
            .collect();
        for i in held.len()..NameLists::FEWEST_BEFORE_SWEEP {
            drop(lists.share(list(format!("dropped-{i}"))));
        }
        assert_eq!(lists.lists.len(), NameLists::FEWEST_BEFORE_SWEEP);
        // the set is full: the next new list sweeps the dropped ones out
        let newest = lists.share(list("newest".into()));
        assert_eq!(lists.lists.len(), held.len() + 1);
        for (i, list) in held.iter().enumerate() {
            assert!(Arc::ptr_eq(
                list,
                &lists.share(vec![Arc::from(format!("held-{i}"))])
            ));
        }
        assert!(Arc::ptr_eq(
            &newest,
            &lists.share(vec![Arc::from("newest")])
        ));
        assert_eq!(lists.sweep_at, NameLists::FEWEST_BEFORE_SWEEP);
    }

    #[test]
    fn a_remembered_lookup_answers_as_a_search_in_each_object() {
        let now = SystemTime::now();
        let sample = |value| Sample::new(value, now).expect("finite");
        let mut shared = SharedNames::default();
        let page = |shared: &mut SharedNames, base: f64| {
            shared.samples([
                (Arc::from("busy"), sample(base)),
                (Arc::from("queue"), sample(base + 1.0)),
            ])
        };
        // two pods of one page share a list; then one with another list, where "queue" sits
        // elsewhere; one with neither; then the first page's list again
        let first = page(&mut shared, 1.0);
        let second = page(&mut shared, 10.0);
        assert!(first.shares_names_with(&second));
        let other = shared.samples([
            (Arc::from("alpha"), sample(20.0)),
            (Arc::from("beta"), sample(23.0)),
            (Arc::from("queue"), sample(21.0)),
            (Arc::from("zeta"), sample(22.0)),
        ]);
        let none = shared.samples([(Arc::from("busy"), sample(30.0))]);
        let objects = [&first, &second, &other, &none, &first, &none];
        for metric in ["queue", "busy", "alpha", "missing"] {
            let mut lookup = MetricLookup::new(metric);
            for (n, samples) in objects.iter().enumerate() {
                assert_eq!(
                    lookup.get(samples).map(Sample::value),
                    samples.get(metric).map(Sample::value),
                    "{metric} in object {n}"
                );
            }
        }
        let mut lookup = MetricLookup::new("queue");
        assert_eq!(lookup.get(&second).map(Sample::value), Some(11.0));
        assert_eq!(lookup.get(&other).map(Sample::value), Some(21.0));
        assert_eq!(lookup.get(&none), None);
    }

    #[test]
    fn whether_all_samples_are_fresh_is_never_overstated() {
        let now = SystemTime::now();
        let at =
            |seconds_ago| Sample::new(1.0, now - Duration::from_secs(seconds_ago)).expect("finite");
        let cutoff = oldest_fresh(now, Duration::from_secs(10));
        assert!(
            MetricSamples::default().all_newer_than(cutoff),
            "none is stale"
        );
        let mut samples: MetricSamples = [(Arc::from("a"), at(1)), (Arc::from("b"), at(5))]
            .into_iter()
            .collect();
        assert!(samples.all_newer_than(cutoff));
        samples.insert("c".into(), at(60));
        assert!(!samples.all_newer_than(cutoff), "one stale sample");
        // replacing the stale one may leave the answer conservative, never wrong
        samples.insert("c".into(), at(1));
        assert!(samples.values().all(|s| s.is_newer_than(cutoff)));
    }

    #[test]
    fn a_replaced_snapshot_is_freed_once_no_reader_holds_it() {
        let store = Store::new(Duration::from_secs(60));
        store.publish(SnapshotBuilder::new());
        let reader = store.load();
        store.publish(SnapshotBuilder::new());
        assert!(!store.free_retired(), "a reader still holds generation 1");
        assert_eq!(reader.generation, 1);
        drop(reader);
        assert!(store.free_retired());
        assert!(store.free_retired(), "nothing left to free");
        assert_eq!(store.load().generation, 2);
    }

    #[test]
    fn freeing_a_replaced_snapshot_keeps_what_the_current_one_took_over() {
        let store = Store::new(Duration::from_secs(60));
        let pods = GroupResource::pods();
        let sample = Sample::new(3.0, SystemTime::now()).expect("finite");
        let mut builder = SnapshotBuilder::new();
        for namespace in ["quiet", "busy"] {
            let objects = (0..200)
                .map(|i| {
                    let mut object = Object::default();
                    Arc::make_mut(&mut object.metrics).insert("pending".into(), sample.clone());
                    (Arc::from(format!("pod-{i}")), object)
                })
                .collect();
            builder.put_objects((Some(Arc::from(namespace)), pods.clone()), objects);
        }
        store.publish(builder);
        // the next snapshot takes over one namespace as it is and rebuilds the other
        let previous = store.load();
        let mut builder = SnapshotBuilder::new();
        for (namespace, _, objects) in previous.namespaced_scopes() {
            if &**namespace == "quiet" {
                builder.take_over((Some(namespace.clone()), pods.clone()), objects.clone());
            }
        }
        builder.put_objects(
            (Some(Arc::from("busy")), pods.clone()),
            vec![(Arc::from("pod-0"), Object::default())],
        );
        let busy_before = Arc::downgrade(
            previous
                .objects
                .get(&(Some(Arc::from("busy")), pods.clone()))
                .expect("busy"),
        );
        let quiet_before = Arc::as_ptr(
            previous
                .objects
                .get(&(Some(Arc::from("quiet")), pods.clone()))
                .expect("quiet"),
        );
        drop(previous);
        store.publish(builder);
        assert!(busy_before.upgrade().is_some(), "held until freed");
        assert!(store.free_retired());
        assert!(
            busy_before.upgrade().is_none(),
            "what no snapshot shares is freed"
        );
        let current = store.load();
        let quiet = current.objects(Some("quiet"), &pods).expect("taken over");
        assert!(std::ptr::eq(quiet, quiet_before), "taken over, not copied");
        assert_eq!(
            quiet.len(),
            200,
            "shared objects outlive the snapshot freed"
        );
        assert!(
            quiet
                .values()
                .all(|o| o.metrics.get("pending") == Some(&sample))
        );
        let busy = current.objects(Some("busy"), &pods).expect("rebuilt");
        assert_eq!(busy.len(), 1);
    }

    #[test]
    fn publish_swaps_the_whole_snapshot() {
        let store = Store::new(Duration::from_secs(60));
        let held = store.load();
        assert_eq!(held.generation, 0);
        let mut builder = SnapshotBuilder::new();
        let pod = builder
            .object(Some("demo"), &GroupResource::pods(), "triton-0")
            .expect("namespaced with a namespace");
        Arc::make_mut(&mut pod.metrics).insert(
            "triton_queue_time_ms".into(),
            Sample::new(8000.0, SystemTime::now()).expect("finite"),
        );
        store.publish(builder);
        let current = store.load();
        assert_eq!(current.generation, 1);
        assert_eq!(current.sample_count(), 1);
        assert!(current.serves(&GroupResource::pods(), "triton_queue_time_ms"));
        // a reader holding the old snapshot keeps a consistent view
        assert!(held.objects(Some("demo"), &GroupResource::pods()).is_none());
    }

    #[test]
    fn cluster_scoped_objects_ignore_the_namespace() {
        let mut builder = SnapshotBuilder::new();
        let nodes = GroupResource::parse("nodes");
        builder.object(Some("ignored"), &nodes, "gpu-node-1");
        assert!(builder.object(None, &GroupResource::pods(), "x").is_none());
        let snapshot = builder.build(1, SystemTime::now());
        assert!(snapshot.objects(None, &nodes).is_some());
    }
}

/// A latch set once the first snapshot is published: `/readyz` answers from it, the sources
/// release it.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A pod as the reflectors see it. Strings and labels are shared with every snapshot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PodInfo {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    pub uid: Option<Arc<str>>,
    pub labels: Arc<Labels>,
    /// The Deployment or StatefulSet it belongs to, resolved through its ReplicaSet.
    pub workload: Option<(WorkloadKind, Arc<str>)>,
}

/// The kinds of workload whose pods' values are aggregated: a byte in each pod's entry, where
/// its resource would take 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum WorkloadKind {
    Deployment,
    StatefulSet,
}

impl WorkloadKind {
    pub(crate) const ALL: [WorkloadKind; 2] = [WorkloadKind::Deployment, WorkloadKind::StatefulSet];

    pub(crate) fn resource(self) -> GroupResource {
        match self {
            WorkloadKind::Deployment => GroupResource::new("deployments", "apps"),
            WorkloadKind::StatefulSet => GroupResource::new("statefulsets", "apps"),
        }
    }
}

/// A Deployment or StatefulSet.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorkloadInfo {
    pub namespace: Arc<str>,
    pub resource: GroupResource,
    pub name: Arc<str>,
    pub uid: Option<Arc<str>>,
    pub labels: Arc<Labels>,
}

/// Everything the reflectors know, stripped to what is served.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Inventory {
    /// In the cluster, sorted by namespace and name.
    pub pods: Vec<PodInfo>,
    pub workloads: Vec<WorkloadInfo>,
    pub nodes: Vec<(Arc<str>, Arc<Labels>)>,
    pub namespaces: Vec<(Arc<str>, Arc<Labels>)>,
    /// For each pod, the position in `workloads` of its workload: worked out once, on first
    /// use, for every snapshot assembled from this inventory (which no one changes after).
    pub pod_workloads: OnceLock<Vec<Option<u32>>>,
}

impl Inventory {
    /// For each pod (by position), the position in `workloads` of its workload, if listed.
    pub(crate) fn pod_workloads(&self) -> &[Option<u32>] {
        self.pod_workloads.get_or_init(|| {
            let resources = WorkloadKind::ALL.map(|kind| (kind, kind.resource()));
            let positions: HashMap<(&str, WorkloadKind, &str), u32> = self
                .workloads
                .iter()
                .zip(0..)
                .filter_map(|(w, at)| {
                    let (kind, _) = resources.iter().find(|(_, r)| *r == w.resource)?;
                    Some(((&*w.namespace, *kind, &*w.name), at))
                })
                .collect();
            self.pods
                .iter()
                .map(|pod| {
                    let (kind, name) = pod.workload.as_ref()?;
                    positions.get(&(&*pod.namespace, *kind, &**name)).copied()
                })
                .collect()
        })
    }
}
