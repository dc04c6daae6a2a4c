//! The simulated world of one demo scenario: a Deployment of Triton pods (one GPU each), an
//! event processor flushing a backlog of images over one multiplexed gRPC connection, and the
//! Service between them — connection-level (L4: the connection, and so every request, lands on
//! one pod) or request-level (L7: requests spread over the ready pods).
//!
//! Time advances in steps; requests are simulated one by one: each pod serves its FIFO queue
//! one request at a time (`SERVICE_SECONDS` each), and a request still queued when the client's
//! deadline passes is cancelled (dropped). Each pod keeps Triton's own counters — successes,
//! cumulative queue and compute microseconds, pending requests, rejections — which the demo
//! renders as Triton's /metrics text for the real exporter code to read.

use std::collections::VecDeque;

/// Time one request occupies the GPU at nominal load.
pub(crate) const SERVICE_SECONDS: f64 = 0.05;
/// The client's gRPC deadline.
pub(crate) const DEADLINE_SECONDS: f64 = 10.0;
/// From scale-up to serving: scheduling, image pull, model load.
pub(crate) const STARTUP_SECONDS: f64 = 40.0;
/// CPU use of a pod: idle, plus this much more when its GPU is busy all the time (percent of
/// its CPU request).
const CPU_IDLE_PERCENT: f64 = 5.0;
const CPU_BUSY_PERCENT: f64 = 65.0;

/// How the Service spreads requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balancing {
    /// Per connection: the client's one connection stays on one pod.
    L4,
    /// Per request, round robin over the ready pods.
    L7,
}

/// One Triton pod.
#[derive(Debug, Clone)]
pub struct Pod {
    pub name: String,
    pub gpu_uuid: String,
    /// Serving from this time on; before it the pod is Pending.
    pub ready_at: f64,
    queue: VecDeque<f64>,
    free_at: f64,
    busy_carry: f64,
    /// Busy fraction of the GPU over the last step.
    pub busy: f64,
    pub success: u64,
    pub rejected: u64,
    pub queue_us: f64,
    pub compute_us: f64,
}

impl Pod {
    pub fn is_ready(&self, now: f64) -> bool {
        now >= self.ready_at
    }

    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// CPU use, percent of the pod's CPU request.
    pub(crate) fn cpu_percent(&self) -> f64 {
        CPU_IDLE_PERCENT + CPU_BUSY_PERCENT * self.busy
    }

    /// The pod's /metrics as Triton writes it.
    pub(crate) fn triton_metrics(&self) -> String {
        let model = r#"model="resnet50",version="1""#;
        format!(
            "# TYPE nv_inference_request_success counter\n\
             nv_inference_request_success{{{model}}} {}\n\
             # TYPE nv_inference_request_failure counter\n\
             nv_inference_request_failure{{{model},reason=\"REJECTED\"}} {}\n\
             # TYPE nv_inference_queue_duration_us counter\n\
             nv_inference_queue_duration_us{{{model}}} {:.0}\n\
             # TYPE nv_inference_compute_infer_duration_us counter\n\
             nv_inference_compute_infer_duration_us{{{model}}} {:.0}\n\
             # TYPE nv_inference_pending_request_count gauge\n\
             nv_inference_pending_request_count{{{model}}} {}\n",
            self.success,
            self.rejected,
            self.queue_us,
            self.compute_us,
            self.queue.len()
        )
    }
}

/// One scenario's world.
#[derive(Debug, Clone)]
pub struct World {
    pub now: f64,
    pub pods: Vec<Pod>,
    pub balancing: Balancing,
    prefix: String,
    gpu_prefix: String,
    next_index: usize,
    /// Images still to send.
    pub backlog: u64,
    /// Requests a second the client sends while it has a backlog.
    pub send_rate: f64,
    next_send: f64,
    round_robin: usize,
    /// (time served, seconds queued) of every request served.
    pub waits: Vec<(f64, f64)>,
    pub dropped: u64,
    /// When the last request was sent.
    pub last_send: Option<f64>,
}

impl World {
    /// `replicas` pods, all ready, named `<prefix>-<n>`, each holding GPU `GPU-<gpu_prefix>-<n>`.
    pub fn new(
        prefix: &str,
        gpu_prefix: &str,
        replicas: usize,
        balancing: Balancing,
        backlog: u64,
        send_rate: f64,
    ) -> World {
        let mut world = World {
            now: 0.0,
            pods: Vec::new(),
            balancing,
            prefix: prefix.to_string(),
            gpu_prefix: gpu_prefix.to_string(),
            next_index: 0,
            backlog,
            send_rate,
            next_send: 0.0,
            round_robin: 0,
            waits: Vec::new(),
            dropped: 0,
            last_send: None,
        };
        for _ in 0..replicas {
            world.add_pod(0.0);
        }
        world
    }

    fn add_pod(&mut self, ready_at: f64) {
        let index = self.next_index;
        self.next_index += 1;
        self.pods.push(Pod {
            name: format!("{}-{index}", self.prefix),
            gpu_uuid: format!("GPU-{}-{index:02}", self.gpu_prefix),
            ready_at,
            queue: VecDeque::new(),
            free_at: 0.0,
            busy_carry: 0.0,
            busy: 0.0,
            success: 0,
            rejected: 0,
            queue_us: 0.0,
            compute_us: 0.0,
        });
    }

    /// Scales the Deployment: new pods start Pending; removed pods are the newest, and their
    /// queued requests are lost with them (counted as dropped).
    pub(crate) fn scale_to(&mut self, replicas: usize) {
        while self.pods.len() < replicas {
            self.add_pod(self.now + STARTUP_SECONDS);
        }
        while self.pods.len() > replicas.max(1) {
            if let Some(pod) = self.pods.pop() {
                self.dropped += pod.queue.len() as u64;
            }
        }
    }

    fn route(&mut self) -> Option<usize> {
        let now = self.now;
        match self.balancing {
            // the connection was opened at the start, to the first pod, and stays there
            Balancing::L4 => Some(0),
            Balancing::L7 => {
                let ready: Vec<usize> = (0..self.pods.len())
                    .filter(|i| self.pods[*i].is_ready(now))
                    .collect();
                if ready.is_empty() {
                    return None;
                }
                self.round_robin = (self.round_robin + 1) % ready.len();
                Some(ready[self.round_robin])
            }
        }
    }

    /// Advances `dt` seconds.
    pub fn step(&mut self, dt: f64) {
        let end = self.now + dt;
        // the client sends while it has images left
        while self.backlog > 0 && self.next_send < end {
            let at = self.next_send.max(self.now);
            if let Some(pod) = self.route() {
                self.pods[pod].queue.push_back(at);
                self.backlog -= 1;
                self.last_send = Some(at);
            }
            self.next_send += 1.0 / self.send_rate;
        }
        for pod in &mut self.pods {
            let mut busy = pod.busy_carry;
            if pod.is_ready(self.now) || pod.ready_at < end {
                let start_of_service = pod.ready_at.max(self.now);
                while let Some(&arrived) = pod.queue.front() {
                    let start = pod.free_at.max(arrived).max(start_of_service);
                    if start >= end {
                        break;
                    }
                    pod.queue.pop_front();
                    if start - arrived > DEADLINE_SECONDS {
                        // cancelled by the client before it reached the GPU
                        pod.rejected += 1;
                        self.dropped += 1;
                        continue;
                    }
                    pod.free_at = start + SERVICE_SECONDS;
                    pod.success += 1;
                    pod.queue_us += (start - arrived) * 1e6;
                    pod.compute_us += SERVICE_SECONDS * 1e6;
                    busy += SERVICE_SECONDS;
                    self.waits.push((start, start - arrived));
                }
            }
            // requests whose deadline passed while queued are cancelled
            while pod
                .queue
                .front()
                .is_some_and(|arrived| end - arrived > DEADLINE_SECONDS)
            {
                pod.queue.pop_front();
                pod.rejected += 1;
                self.dropped += 1;
            }
            pod.busy_carry = (pod.free_at - end).max(0.0);
            pod.busy = ((busy - pod.busy_carry) / dt).clamp(0.0, 1.0);
        }
        self.now = end;
    }

    /// The pods serving now.
    pub(crate) fn ready_pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.iter().filter(|p| p.is_ready(self.now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l4_pins_every_request_to_one_pod_and_the_deadline_drops_the_rest() {
        let mut world = World::new("t", "t", 3, Balancing::L4, 10_000, 80.0);
        for _ in 0..60 {
            world.step(1.0);
        }
        assert_eq!(world.pods[1].success + world.pods[2].success, 0);
        // one pod serves 20 a second, at most
        assert!(
            (1150..=1201).contains(&world.pods[0].success),
            "{}",
            world.pods[0].success
        );
        assert!(world.dropped > 2000, "{}", world.dropped);
        let worst = world.waits.iter().map(|(_, w)| *w).fold(0.0, f64::max);
        assert!(worst <= DEADLINE_SECONDS && worst > 9.0, "{worst}");
        assert!((world.pods[0].cpu_percent() - 70.0).abs() < 0.5);
        let average_cpu: f64 = world.pods.iter().map(Pod::cpu_percent).sum::<f64>() / 3.0;
        assert!((average_cpu - 26.7).abs() < 0.5, "{average_cpu}");
    }

    #[test]
    fn l7_spreads_requests_and_enough_pods_keep_queues_empty() {
        let mut world = World::new("t", "t", 3, Balancing::L7, 100_000, 80.0);
        world.scale_to(6);
        for _ in 0..120 {
            world.step(1.0);
        }
        // once the new pods serve, nothing waits
        let late: Vec<f64> = world
            .waits
            .iter()
            .filter(|(t, _)| *t > 100.0)
            .map(|(_, w)| *w)
            .collect();
        assert!(!late.is_empty());
        assert!(
            late.iter().all(|w| *w < 0.06),
            "{:?}",
            late.iter().fold(0.0_f64, |a, b| a.max(*b))
        );
        assert!(world.pods.iter().all(|p| p.success > 0));
    }

    #[test]
    fn triton_counters_read_back_with_the_exporter_parser() {
        let mut world = World::new("t", "t", 1, Balancing::L7, 100, 10.0);
        world.step(2.0);
        let text = world.pods[0].triton_metrics();
        let exposition = crate::promtext::parse(&text).expect("valid exposition");
        let reading = crate::exporter::servers::triton::TritonReading::from_exposition(&exposition);
        assert!(!reading.is_empty());
    }
}
