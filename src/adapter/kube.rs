//! What exists in the cluster: caches (one client, list then watch, no LIST per request) of
//! pods, ReplicaSets, Deployments, StatefulSets, nodes and namespaces
//! ([`crate::adapter::cache`]; all but pods listed as metadata alone), each object kept as the
//! few fields read.
//!
//! [`Cluster::inventory`] turns the caches into the plain [`Inventory`] the snapshot is
//! assembled from, resolving each pod's workload through its owner references (pod →
//! ReplicaSet → Deployment, or pod → StatefulSet), and keeps it until a cache changes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::adapter::cache::CompactCache;
use crate::adapter::pods::{CachedPod, Controller, PodPhase};
use crate::adapter::store::{Inventory, Labels, PodInfo, WorkloadInfo, WorkloadKind};
use crate::selector::Selector;

/// A cache's writer stopped before its first list.
#[derive(Debug, thiserror::Error)]
#[error("the Kubernetes caches stopped before their first list")]
pub struct CachesStopped;

/// The caches, one per resource.
#[derive(Clone)]
pub struct Cluster {
    pods: CompactCache<CachedPod>,
    /// Each ReplicaSet's Deployment (ReplicaSets of none are not kept).
    replicasets: CompactCache<Arc<str>>,
    deployments: CompactCache<WorkloadMeta>,
    statefulsets: CompactCache<WorkloadMeta>,
    /// Each node's labels.
    nodes: CompactCache<Arc<Labels>>,
    /// Each namespace's labels.
    namespaces: CompactCache<Arc<Labels>>,
    /// `true` once every cache holds its first list; `None` inside if a writer stopped first.
    ready: tokio::sync::watch::Receiver<Option<bool>>,
    /// Counts every change any cache saw.
    changes: Arc<AtomicU64>,
    /// The last inventory built, and the change count it was built at.
    inventory: Arc<Mutex<Option<BuiltInventory>>>,
}

/// An inventory and the change count it was built at.
type BuiltInventory = (u64, Arc<Inventory>);

/// What is kept of a Deployment or StatefulSet.
struct WorkloadMeta {
    uid: Option<Arc<str>>,
    labels: Arc<Labels>,
}

fn workload_meta(meta: &ObjectMeta) -> Option<WorkloadMeta> {
    Some(WorkloadMeta {
        uid: meta.uid.as_deref().map(Arc::from),
        labels: labels(meta)?,
    })
}

fn labels(meta: &ObjectMeta) -> Option<Arc<Labels>> {
    Some(Arc::new(meta.labels.clone().unwrap_or_default()))
}

fn deployment_of(meta: &ObjectMeta) -> Option<Arc<str>> {
    let owners = meta.owner_references.as_deref().unwrap_or_default();
    crate::watch::owner(owners, "Deployment").map(Arc::from)
}

impl Cluster {
    /// Starts every reflector; the caches fill in the background.
    pub fn watch(client: &kube::Client) -> Cluster {
        let (ready_tx, ready) = tokio::sync::watch::channel(None);
        let changes = Arc::new(AtomicU64::new(0));
        let cluster = Cluster {
            pods: crate::adapter::pods::watch(client, changes.clone()),
            replicasets: CompactCache::watch_metadata::<ReplicaSet>(
                client,
                deployment_of,
                changes.clone(),
            ),
            deployments: CompactCache::watch_metadata::<Deployment>(
                client,
                workload_meta,
                changes.clone(),
            ),
            statefulsets: CompactCache::watch_metadata::<StatefulSet>(
                client,
                workload_meta,
                changes.clone(),
            ),
            nodes: CompactCache::watch_metadata::<Node>(client, labels, changes.clone()),
            namespaces: CompactCache::watch_metadata::<Namespace>(client, labels, changes.clone()),
            ready,
            changes,
            inventory: Arc::default(),
        };
        // one task waits for every first list and tells everyone else
        let stores = cluster.clone();
        tokio::spawn(async move {
            let listed = async {
                stores.pods.wait_until_listed().await.is_ok()
                    && stores.replicasets.wait_until_listed().await.is_ok()
                    && stores.deployments.wait_until_listed().await.is_ok()
                    && stores.statefulsets.wait_until_listed().await.is_ok()
                    && stores.nodes.wait_until_listed().await.is_ok()
                    && stores.namespaces.wait_until_listed().await.is_ok()
            };
            let _ = ready_tx.send(Some(listed.await));
        });
        cluster
    }

    /// Resolves once every cache holds its first complete list; any number of tasks may wait.
    pub async fn wait_until_ready(&self) -> Result<(), CachesStopped> {
        let mut ready = self.ready.clone();
        match ready.wait_for(Option::is_some).await.map(|r| *r) {
            Ok(Some(true)) => Ok(()),
            _ => Err(CachesStopped),
        }
    }

    /// Running pods (in any namespace) whose labels match `selector`, with their IPs.
    pub(crate) fn running_pods(&self, selector: &Selector) -> Vec<(String, String, String)> {
        self.pods
            .read()
            .iter()
            .filter(|(_, pod)| pod.phase == PodPhase::Running)
            .filter(|(_, pod)| selector.matches(&pod.labels))
            .filter_map(|((namespace, name), pod)| {
                let ip = pod.ip?;
                Some((namespace.to_string(), name.to_string(), ip.to_string()))
            })
            .collect()
    }

    /// Everything the snapshot is assembled from: rebuilt only after a cache changed, else
    /// the one built last (publishing several times a second costs no copy of the caches).
    pub(crate) fn inventory(&self) -> Arc<Inventory> {
        let changes = self.changes.load(Ordering::Acquire);
        let mut cached = self
            .inventory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*cached {
            Some((built_at, inventory)) if *built_at == changes => inventory.clone(),
            _ => {
                let inventory = Arc::new(self.build_inventory());
                *cached = Some((changes, inventory.clone()));
                inventory
            }
        }
    }

    fn build_inventory(&self) -> Inventory {
        // a pod's Deployment is found by its ReplicaSet's (namespace, name), the pod's own
        // shared strings, and each Deployment's name is shared by all its pods
        let replicasets = self.replicasets.read();
        let cached = self.pods.read();
        // sized once: the inventory is held as long as the caches do not change
        let mut pods: Vec<PodInfo> = Vec::with_capacity(cached.len());
        pods.extend(
            cached
                .iter()
                .filter(|(_, pod)| pod.phase != PodPhase::Ended)
                .map(|((namespace, name), pod)| {
                    let workload = match &pod.controller {
                        Some(Controller::ReplicaSet(rs)) => replicasets
                            .get(&(namespace.clone(), rs.clone()))
                            .map(|d| (WorkloadKind::Deployment, d.clone())),
                        Some(Controller::StatefulSet(set)) => {
                            Some((WorkloadKind::StatefulSet, set.clone()))
                        }
                        None => None,
                    };
                    PodInfo {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        uid: pod.uid.clone(),
                        labels: pod.labels.clone(),
                        workload,
                    }
                }),
        );
        drop(cached);
        drop(replicasets);
        // by namespace, then name: assembling puts each namespace's pods in one go
        pods.sort_unstable_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut workloads = Vec::new();
        for (kind, cache) in [
            (WorkloadKind::Deployment, &self.deployments),
            (WorkloadKind::StatefulSet, &self.statefulsets),
        ] {
            let resource = kind.resource();
            workloads.extend(
                cache
                    .read()
                    .iter()
                    .map(|((namespace, name), meta)| WorkloadInfo {
                        namespace: namespace.clone(),
                        resource: resource.clone(),
                        name: name.clone(),
                        uid: meta.uid.clone(),
                        labels: meta.labels.clone(),
                    }),
            );
        }
        let named = |cache: &CompactCache<Arc<Labels>>| -> Vec<(Arc<str>, Arc<Labels>)> {
            cache
                .read()
                .iter()
                .map(|((_, name), labels)| (name.clone(), labels.clone()))
                .collect()
        };
        Inventory {
            pods,
            workloads,
            nodes: named(&self.nodes),
            namespaces: named(&self.namespaces),
            pod_workloads: Default::default(),
        }
    }
}
