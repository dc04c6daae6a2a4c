//! What the adapter keeps of a pod: besides its namespace and name (the cache's key), its
//! uid, labels, the controller it belongs to, phase and IP — and nothing else. A `Pod` object
//! is over 2 KiB before any of its strings; at fleet size (tens of thousands of pods) a cache
//! of whole objects would be most of the adapter's memory. The cache itself, and how it
//! follows the API server, is [`crate::adapter::cache`].

use std::collections::HashSet;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, ResourceExt};

use crate::adapter::cache::CompactCache;
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

/// Starts the pod cache: every pod, kept as [`CachedPod`].
pub(crate) fn watch(client: &kube::Client, changes: Arc<AtomicU64>) -> CompactCache<CachedPod> {
    let mut shared = Shared::default();
    CompactCache::watch(
        Api::<Pod>::all(client.clone()),
        move |pod: &Pod| cached(pod, &mut shared),
        changes,
    )
}

/// What many pods hold alike, held once: label sets (every pod of a ReplicaSet has the same
/// labels; a label set costs half a kilobyte before its strings) and the names of the
/// controllers they belong to. (The cache shares namespace names.)
#[derive(Default)]
struct Shared {
    label_sets: Interned<Labels>,
    controllers: Interned<str>,
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

/// The fields kept of `pod`, its label set and controller's name shared with every other pod
/// that has the same; `None` for a pod without a namespace (none is served).
fn cached(pod: &Pod, shared: &mut Shared) -> Option<CachedPod> {
    pod.metadata.namespace.as_ref()?;
    let owners = pod.owner_references();
    let mut controlled_by =
        |kind: &str| crate::watch::owner(owners, kind).map(|name| shared.controllers.get(name));
    let controller = match controlled_by("ReplicaSet") {
        Some(replicaset) => Some(Controller::ReplicaSet(replicaset)),
        None => controlled_by("StatefulSet").map(Controller::StatefulSet),
    };
    let status = pod.status.as_ref();
    Some(CachedPod {
        uid: pod.uid().map(Arc::from),
        labels: shared.label_sets.get(pod.labels()),
        controller,
        phase: PodPhase::of(status.and_then(|s| s.phase.as_deref())),
        ip: status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::cache::Namespaces;
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
        let (mut shared, mut namespaces) = (Shared::default(), Namespaces::default());
        let (pod_a, pod_b) = (pod("triton-0"), pod("triton-1"));
        let a = cached(&pod_a, &mut shared).expect("namespaced");
        let b = cached(&pod_b, &mut shared).expect("namespaced");
        let (a_namespace, a_name) = namespaces.name_of(&pod_a.metadata).expect("named");
        let (b_namespace, _) = namespaces.name_of(&pod_b.metadata).expect("named");
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
            cached(&pod, &mut Shared::default()).expect("namespaced")
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
