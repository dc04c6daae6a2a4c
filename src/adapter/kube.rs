//! What exists in the cluster: caches (one client, list then watch, no LIST per request) of
//! pods ([`crate::adapter::pods`], only the fields read), ReplicaSets, Deployments,
//! StatefulSets, nodes and namespaces (kube reflectors over their metadata alone).
//!
//! [`Cluster::inventory`] turns the caches into the plain [`Inventory`] the snapshot is
//! assembled from, resolving each pod's workload through its owner references (pod →
//! ReplicaSet → Deployment, or pod → StatefulSet), and keeps it until a cache changes.
//! Managed fields and annotations are dropped as objects arrive, to keep the caches small
//! ([`crate::watch`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use crate::adapter::pods::{Controller, PodCache, PodPhase};
use crate::adapter::store::{Inventory, PodInfo, WorkloadInfo, WorkloadKind};
use crate::resources::GroupResource;
use crate::selector::Selector;

/// A cache's writer stopped before its first list.
#[derive(Debug, thiserror::Error)]
#[error("the Kubernetes caches stopped before their first list")]
pub struct CachesStopped;

/// The caches, one per resource.
#[derive(Clone)]
pub struct Cluster {
    pods: PodCache,
    replicasets: Store<PartialObjectMeta<ReplicaSet>>,
    deployments: Store<PartialObjectMeta<Deployment>>,
    statefulsets: Store<PartialObjectMeta<StatefulSet>>,
    nodes: Store<PartialObjectMeta<Node>>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    /// `true` once every cache holds its first list; `None` inside if a writer stopped first.
    ready: tokio::sync::watch::Receiver<Option<bool>>,
    /// Counts every change any cache saw.
    changes: Arc<AtomicU64>,
    /// The last inventory built, and the change count it was built at.
    inventory: Arc<Mutex<Option<BuiltInventory>>>,
}

/// An inventory and the change count it was built at.
type BuiltInventory = (u64, Arc<Inventory>);

fn reflect<K>(client: &kube::Client, changes: &Arc<AtomicU64>) -> Store<PartialObjectMeta<K>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    crate::watch::reflect_counting::<PartialObjectMeta<K>>(
        client,
        kube::runtime::watcher::Config::default(),
        false,
        changes.clone(),
    )
}

impl Cluster {
    /// Starts every reflector; the caches fill in the background.
    pub fn watch(client: &kube::Client) -> Cluster {
        let (ready_tx, ready) = tokio::sync::watch::channel(None);
        let changes = Arc::new(AtomicU64::new(0));
        let (pods_listed, pods_ready) = tokio::sync::oneshot::channel();
        let cluster = Cluster {
            pods: PodCache::watch(client, pods_listed, changes.clone()),
            replicasets: reflect(client, &changes),
            deployments: reflect(client, &changes),
            statefulsets: reflect(client, &changes),
            nodes: reflect(client, &changes),
            namespaces: reflect(client, &changes),
            ready,
            changes,
            inventory: Arc::default(),
        };
        // kube's `Store::wait_until_ready` wakes only the last task waiting on a store (one
        // waker behind a oneshot), so one task waits and tells everyone else.
        let stores = cluster.clone();
        tokio::spawn(async move {
            let listed = async {
                pods_ready.await.is_ok()
                    && stores.replicasets.wait_until_ready().await.is_ok()
                    && stores.deployments.wait_until_ready().await.is_ok()
                    && stores.statefulsets.wait_until_ready().await.is_ok()
                    && stores.nodes.wait_until_ready().await.is_ok()
                    && stores.namespaces.wait_until_ready().await.is_ok()
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
        // each Deployment's name once, shared by all its pods; found by the ReplicaSet's
        // (namespace, name) as the cache holds them, with no string made per pod
        let replicasets = self.replicasets.state();
        let deployment_of: HashMap<(&str, &str), Arc<str>> = replicasets
            .iter()
            .filter_map(|rs| {
                let deployment = crate::watch::owner(rs.owner_references(), "Deployment")?;
                let key = (
                    rs.metadata.namespace.as_deref()?,
                    rs.metadata.name.as_deref()?,
                );
                Some((key, Arc::from(deployment)))
            })
            .collect();
        let deployments = GroupResource::new("deployments", "apps");
        let statefulsets = GroupResource::new("statefulsets", "apps");
        let cached = self.pods.read();
        // sized once: the inventory is held as long as the caches do not change
        let mut pods: Vec<PodInfo> = Vec::with_capacity(cached.len());
        pods.extend(
            cached
                .iter()
                .filter(|(_, pod)| pod.phase != PodPhase::Ended)
                .map(|((namespace, name), pod)| {
                    let workload = match &pod.controller {
                        Some(Controller::ReplicaSet(rs)) => deployment_of
                            .get(&(&**namespace, &**rs))
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
        // by namespace, then name: assembling puts each namespace's pods in one go
        pods.sort_unstable_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let workload =
            |resource: &GroupResource,
             meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
                Some(WorkloadInfo {
                    namespace: Arc::from(meta.namespace.as_deref()?),
                    resource: resource.clone(),
                    name: Arc::from(meta.name.as_deref()?),
                    uid: meta.uid.as_deref().map(Arc::from),
                    labels: Arc::new(meta.labels.clone().unwrap_or_default()),
                })
            };
        let mut workloads: Vec<WorkloadInfo> = self
            .deployments
            .state()
            .iter()
            .filter_map(|d| workload(&deployments, &d.metadata))
            .collect();
        workloads.extend(
            self.statefulsets
                .state()
                .iter()
                .filter_map(|s| workload(&statefulsets, &s.metadata)),
        );
        Inventory {
            pods,
            workloads,
            nodes: self
                .nodes
                .state()
                .iter()
                .map(|n| (Arc::from(n.name_any()), Arc::new(n.labels().clone())))
                .collect(),
            namespaces: self
                .namespaces
                .state()
                .iter()
                .map(|n| (Arc::from(n.name_any()), Arc::new(n.labels().clone())))
                .collect(),
            pod_workloads: Default::default(),
        }
    }
}
