//! GPU sampling with NVML (through `nvml-wrapper`) on a dedicated thread, never on async workers:
//! NVML calls are blocking FFI.
//!
//! Every `interval` the [`Sampler`] reads each GPU's utilization, memory, power and temperature,
//! and each MIG instance's memory, and publishes a whole [`GpuSnapshot`] that readers load
//! without waiting. When NVML cannot load or initialize (no driver, no GPU, a driver upgrade),
//! the snapshot says `nvml_up: false`, the reason is logged once, and initialization is retried
//! with exponential backoff up to a minute — the exporter keeps serving and never crash-loops.
//!
//! MIG: a GPU in MIG mode reports no utilization through NVML (`NotSupported`), so its
//! `utilization_ratio` is absent rather than 0; its instances report memory, and activity
//! through GPM.
//!
//! GPM (Hopper and newer): NVML's utilization is the share of time *any* kernel ran, so one
//! small kernel reads 100 %. GPM counts how busy the SMs, their warps, the tensor pipes and
//! DRAM were. Each collection takes one GPM sample per GPU (and per MIG instance) and compares
//! it with the previous collection's, so every window spans one interval with no gap. On a GPU
//! without GPM (earlier architectures, a driver without the calls) the activity is absent,
//! never 0, and that is logged once per GPU; a GPM failure leaves the activity absent for that
//! collection and never fails the rest of it.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, GpmSample, Nvml};

use super::processes::{ProcessReading, ProcessSampler};

/// GPM activity over the last interval, each a fraction 0–1; a metric the GPU did not give is
/// absent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GpmActivity {
    /// Share of time at least one warp was resident on an SM, averaged over SMs.
    pub sm_active: Option<f64>,
    /// Resident warps over the SMs' maximum.
    pub sm_occupancy: Option<f64>,
    /// Share of time any tensor pipe was busy.
    pub tensor_active: Option<f64>,
    /// DRAM bandwidth used over the peak.
    pub dram_active: Option<f64>,
}

/// One MIG instance.
#[derive(Debug, Clone, PartialEq)]
pub struct MigReading {
    pub uuid: String,
    /// The GPU instance it belongs to (what GKE's `nvidiaN/giM` device IDs name).
    pub gpu_instance_id: Option<u32>,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub gpm: Option<GpmActivity>,
}

/// One physical GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuReading {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    /// Busy fraction 0–1 over NVML's last sample period; absent in MIG mode.
    pub utilization_ratio: Option<f64>,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub power_watts: Option<f64>,
    pub temperature_celsius: Option<f64>,
    /// NVML says the GPU supports GPM.
    pub gpm_supported: bool,
    /// Whole-GPU GPM activity over the last interval; absent without GPM, and for the first
    /// collection (a window needs two samples).
    pub gpm: Option<GpmActivity>,
    pub mig: Vec<MigReading>,
    /// Its compute processes, with `--per-process` (else empty).
    pub processes: Vec<ProcessReading>,
}

/// Everything one collection saw.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSnapshot {
    /// NVML answered this collection.
    pub nvml_up: bool,
    pub gpus: Vec<GpuReading>,
    pub sampled_at: SystemTime,
    /// How long the collection took.
    pub collection: Duration,
}

impl Default for GpuSnapshot {
    fn default() -> Self {
        GpuSnapshot {
            nvml_up: false,
            gpus: Vec::new(),
            sampled_at: SystemTime::UNIX_EPOCH,
            collection: Duration::ZERO,
        }
    }
}

/// Samples NVML on its own thread and publishes snapshots.
pub struct Sampler {
    /// `--nvml-lib`: the library to load instead of `libnvidia-ml.so.1` from the loader path.
    pub library: Option<PathBuf>,
    pub interval: Duration,
    pub published: Arc<ArcSwap<GpuSnapshot>>,
    /// `--per-process`: the host's `/proc`, where each GPU process's cgroup names its pod.
    pub per_process: Option<PathBuf>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Sampler {
    /// Starts the sampling thread; it stops when `stop` receives or its sender is dropped.
    pub fn spawn(self, stop: Receiver<()>) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("nvml-sampler".into())
            .spawn(move || self.run(stop))
    }

    fn init(&self) -> Result<Nvml, NvmlError> {
        let mut builder = Nvml::builder();
        if let Some(library) = &self.library {
            builder.lib_path(library.as_os_str());
        }
        builder.init()
    }

    fn run(self, stop: Receiver<()>) {
        let mut backoff = Duration::from_secs(1);
        let mut reported_down = false;
        loop {
            let nvml = match self.init() {
                Ok(nvml) => {
                    if reported_down {
                        tracing::info!("NVML is answering again");
                    }
                    backoff = Duration::from_secs(1);
                    nvml
                }
                Err(error) => {
                    if !reported_down {
                        tracing::warn!(%error, "NVML unavailable: GPUs are not sampled; retrying with backoff");
                        reported_down = true;
                    }
                    self.publish_down(Duration::ZERO);
                    if wait(&stop, backoff) {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            let mut gpm = Gpm::default();
            let mut processes = self.per_process.clone().map(ProcessSampler::new);
            loop {
                let start = Instant::now();
                match sample(&nvml, Some(&mut gpm), processes.as_mut()) {
                    Ok(gpus) => self.published.store(Arc::new(GpuSnapshot {
                        nvml_up: true,
                        gpus,
                        sampled_at: SystemTime::now(),
                        collection: start.elapsed(),
                    })),
                    Err(error) => {
                        tracing::warn!(%error, "NVML stopped answering; reinitializing");
                        reported_down = true;
                        self.publish_down(start.elapsed());
                        break;
                    }
                }
                if wait(&stop, self.interval.saturating_sub(start.elapsed())) {
                    return;
                }
            }
            if wait(&stop, backoff) {
                return;
            }
        }
    }

    fn publish_down(&self, collection: Duration) {
        self.published.store(Arc::new(GpuSnapshot {
            nvml_up: false,
            gpus: Vec::new(),
            sampled_at: SystemTime::now(),
            collection,
        }));
    }
}

/// Sleeps for `duration` unless told to stop; true when it should stop.
fn wait(stop: &Receiver<()>, duration: Duration) -> bool {
    !matches!(stop.recv_timeout(duration), Err(RecvTimeoutError::Timeout))
}

/// A value NVML may not support on this device: `NotSupported` is absent, anything else fails.
fn optional<T>(result: Result<T, NvmlError>) -> Result<Option<T>, NvmlError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(NvmlError::NotSupported) => Ok(None),
        Err(error) => Err(error),
    }
}

/// What GPM sampling carries from one collection to the next.
#[derive(Default)]
pub struct Gpm<'nvml> {
    /// The last sample of each device (GPU UUID, and GPU instance for a MIG instance): the
    /// start of its next window.
    previous: HashMap<(String, Option<u32>), GpmSample<'nvml>>,
    /// GPUs whose lack of GPM has been logged.
    told_unsupported: HashSet<String>,
}

/// The GPM metrics read, in [`GpmActivity`]'s order.
const GPM_METRICS: [GpmMetricId; 4] = [
    GpmMetricId::SmUtil,
    GpmMetricId::SmOccupancy,
    GpmMetricId::AnyTensorUtil,
    GpmMetricId::DramBwUtil,
];

impl<'nvml> Gpm<'nvml> {
    /// The activity since `key`'s previous sample, given a new one (which starts the next
    /// window); `None` for a first sample or when NVML fails.
    fn window(
        &mut self,
        nvml: &'nvml Nvml,
        key: (String, Option<u32>),
        now: Result<GpmSample<'nvml>, NvmlError>,
    ) -> Option<GpmActivity> {
        let now = match now {
            Ok(sample) => sample,
            Err(error) => {
                tracing::debug!(uuid = %key.0, %error, "GPM sample failed");
                self.previous.remove(&key);
                return None;
            }
        };
        let previous = self.previous.insert(key.clone(), now)?;
        let now = self.previous.get(&key)?;
        let results = match nvml_wrapper::gpm::gpm_metrics_get(nvml, &previous, now, &GPM_METRICS) {
            Ok(results) => results,
            Err(error) => {
                tracing::debug!(uuid = %key.0, %error, "GPM metrics failed");
                return None;
            }
        };
        let ratio = |i: usize| {
            let value = results.get(i)?.as_ref().ok()?.value;
            value.is_finite().then(|| (value / 100.0).clamp(0.0, 1.0))
        };
        Some(GpmActivity {
            sm_active: ratio(0),
            sm_occupancy: ratio(1),
            tensor_active: ratio(2),
            dram_active: ratio(3),
        })
    }

    /// Whether `device` supports GPM; a GPU without it is logged once.
    fn supported(&mut self, device: &Device<'_>, uuid: &str, name: &str) -> bool {
        match device.gpm_support() {
            Ok(true) => {
                self.told_unsupported.remove(uuid);
                true
            }
            answer => {
                if self.told_unsupported.insert(uuid.to_string()) {
                    let why = match answer {
                        Err(error) => error.to_string(),
                        Ok(_) => "the GPU has no GPM (before Hopper)".into(),
                    };
                    tracing::info!(%uuid, %name, %why, "no GPM: SM, tensor and DRAM activity are not reported for this GPU");
                }
                false
            }
        }
    }
}

/// One collection over every GPU, with GPM activity when given the GPM state and compute
/// processes when given a process sampler. A failure on any GPU fails the collection, so a
/// half-read node is never published as whole (GPM and processes excepted: they are only
/// absent).
pub fn sample<'nvml>(
    nvml: &'nvml Nvml,
    mut gpm: Option<&mut Gpm<'nvml>>,
    mut processes: Option<&mut ProcessSampler>,
) -> Result<Vec<GpuReading>, NvmlError> {
    let count = nvml.device_count()?;
    let mut gpus = Vec::with_capacity(count as usize);
    for index in 0..count {
        let device = nvml.device_by_index(index)?;
        let memory = device.memory_info()?;
        let in_mig_mode = optional(device.mig_mode())?.is_some_and(|mode| mode.current == 1);
        let uuid = device.uuid()?;
        let name = optional(device.name())?.unwrap_or_default();
        let gpm_supported = gpm
            .as_deref_mut()
            .is_some_and(|gpm| gpm.supported(&device, &uuid, &name));
        let activity = match gpm.as_deref_mut() {
            Some(gpm) if gpm_supported => {
                gpm.window(nvml, (uuid.clone(), None), device.gpm_sample())
            }
            _ => None,
        };
        let processes = match processes.as_deref_mut() {
            Some(sampler) if !in_mig_mode => sampler.sample(&device, &uuid),
            _ => Vec::new(),
        };
        gpus.push(GpuReading {
            index,
            uuid,
            name,
            utilization_ratio: optional(device.utilization_rates())?
                .map(|u| f64::from(u.gpu.min(100)) / 100.0),
            memory_used_bytes: memory.used,
            memory_total_bytes: memory.total,
            power_watts: optional(device.power_usage())?.map(|mw| f64::from(mw) / 1000.0),
            temperature_celsius: optional(device.temperature(TemperatureSensor::Gpu))?
                .map(f64::from),
            gpm_supported,
            gpm: activity,
            processes,
            mig: if in_mig_mode {
                mig_instances(nvml, &device, gpm.as_deref_mut().filter(|_| gpm_supported))?
            } else {
                Vec::new()
            },
        });
    }
    Ok(gpus)
}

/// The GPU instance a MIG device belongs to, from `nvmlDeviceGetGpuInstanceId` (which
/// nvml-wrapper does not wrap); `None` when the driver lacks the call or refuses it.
fn gpu_instance_id(nvml: &Nvml, instance: &Device<'_>) -> Option<u32> {
    let get = nvml.lib().nvmlDeviceGetGpuInstanceId.as_ref().ok()?;
    let mut id: std::os::raw::c_uint = 0;
    // SAFETY: the symbol is NVML's `nvmlReturn_t (nvmlDevice_t, unsigned int *)`, loaded from
    // the library `nvml` holds open; `instance` is a live handle from that library, and `id`
    // is a valid out-pointer for the whole call.
    let code = unsafe { get(instance.handle(), &mut id) };
    (code == 0).then_some(id)
}

fn mig_instances<'nvml>(
    nvml: &'nvml Nvml,
    device: &Device<'nvml>,
    mut gpm: Option<&mut Gpm<'nvml>>,
) -> Result<Vec<MigReading>, NvmlError> {
    let slots = device.mig_device_count()?;
    let mut instances = Vec::new();
    for slot in 0..slots {
        let instance = match device.mig_device_by_index(slot) {
            Ok(instance) => instance,
            // unused slots
            Err(NvmlError::NotFound | NvmlError::InvalidArg) => continue,
            Err(error) => return Err(error),
        };
        let memory = instance.memory_info()?;
        let uuid = instance.uuid()?;
        let gpu_instance_id = gpu_instance_id(nvml, &instance);
        let activity = match (gpm.as_deref_mut(), gpu_instance_id) {
            (Some(gpm), Some(id)) => {
                gpm.window(nvml, (uuid.clone(), Some(id)), device.gpm_mig_sample(id))
            }
            _ => None,
        };
        instances.push(MigReading {
            uuid,
            gpu_instance_id,
            memory_used_bytes: memory.used,
            memory_total_bytes: memory.total,
            gpm: activity,
        });
    }
    Ok(instances)
}
