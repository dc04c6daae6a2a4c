//! Triton's saturation signals (`docs/gpu-and-inference.md`, Triton and Formulas).
//!
//! Triton's per-model counters move only when a request *finishes*, per model, version and
//! `gpu_uuid`. Summed over every series of the pod before dividing, they give request-weighted
//! values: queue time = ΣΔ`nv_inference_queue_duration_us` / ΣΔ`nv_inference_request_success`,
//! queue/compute ratio = ΣΔqueue_us / ΣΔ`nv_inference_compute_infer_duration_us`. The pending
//! gauge (`nv_inference_pending_request_count`) is instantaneous and leads them. A pod with
//! pending requests and no completions over the window is **stalled**: its queue time is
//! unknown (absent), never 0 ms. Rejections (queue timeouts) add no queue time and are a rate
//! of their own.

use std::collections::HashMap;
use std::time::Duration;

use super::{SeriesKey, series_key, summed_delta};
use crate::promtext::Exposition;

/// One scrape of one Triton pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TritonReading {
    success: HashMap<SeriesKey, f64>,
    queue_us: HashMap<SeriesKey, f64>,
    compute_infer_us: HashMap<SeriesKey, f64>,
    rejected: HashMap<SeriesKey, f64>,
    /// Σ `nv_inference_pending_request_count` over the pod's models.
    pub pending: f64,
}

impl TritonReading {
    /// Picks the families Triton's signals come from; NaN and negative values are ignored.
    pub(crate) fn from_exposition(exposition: &Exposition<'_>) -> TritonReading {
        let mut reading = TritonReading::default();
        for sample in &exposition.samples {
            if !sample.value.is_finite() || sample.value < 0.0 {
                continue;
            }
            let family = match sample.name {
                "nv_inference_request_success" => &mut reading.success,
                "nv_inference_queue_duration_us" => &mut reading.queue_us,
                "nv_inference_compute_infer_duration_us" => &mut reading.compute_infer_us,
                // older servers have no `reason` and cannot tell rejections apart: count them all
                "nv_inference_request_failure"
                    if sample.label("reason").is_none_or(|r| r == "REJECTED") =>
                {
                    &mut reading.rejected
                }
                "nv_inference_pending_request_count" => {
                    reading.pending += sample.value;
                    continue;
                }
                _ => continue,
            };
            family.insert(series_key(sample), sample.value);
        }
        reading
    }

    /// Whether the exposition had any Triton inference family at all.
    pub fn is_empty(&self) -> bool {
        self.success.is_empty() && self.queue_us.is_empty() && self.pending == 0.0
    }
}

/// What one Triton pod's load looks like over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct TritonSignals {
    /// Request-weighted mean queue time; `None` when stalled.
    pub queue_time_seconds: Option<f64>,
    /// ΣΔqueue / ΣΔcompute; `None` when stalled or when nothing was computed.
    pub queue_compute_ratio: Option<f64>,
    pub pending_requests: f64,
    /// Successful requests per second.
    pub request_rate: f64,
    /// Rejected requests per second.
    pub rejected_rate: f64,
    /// Pending requests and no completion over the whole window.
    pub stalled: bool,
}

/// The signals between two readings `elapsed` apart (`None` for a zero window).
pub fn signals(
    previous: &TritonReading,
    current: &TritonReading,
    elapsed: Duration,
) -> Option<TritonSignals> {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return None;
    }
    let success = summed_delta(&previous.success, &current.success);
    let queue_us = summed_delta(&previous.queue_us, &current.queue_us);
    let compute_us = summed_delta(&previous.compute_infer_us, &current.compute_infer_us);
    let rejected = summed_delta(&previous.rejected, &current.rejected);
    let stalled = success == 0.0 && current.pending > 0.0;
    let queue_time_seconds = if success > 0.0 {
        Some(queue_us / success / 1e6)
    } else if stalled {
        None
    } else {
        Some(0.0)
    };
    let queue_compute_ratio = if stalled {
        None
    } else if compute_us > 0.0 {
        Some(queue_us / compute_us)
    } else if queue_us == 0.0 {
        Some(0.0)
    } else {
        None
    };
    Some(TritonSignals {
        queue_time_seconds,
        queue_compute_ratio,
        pending_requests: current.pending,
        request_rate: success / seconds,
        rejected_rate: rejected / seconds,
        stalled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promtext;

    /// A Triton exposition with two models, one of them on two GPUs.
    fn exposition(
        success: [f64; 3],
        queue_us: [f64; 3],
        compute_us: [f64; 3],
        rejected: f64,
        pending: [f64; 2],
    ) -> String {
        let series = [
            r#"model="resnet",version="1",gpu_uuid="GPU-a""#,
            r#"model="resnet",version="1",gpu_uuid="GPU-b""#,
            r#"model="bert",version="2",gpu_uuid="GPU-a""#,
        ];
        let mut text = String::from("# TYPE nv_inference_request_success counter\n");
        for (i, labels) in series.iter().enumerate() {
            text.push_str(&format!(
                "nv_inference_request_success{{{labels}}} {}\n",
                success[i]
            ));
            text.push_str(&format!(
                "nv_inference_queue_duration_us{{{labels}}} {}\n",
                queue_us[i]
            ));
            text.push_str(&format!(
                "nv_inference_compute_infer_duration_us{{{labels}}} {}\n",
                compute_us[i]
            ));
        }
        text.push_str(&format!("nv_inference_request_failure{{model=\"resnet\",version=\"1\",reason=\"REJECTED\"}} {rejected}\n"));
        text.push_str(
            "nv_inference_request_failure{model=\"resnet\",version=\"1\",reason=\"BACKEND\"} 99\n",
        );
        text.push_str(&format!(
            "nv_inference_pending_request_count{{model=\"resnet\",version=\"1\"}} {}\n",
            pending[0]
        ));
        text.push_str(&format!(
            "nv_inference_pending_request_count{{model=\"bert\",version=\"2\"}} {}\n",
            pending[1]
        ));
        text
    }

    fn reading(text: &str) -> TritonReading {
        TritonReading::from_exposition(&promtext::parse(text).expect("valid"))
    }

    #[test]
    fn queue_time_is_request_weighted_over_all_models_and_gpus() {
        let before = reading(&exposition(
            [100.0, 100.0, 50.0],
            [1e6, 1e6, 1e6],
            [5e5, 5e5, 5e5],
            0.0,
            [0.0, 0.0],
        ));
        // 20 + 10 + 70 = 100 requests finished; 2 s + 1 s + 7 s = 10 s of queueing
        let after = reading(&exposition(
            [120.0, 110.0, 120.0],
            [3e6, 2e6, 8e6],
            [1.5e6, 1e6, 3e6],
            4.0,
            [3.0, 2.0],
        ));
        let s = signals(&before, &after, Duration::from_secs(10)).expect("window");
        assert_eq!(s.queue_time_seconds, Some(0.1));
        // 10 s of queueing over 4 s of compute
        assert_eq!(s.queue_compute_ratio, Some(2.5));
        assert_eq!(s.request_rate, 10.0);
        assert_eq!(s.rejected_rate, 0.4, "only REJECTED failures count");
        assert_eq!(s.pending_requests, 5.0);
        assert!(!s.stalled);
    }

    #[test]
    fn a_reset_counter_counts_its_current_value() {
        let before = reading(&exposition(
            [5000.0, 0.0, 0.0],
            [9e9, 0.0, 0.0],
            [1e9, 0.0, 0.0],
            0.0,
            [0.0, 0.0],
        ));
        // the pod restarted: counters start again from small values
        let after = reading(&exposition(
            [10.0, 0.0, 0.0],
            [5e5, 0.0, 0.0],
            [2.5e5, 0.0, 0.0],
            0.0,
            [0.0, 0.0],
        ));
        let s = signals(&before, &after, Duration::from_secs(5)).expect("window");
        assert_eq!(s.queue_time_seconds, Some(0.05));
        assert_eq!(s.request_rate, 2.0);
        assert_eq!(s.queue_compute_ratio, Some(2.0));
    }

    #[test]
    fn pending_without_completions_is_stalled_not_zero() {
        let before = reading(&exposition(
            [100.0, 0.0, 0.0],
            [1e6, 0.0, 0.0],
            [1e6, 0.0, 0.0],
            0.0,
            [40.0, 0.0],
        ));
        let after = reading(&exposition(
            [100.0, 0.0, 0.0],
            [1e6, 0.0, 0.0],
            [1e6, 0.0, 0.0],
            0.0,
            [412.0, 0.0],
        ));
        let s = signals(&before, &after, Duration::from_secs(15)).expect("window");
        assert!(s.stalled);
        assert_eq!(s.queue_time_seconds, None);
        assert_eq!(s.queue_compute_ratio, None);
        assert_eq!(s.pending_requests, 412.0);
        assert_eq!(s.request_rate, 0.0);
    }

    #[test]
    fn an_idle_server_has_zero_queue_time() {
        let idle = reading(&exposition(
            [7.0, 0.0, 0.0],
            [1e3, 0.0, 0.0],
            [1e3, 0.0, 0.0],
            0.0,
            [0.0, 0.0],
        ));
        let s = signals(&idle, &idle, Duration::from_secs(1)).expect("window");
        assert_eq!(
            (s.queue_time_seconds, s.queue_compute_ratio, s.stalled),
            (Some(0.0), Some(0.0), false)
        );
        assert!(signals(&idle, &idle, Duration::ZERO).is_none());
    }

    #[test]
    fn reads_the_documented_sample() {
        let text = include_str!("../../../tests/data/triton-metrics-sample.txt");
        let sample = reading(text);
        assert!(!sample.is_empty());
        let s = signals(&sample, &sample, Duration::from_secs(1)).expect("window");
        assert_eq!(
            (s.queue_time_seconds, s.pending_requests, s.stalled),
            (Some(0.0), 0.0, false)
        );
    }
}
