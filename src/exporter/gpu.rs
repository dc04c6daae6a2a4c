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
//! `utilization_ratio` is absent rather than 0; its instances report memory. Per-instance
//! activity needs DCGM profiling or GPM, which this sampler does not read.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};

/// One MIG instance.
#[derive(Debug, Clone, PartialEq)]
pub struct MigReading {
    pub uuid: String,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
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
    pub mig: Vec<MigReading>,
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
            loop {
                let start = Instant::now();
                match sample(&nvml) {
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

/// One collection over every GPU. A failure on any GPU fails the collection, so a half-read
/// node is never published as whole.
pub fn sample(nvml: &Nvml) -> Result<Vec<GpuReading>, NvmlError> {
    let count = nvml.device_count()?;
    let mut gpus = Vec::with_capacity(count as usize);
    for index in 0..count {
        let device = nvml.device_by_index(index)?;
        let memory = device.memory_info()?;
        let in_mig_mode = optional(device.mig_mode())?.is_some_and(|mode| mode.current == 1);
        gpus.push(GpuReading {
            index,
            uuid: device.uuid()?,
            name: optional(device.name())?.unwrap_or_default(),
            utilization_ratio: optional(device.utilization_rates())?
                .map(|u| f64::from(u.gpu.min(100)) / 100.0),
            memory_used_bytes: memory.used,
            memory_total_bytes: memory.total,
            power_watts: optional(device.power_usage())?.map(|mw| f64::from(mw) / 1000.0),
            temperature_celsius: optional(device.temperature(TemperatureSensor::Gpu))?
                .map(f64::from),
            mig: if in_mig_mode {
                mig_instances(&device)?
            } else {
                Vec::new()
            },
        });
    }
    Ok(gpus)
}

fn mig_instances(device: &Device<'_>) -> Result<Vec<MigReading>, NvmlError> {
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
        instances.push(MigReading {
            uuid: instance.uuid()?,
            memory_used_bytes: memory.used,
            memory_total_bytes: memory.total,
        });
    }
    Ok(instances)
}
