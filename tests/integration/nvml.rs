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

/// A tempdir holding the simulated NVML and its script: the directory (kept while the test
/// runs) and the library to load.
pub fn simulated_gpus(script: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_simulated_nvml(dir.path());
    std::fs::write(dir.path().join("nvml-sim.conf"), script).expect("nvml script");
    (dir, library)
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
        per_process: None,
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

/// GPM through nvml-wrapper's `gpm` module against the simulated library's scripted counters:
/// the exact percentages on a Hopper-like GPU and on a MIG instance (by its GPU-instance ID),
/// absent — not 0 — on a GPU without GPM, and a change of load seen in the next window.
#[test]
fn gpm_activity_is_exact_and_absent_where_unsupported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("nvml-sim.conf");
    let write = |tensor: f64| {
        std::fs::write(
            &script,
            format!(
                "gpu GPU-hopper 100 {} {H100} 350000 71\ngpm 12 8.5 {tensor} 40\n\
                 gpu GPU-ampere 95 {} {H100} 300000 65\n\
                 gpu GPU-migh 0 0 {H100} 200000 50 mig\ngpm 50 30 20 10\n\
                 mig MIG-aaaa {} {} 5\ngpm 70 35 60 25\n\
                 mig MIG-bbbb 0 {} 6\n",
                H100 / 2,
                H100 / 4,
                1u64 << 30,
                H100 / 8,
                H100 / 8,
            ),
        )
        .expect("script")
    };
    write(3.25);
    let (published, stop, thread) = start(dir.path());
    let snapshot = wait_for(Duration::from_secs(30), "a GPM window", || {
        let s = published.load_full();
        s.gpus.first().and_then(|g| g.gpm).is_some().then_some(s)
    });
    let close =
        |value: Option<f64>, expected: f64| value.is_some_and(|v| (v - expected).abs() < 1e-9);
    let hopper = &snapshot.gpus[0];
    assert!(hopper.gpm_supported);
    let activity = hopper.gpm.expect("a window");
    assert!(close(activity.sm_active, 0.12), "{activity:?}");
    assert!(close(activity.sm_occupancy, 0.085), "{activity:?}");
    assert!(close(activity.tensor_active, 0.0325), "{activity:?}");
    assert!(close(activity.dram_active, 0.40), "{activity:?}");
    assert_eq!(
        hopper.utilization_ratio,
        Some(1.0),
        "NVML's utilization says 100 % where the SMs are 12 % active"
    );

    let ampere = &snapshot.gpus[1];
    assert!(!ampere.gpm_supported);
    assert_eq!(ampere.gpm, None, "no GPM: absent, never 0");
    assert_eq!(ampere.utilization_ratio, Some(0.95));

    let mig_gpu = &snapshot.gpus[2];
    assert!(close(mig_gpu.gpm.and_then(|a| a.sm_active), 0.5));
    let instance = &mig_gpu.mig[0];
    assert_eq!(instance.gpu_instance_id, Some(5));
    let activity = instance.gpm.expect("the instance's own window");
    assert!(close(activity.sm_active, 0.70), "{activity:?}");
    assert!(close(activity.tensor_active, 0.60), "{activity:?}");
    let idle = &mig_gpu.mig[1];
    assert_eq!(idle.gpu_instance_id, Some(6));
    assert!(
        close(idle.gpm.and_then(|a| a.sm_active), 0.0),
        "an idle instance is 0, measured"
    );

    // the load changes: the next windows are at the new rate, exactly
    write(90.0);
    wait_for(Duration::from_secs(30), "the tensor pipes at 90 %", || {
        let s = published.load_full();
        let tensor = s.gpus.first()?.gpm?.tensor_active?;
        ((tensor - 0.9).abs() < 1e-9).then_some(())
    });
    drop(stop);
    thread.join().expect("sampler thread");
}
