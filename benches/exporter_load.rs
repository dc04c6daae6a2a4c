//! `make bench`, exporter part: RSS and CPU of the release `kubemind exporter` collecting 8
//! simulated GPUs (the simulated libnvidia-ml through nvml-wrapper) and 16 Triton endpoints
//! (4 models on 2 GPUs each, counters advancing per scrape) at 1 Hz, with 16 pods attributed
//! through a simulated kubelet — against the budget in `docs/architecture.md`, Performance
//! budget (≤ 12 MiB RSS, ≤ 1 % of a core).
//! Everything runs on 127.0.0.1, bounded in time.

use std::time::{Duration, Instant};

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
    let script: String = (0..GPUS)
        .map(|i| {
            nvml::gpu_line(
                &format!("GPU-{i:04}"),
                50 + i as u32,
                (i as u64 + 1) << 32,
                80 << 30,
            )
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
    let mut exporter = std::process::Command::new(env!("CARGO_BIN_EXE_kubemind"))
        .args(&args)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("exporter starts");
    let pid = exporter.id();
    std::thread::sleep(WARM_UP);
    let (cpu_start, start) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(MEASURED);
    let cpu = cpu_seconds(pid) - cpu_start;
    let elapsed = start.elapsed().as_secs_f64();
    let rss = status_kib(pid, "VmRSS:") as f64 / 1024.0;
    let peak = status_kib(pid, "VmHWM:") as f64 / 1024.0;
    let anonymous = status_kib(pid, "RssAnon:") as f64 / 1024.0;
    let file = status_kib(pid, "RssFile:") as f64 / 1024.0;
    let _ = exporter.kill();
    let _ = exporter.wait();
    drop(runtime);

    let core_percent = cpu / elapsed * 100.0;
    let per_collection_ms = cpu / elapsed * 1000.0; // one collection per second
    let verdict = |ok: bool| if ok { "within budget" } else { "OVER BUDGET" };
    println!();
    println!(
        "kubemind exporter: {GPUS} simulated GPUs, {ENDPOINTS} Triton endpoints, 1 Hz, {:.0} s measured",
        elapsed
    );
    println!();
    println!("{:<42} {:>14}   budget", "figure", "measured");
    println!(
        "{:<42} {:>14}   {:<10} {}",
        "RSS (peak)",
        format!("{rss:.1} ({peak:.1}) MiB"),
        "<= 12 MiB",
        verdict(peak <= 12.0)
    );
    println!(
        "{:<42} {:>14}   (the rest is the binary's mapped code, shared and reclaimable: {file:.1} MiB)",
        "  of which heap and stacks (RssAnon)",
        format!("{anonymous:.1} MiB")
    );
    println!(
        "{:<42} {:>14}   {:<10} {}",
        "CPU, share of one core",
        format!("{core_percent:.2} %"),
        "<= 1 %",
        verdict(core_percent <= 1.0)
    );
    println!(
        "{:<42} {:>14}",
        "CPU per collection",
        format!("{per_collection_ms:.2} ms")
    );
    println!();
}
