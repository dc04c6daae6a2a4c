//! `make bench`, exporter part: RSS and CPU of the release `kubemind exporter` collecting 8
//! simulated GPUs with GPM (the simulated libnvidia-ml through nvml-wrapper) and 16 Triton endpoints
//! (4 models on 2 GPUs each, counters advancing per scrape) at 1 Hz, with 16 pods attributed
//! through a simulated kubelet — against the budget in `docs/architecture.md`, Performance
//! budget (≤ 12 MiB RSS, ≤ 1 % of a core).
//!
//! Two builds of the binary run side by side over the same seconds: this bench's own
//! (`release`) and, when `make bench` has built it, the `dist` profile that goes into the image
//! (LTO, one codegen unit, stripped); the verdict is on the image's. Then the image's size, when
//! `make image` built it on this machine. Everything runs on 127.0.0.1, bounded in time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

#[path = "common/dist.rs"]
mod dist;

use dist::dist_binary;
use kubemind::sim::process::{cpu_seconds, status_kib};
use kubemind::sim::{kubelet, metrics_endpoint, nvml};

const GPUS: usize = 8;
const ENDPOINTS: usize = 16;
const WARM_UP: Duration = Duration::from_secs(5);
const MEASURED: Duration = Duration::from_secs(20);

fn triton_page(scrape: u64) -> String {
    let mut text = String::new();
    for model in ["resnet", "bert", "whisper", "llama"] {
        for gpu in ["GPU-0", "GPU-1"] {
            let n = scrape * 25;
            text.push_str(&format!(
                "nv_inference_request_success{{model=\"{model}\",version=\"1\",gpu_uuid=\"{gpu}\"}} {n}\n\
                 nv_inference_queue_duration_us{{model=\"{model}\",version=\"1\",gpu_uuid=\"{gpu}\"}} {}\n\
                 nv_inference_compute_infer_duration_us{{model=\"{model}\",version=\"1\",gpu_uuid=\"{gpu}\"}} {}\n\
                 nv_inference_request_duration_us{{model=\"{model}\",version=\"1\",gpu_uuid=\"{gpu}\"}} {}\n",
                n * 4000,
                n * 20000,
                n * 25000
            ));
        }
        text.push_str(&format!(
            "nv_inference_pending_request_count{{model=\"{model}\",version=\"1\"}} 3\n"
        ));
    }
    text
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = nvml::build(dir.path()).expect("cc builds the simulated NVML");
    // Hopper-like GPUs: GPM on, so each collection also takes and compares GPM samples
    let script: String = (0..GPUS)
        .map(|i| {
            nvml::gpu_line(
                &format!("GPU-{i:04}"),
                50 + i as u32,
                (i as u64 + 1) << 32,
                80 << 30,
            ) + &format!("gpm {} 30 20 40\n", 10 + i)
        })
        .collect();
    std::fs::write(dir.path().join("nvml-sim.conf"), script).expect("script");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let socket = dir.path().join("kubelet.sock");
    let (urls, _kubelet) = runtime.block_on(async {
        let kubelet = kubelet::Kubelet::default();
        let pods = (0..ENDPOINTS)
            .map(|i| {
                let gpu = format!("GPU-{:04}", i % GPUS);
                let id = format!("{gpu}::{}", i / GPUS);
                kubelet::pod(
                    "bench",
                    &format!("triton-{i}"),
                    "nvidia.com/gpu",
                    &[id.as_str()],
                )
            })
            .collect();
        kubelet.set(pods);
        let server = kubelet.serve(&socket).expect("kubelet serves");
        let urls: Vec<String> = (0..ENDPOINTS)
            .map(|_| metrics_endpoint::serve(triton_page).expect("endpoint serves"))
            .collect();
        (urls, server)
    });
    let mut args = vec![
        "exporter".to_string(),
        "--listen=127.0.0.1:0".into(),
        "--node-name=bench-node".into(),
        format!("--nvml-lib={}", library.display()),
        format!("--pod-resources-socket={}", socket.display()),
        "--interval=1s".into(),
    ];
    for (i, url) in urls.iter().enumerate() {
        args.push(format!("--static-target=triton:bench/triton-{i}={url}"));
    }

    // both builds side by side, on the same GPUs, kubelet and endpoints, over the same seconds
    let release = PathBuf::from(env!("CARGO_BIN_EXE_kubemind"));
    let dist = dist_binary(&release);
    let mut builds = vec![Build::start("release", release, &args)];
    match &dist {
        Some(path) => builds.push(Build::start("dist (image)", path.clone(), &args)),
        None => eprintln!(
            "no dist build of the current sources at target/dist/kubemind: `cargo build --profile dist` (make bench does) to measure the image's binary"
        ),
    }
    std::thread::sleep(WARM_UP);
    let starts: Vec<(f64, Instant)> = builds
        .iter()
        .map(|build| (cpu_seconds(build.pid()), Instant::now()))
        .collect();
    std::thread::sleep(MEASURED);
    let figures: Vec<Figures> = builds
        .iter_mut()
        .zip(starts)
        .map(|(build, (cpu_start, start))| build.measure(cpu_start, start))
        .collect();
    drop(builds);
    drop(runtime);
    report(&figures);
}

/// One exporter process, of one build of the binary.
struct Build {
    profile: &'static str,
    binary: PathBuf,
    child: std::process::Child,
}

impl Build {
    fn start(profile: &'static str, binary: PathBuf, args: &[String]) -> Build {
        let child = std::process::Command::new(&binary)
            .args(args)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", binary.display()));
        Build {
            profile,
            binary,
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn measure(&self, cpu_start: f64, start: Instant) -> Figures {
        let pid = self.pid();
        let cpu = cpu_seconds(pid) - cpu_start;
        let elapsed = start.elapsed().as_secs_f64();
        let mib = |field| status_kib(pid, field) as f64 / 1024.0;
        Figures {
            profile: self.profile,
            binary_mib: std::fs::metadata(&self.binary).map_or(0.0, |m| m.len() as f64)
                / (1024.0 * 1024.0),
            rss: mib("VmRSS:"),
            peak: mib("VmHWM:"),
            anonymous: mib("RssAnon:"),
            file: mib("RssFile:"),
            core_percent: cpu / elapsed * 100.0,
            elapsed,
        }
    }
}

impl Drop for Build {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Figures {
    profile: &'static str,
    binary_mib: f64,
    rss: f64,
    peak: f64,
    anonymous: f64,
    file: f64,
    core_percent: f64,
    elapsed: f64,
}

fn report(figures: &[Figures]) {
    let verdict = |ok: bool| if ok { "within budget" } else { "OVER BUDGET" };
    println!();
    println!(
        "kubemind exporter: {GPUS} simulated GPUs with GPM, {ENDPOINTS} Triton endpoints, 1 Hz, {:.0} s measured",
        figures[0].elapsed
    );
    println!();
    let row = |name: &str, value: &dyn Fn(&Figures) -> String, budget: &str, ok: Option<bool>| {
        let mut line = format!("{name:<36}");
        for f in figures {
            line.push_str(&format!(" {:>16}", value(f)));
        }
        line.push_str(&format!("   {budget:<10} {}", ok.map_or("", verdict)));
        println!("{}", line.trim_end());
    };
    // the verdict is on what ships: the dist build when there is one
    let shipped = figures.last().expect("at least one build");
    row("figure", &|f| f.profile.to_string(), "budget", None);
    row(
        "RSS (peak)",
        &|f| format!("{:.1} ({:.1}) MiB", f.rss, f.peak),
        "<= 12 MiB",
        Some(shipped.peak <= 12.0),
    );
    row(
        "  heap and stacks (RssAnon)",
        &|f| format!("{:.1} MiB", f.anonymous),
        "",
        None,
    );
    row(
        "  mapped code (RssFile)",
        &|f| format!("{:.1} MiB", f.file),
        "",
        None,
    );
    row(
        "CPU, share of one core",
        &|f| format!("{:.2} %", f.core_percent),
        "<= 1 %",
        Some(shipped.core_percent <= 1.0),
    );
    row(
        "CPU per collection",
        &|f| format!("{:.2} ms", f.core_percent * 10.0),
        "",
        None,
    );
    row(
        "binary size",
        &|f| format!("{:.1} MiB", f.binary_mib),
        "",
        None,
    );
    if let [release, dist] = figures {
        println!();
        println!(
            "dist / release: RSS {:.2}×, mapped code {:.2}×, CPU {:.2}×",
            dist.rss / release.rss,
            dist.file / release.file,
            dist.core_percent / release.core_percent
        );
    }
    println!();
    image_size(shipped);
    println!();
}

/// The image's size as the container engine stores it, when `make image` built it here
/// (`KUBEMIND_IMAGE`, set by `make bench`); otherwise the one layer kubemind adds to its base.
fn image_size(shipped: &Figures) {
    const BUDGET_MIB: f64 = 48.0;
    let image = std::env::var("KUBEMIND_IMAGE").unwrap_or_default();
    let inspected = ["podman", "docker"].iter().find_map(|engine| {
        let output = std::process::Command::new(engine)
            .args(["image", "inspect", "--format", "{{.Size}}", &image])
            .output()
            .ok()?;
        let bytes: f64 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .ok()?;
        Some((engine, bytes / (1024.0 * 1024.0)))
    });
    match inspected {
        Some((engine, mib)) if !image.is_empty() => println!(
            "{:<36} {:>16}   <= {BUDGET_MIB:.0} MiB  {} ({engine} image inspect {image})",
            "image size",
            format!("{mib:.1} MiB"),
            if mib <= BUDGET_MIB {
                "within budget"
            } else {
                "OVER BUDGET"
            }
        ),
        _ => println!(
            "{:<36} {:>16}   the binary, the one layer over the distroless cc base (image {} not built here: make image)",
            "image size",
            format!("{:.1} MiB + base", shipped.binary_mib),
            if image.is_empty() { "?" } else { &image }
        ),
    }
}
