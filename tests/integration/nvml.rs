//! The exporter's GPU sampler through the real `nvml-wrapper`, loading the simulated
//! `libnvidia-ml.so.1` built here from `src/sim/nvml_sim.c` (no GPU needed).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use kubemind::exporter::gpu::{GpuSnapshot, Sampler};

use crate::util::wait_for;

/// Compiles the simulated NVML into `dir` (each test its own copy, so each loads its own).
pub fn build_simulated_nvml(dir: &Path) -> PathBuf {
    kubemind::sim::nvml::build(dir).expect("a C compiler (cc) builds the simulated NVML")
}

const H100: u64 = 80 * 1024 * 1024 * 1024;

fn start(
    dir: &Path,
) -> (
    Arc<ArcSwap<GpuSnapshot>>,
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let published = Arc::new(ArcSwap::from_pointee(GpuSnapshot::default()));
    let (stop, stopped) = std::sync::mpsc::channel();
    let thread = Sampler {
        library: Some(build_simulated_nvml(dir)),
        interval: Duration::from_millis(50),
        published: published.clone(),
    }
    .spawn(stopped)
    .expect("thread");
    (published, stop, thread)
}

#[test]
fn samples_every_gpu_and_follows_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("nvml-sim.conf");
    std::fs::write(
        &script,
        format!(
            "gpu GPU-aaaa 97 {} {H100} 350000 71\ngpu GPU-bbbb 4 {} {H100} 90000 40\n",
            H100 / 2,
            1u64 << 30
        ),
    )
    .expect("script");
    let (published, stop, thread) = start(dir.path());
    let snapshot = wait_for(Duration::from_secs(30), "a sample", || {
        let s = published.load_full();
        s.nvml_up.then_some(s)
    });
    assert_eq!(snapshot.gpus.len(), 2);
    let first = &snapshot.gpus[0];
    assert_eq!((first.index, first.uuid.as_str()), (0, "GPU-aaaa"));
    assert_eq!(first.name, "NVIDIA H100 80GB HBM3");
    assert_eq!(first.utilization_ratio, Some(0.97));
    assert_eq!(
        (first.memory_used_bytes, first.memory_total_bytes),
        (H100 / 2, H100)
    );
    assert_eq!(
        (first.power_watts, first.temperature_celsius),
        (Some(350.0), Some(71.0))
    );
    assert!(first.mig.is_empty());
    assert_eq!(snapshot.gpus[1].utilization_ratio, Some(0.04));

    std::fs::write(
        &script,
        format!("gpu GPU-aaaa 12 {} {H100} 100000 60\n", 1u64 << 20),
    )
    .expect("script");
    wait_for(Duration::from_secs(30), "the changed values", || {
        let s = published.load_full();
        (s.gpus.len() == 1 && s.gpus[0].utilization_ratio == Some(0.12)).then_some(())
    });
    drop(stop);
    thread.join().expect("the sampler stops when told");
}

#[test]
fn mig_gpus_report_instances_and_no_utilization() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("nvml-sim.conf"),
        format!(
            "gpu GPU-mig0 0 {gib} {H100} 200000 55 mig\nmig MIG-1111 {gib} {ten}\nmig MIG-2222 0 {ten}\n",
            gib = 1u64 << 30,
            ten = 10u64 << 30
        ),
    )
    .expect("script");
    let (published, stop, thread) = start(dir.path());
    let snapshot = wait_for(Duration::from_secs(30), "a sample", || {
        let s = published.load_full();
        s.nvml_up.then_some(s)
    });
    let gpu = &snapshot.gpus[0];
    assert_eq!(gpu.utilization_ratio, None, "absent in MIG mode, not 0");
    let instances: Vec<(&str, u64)> = gpu
        .mig
        .iter()
        .map(|m| (m.uuid.as_str(), m.memory_used_bytes))
        .collect();
    assert_eq!(instances, [("MIG-1111", 1u64 << 30), ("MIG-2222", 0)]);
    drop(stop);
    thread.join().expect("stops");
}

#[test]
fn no_driver_is_a_state_not_a_crash_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    // no script yet: the simulated library reports no driver loaded
    let (published, stop, thread) = start(dir.path());
    wait_for(Duration::from_secs(30), "nvml_up false", || {
        let s = published.load_full();
        (!s.nvml_up && s.sampled_at > std::time::SystemTime::UNIX_EPOCH).then_some(())
    });
    std::fs::write(
        dir.path().join("nvml-sim.conf"),
        format!("gpu GPU-late 50 0 {H100} 0 30\n"),
    )
    .expect("script");
    let snapshot = wait_for(Duration::from_secs(45), "recovery after backoff", || {
        let s = published.load_full();
        s.nvml_up.then_some(s)
    });
    assert_eq!(snapshot.gpus[0].uuid, "GPU-late");
    // the driver goes away under a running sampler
    std::fs::remove_file(dir.path().join("nvml-sim.conf")).expect("remove");
    wait_for(Duration::from_secs(30), "nvml_up false again", || {
        (!published.load().nvml_up).then_some(())
    });
    drop(stop);
    thread.join().expect("stops");
}
