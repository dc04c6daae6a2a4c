//! `kubemind demo`: the failure kubemind exists for, replayed on one machine with no cluster
//! and no GPU, through kubemind's real code.
//!
//! Three Triton pods sit behind a Service; an event processor flushes a backlog of images over
//! one multiplexed gRPC connection ([`world`]). Three scenarios run side by side, each in its
//! own namespace on its own simulated node:
//!
//! - `cpu`: an HPA on CPU (60 %). The pinned pod runs hot, two idle: the average stays near
//!   26 % and nothing scales.
//! - `l4`: a kubemind HPA (queue time and GPU busy), L4 balancing. It scales — and the new pods
//!   get nothing; kubemind shows why: request imbalance.
//! - `l7`: the same HPA with request-level balancing: it scales and queue time recovers.
//!
//! Every simulated second, each node goes through the exporter's code: the GPUs through
//! nvml-wrapper and the simulated `libnvidia-ml.so.1`, each pod's Triton text through the
//! exporter's parser and rate maths, the page through its renderer; the adapter reads that page
//! onto its catalogue, assembles and publishes its snapshot. Every 15 simulated seconds each
//! HPA reads its metrics through the adapter's API, as the controller does, and runs the
//! controller's algorithm ([`crate::sim::hpa`]). Meanwhile the adapter serves the same snapshot
//! on 127.0.0.1 over TLS, with a kubeconfig, for `kubectl get --raw`.
//!
//! - [`world`]: the simulated pods, client and Service; [`node`]: one simulated node through
//!   the exporter's code; [`hpa`]: the simulated controllers; [`report`]: what is printed;
//!   [`plot`]: the same story as a picture (`--svg`).

pub mod args;
pub mod hpa;
pub mod node;
pub mod plot;
pub mod report;
pub mod scenario;
pub mod world;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;

use crate::adapter::sources::assemble::{SourceValues, assemble};
use crate::adapter::store::Inventory;
use crate::adapter::store::Store;
use args::{DemoArgs, ScenarioName};
use hpa::{Controller, ScalingPolicy};
use node::Node;
use report::{Recorder, Summary};
use scenario::{START_REPLICAS, SYNC_SECONDS, Scenario};
use world::{Balancing, World};

/// The client: images to send and how fast it sends them.
const BACKLOG: u64 = 50_000;
const SEND_RATE: f64 = 80.0;
/// How long values stay fresh in the demo's adapter (wall time).
const MAX_AGE: Duration = Duration::from_secs(30);

/// Runs the demo; returns what it printed as a summary.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let duration = args.duration.as_secs();
    if duration < SYNC_SECONDS * 4 {
        anyhow::bail!("--duration must be at least {}s", SYNC_SECONDS * 4);
    }
    let scratch = tempfile::Builder::new()
        .prefix("kubemind-demo-")
        .tempdir()
        .context("a scratch directory")?;
    let library = crate::sim::nvml::build(scratch.path())
        .context("building the simulated libnvidia-ml.so.1 (needs a C compiler, cc)")?;
    let script = scratch.path().join("nvml-sim.conf");
    let mut scenarios = Vec::new();
    for name in &args.scenario {
        let (balancing, policy) = match name {
            ScenarioName::Cpu => (Balancing::L4, ScalingPolicy::Cpu),
            ScenarioName::L4 => (Balancing::L4, ScalingPolicy::Kubemind),
            ScenarioName::L7 => (Balancing::L7, ScalingPolicy::Kubemind),
        };
        let namespace = format!("demo-{}", name.as_str());
        scenarios.push(Scenario {
            name: *name,
            namespace: namespace.clone(),
            world: World::new(
                "triton",
                name.as_str(),
                START_REPLICAS,
                balancing,
                BACKLOG,
                SEND_RATE,
            ),
            node: Node::new(&format!("gpu-node-{}", name.as_str()), &namespace),
            controller: Controller::new(policy, &namespace),
        });
    }
    let nvml = node::Nvml::open(&library, &script)?;

    let store = Arc::new(Store::new(MAX_AGE));
    let kubeconfig = args
        .kubeconfig_out
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("kubemind-demo.kubeconfig"));
    let server = crate::adapter::local::serve(store.clone(), &kubeconfig).await?;
    let reader = crate::adapter::api::router(crate::adapter::api::ApiState {
        store: store.clone(),
        telemetry: Arc::new(crate::adapter::telemetry::Telemetry::new()),
        readiness: crate::adapter::store::Readiness::default(),
        access: crate::adapter::api::Access::Open,
        external: None,
    });

    // the HPAs as manifests beside the kubeconfig, for `kubemind explain -f`
    let manifests_dir = kubeconfig
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let manifest_path = |scenario: &Scenario| {
        manifests_dir.join(format!("kubemind-demo-hpa-{}.yaml", scenario.name.as_str()))
    };
    for scenario in &scenarios {
        let text = hpa::manifest(
            scenario.controller.policy(),
            &scenario.namespace,
            scenario.world.pods.len() as i32,
        );
        std::fs::write(manifest_path(scenario), text).context("writing the HPA manifests")?;
    }
    let mut recorder = Recorder::new(args.output, &scenarios, duration);
    let explain_example = scenarios
        .iter()
        .find(|s| s.name == ScenarioName::L4)
        .or(scenarios.first())
        .map(|s| (s.namespace.clone(), manifest_path(s)));
    recorder.header(&server.url, &kubeconfig, explain_example.as_ref());
    let started = Instant::now();
    for second in 1..=duration {
        for scenario in &mut scenarios {
            scenario.world.step(1.0);
        }
        // one NVML pass for every node, then each node's page, then the adapter's snapshot
        let gpus = nvml.sample(scenarios.iter().map(|s| &s.world))?;
        let now = SystemTime::now();
        let mut pages = Vec::new();
        let mut inventory = Inventory::default();
        for scenario in &mut scenarios {
            pages.push(scenario.node.collect(&scenario.world, &gpus, now)?);
            scenario.node.add_inventory(&scenario.world, &mut inventory);
        }
        let values = SourceValues::from_exporter_pages(&pages, MAX_AGE);
        store.publish(assemble(&inventory, &[&values], now));

        if second.is_multiple_of(SYNC_SECONDS) {
            for scenario in &mut scenarios {
                let decision = scenario
                    .controller
                    .sync(&reader, &scenario.world, second as f64)
                    .await;
                if let Some(replicas) = decision.scale_to {
                    scenario.world.scale_to(replicas as usize);
                    let text =
                        hpa::manifest(scenario.controller.policy(), &scenario.namespace, replicas);
                    std::fs::write(manifest_path(scenario), text)
                        .context("writing the HPA manifests")?;
                }
                recorder.sync(scenario, &decision, second);
            }
        }
        recorder.progress(&scenarios, second);
        if args.speed > 0.0 {
            let due = Duration::from_secs_f64(second as f64 / args.speed);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    let summary: Summary = recorder.finish(&scenarios);
    report::print(&summary, args.output, &server.url);
    if let Some(path) = &args.svg {
        let picture = plot::svg(&summary).context("drawing the picture")?;
        std::fs::write(path, picture).with_context(|| format!("writing {}", path.display()))?;
        if args.output == args::DemoOutput::Text {
            println!("The picture of this run: {}", path.display());
        }
    }
    server.stop().await;
    drop(scratch);
    Ok(())
}
