//! Kubernetes caches for both roles: a reflector (list, then watch, with backoff) feeding a
//! [`Store`] that readers query without waiting, and a task that keeps it running and logs once
//! per outage. While the API server is unreachable the cache keeps the last known state.

use std::fmt::Debug;
use std::hash::Hash;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// Drops what no reader needs as objects arrive: managed fields always, annotations unless
/// `keep_annotations`.
pub fn trim<K: Resource>(object: &mut K, keep_annotations: bool) {
    object.managed_fields_mut().clear();
    if !keep_annotations {
        object.annotations_mut().clear();
    }
}

/// Starts a reflector over every `K` that `config` selects and returns its cache.
pub(crate) fn reflect<K>(
    client: &kube::Client,
    config: watcher::Config,
    keep_annotations: bool,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let events = watcher(Api::<K>::all(client.clone()), config)
        .modify(move |object| trim(object, keep_annotations))
        .default_backoff();
    let mut stream = reflector::reflector(writer, events)
        .applied_objects()
        .boxed();
    let kind = K::kind(&K::DynamicType::default()).to_string();
    tokio::spawn(async move {
        let mut reported = false;
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => reported = false,
                Err(error) if !reported => {
                    tracing::warn!(%error, kind, "watch failed; serving the last known state and retrying");
                    reported = true;
                }
                Err(_) => {}
            }
        }
    });
    reader
}
