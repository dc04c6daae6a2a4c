//! The simulated `libnvidia-ml.so.1` (C source in `nvml_sim.c` beside this module, embedded here):
//! built on demand with the system C compiler, then loaded through nvml-wrapper like the real
//! driver. Its GPUs come from `nvml-sim.conf` beside the library (format in the C source).

use std::path::{Path, PathBuf};

const SOURCE: &str = include_str!("nvml_sim.c");

/// Builds the library into `dir` and returns its path. Needs `cc` on the PATH.
pub fn build(dir: &Path) -> std::io::Result<PathBuf> {
    let source = dir.join("nvml_sim.c");
    std::fs::write(&source, SOURCE)?;
    let library = dir.join("libnvidia-ml.so.1");
    let output = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&library)
        .arg(&source)
        .output()?;
    if !output.status.success() {
        return Err(std::io::Error::other(format!(
            "cc failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(library)
}

/// One scripted GPU line: `gpu <uuid> <util%> <used> <total> <power mW> <temp C>`.
pub fn gpu_line(uuid: &str, utilization_percent: u32, used: u64, total: u64) -> String {
    format!("gpu {uuid} {utilization_percent} {used} {total} 300000 65\n")
}
