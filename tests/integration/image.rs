//! The container image, built from the repository's own `Containerfile` with podman, as far as
//! this kind of machine allows: no registry can be reached (so the `BUILDER` and `RUNTIME`
//! bases are swapped, by build argument, for images assembled here) and no container can be
//! started (so the binary is run from the image's exported filesystem under `chroot`).
//!
//! The assembled builder holds a shell and a `cargo` that does nothing, over the binary this
//! test run built: the build stage's own compilation is not exercised here. The assembled
//! runtime holds what distroless `cc` holds for this binary — glibc — and nothing else. What is
//! checked is the image: the binary at `/kubemind`, its entrypoint, user 65532, the OCI labels,
//! `kubemind --version`, and the exporter serving `/metrics` with the simulated
//! `libnvidia-ml.so.1` where the NVIDIA container toolkit puts the driver's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::{Process, listening_address};

/// podman with its own storage under `dir`, building with chroot isolation (no OCI runtime).
struct Podman {
    root: PathBuf,
    run: PathBuf,
}

impl Podman {
    fn new(dir: &Path) -> Podman {
        Podman {
            root: dir.join("storage"),
            run: dir.join("run"),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new("podman");
        command
            .arg("--storage-driver=vfs")
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.run);
        command
    }

    /// Runs `podman ARGS…`; its stdout, or a panic with its stderr.
    fn run(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().expect("podman runs");
        assert!(
            output.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Builds `FROM scratch` + the tree at `rootfs` as `tag`.
    fn image_of(&self, rootfs: &Path, tag: &str) {
        let context = rootfs.parent().expect("parent");
        let file = context.join(format!("{}.Containerfile", tag.replace(['/', ':'], "-")));
        let name = rootfs.file_name().and_then(|n| n.to_str()).expect("name");
        std::fs::write(&file, format!("FROM scratch\nCOPY {name}/ /\n")).expect("Containerfile");
        self.run(&[
            "build",
            "--isolation=chroot",
            "--pull=never",
            "-f",
            file.to_str().expect("utf-8"),
            "-t",
            tag,
            context.to_str().expect("utf-8"),
        ]);
    }
}

/// Copies `from` to `to`, creating the folders between.
fn place(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().expect("parent")).expect("folders");
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("{} → {}: {e}", from.display(), to.display()));
}

/// The shared libraries `binary` loads, as `ldd` names them.
fn libraries_of(binary: &Path) -> Vec<PathBuf> {
    let output = Command::new("ldd").arg(binary).output().expect("ldd runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect()
}

#[test]
fn the_image_runs_the_exporter_with_the_toolkits_nvml() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let podman = Podman::new(dir.path());
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_kubemind"));

    // the builder: a shell, a cargo that does nothing, and the binary where cargo leaves it
    let builder = dir.path().join("bases").join("builder");
    place(Path::new("/bin/busybox"), &builder.join("bin/busybox"));
    std::os::unix::fs::symlink("busybox", builder.join("bin/sh")).expect("sh");
    std::fs::write(builder.join("bin/cargo"), "#!/bin/sh\nexit 0\n").expect("cargo");
    Command::new("chmod")
        .args(["755"])
        .arg(builder.join("bin/cargo"))
        .status()
        .expect("chmod");
    place(&binary, &builder.join("src/target/dist/kubemind"));
    podman.image_of(&builder, "localhost/kubemind-test-builder:1");

    // the runtime: glibc as distroless cc has it, nothing else
    let runtime = dir.path().join("bases").join("runtime");
    for library in libraries_of(&binary) {
        place(
            &library,
            &runtime.join(library.strip_prefix("/").expect("absolute")),
        );
    }
    podman.image_of(&runtime, "localhost/kubemind-test-runtime:1");

    // the repository's Containerfile, bases swapped
    let repository = env!("CARGO_MANIFEST_DIR");
    podman.run(&[
        "build",
        "--isolation=chroot",
        "--pull=never",
        "--build-arg",
        "BUILDER=localhost/kubemind-test-builder:1",
        "--build-arg",
        "RUNTIME=localhost/kubemind-test-runtime:1",
        "--build-arg",
        "VERSION=0.1.0",
        "-f",
        &format!("{repository}/Containerfile"),
        "-t",
        "localhost/kubemind:test",
        repository,
    ]);
    let config = podman.run(&[
        "image",
        "inspect",
        "localhost/kubemind:test",
        "--format",
        "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Labels}}",
    ]);
    let fields: Vec<&str> = config.trim().splitn(3, '|').collect();
    assert_eq!(fields[0], "65532:65532", "{config}");
    assert_eq!(fields[1], r#"["/kubemind"]"#, "{config}");
    let labels: serde_json::Value = serde_json::from_str(fields[2]).expect("labels");
    assert_eq!(labels["org.opencontainers.image.version"], "0.1.0");
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .is_some_and(|s| s.starts_with("https://"))
    );

    // the image's own filesystem
    podman.run(&[
        "create",
        "--name",
        "kubemind-test",
        "localhost/kubemind:test",
    ]);
    let tar = dir.path().join("rootfs.tar");
    podman.run(&[
        "export",
        "-o",
        tar.to_str().expect("utf-8"),
        "kubemind-test",
    ]);
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).expect("rootfs");
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&rootfs)
        .status()
        .expect("tar runs");
    assert!(untar.success());
    assert!(!rootfs.join("bin/sh").exists(), "no shell in the runtime");

    let version = Command::new("chroot")
        .arg(&rootfs)
        .args(["/kubemind", "--version"])
        .output()
        .expect("chroot runs");
    assert!(version.status.success(), "{version:?}");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("kubemind {}", env!("CARGO_PKG_VERSION"))
    );

    // the NVIDIA container toolkit mounts the driver's library here; this one is simulated
    let nvml = kubemind::sim::nvml::build(dir.path()).expect("the simulated NVML builds");
    let toolkit_dir = rootfs.join("usr/lib/x86_64-linux-gnu");
    place(&nvml, &toolkit_dir.join("libnvidia-ml.so.1"));
    std::fs::write(
        toolkit_dir.join("nvml-sim.conf"),
        "gpu GPU-image 61 8589934592 85899345920 250000 55\n",
    )
    .expect("script");
    let mut command = Command::new("chroot");
    command.arg(&rootfs).args([
        "/kubemind",
        "exporter",
        "--listen",
        "127.0.0.1:0",
        "--node-name",
        "gpu-node-1",
        "--no-pod-discovery",
    ]);
    let exporter = Process::spawn(dir.path(), "image-exporter", &mut command);
    let address = listening_address(&exporter, "serving /metrics");
    let page = crate::util::wait_for(Duration::from_secs(30), "GPU values", || {
        let text = reqwest::blocking::get(format!("http://{address}/metrics"))
            .ok()?
            .text()
            .ok()?;
        text.contains("kubemind_gpu_utilization_ratio{")
            .then_some(text)
    });
    assert!(
        page.contains("kubemind_nvml_up{node=\"gpu-node-1\"} 1"),
        "{page}"
    );
    assert!(
        page.contains("uuid=\"GPU-image\"} 0.61"),
        "the simulated GPU through the image's binary: {page}"
    );
}
