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
use std::hash::Hash;
use std::net::IpAddr;
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

/// Where a pod is in its life (`status.phase`), as far as the adapter tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PodPhase {
    Running,
    /// `Succeeded` or `Failed`: it runs no more and is no workload's member.
    Ended,
    /// `Pending`, `Unknown`, none yet, or one this version does not know.
    Other,
}

impl PodPhase {
    fn of(phase: Option<&str>) -> PodPhase {
        match phase {
            Some("Running") => PodPhase::Running,
            Some("Succeeded" | "Failed") => PodPhase::Ended,
            _ => PodPhase::Other,
        }
    }
}

/// What the adapter keeps of one pod, besides its namespace and name (the cache's key).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CachedPod {
    pub uid: Option<Arc<str>>,
    pub labels: Arc<Labels>,
    pub controller: Option<Controller>,
    pub phase: PodPhase,
    /// `status.podIP`, when it is an address.
    pub ip: Option<IpAddr>,
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

/// What many pods hold alike, held once: namespace names, label sets (every pod of a
/// ReplicaSet has the same labels; a label set costs half a kilobyte before its strings) and
/// the names of the controllers they belong to.
#[derive(Default)]
struct Shared {
    namespaces: HashMap<String, Arc<str>>,
    label_sets: Interned<Labels>,
    controllers: Interned<str>,
}

impl Shared {
    fn namespace(&mut self, namespace: String) -> Arc<str> {
        self.namespaces
            .entry(namespace)
            .or_insert_with_key(|ns| Arc::from(ns.as_str()))
            .clone()
    }
}

/// Values held once, however many pods hold them; those no pod holds any more are let go
/// whenever the table has doubled since it last did so.
struct Interned<T: ?Sized> {
    held: HashSet<Arc<T>>,
    /// Values held when no longer used ones were last let go.
    held_after_pruning: usize,
}

impl<T: ?Sized> Default for Interned<T> {
    fn default() -> Self {
        Interned {
            held: HashSet::new(),
            held_after_pruning: 0,
        }
    }
}

/// A value that can be copied into an `Arc` of its own.
trait CopyShared {
    fn copy_shared(&self) -> Arc<Self>;
}

impl CopyShared for str {
    fn copy_shared(&self) -> Arc<str> {
        Arc::from(self)
    }
}

impl CopyShared for Labels {
    fn copy_shared(&self) -> Arc<Labels> {
        Arc::new(self.clone())
    }
}

impl<T: ?Sized + Eq + Hash + CopyShared> Interned<T> {
    fn get(&mut self, value: &T) -> Arc<T> {
        if let Some(held) = self.held.get(value) {
            return held.clone();
        }
        if self.held.len() >= 2 * self.held_after_pruning.max(512) {
            // values no pod holds any more (only this table does)
            self.held.retain(|value| Arc::strong_count(value) > 1);
            self.held_after_pruning = self.held.len();
        }
        let value = value.copy_shared();
        self.held.insert(value.clone());
        value
    }
}

/// The pod's key, (namespace, name), and the fields kept of it, its namespace string and label
/// set shared with every other pod that has the same; `None` for a pod without a namespace
/// (none is served).
fn cached(pod: Pod, shared: &mut Shared) -> Option<(PodKey, CachedPod)> {
    let namespace = shared.namespace(pod.namespace()?);
    let owners = pod.owner_references();
    let mut controlled_by =
        |kind: &str| crate::watch::owner(owners, kind).map(|name| shared.controllers.get(name));
    let controller = match controlled_by("ReplicaSet") {
        Some(replicaset) => Some(Controller::ReplicaSet(replicaset)),
        None => controlled_by("StatefulSet").map(Controller::StatefulSet),
    };
    let status = pod.status.as_ref();
    let key = (namespace, Arc::from(pod.name_any()));
    let cached = CachedPod {
        uid: pod.uid().map(Arc::from),
        labels: shared.label_sets.get(pod.labels()),
        controller,
        phase: PodPhase::of(status.and_then(|s| s.phase.as_deref())),
        ip: status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok()),
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
        let kept = shared.label_sets.get(&set(0));
        for i in 1..2_000 {
            drop(shared.label_sets.get(&set(i)));
        }
        assert!(
            shared.label_sets.held.len() < 1_100,
            "{}",
            shared.label_sets.held.len()
        );
        assert!(
            Arc::ptr_eq(&kept, &shared.label_sets.get(&set(0))),
            "a held set stays"
        );
    }

    #[test]
    fn keeps_what_the_adapter_reads_and_shares_namespaces_labels_and_controllers() {
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
        match (&a.controller, &b.controller) {
            (Some(Controller::ReplicaSet(a)), Some(Controller::ReplicaSet(b))) => {
                assert!(Arc::ptr_eq(a, b), "one ReplicaSet name for both")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(&*a_name, "triton-0");
        assert_eq!(a.uid.as_deref(), Some("triton-0-uid"));
        assert_eq!(a.labels.get("app").map(String::as_str), Some("triton"));
        assert_eq!(
            a.controller,
            Some(Controller::ReplicaSet("triton-7d4f9".into()))
        );
        assert_eq!(
            (a.phase, a.ip),
            (PodPhase::Running, Some([10, 0, 0, 7].into()))
        );
    }

    #[test]
    fn phases_and_addresses_are_read_as_the_api_writes_them() {
        let pod = |phase: Option<&str>, ip: Option<&str>| -> CachedPod {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "demo"},
                "status": {"phase": phase, "podIP": ip}
            }))
            .expect("a pod");
            cached(pod, &mut Shared::default()).expect("namespaced").1
        };
        for (phase, read) in [
            (Some("Running"), PodPhase::Running),
            (Some("Succeeded"), PodPhase::Ended),
            (Some("Failed"), PodPhase::Ended),
            (Some("Pending"), PodPhase::Other),
            (Some("Unknown"), PodPhase::Other),
            (None, PodPhase::Other),
        ] {
            assert_eq!(pod(phase, None).phase, read, "{phase:?}");
        }
        let ipv6: IpAddr = "fd00::7".parse().expect("an address");
        assert_eq!(pod(None, Some("fd00::7")).ip, Some(ipv6));
        // an empty or malformed podIP is no address to scrape
        assert_eq!(pod(None, Some("")).ip, None);
        assert_eq!(pod(None, Some("10.0.0")).ip, None);
    }
}
