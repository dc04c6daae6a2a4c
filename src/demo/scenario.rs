//! What a demo scenario is — a world, its node and its autoscaler — and the numbers every
//! part of the demo shares: the sync period and the replicas at the start.

use super::args::ScenarioName;
use super::hpa::Controller;
use super::node::Node;
use super::world::World;

/// Simulated seconds between HPA syncs (the controller's default).
pub(crate) const SYNC_SECONDS: u64 = 15;
/// Replicas at the start.
pub(crate) const START_REPLICAS: usize = 3;

/// One scenario being run.
pub(crate) struct Scenario {
    pub name: ScenarioName,
    pub namespace: String,
    pub world: World,
    pub node: Node,
    pub controller: Controller,
}
