//! The adapter's Kubernetes caches: every pod, ReplicaSet, Deployment, StatefulSet, node and
//! namespace, each object kept as the few fields the inventory reads ([`crate::adapter::pods`]
//! for a pod; a Deployment's uid and labels, a ReplicaSet's Deployment, a node's labels), by
//! (namespace, name) with namespace names shared, not as the object. A `Pod` is over 2 KiB
//! before its strings, and an `ObjectMeta` with the reflector's key over a kilobyte: a cluster
//! keeps up to ten old ReplicaSets per Deployment, and a GPU node carries dozens of labels that
//! the inventory shares instead of copying. All but pods are listed and watched as metadata
//! alone (`PartialObjectMetadataList`), so no pod template or node status crosses the wire.
//!
//! One watcher per resource (list, then watch, with backoff) applies each event as it
//! arrives; a relist replaces the whole cache when it completes. While the API server is
//! unreachable the cache keeps the last known state. Only background tasks read it, under a
//! lock held for one pass.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// An object's (namespace, name); the namespace is empty for a cluster-scoped object.
pub(crate) type ObjectName = (Arc<str>, Arc<str>);

/// What is kept of every object of one resource, by (namespace, name); clones share it.
pub(crate) struct CompactCache<T> {
    kept: Arc<RwLock<HashMap<ObjectName, T>>>,
    listed: tokio::sync::watch::Receiver<bool>,
}

impl<T> Clone for CompactCache<T> {
    fn clone(&self) -> Self {
        CompactCache {
            kept: self.kept.clone(),
            listed: self.listed.clone(),
        }
    }
}

impl<T: Send + Sync + 'static> CompactCache<T> {
    /// Starts the watcher over every `K`'s metadata alone; `keep` turns an object's metadata
    /// into what is kept of it (see [`CompactCache::watch`]).
    pub(crate) fn watch_metadata<K>(
        client: &kube::Client,
        keep: fn(&ObjectMeta) -> Option<T>,
        changes: Arc<AtomicU64>,
    ) -> CompactCache<T>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        CompactCache::watch(
            Api::<PartialObjectMeta<K>>::all(client.clone()),
            move |object: &PartialObjectMeta<K>| keep(&object.metadata),
            changes,
        )
    }

    /// Starts the watcher over every object `api` lists. `keep` turns an object into what is
    /// kept of it (`None`: nothing, and any earlier entry of that object goes); `changes`
    /// counts every change the cache takes in.
    pub(crate) fn watch<K>(
        api: Api<K>,
        mut keep: impl FnMut(&K) -> Option<T> + Send + 'static,
        changes: Arc<AtomicU64>,
    ) -> CompactCache<T>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default,
    {
        let (listed_tx, listed) = tokio::sync::watch::channel(false);
        let cache = CompactCache {
            kept: Arc::default(),
            listed,
        };
        let writer = cache.kept.clone();
        let kind = K::kind(&K::DynamicType::default()).to_string();
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        tokio::spawn(async move {
            let mut relisting: Option<HashMap<ObjectName, T>> = None;
            let mut namespaces = Namespaces::default();
            let mut failures = crate::watch::Failures::new(kind);
            while let Some(event) = events.next().await {
                let Some(event) = failures.event(event) else {
                    continue;
                };
                match event {
                    watcher::Event::Init => relisting = Some(HashMap::new()),
                    watcher::Event::InitApply(object) => {
                        if let (Some(kept), Some(name)) =
                            (relisting.as_mut(), namespaces.name_of(object.meta()))
                            && let Some(entry) = keep(&object)
                        {
                            kept.insert(name, entry);
                        }
                    }
                    watcher::Event::InitDone => {
                        if let Some(kept) = relisting.take() {
                            *write(&writer) = kept;
                        }
                        listed_tx.send_replace(true);
                    }
                    watcher::Event::Apply(object) => {
                        if let Some(name) = namespaces.name_of(object.meta()) {
                            match keep(&object) {
                                Some(entry) => write(&writer).insert(name, entry),
                                None => write(&writer).remove(&name),
                            };
                        }
                    }
                    watcher::Event::Delete(object) => {
                        if let Some(name) = namespaces.name_of(object.meta()) {
                            write(&writer).remove(&name);
                        }
                    }
                }
                // after the cache took it in: a reader that sees the new count sees the change
                changes.fetch_add(1, Ordering::Release);
            }
        });
        cache
    }

    /// Waits for the first complete list; `Err` if the watcher stopped before it.
    pub(crate) async fn wait_until_listed(
        &self,
    ) -> Result<(), tokio::sync::watch::error::RecvError> {
        let mut listed = self.listed.clone();
        listed.wait_for(|listed| *listed).await.map(|_| ())
    }

    /// What is kept now, for one pass over it.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, HashMap<ObjectName, T>> {
        self.kept
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn write<T>(kept: &RwLock<HashMap<ObjectName, T>>) -> RwLockWriteGuard<'_, HashMap<ObjectName, T>> {
    kept.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Namespace names, each held once by every object in it.
#[derive(Default)]
pub(crate) struct Namespaces(HashMap<String, Arc<str>>);

impl Namespaces {
    /// The object's (namespace, name); `None` for an object without a name.
    pub(crate) fn name_of(&mut self, metadata: &ObjectMeta) -> Option<ObjectName> {
        let name = Arc::from(metadata.name.as_deref()?);
        let namespace = metadata.namespace.as_deref().unwrap_or_default();
        let namespace = match self.0.get(namespace) {
            Some(held) => held.clone(),
            None => {
                let held: Arc<str> = Arc::from(namespace);
                self.0.insert(namespace.to_string(), held.clone());
                held
            }
        };
        Some((namespace, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_of_one_namespace_share_its_name() {
        let meta = |namespace: Option<&str>, name: Option<&str>| ObjectMeta {
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            ..ObjectMeta::default()
        };
        let mut namespaces = Namespaces::default();
        let a = namespaces.name_of(&meta(Some("team-a"), Some("web-1")));
        let b = namespaces.name_of(&meta(Some("team-a"), Some("web-2")));
        let (Some((a_namespace, a_name)), Some((b_namespace, _))) = (a, b) else {
            panic!("named objects have names");
        };
        assert!(Arc::ptr_eq(&a_namespace, &b_namespace));
        assert_eq!((&*a_namespace, &*a_name), ("team-a", "web-1"));
        let node = namespaces.name_of(&meta(None, Some("gpu-node-1")));
        assert_eq!(
            node.as_ref().map(|(ns, name)| (&**ns, &**name)),
            Some(("", "gpu-node-1"))
        );
        assert!(namespaces.name_of(&meta(Some("team-a"), None)).is_none());
    }
}
