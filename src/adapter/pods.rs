//! The adapter's pod cache: every pod the API server lists, kept as the few fields the adapter
//! reads — name, namespace, uid, labels, the controller it belongs to, phase and IP — and
//! nothing else. A `Pod` object is over 2 KiB before any of its strings; at fleet size (tens of
//! thousands of pods) a cache of whole objects would be most of the adapter's memory.
//!
//! One watcher (list, then watch, with backoff) applies each event as it arrives; a relist
//! replaces the whole cache when it completes. While the API server is unreachable the cache
//! keeps the last known state. Only background tasks read it (never a request), under a lock
//! held for as long as one pass over it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use crate::adapter::store::Labels;

/// The controller a pod belongs to, by kind and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Controller {
    ReplicaSet(Arc<str>),
    StatefulSet(Arc<str>),
}

/// What the adapter keeps of one pod, besides its namespace and name (the cache's key).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CachedPod {
    pub uid: Option<Arc<str>>,
    pub labels: Arc<Labels>,
    pub controller: Option<Controller>,
    pub phase: Option<Box<str>>,
    pub ip: Option<Box<str>>,
}

/// A pod's (namespace, name).
pub(crate) type PodKey = (Arc<str>, Arc<str>);

/// Pods by (namespace, name).
pub(crate) type Pods = HashMap<PodKey, CachedPod>;

/// The cache; clones share it.
#[derive(Clone, Default)]
pub(crate) struct PodCache {
    pods: Arc<RwLock<Pods>>,
}

impl PodCache {
    /// Starts the watcher; `listed` is told once the first complete list is in, and `changes`
    /// counts every change the cache takes in.
    pub(crate) fn watch(
        client: &kube::Client,
        listed: tokio::sync::oneshot::Sender<()>,
        changes: Arc<AtomicU64>,
    ) -> PodCache {
        let cache = PodCache::default();
        let writer = cache.clone();
        let mut events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .boxed();
        tokio::spawn(async move {
            let mut listed = Some(listed);
            let mut relisting: Option<Pods> = None;
            let mut shared = Shared::default();
            let mut failures = crate::watch::Failures::new("Pod");
            while let Some(event) = events.next().await {
                let Some(event) = failures.event(event) else {
                    continue;
                };
                match event {
                    watcher::Event::Init => relisting = Some(Pods::new()),
                    watcher::Event::InitApply(pod) => {
                        if let (Some(pods), Some((key, pod))) =
                            (relisting.as_mut(), cached(pod, &mut shared))
                        {
                            pods.insert(key, pod);
                        }
                    }
                    watcher::Event::InitDone => {
                        if let Some(pods) = relisting.take() {
                            *writer.write() = pods;
                        }
                        if let Some(listed) = listed.take() {
                            let _ = listed.send(());
                        }
                    }
                    watcher::Event::Apply(pod) => {
                        if let Some((key, pod)) = cached(pod, &mut shared) {
                            writer.write().insert(key, pod);
                        }
                    }
                    watcher::Event::Delete(pod) => {
                        if let Some(namespace) = pod.namespace() {
                            let key: PodKey = (namespace.into(), pod.name_any().into());
                            writer.write().remove(&key);
                        }
                    }
                }
                // after the cache took it in: a reader that sees the new count sees the change
                changes.fetch_add(1, Ordering::Release);
            }
        });
        cache
    }

    /// The pods now, for one pass over them.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Pods> {
        self.pods
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Pods> {
        self.pods
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What many pods hold alike, held once: namespace names, and label sets (every pod of a
/// ReplicaSet has the same labels; a label set costs half a kilobyte before its strings).
#[derive(Default)]
struct Shared {
    namespaces: HashMap<String, Arc<str>>,
    label_sets: HashSet<Arc<Labels>>,
    /// Label sets held when no longer used ones were last let go.
    label_sets_after_pruning: usize,
}

impl Shared {
    fn namespace(&mut self, namespace: String) -> Arc<str> {
        self.namespaces
            .entry(namespace)
            .or_insert_with_key(|ns| Arc::from(ns.as_str()))
            .clone()
    }

    fn labels(&mut self, labels: &Labels) -> Arc<Labels> {
        if let Some(held) = self.label_sets.get(labels) {
            return held.clone();
        }
        if self.label_sets.len() >= 2 * self.label_sets_after_pruning.max(512) {
            // sets no pod holds any more (only this table does)
            self.label_sets.retain(|set| Arc::strong_count(set) > 1);
            self.label_sets_after_pruning = self.label_sets.len();
        }
        let labels = Arc::new(labels.clone());
        self.label_sets.insert(labels.clone());
        labels
    }
}

/// The pod's key, (namespace, name), and the fields kept of it, its namespace string and label
/// set shared with every other pod that has the same; `None` for a pod without a namespace
/// (none is served).
fn cached(pod: Pod, shared: &mut Shared) -> Option<(PodKey, CachedPod)> {
    let namespace = shared.namespace(pod.namespace()?);
    let owners = pod.owner_references();
    let controlled_by = |kind: &str| crate::watch::owner(owners, kind).map(Arc::from);
    let controller = controlled_by("ReplicaSet")
        .map(Controller::ReplicaSet)
        .or_else(|| controlled_by("StatefulSet").map(Controller::StatefulSet));
    let status = pod.status.as_ref();
    let key = (namespace, Arc::from(pod.name_any()));
    let cached = CachedPod {
        uid: pod.uid().map(Arc::from),
        labels: shared.labels(pod.labels()),
        controller,
        phase: status.and_then(|s| s.phase.as_deref()).map(Box::from),
        ip: status
            .and_then(|s| s.pod_ip.as_deref())
            .filter(|ip| !ip.is_empty())
            .map(Box::from),
    };
    Some((key, cached))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_sets_no_pod_holds_are_let_go() {
        let mut shared = Shared::default();
        let set = |i: usize| -> Labels { [("app".to_string(), format!("app-{i}"))].into() };
        let kept = shared.labels(&set(0));
        for i in 1..2_000 {
            drop(shared.labels(&set(i)));
        }
        assert!(
            shared.label_sets.len() < 1_100,
            "{}",
            shared.label_sets.len()
        );
        assert!(
            Arc::ptr_eq(&kept, &shared.labels(&set(0))),
            "a held set stays"
        );
    }

    #[test]
    fn keeps_what_the_adapter_reads_and_shares_namespaces_and_labels() {
        let pod = |name: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "demo", "uid": format!("{name}-uid"),
                             "labels": {"app": "triton"},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                  "name": "triton-7d4f9", "uid": "rs", "controller": true}]},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
                "status": {"phase": "Running", "podIP": "10.0.0.7"}
            }))
            .expect("a pod")
        };
        let mut shared = Shared::default();
        let ((a_namespace, a_name), a) = cached(pod("triton-0"), &mut shared).expect("namespaced");
        let ((b_namespace, _), b) = cached(pod("triton-1"), &mut shared).expect("namespaced");
        assert!(Arc::ptr_eq(&a_namespace, &b_namespace));
        assert!(Arc::ptr_eq(&a.labels, &b.labels), "one label set for both");
        assert_eq!(&*a_name, "triton-0");
        assert_eq!(a.uid.as_deref(), Some("triton-0-uid"));
        assert_eq!(a.labels.get("app").map(String::as_str), Some("triton"));
        assert_eq!(
            a.controller,
            Some(Controller::ReplicaSet("triton-7d4f9".into()))
        );
        assert_eq!(
            (a.phase.as_deref(), a.ip.as_deref()),
            (Some("Running"), Some("10.0.0.7"))
        );
    }
}
