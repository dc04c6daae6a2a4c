//! A real Prometheus server (Debian package) for tests and benches: started on 127.0.0.1 with a
//! generated configuration scraping the given targets every `scrape_interval`, with a query log
//! so tests can count the queries it answered; frozen, killed and restarted on demand.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A Prometheus server on 127.0.0.1, killed when dropped.
pub struct Prometheus {
    child: Option<Child>,
    pub port: u16,
    config: PathBuf,
    data: PathBuf,
    pub query_log: PathBuf,
    log: PathBuf,
}

/// The `scrape_configs` entries for `(job, url)` targets, labels as the pages write them
/// (Prometheus' format, which VictoriaMetrics reads too).
pub fn scrape_configs(targets: &[(&str, &str)]) -> String {
    targets
        .iter()
        .map(|(job, url)| {
            let address = url
                .trim_start_matches("http://")
                .trim_end_matches("/metrics");
            format!(
                "- job_name: {job}\n  honor_labels: true\n  static_configs: [{{targets: ['{address}']}}]\n"
            )
        })
        .collect()
}

impl Prometheus {
    /// Starts Prometheus scraping each `(job, url)` every second, with a query log.
    pub fn start(dir: &Path, targets: &[(&str, &str)]) -> Prometheus {
        Prometheus::start_with_interval(dir, targets, "1s")
    }

    /// Starts Prometheus scraping each `(job, url)` every `scrape_interval` (`15s`).
    pub fn start_with_interval(
        dir: &Path,
        targets: &[(&str, &str)],
        scrape_interval: &str,
    ) -> Prometheus {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let query_log = dir.join("queries.log");
        let mut config = format!(
            "global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n  query_log_file: {}\nscrape_configs:\n",
            query_log.display()
        );
        config.push_str(&scrape_configs(targets));
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("config");
        let mut prometheus = Prometheus {
            child: None,
            port,
            config: config_path,
            data: dir.join("tsdb"),
            query_log,
            log: dir.join("prometheus.log"),
        };
        prometheus.spawn();
        prometheus
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(&self.log).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", self.config.display()))
            .arg(format!("--storage.tsdb.path={}", self.data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts (apt-get install prometheus)");
        self.child = Some(child);
        let started = std::time::Instant::now();
        loop {
            if self.is_ready() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "Prometheus not ready after 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `GET /-/ready` answers 200 (plain HTTP/1.0 over a socket: no client needed).
    fn is_ready(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut answer = String::new();
        stream
            .write_all(b"GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .and_then(|()| stream.read_to_string(&mut answer))
            .is_ok()
            && answer.split_whitespace().nth(1) == Some("200")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success());
        }
    }

    /// Freezes the process: connections are accepted by the kernel but never answered.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Queries in the query log whose expression contains `needle`, with when each was logged.
    pub fn queries_containing(&self, needle: &str) -> Vec<jiff::Timestamp> {
        std::fs::read_to_string(&self.query_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| {
                entry["params"]["query"]
                    .as_str()
                    .is_some_and(|q| q.contains(needle))
            })
            .filter_map(|entry| entry["ts"].as_str()?.parse().ok())
            .collect()
    }

    /// Appends a scrape job (YAML under `scrape_configs:`) and reloads the configuration.
    pub fn add_scrape_job(&self, job: &str) {
        let mut config = std::fs::read_to_string(&self.config).expect("config");
        config.push_str(job);
        std::fs::write(&self.config, config).expect("config");
        self.signal("-HUP");
    }

    /// Evaluates `expr` now: the result rows, empty when there is no data (or an error).
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        let answer = reqwest::Client::new()
            .post(format!("{}/api/v1/query", self.url()))
            .form(&[("query", expr)])
            .send()
            .await;
        let Ok(answer) = answer else {
            return Vec::new();
        };
        let body: Value = answer.json().await.unwrap_or_default();
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.thaw();
        self.kill();
    }
}
