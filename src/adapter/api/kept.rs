//! Custom-metrics answers kept after they are sent, and sent again to the same read while
//! nothing they were built from has changed.
//!
//! An HPA, a dashboard, or many replicas of one asking in turn repeat the same read; between two
//! publishes its answer changes only when a sample in it ages past max-age. So an answer is kept
//! with what it was built from, all compared by identity or a single time, never by content:
//!
//! - the scope's objects, as the snapshot shares them ([`Snapshot::shared_objects`]): published
//!   objects never change, and a snapshot that changes a scope holds a new `Arc` for it;
//! - the oldest sample in the answer, still fresh now, on a clock that has not gone back;
//! - the max-age it was built under.
//!
//! The metric must still be served for the resource, which the caller checks before asking
//! ([`super::metrics::objects_read`]). A kept answer holds its scope's objects by a weak
//! reference only, so their memory is not reused while it is kept and no snapshot is kept alive
//! by it.
//!
//! Slots are fixed, one per hash of the read, each swapped atomically: no read waits on a lock;
//! two reads that miss at once both build, and the later one's answer is kept; a collision
//! replaces. The bytes kept are bounded ([`KEPT_BYTES`]); answers whose objects no snapshot holds
//! any longer are dropped to make room.
//!
//! [`Snapshot::shared_objects`]: crate::adapter::store::Snapshot::shared_objects

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use super::bodies::CustomVersion;
use super::metrics::{Answer, Freshness};
use crate::adapter::store::Objects;
use arc_swap::ArcSwapOption;

/// How many answers are kept at most: reads repeated often enough to gain are few (an HPA per
/// workload asks once per sync period).
const SLOTS: usize = 64;
/// The most bytes of answers kept, and the most one answer may take: a Pods list of 1,000 pods
/// is about 200 KB.
const KEPT_BYTES: usize = 4 << 20;
const LARGEST_KEPT: usize = KEPT_BYTES / 4;

/// A custom read, as sent: its version, the rest of its path and its query, raw.
pub(crate) struct ReadKey(Box<str>);

impl ReadKey {
    pub fn new(version: CustomVersion, rest: &str, query: Option<&str>) -> ReadKey {
        let query = query.unwrap_or_default();
        let mut key = String::with_capacity(version.as_str().len() + rest.len() + query.len() + 2);
        for part in [version.as_str(), "/", rest, "?", query] {
            key.push_str(part);
        }
        ReadKey(key.into_boxed_str())
    }
}

/// One kept answer and what it was built from.
struct Kept {
    key: ReadKey,
    objects: Weak<Objects>,
    built_at: SystemTime,
    max_age: Duration,
    answer: Answer,
}

impl Kept {
    fn size(&self) -> usize {
        self.answer.body_memory + self.key.0.len()
    }

    fn answers(&self, key: &ReadKey, objects: &Arc<Objects>, freshness: Freshness) -> bool {
        self.key.0 == key.0
            && std::ptr::eq(self.objects.as_ptr(), Arc::as_ptr(objects))
            && self.max_age == freshness.max_age
            && freshness.now >= self.built_at
            && self
                .answer
                .oldest
                .is_none_or(|oldest| oldest >= freshness.cutoff())
    }
}

/// The kept answers; one per router.
pub(crate) struct KeptAnswers {
    slots: Box<[ArcSwapOption<Kept>]>,
    bytes: AtomicUsize,
    hasher: foldhash::fast::FixedState,
}

impl Default for KeptAnswers {
    fn default() -> Self {
        KeptAnswers {
            slots: (0..SLOTS).map(|_| ArcSwapOption::empty()).collect(),
            bytes: AtomicUsize::new(0),
            hasher: foldhash::fast::FixedState::default(),
        }
    }
}

impl KeptAnswers {
    fn slot(&self, key: &ReadKey) -> &ArcSwapOption<Kept> {
        let index = self.hasher.hash_one(&key.0) as usize % self.slots.len();
        &self.slots[index]
    }

    /// The answer kept for `key`, if it is what building it from `objects` at `freshness` would
    /// give: the same body, item count and oldest sample.
    pub fn find(
        &self,
        key: &ReadKey,
        objects: &Arc<Objects>,
        freshness: Freshness,
    ) -> Option<Answer> {
        let kept = self.slot(key).load();
        kept.as_ref()
            .filter(|kept| kept.answers(key, objects, freshness))
            .map(|kept| kept.answer.clone())
    }

    /// Keeps `answer`, built for `key` from `objects` at `freshness`, unless it is larger than
    /// one answer may be or no room is left once answers of objects no snapshot holds are
    /// dropped.
    pub fn keep(
        &self,
        key: ReadKey,
        objects: &Arc<Objects>,
        freshness: Freshness,
        answer: &Answer,
    ) {
        let kept = Kept {
            key,
            objects: Arc::downgrade(objects),
            built_at: freshness.now,
            max_age: freshness.max_age,
            answer: answer.clone(),
        };
        let size = kept.size();
        if size > LARGEST_KEPT {
            return;
        }
        let slot = self.slot(&kept.key);
        self.release(slot.swap(None));
        if !self.reserve(size) {
            self.drop_outdated();
            if !self.reserve(size) {
                return;
            }
        }
        self.release(slot.swap(Some(Arc::new(kept))));
    }

    /// Counts `size` more bytes kept if they fit, in one step, so that reads missing at once
    /// cannot together keep more than the bound. Every kept answer's size is counted once here
    /// and taken off once where it leaves a slot.
    fn reserve(&self, size: usize) -> bool {
        self.bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                Some(held + size).filter(|&total| total <= KEPT_BYTES)
            })
            .is_ok()
    }

    /// Drops every answer whose objects no snapshot holds any longer: none can be sent again.
    fn drop_outdated(&self) {
        for slot in &self.slots {
            let outdated = slot
                .load()
                .as_ref()
                .is_some_and(|kept| kept.objects.strong_count() == 0);
            if outdated {
                self.release(slot.swap(None));
            }
        }
    }

    fn release(&self, left: Option<Arc<Kept>>) {
        if let Some(kept) = left {
            self.bytes.fetch_sub(kept.size(), Ordering::Relaxed);
        }
    }

    /// Bytes of answers kept now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::store::SampleTime;
    use axum::body::Bytes;

    const MAX_AGE: Duration = Duration::from_secs(30);

    fn answer(body: &str, oldest: Option<SystemTime>) -> Answer {
        Answer {
            body: Bytes::copy_from_slice(body.as_bytes()),
            body_memory: body.len(),
            items: 1,
            oldest: oldest.map(SampleTime::from),
        }
    }

    fn at(now: SystemTime) -> Freshness {
        Freshness {
            now,
            max_age: MAX_AGE,
        }
    }

    fn key(rest: &str) -> ReadKey {
        ReadKey::new(
            CustomVersion::V1beta2,
            rest,
            Some("labelSelector=app%3Dtriton"),
        )
    }

    fn objects() -> Arc<Objects> {
        Arc::new(Objects::default())
    }

    #[test]
    fn an_answer_is_found_for_the_same_read_of_the_same_objects_while_its_samples_are_fresh() {
        let kept = KeptAnswers::default();
        let now = SystemTime::now();
        let scope = objects();
        let sampled = now - Duration::from_secs(10);
        kept.keep(
            key("pods/*/m"),
            &scope,
            at(now),
            &answer("{}", Some(sampled)),
        );

        let found = kept.find(&key("pods/*/m"), &scope, at(now + Duration::from_secs(5)));
        let found = found.expect("the same read, objects and fresh samples");
        assert_eq!(&found.body[..], b"{}");
        assert_eq!(found.items, 1);
        assert_eq!(found.oldest, Some(SampleTime::from(sampled)));
        // the oldest sample's last fresh moment, then one past it
        let last_fresh = sampled + MAX_AGE;
        assert!(
            kept.find(&key("pods/*/m"), &scope, at(last_fresh))
                .is_some()
        );
        let aged = last_fresh + Duration::from_millis(1);
        assert!(
            kept.find(&key("pods/*/m"), &scope, at(aged)).is_none(),
            "a sample aged out"
        );
    }

    #[test]
    fn nothing_is_found_once_anything_it_was_built_from_differs() {
        let kept = KeptAnswers::default();
        let now = SystemTime::now();
        let scope = objects();
        kept.keep(key("pods/*/m"), &scope, at(now), &answer("{}", Some(now)));

        let other = ReadKey::new(
            CustomVersion::V1beta1,
            "pods/*/m",
            Some("labelSelector=app%3Dtriton"),
        );
        assert!(
            kept.find(&other, &scope, at(now)).is_none(),
            "another version"
        );
        let other = ReadKey::new(CustomVersion::V1beta2, "pods/*/m", None);
        assert!(
            kept.find(&other, &scope, at(now)).is_none(),
            "another query"
        );
        assert!(
            kept.find(&key("pods/*/n"), &scope, at(now)).is_none(),
            "another metric"
        );
        // equal contents, but not the objects it was built from: a snapshot that changed them
        assert!(
            kept.find(&key("pods/*/m"), &objects(), at(now)).is_none(),
            "other objects"
        );
        let earlier = now - Duration::from_secs(1);
        assert!(
            kept.find(&key("pods/*/m"), &scope, at(earlier)).is_none(),
            "the clock went back"
        );
        let shorter = Freshness {
            now,
            max_age: Duration::from_secs(1),
        };
        assert!(
            kept.find(&key("pods/*/m"), &scope, shorter).is_none(),
            "another max-age"
        );
        assert!(kept.find(&key("pods/*/m"), &scope, at(now)).is_some());
    }

    #[test]
    fn an_answer_without_samples_holds_until_its_objects_change() {
        let kept = KeptAnswers::default();
        let now = SystemTime::now();
        let scope = objects();
        kept.keep(key("pods/*/m"), &scope, at(now), &answer("[]", None));
        let much_later = now + Duration::from_secs(3600);
        assert!(
            kept.find(&key("pods/*/m"), &scope, at(much_later))
                .is_some()
        );
    }

    #[test]
    fn kept_bytes_are_bounded_and_answers_of_objects_no_snapshot_holds_make_room() {
        let kept = KeptAnswers::default();
        let now = SystemTime::now();
        let body = "x".repeat(LARGEST_KEPT - 64);
        let scopes: Vec<Arc<Objects>> = (0..SLOTS).map(|_| objects()).collect();
        let keys: Vec<String> = (0..SLOTS).map(|i| format!("pods/*/m{i}")).collect();
        for (rest, scope) in keys.iter().zip(&scopes) {
            kept.keep(key(rest), scope, at(now), &answer(&body, None));
        }
        assert!(kept.bytes() <= KEPT_BYTES, "{} bytes kept", kept.bytes());
        let held = keys
            .iter()
            .zip(&scopes)
            .filter(|(rest, scope)| kept.find(&key(rest), scope, at(now)).is_some())
            .count();
        assert!(
            (1..=4).contains(&held),
            "{held} answers of {} KiB kept",
            body.len() >> 10
        );

        // once no snapshot holds their objects, the next answer kept makes room for itself
        drop(scopes);
        let scope = objects();
        kept.keep(key("pods/*/new"), &scope, at(now), &answer(&body, None));
        assert!(kept.find(&key("pods/*/new"), &scope, at(now)).is_some());
        assert!(kept.bytes() <= KEPT_BYTES, "{} bytes kept", kept.bytes());
        // and what is left of them goes the same way, the count back to what is kept
        drop(scope);
        kept.drop_outdated();
        assert_eq!(kept.bytes(), 0);
    }

    #[test]
    fn an_answer_larger_than_a_quarter_of_the_room_is_not_kept() {
        let kept = KeptAnswers::default();
        let now = SystemTime::now();
        let scope = objects();
        kept.keep(
            key("pods/*/m"),
            &scope,
            at(now),
            &answer(&"x".repeat(LARGEST_KEPT), None),
        );
        assert!(kept.find(&key("pods/*/m"), &scope, at(now)).is_none());
        assert_eq!(kept.bytes(), 0);
    }
}
