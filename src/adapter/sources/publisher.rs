//! Joins the Kubernetes inventory and every source's values into the snapshot the API serves.
//!
//! Sources never touch the store: each hands its latest [`SourceValues`] over a watch channel,
//! and this task assembles and publishes a snapshot whenever one changes — and at least every
//! `refresh`, so that pods appearing or leaving and values ageing past their max-age show
//! without waiting for a source. Changes arriving closer together than [`COALESCE`] are
//! published together: with a thousand exporters each handing over a page a second, the
//! snapshot is assembled a few times a second, not a thousand. Where assembling takes long (a
//! fleet-size snapshot), the gap grows so that publishing takes at most [`PUBLISH_SHARE`] of a
//! core: values then wait a little longer, and requests keep their CPU. Readiness is released
//! once the caches are listed and the first snapshot is out: never gated on an exporter or
//! Prometheus answering.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::select_all;
use tokio::sync::watch;

use super::assemble::{SourceValues, assemble_after};
use crate::adapter::kube::Cluster;
use crate::adapter::store::Readiness;
use crate::adapter::store::Store;
use crate::adapter::telemetry::Telemetry;

/// The shortest time between two snapshots a source's change causes.
pub(crate) const COALESCE: Duration = Duration::from_millis(200);
/// The most of one core publishing may take: the gap after a publish is at least its duration
/// divided by this.
const PUBLISH_SHARE: f64 = 0.05;
/// The longest gap that rule may set: values are never held back longer than this.
const LONGEST_GAP: Duration = Duration::from_millis(500);
/// How often, and how long each time, the publisher looks whether the snapshot it replaced is
/// still being read before leaving it to be freed at the next publish.
const RETIRED_WAITS: usize = 20;
const RETIRED_WAIT: Duration = Duration::from_millis(2);

pub(crate) struct Publisher {
    pub cluster: Cluster,
    pub sources: Vec<watch::Receiver<Arc<SourceValues>>>,
    pub refresh: Duration,
    pub store: Arc<Store>,
    pub readiness: Readiness,
    pub telemetry: Arc<Telemetry>,
}

impl Publisher {
    /// Runs until the task is dropped.
    pub async fn run(mut self) {
        if self.cluster.wait_until_ready().await.is_err() {
            tracing::error!("the Kubernetes caches stopped before their first list");
            return;
        }
        let mut ticker = tokio::time::interval(self.refresh);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let held: Vec<Arc<SourceValues>> = self
                .sources
                .iter_mut()
                .map(|source| source.borrow_and_update().clone())
                .collect();
            // assembled on the background runtime's blocking pool: a large snapshot takes
            // tens of milliseconds to assemble, and the scrapes sharing the runtime's one
            // thread go on meanwhile
            let (cluster, store, telemetry) = (
                self.cluster.clone(),
                self.store.clone(),
                self.telemetry.clone(),
            );
            let assembled =
                tokio::task::spawn_blocking(move || publish(&cluster, &store, &held, &telemetry))
                    .await;
            let gap = match assembled {
                Ok(took) => gap_after(took),
                Err(_) => {
                    tracing::error!("assembling the snapshot panicked; serving the last one");
                    COALESCE
                }
            };
            self.readiness.set_ready();
            let published = Instant::now();

            if self.sources.is_empty() {
                ticker.tick().await;
                continue;
            }
            let changed = select_all(self.sources.iter_mut().map(|s| Box::pin(s.changed())));
            let source_ended = tokio::select! {
                _ = ticker.tick() => false,
                (result, _, _) = changed => result.is_err(),
            };
            if source_ended {
                // keep publishing what the others hold
                self.sources.retain(|s| s.has_changed().is_ok());
            }
            tokio::time::sleep_until((published + gap).into()).await;
        }
    }
}

/// The least time between a publish whose assembly took `took` and the next: [`COALESCE`], or
/// longer where publishing would otherwise take more than [`PUBLISH_SHARE`] of a core, up to
/// [`LONGEST_GAP`].
fn gap_after(took: Duration) -> Duration {
    took.div_f64(PUBLISH_SHARE).clamp(COALESCE, LONGEST_GAP)
}

/// Assembles a snapshot from the inventory and the sources' values, taking over what it can
/// from the current one, and publishes it; returns how long assembling took.
fn publish(
    cluster: &Cluster,
    store: &Store,
    held: &[Arc<SourceValues>],
    telemetry: &Telemetry,
) -> Duration {
    let started = Instant::now();
    let sources: Vec<&SourceValues> = held.iter().map(Arc::as_ref).collect();
    let inventory = cluster.inventory();
    let previous = store.load();
    let same_inventory = previous
        .assembled_from
        .as_ref()
        .is_some_and(|from| Arc::ptr_eq(from, &inventory));
    let mut builder = assemble_after(
        &inventory,
        &sources,
        SystemTime::now(),
        same_inventory.then_some(&*previous),
    );
    builder.assembled_from = Some(inventory);
    drop(previous);
    store.publish(builder);
    let took = started.elapsed();
    telemetry.observe_assembly(took);
    // a request that loaded the replaced snapshot finishes within milliseconds
    for _ in 0..RETIRED_WAITS {
        if store.free_retired() {
            break;
        }
        std::thread::sleep(RETIRED_WAIT);
    }
    // the pages the replaced snapshot emptied in this thread's heap, back to the kernel now
    crate::process::give_back_freed_memory();
    took
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishing_takes_at_most_its_share_of_a_core() {
        let ms = Duration::from_millis;
        assert_eq!(gap_after(ms(3)), COALESCE, "a small cluster: every 200 ms");
        assert_eq!(gap_after(ms(20)), ms(400), "a fleet: a twentieth of a core");
        assert_eq!(
            gap_after(ms(400)),
            LONGEST_GAP,
            "never held back past the longest gap"
        );
    }
}
