//! What the demo prints: the adapter's address and kubectl commands first, a progress line
//! while it runs (on a terminal), a timeline of scaling decisions, and a final table per
//! scenario — or, with `--output json`, one machine-readable summary. Text fits 80 columns.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::args::DemoOutput;
use super::hpa::{CPU_TARGET_PERCENT, KUBEMIND_METRICS, ScalingPolicy, SyncOutcome};
use super::scenario::{SYNC_SECONDS, Scenario};

/// `println!` that ignores a closed stdout (`kubemind demo | head`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Window, at the end of the traffic, over which the final queue time is taken.
const FINAL_WINDOW_SECONDS: f64 = 120.0;

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioSummary {
    pub name: String,
    pub namespace: String,
    pub scaler: String,
    pub balancing: String,
    pub replicas_start: i32,
    pub replicas_end: i32,
    pub replicas_max: i32,
    /// (second, replicas) at every sync.
    pub replicas: Vec<(u64, i32)>,
    /// (second at the end of each 15 s, p99 queue time of the requests that started in it),
    /// while requests flowed.
    pub queue_time_ms: Vec<(u64, f64)>,
    pub queue_time_p50_ms: f64,
    pub queue_time_p99_ms: f64,
    /// p99 over the requests served in the last two minutes of traffic.
    pub final_queue_time_p99_ms: f64,
    /// Mean GPU busy per pod while requests flowed.
    pub gpu_busy_percent: BTreeMap<String, f64>,
    pub average_cpu_percent: f64,
    /// The Deployment's `request_imbalance_ratio` as the adapter served it at the last sync.
    pub request_imbalance_ratio: Option<f64>,
    pub served: u64,
    pub dropped: u64,
    pub backlog_left: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub duration_seconds: u64,
    pub target_queue_time_ms: f64,
    pub scenarios: Vec<ScenarioSummary>,
}

/// Collects what happens as the run goes.
pub(crate) struct Recorder {
    output: DemoOutput,
    duration: u64,
    live: bool,
    replicas: BTreeMap<String, Vec<(u64, i32)>>,
    imbalance: BTreeMap<String, Option<f64>>,
    /// Per scenario, per pod: (busy seconds, seconds serving).
    busy: BTreeMap<String, BTreeMap<String, (f64, f64)>>,
    cpu: BTreeMap<String, (f64, f64)>,
}

fn clock(second: u64) -> String {
    format!("{:02}:{:02}", second / 60, second % 60)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn describe(scenario: &Scenario) -> (String, String) {
    let scaler = match scenario.controller.policy() {
        ScalingPolicy::Cpu => format!("HPA on CPU {CPU_TARGET_PERCENT:.0} %"),
        ScalingPolicy::Kubemind => format!(
            "kubemind HPA: queue time {:.0} ms, GPU busy {:.0} %",
            KUBEMIND_METRICS[0].1, KUBEMIND_METRICS[1].1
        ),
    };
    let balancing = match scenario.world.balancing {
        super::world::Balancing::L4 => "L4 (per connection)",
        super::world::Balancing::L7 => "L7 (per request)",
    };
    (scaler, balancing.to_string())
}

impl Recorder {
    pub fn new(output: DemoOutput, scenarios: &[Scenario], duration: u64) -> Recorder {
        let mut replicas = BTreeMap::new();
        for scenario in scenarios {
            replicas.insert(
                scenario.name.as_str().to_string(),
                vec![(0, scenario.world.pods.len() as i32)],
            );
        }
        Recorder {
            output,
            duration,
            live: std::io::stderr().is_terminal(),
            replicas,
            imbalance: BTreeMap::new(),
            busy: BTreeMap::new(),
            cpu: BTreeMap::new(),
        }
    }

    pub fn header(&self, url: &str, kubeconfig: &Path, explain: Option<&(String, PathBuf)>) {
        if self.output == DemoOutput::Json {
            return;
        }
        out!("kubemind demo: 3 Triton pods, one gRPC client flushing 50,000 images");
        out!("over one connection, 50 ms per request, 10 s client deadline.");
        out!();
        out!("While it runs, the adapter serves the live values at {url}:");
        out!("  export KUBECONFIG={}", kubeconfig.display());
        out!("  API=/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo-l4");
        out!("  kubectl get --raw /apis/custom.metrics.k8s.io/v1beta2");
        out!("  kubectl get --raw \"$API/pods/*/triton_queue_time_ms?labelSelector=app=triton\"");
        out!("  kubectl get --raw $API/deployments.apps/triton/request_imbalance_ratio");
        if let Some((namespace, manifest)) = explain {
            out!("  kubemind explain triton -n {namespace} --selector app=triton \\");
            out!("    -f {}", manifest.display());
        }
        out!();
        out!("timeline (simulated time)");
    }

    /// Records one sync and prints its line when replicas change.
    pub fn sync(&mut self, scenario: &Scenario, outcome: &SyncOutcome, second: u64) {
        let name = scenario.name.as_str().to_string();
        let replicas = outcome.scale_to.unwrap_or(outcome.current);
        self.replicas
            .entry(name.clone())
            .or_default()
            .push((second, replicas));
        // the last value served while requests flowed (idle pods have no imbalance)
        if outcome.imbalance.is_some() {
            self.imbalance.insert(name.clone(), outcome.imbalance);
        }
        if self.output == DemoOutput::Json || outcome.scale_to.is_none() {
            return;
        }
        let signals: Vec<String> = outcome
            .metrics
            .iter()
            .map(|m| match m.average() {
                Some(avg) => format!("{} avg {avg:.0}/{:.0}", short(m.name), m.target),
                None => format!("{} absent", short(m.name)),
            })
            .collect();
        self.clear_progress();
        out!(
            "  {}  {:<4} {:>2} → {:<2}  {}",
            clock(second),
            name,
            outcome.current,
            replicas,
            signals.join(", ")
        );
    }

    fn clear_progress(&self) {
        if self.live && self.output == DemoOutput::Text {
            eprint!("\r{:79}\r", "");
        }
    }

    /// Accumulates per-second figures (while requests flow) and redraws the progress line.
    pub(crate) fn progress(&mut self, scenarios: &[Scenario], second: u64) {
        for scenario in scenarios {
            let world = &scenario.world;
            if world.backlog == 0 && world.pods.iter().all(|p| p.pending() == 0) {
                continue;
            }
            let name = scenario.name.as_str().to_string();
            let busy = self.busy.entry(name.clone()).or_default();
            let mut cpu_sum = 0.0;
            let mut ready = 0.0;
            for pod in scenario.world.ready_pods() {
                let entry = busy.entry(pod.name.clone()).or_default();
                entry.0 += pod.busy;
                entry.1 += 1.0;
                cpu_sum += pod.cpu_percent();
                ready += 1.0;
            }
            if ready > 0.0 {
                let cpu = self.cpu.entry(name).or_default();
                cpu.0 += cpu_sum / ready;
                cpu.1 += 1.0;
            }
        }
        if !self.live || self.output == DemoOutput::Json || !second.is_multiple_of(5) {
            return;
        }
        let parts: Vec<String> = scenarios
            .iter()
            .map(|s| {
                let recent: Vec<f64> = s
                    .world
                    .waits
                    .iter()
                    .rev()
                    .take_while(|(t, _)| *t > s.world.now - 5.0)
                    .map(|(_, w)| *w)
                    .collect();
                let queue = recent.iter().copied().fold(0.0, f64::max);
                format!(
                    "{} {:>2} pods q {:>4.1}s",
                    s.name.as_str(),
                    s.world.pods.len(),
                    queue
                )
            })
            .collect();
        let line = format!(
            "[{}/{}] {}",
            clock(second),
            clock(self.duration),
            parts.join(" │ ")
        );
        eprint!("\r{line:79.79}");
        let _ = std::io::stderr().flush();
    }

    pub fn finish(mut self, scenarios: &[Scenario]) -> Summary {
        self.clear_progress();
        let mut summaries = Vec::new();
        for scenario in scenarios {
            let name = scenario.name.as_str().to_string();
            let world = &scenario.world;
            let mut waits: Vec<f64> = world.waits.iter().map(|(_, w)| w * 1000.0).collect();
            waits.sort_by(f64::total_cmp);
            let traffic_end = world.last_send.unwrap_or(world.now);
            let mut last: Vec<f64> = world
                .waits
                .iter()
                .filter(|(t, _)| *t >= traffic_end - FINAL_WINDOW_SECONDS)
                .map(|(_, w)| w * 1000.0)
                .collect();
            last.sort_by(f64::total_cmp);
            let replicas = self.replicas.remove(&name).unwrap_or_default();
            let (scaler, balancing) = describe(scenario);
            let cpu = self.cpu.get(&name).copied().unwrap_or((0.0, 1.0));
            summaries.push(ScenarioSummary {
                namespace: scenario.namespace.clone(),
                scaler,
                balancing,
                replicas_start: replicas.first().map_or(0, |r| r.1),
                replicas_end: world.pods.len() as i32,
                replicas_max: replicas.iter().map(|r| r.1).max().unwrap_or(0),
                replicas,
                queue_time_ms: queue_time_series(&world.waits),
                queue_time_p50_ms: percentile(&waits, 0.5),
                queue_time_p99_ms: percentile(&waits, 0.99),
                final_queue_time_p99_ms: percentile(&last, 0.99),
                gpu_busy_percent: self
                    .busy
                    .get(&name)
                    .map(|pods| {
                        pods.iter()
                            .map(|(pod, (busy, seconds))| {
                                (
                                    pod.clone(),
                                    (busy / seconds.max(1.0) * 1000.0).round() / 10.0,
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                average_cpu_percent: (cpu.0 / cpu.1.max(1.0) * 10.0).round() / 10.0,
                request_imbalance_ratio: self.imbalance.get(&name).copied().flatten(),
                served: world.waits.len() as u64,
                dropped: world.dropped,
                backlog_left: world.backlog,
                name,
            });
        }
        Summary {
            duration_seconds: self.duration,
            target_queue_time_ms: KUBEMIND_METRICS[0].1,
            scenarios: summaries,
        }
    }
}

/// The p99 queue time of each 15 s of requests (by when they started), in ms.
fn queue_time_series(waits: &[(f64, f64)]) -> Vec<(u64, f64)> {
    let bucket = SYNC_SECONDS;
    let mut buckets: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for (started, wait) in waits {
        let end = ((*started / bucket as f64).floor() as u64 + 1) * bucket;
        buckets.entry(end).or_default().push(wait * 1000.0);
    }
    buckets
        .into_iter()
        .map(|(end, mut waits)| {
            waits.sort_by(f64::total_cmp);
            (end, percentile(&waits, 0.99))
        })
        .collect()
}

fn short(metric: &str) -> &str {
    match metric {
        "triton_queue_time_ms" => "queue ms",
        "gpu_utilization_percent" => "GPU %",
        "cpu" => "CPU %",
        other => other,
    }
}

fn seconds(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

/// Prints the final tables, or the JSON summary.
pub(crate) fn print(summary: &Summary, output: DemoOutput, url: &str) {
    if output == DemoOutput::Json {
        match serde_json::to_string_pretty(summary) {
            Ok(text) => out!("{text}"),
            Err(error) => eprintln!("kubemind demo: {error}"),
        }
        return;
    }
    out!();
    for s in &summary.scenarios {
        out!("{:─<80}", format!("── {} ({}) ", s.name, s.namespace));
        out!("  {}; Service {}", s.scaler, s.balancing);
        out!(
            "  replicas {} → {} (max {})     served {}  dropped {}  (10 s deadline)",
            s.replicas_start,
            s.replicas_end,
            s.replicas_max,
            s.served,
            s.dropped
        );
        out!(
            "  queue time p50 {}  p99 {}   last 2 min of traffic p99 {}",
            seconds(s.queue_time_p50_ms),
            seconds(s.queue_time_p99_ms),
            seconds(s.final_queue_time_p99_ms)
        );
        let minutes: Vec<String> = s
            .replicas
            .iter()
            .filter(|(second, _)| second.is_multiple_of(60))
            .map(|(_, r)| r.to_string())
            .collect();
        out!("  replicas each minute: {}", minutes.join(" "));
        let mut busy: Vec<(usize, f64)> = s
            .gpu_busy_percent
            .iter()
            .map(|(pod, busy)| {
                let index = pod.rsplit('-').next().and_then(|i| i.parse().ok());
                (index.unwrap_or(usize::MAX), *busy)
            })
            .collect();
        busy.sort_by_key(|(index, _)| *index);
        let busy: Vec<String> = busy.iter().map(|(_, b)| format!("{b:.0}")).collect();
        out!(
            "  GPU busy % (triton-0…{}): {}",
            busy.len().saturating_sub(1),
            busy.join(" ")
        );
        let imbalance = s
            .request_imbalance_ratio
            .map_or("-".into(), |r| format!("{r:.1}"));
        out!(
            "  average CPU {:.0} %   request imbalance {imbalance} (1 = even)",
            s.average_cpu_percent
        );
        out!("  → {}", verdict(s, summary.target_queue_time_ms));
    }
    out!();
    out!("The adapter at {url} stopped with the demo.");
    out!("To explore it with kubectl while it runs, run it slower: --speed 5");
}

/// The one sentence a person should take away from a scenario.
fn verdict(s: &ScenarioSummary, target_ms: f64) -> String {
    let imbalanced = s.request_imbalance_ratio.is_some_and(|r| r > 2.0);
    if s.replicas_max == s.replicas_start {
        format!(
            "never scaled: CPU averages {:.0} % while one pod queues for seconds",
            s.average_cpu_percent
        )
    } else if imbalanced && s.final_queue_time_p99_ms > target_ms {
        "scaled, but one pod gets every request: balance per request, not more pods".into()
    } else if s.final_queue_time_p99_ms <= target_ms {
        "scaled on queue time and GPU busy; queue time recovered".into()
    } else {
        "scaled; queue time still above target".into()
    }
}
