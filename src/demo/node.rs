//! One simulated GPU node through the exporter's own code: GPUs sampled through nvml-wrapper
//! from the simulated `libnvidia-ml.so.1` (its script rewritten from the world each second),
//! each Triton pod's /metrics text read by the exporter's parser and rate maths, GPU → pod
//! attribution as the kubelet would give it, and the page rendered by the exporter's renderer
//! and read back by the adapter — the same text a real adapter scrapes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;

use super::world::World;
use crate::adapter::store::Labels;
use crate::adapter::store::{Inventory, PodInfo, WorkloadInfo, WorkloadKind};
use crate::exporter::gpu::{GpuReading, GpuSnapshot};
use crate::exporter::pods::{DeviceId, Holder};
use crate::exporter::render::{Collection, render};
use crate::exporter::servers::scrape::{Readings, ServerKind, Target};
use crate::exporter_page::{self, ExporterPage};
use crate::resources::GroupResource;

const GIB: u64 = 1 << 30;
/// Most samples read from one page.
const MAX_SAMPLES: usize = 100_000;

/// The simulated NVML library, loaded once through nvml-wrapper.
pub(crate) struct Nvml {
    nvml: nvml_wrapper::Nvml,
    script: PathBuf,
}

impl Nvml {
    pub fn open(library: &Path, script: &Path) -> anyhow::Result<Nvml> {
        std::fs::write(script, "").context("the NVML script")?;
        // the simulated library reads `nvml-sim.conf` beside itself: `script` is that file
        let nvml = nvml_wrapper::Nvml::builder()
            .lib_path(library.as_os_str())
            .init()
            .context("loading the simulated libnvidia-ml.so.1 through nvml-wrapper")?;
        Ok(Nvml {
            nvml,
            script: script.to_path_buf(),
        })
    }

    /// Writes every pod's GPU into the script, then samples them all through NVML.
    pub fn sample<'a>(
        &self,
        worlds: impl Iterator<Item = &'a World>,
    ) -> anyhow::Result<Vec<GpuReading>> {
        let mut script = String::new();
        for world in worlds {
            for pod in &world.pods {
                // a loaded model holds 18 GiB; a busy GPU draws more power and runs warmer
                let busy = pod.busy;
                script.push_str(&format!(
                    "gpu {} {} {} {} {} {}\n",
                    pod.gpu_uuid,
                    (busy * 100.0).round() as u32,
                    if pod.is_ready(world.now) {
                        18 * GIB
                    } else {
                        GIB
                    },
                    80 * GIB,
                    (70_000.0 + busy * 280_000.0) as u64,
                    (35.0 + busy * 40.0) as u32,
                ));
            }
        }
        std::fs::write(&self.script, script).context("the NVML script")?;
        crate::exporter::gpu::sample(&self.nvml, None, None).context("sampling the simulated GPUs")
    }
}

/// One node: its exporter's memory between collections.
pub struct Node {
    pub name: String,
    namespace: String,
    /// The exporter's own record of its inference servers.
    readings: Readings,
    /// Simulated time 0, as the monotonic clock the readings are stamped with.
    epoch: Instant,
}

impl Node {
    pub fn new(name: &str, namespace: &str) -> Node {
        Node {
            name: name.to_string(),
            namespace: namespace.to_string(),
            readings: Readings::default(),
            epoch: Instant::now(),
        }
    }

    /// One collection at `now` (wall time: the page's timestamp), read back by the adapter.
    pub fn collect(
        &mut self,
        world: &World,
        gpus: &[GpuReading],
        now: SystemTime,
    ) -> anyhow::Result<ExporterPage> {
        let started = Instant::now();
        let mut servers = Vec::new();
        let mut targets = Vec::new();
        let mut holders = Vec::new();
        for pod in &world.pods {
            holders.push((
                DeviceId::Gpu {
                    uuid: pod.gpu_uuid.clone(),
                    replica: None,
                },
                Holder {
                    namespace: self.namespace.clone(),
                    pod: pod.name.clone(),
                    container: "triton".into(),
                    resource_name: "nvidia.com/gpu".into(),
                },
            ));
            if !pod.is_ready(world.now) {
                continue;
            }
            // the exporter's own scrape step, over the simulated page
            let target = Target::new(
                &self.namespace,
                &pod.name,
                ServerKind::Triton,
                &format!("http://{}.{}:8002/metrics", pod.name, self.namespace),
            );
            let text = pod.triton_metrics();
            let at = self.epoch + Duration::from_secs_f64(world.now);
            targets.push(target.clone());
            servers.push(
                self.readings
                    .record_page(&target, Ok(&text), at, MAX_SAMPLES),
            );
        }
        self.readings.retain(&targets);
        let own: Vec<GpuReading> = gpus
            .iter()
            .filter(|g| world.pods.iter().any(|p| p.gpu_uuid == g.uuid))
            .cloned()
            .collect();
        let snapshot = GpuSnapshot {
            nvml_up: true,
            gpus: own,
            sampled_at: now,
            collection: started.elapsed(),
        };
        let page = render(&Collection {
            node: &self.name,
            gpus: &snapshot,
            holders: &holders,
            pod_resources_up: true,
            servers: &servers,
            pod_shares: &Default::default(),
            duration: started.elapsed(),
            finished_at: now,
        });
        exporter_page::read(&page, MAX_SAMPLES).context("reading the exporter page back")
    }

    /// What the API server would list for this scenario: its pods (Pending ones too), the
    /// Deployment, the node and the namespace.
    pub(crate) fn add_inventory(&self, world: &World, inventory: &mut Inventory) {
        let labels: Arc<Labels> = Arc::new([("app".to_string(), "triton".to_string())].into());
        let deployment = GroupResource::new("deployments", "apps");
        let namespace: Arc<str> = Arc::from(self.namespace.as_str());
        for pod in &world.pods {
            inventory.pods.push(PodInfo {
                namespace: namespace.clone(),
                name: pod.name.as_str().into(),
                uid: None,
                labels: labels.clone(),
                workload: Some((WorkloadKind::Deployment, "triton".into())),
            });
        }
        inventory.workloads.push(WorkloadInfo {
            namespace: namespace.clone(),
            resource: deployment,
            name: "triton".into(),
            uid: None,
            labels,
        });
        inventory
            .nodes
            .push((self.name.as_str().into(), Arc::default()));
        inventory.namespaces.push((namespace, Arc::default()));
    }
}
