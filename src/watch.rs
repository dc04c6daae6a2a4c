//! Kubernetes watches for both roles: a reflector (list, then watch, with backoff) feeding a
//! [`Store`] that readers query without waiting (the exporter's pods), the owner lookup, and
//! the logging of a watch's failures once per outage (every cache, the adapter's compact ones
//! too). While the API server is unreachable a cache keeps the last known state.

use std::fmt::Debug;
use std::hash::Hash;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
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

/// The name of `owners`' owner of `kind`: the controlling one, else the first of that kind.
pub(crate) fn owner<'a>(owners: &'a [OwnerReference], kind: &str) -> Option<&'a str> {
    owners
        .iter()
        .find(|o| o.kind == kind && o.controller == Some(true))
        .or_else(|| owners.iter().find(|o| o.kind == kind))
        .map(|o| o.name.as_str())
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
    let mut stream = reflector::reflector(writer, events).boxed();
    let mut failures = Failures::new(K::kind(&K::DynamicType::default()).to_string());
    tokio::spawn(async move {
        while let Some(event) = stream.next().await {
            failures.event(event);
        }
    });
    reader
}

/// A watch stream's failures, logged once per outage: the watcher retries by itself, and the
/// cache keeps serving what it knew, so the first error after a success is worth a warning and
/// the rest until the next success are not.
pub(crate) struct Failures {
    kind: String,
    reported: bool,
}

impl Failures {
    pub(crate) fn new(kind: impl Into<String>) -> Failures {
        Failures {
            kind: kind.into(),
            reported: false,
        }
    }

    /// The event, if it is not a failure.
    pub(crate) fn event<T>(&mut self, event: Result<T, watcher::Error>) -> Option<T> {
        match event {
            Ok(event) => {
                self.reported = false;
                Some(event)
            }
            Err(error) => {
                if !self.reported {
                    tracing::warn!(%error, kind = self.kind, "watch failed; serving the last known state and retrying");
                    self.reported = true;
                }
                None
            }
        }
    }
}
