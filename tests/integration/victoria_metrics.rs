//! The Prometheus source against VictoriaMetrics (the Debian package `victoria-metrics`, whose
//! query API is the one the cluster version's `vmselect` answers), scraping the same exporter
//! as the Prometheus tests: the built-in rules serve the HPA the same values through it; and
//! with its default latency offset, which hides the newest 30 s of samples from queries, the
//! values carry their real sample times — the freshness gauge says how far behind they are
//! and `--prometheus-max-age` applies to them; the URL carries a path prefix, as a
//! VictoriaMetrics cluster's `vmselect` (`/select/0/prometheus`) needs.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::fixtures::{
    DEMO_PODS_PATH, hpa_standin, pinned_demo_pods, start_cluster_adapter, start_demo_exporter,
    triton_page, values,
};
use crate::prometheus::prometheus_source_args;

/// A VictoriaMetrics single-node server scraping targets every second.
struct VictoriaMetrics {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl VictoriaMetrics {
    fn start(dir: &Path, targets: &[(&str, &str)], latency_offset: &str) -> VictoriaMetrics {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n{}",
            crate::prometheus_server::scrape_configs(targets)
        );
        let config_path = dir.join("vm-scrape.yml");
        std::fs::write(&config_path, config).expect("config");
        let log = dir.join("victoria-metrics.log");
        let child = Command::new("victoria-metrics")
            .arg(format!("-promscrape.config={}", config_path.display()))
            .arg(format!(
                "-storageDataPath={}",
                dir.join("vm-data").display()
            ))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-search.latencyOffset={latency_offset}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("victoria-metrics starts (apt-get install victoria-metrics)");
        let vm = VictoriaMetrics { child, port, log };
        crate::util::wait_for(Duration::from_secs(30), "VictoriaMetrics to answer", || {
            std::net::TcpStream::connect(("127.0.0.1", vm.port))
                .ok()
                .map(|_| ())
        });
        vm
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prometheus_source_works_against_victoria_metrics() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_exporter, exporter_url) = start_demo_exporter(dir.path(), |n| triton_page(n, 20, 8000));
    let standin = hpa_standin();

    // samples visible after a second: the same values as through Prometheus
    let vm_dir = dir.path().join("fast");
    std::fs::create_dir_all(&vm_dir).expect("dir");
    let fast = VictoriaMetrics::start(&vm_dir, &[("kubemind-exporter", &exporter_url)], "1s");
    let fast_url = fast.url();
    let adapter_dir = dir.path().join("adapter-fast");
    std::fs::create_dir_all(&adapter_dir).expect("dir");
    let (adapter, _, client) = start_cluster_adapter(
        &adapter_dir,
        &standin,
        &prometheus_source_args(&fast_url, "10s"),
    );
    let served = client.wait_for_demo_pods(Duration::from_secs(60)).await;
    assert_eq!(
        served,
        pinned_demo_pods(),
        "adapter log:\n{}\nVictoriaMetrics log:\n{}",
        adapter.log(),
        fast.log()
    );
    client.assert_pinned_demo_deployment().await;
    drop(adapter);

    // VictoriaMetrics' default: the newest 30 s hidden. The values arrive, with their age
    let vm_dir = dir.path().join("default");
    std::fs::create_dir_all(&vm_dir).expect("dir");
    let lagging = VictoriaMetrics::start(&vm_dir, &[("kubemind-exporter", &exporter_url)], "30s");
    // through a path prefix, as vmselect's `/select/<tenant>/prometheus` is given (the
    // single-node server answers the same API under `/prometheus`)
    let lagging_url = format!("{}/prometheus", lagging.url());
    let adapter_dir = dir.path().join("adapter-lagging");
    std::fs::create_dir_all(&adapter_dir).expect("dir");
    let (adapter, _, client) = start_cluster_adapter(
        &adapter_dir,
        &standin,
        &prometheus_source_args(&lagging_url, "60s"),
    );
    crate::util::wait_for_async(
        Duration::from_secs(90),
        "values through the lag",
        || async {
            let (code, body) = client.get(DEMO_PODS_PATH.to_string()).await?;
            (code == 200 && !values(&body).is_empty()).then_some(())
        },
    )
    .await;
    let age = client
        .newest_value_age("prometheus")
        .await
        .expect("the freshness gauge");
    assert!(
        age >= 25.0,
        "the freshness gauge shows VictoriaMetrics' 30 s lag: {age:?}\n{}",
        adapter.log()
    );
}
