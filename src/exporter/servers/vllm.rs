//! vLLM's saturation signals (`docs/gpu-and-inference.md`, vLLM and Formulas): queue depth
//! (`vllm:num_requests_waiting`, the main scaling signal), batch size
//! (`vllm:num_requests_running`), KV-cache fullness (`vllm:kv_cache_usage_perc`, or the
//! deprecated `vllm:gpu_cache_usage_perc` on older servers), and the mean time requests waited
//! over the window from the `vllm:request_queue_time_seconds` histogram (Δsum / Δcount).
//!
//! A pod can run several engines: depths are summed, KV-cache usage is the fullest engine's.

use std::collections::HashMap;
use std::time::Duration;

use super::{SeriesKey, series_key, summed_delta};
use crate::promtext::Exposition;

/// One scrape of one vLLM pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VllmReading {
    pub waiting: f64,
    pub running: f64,
    /// Fullest engine's KV cache, 0–1; `None` if the server does not say.
    pub kv_cache_usage: Option<f64>,
    queue_time_sum: HashMap<SeriesKey, f64>,
    queue_time_count: HashMap<SeriesKey, f64>,
    success: HashMap<SeriesKey, f64>,
}

impl VllmReading {
    pub(crate) fn from_exposition(exposition: &Exposition<'_>) -> VllmReading {
        let mut reading = VllmReading::default();
        let mut legacy_kv = None::<f64>;
        for sample in &exposition.samples {
            if !sample.value.is_finite() || sample.value < 0.0 {
                continue;
            }
            let value = sample.value;
            match sample.name {
                "vllm:num_requests_waiting" => reading.waiting += value,
                "vllm:num_requests_running" => reading.running += value,
                "vllm:kv_cache_usage_perc" => {
                    reading.kv_cache_usage =
                        Some(reading.kv_cache_usage.map_or(value, |v| v.max(value)));
                }
                "vllm:gpu_cache_usage_perc" => {
                    legacy_kv = Some(legacy_kv.map_or(value, |v| v.max(value)));
                }
                "vllm:request_queue_time_seconds_sum" => {
                    reading.queue_time_sum.insert(series_key(sample), value);
                }
                "vllm:request_queue_time_seconds_count" => {
                    reading.queue_time_count.insert(series_key(sample), value);
                }
                "vllm:request_success_total" => {
                    reading.success.insert(series_key(sample), value);
                }
                _ => {}
            }
        }
        reading.kv_cache_usage = reading.kv_cache_usage.or(legacy_kv);
        reading
    }
}

/// What one vLLM pod's load looks like over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct VllmSignals {
    pub requests_waiting: f64,
    pub requests_running: f64,
    pub kv_cache_usage_ratio: Option<f64>,
    /// Mean time the requests that left the queue over the window had waited; `None` when none
    /// left it (with requests waiting that is a stall, and the depth says so).
    pub mean_queue_time_seconds: Option<f64>,
    /// Finished requests per second.
    pub request_rate: f64,
}

pub fn signals(
    previous: &VllmReading,
    current: &VllmReading,
    elapsed: Duration,
) -> Option<VllmSignals> {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return None;
    }
    let waited = summed_delta(&previous.queue_time_sum, &current.queue_time_sum);
    let dequeued = summed_delta(&previous.queue_time_count, &current.queue_time_count);
    let mean_queue_time_seconds = if dequeued > 0.0 {
        Some(waited / dequeued)
    } else if current.waiting == 0.0 {
        Some(0.0)
    } else {
        None
    };
    Some(VllmSignals {
        requests_waiting: current.waiting,
        requests_running: current.running,
        kv_cache_usage_ratio: current.kv_cache_usage,
        mean_queue_time_seconds,
        request_rate: summed_delta(&previous.success, &current.success) / seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promtext;

    fn reading(
        waiting: f64,
        running: f64,
        kv: f64,
        sum: f64,
        count: f64,
        done: f64,
    ) -> VllmReading {
        let text = format!(
            "# TYPE vllm:num_requests_waiting gauge\n\
             vllm:num_requests_waiting{{model_name=\"llama\",engine=\"0\"}} {waiting}\n\
             vllm:num_requests_waiting{{model_name=\"llama\",engine=\"1\"}} 1\n\
             vllm:num_requests_running{{model_name=\"llama\",engine=\"0\"}} {running}\n\
             vllm:kv_cache_usage_perc{{model_name=\"llama\",engine=\"0\"}} {kv}\n\
             vllm:kv_cache_usage_perc{{model_name=\"llama\",engine=\"1\"}} 0.1\n\
             vllm:request_queue_time_seconds_bucket{{model_name=\"llama\",engine=\"0\",le=\"+Inf\"}} {count}\n\
             vllm:request_queue_time_seconds_sum{{model_name=\"llama\",engine=\"0\"}} {sum}\n\
             vllm:request_queue_time_seconds_count{{model_name=\"llama\",engine=\"0\"}} {count}\n\
             vllm:request_success_total{{model_name=\"llama\",engine=\"0\",finished_reason=\"stop\"}} {done}\n"
        );
        VllmReading::from_exposition(&promtext::parse(&text).expect("valid"))
    }

    #[test]
    fn depth_kv_cache_and_mean_queue_time() {
        let before = reading(3.0, 8.0, 0.5, 10.0, 100.0, 90.0);
        let after = reading(7.0, 8.0, 0.92, 16.0, 112.0, 102.0);
        let s = signals(&before, &after, Duration::from_secs(4)).expect("window");
        assert_eq!(s.requests_waiting, 8.0, "summed over engines");
        assert_eq!(s.requests_running, 8.0);
        assert_eq!(s.kv_cache_usage_ratio, Some(0.92), "the fullest engine");
        assert_eq!(
            s.mean_queue_time_seconds,
            Some(0.5),
            "6 s waited by 12 requests"
        );
        assert_eq!(s.request_rate, 3.0);
    }

    #[test]
    fn waiting_requests_and_nothing_dequeued_has_no_mean() {
        let before = reading(30.0, 8.0, 1.0, 10.0, 100.0, 90.0);
        let after = reading(50.0, 8.0, 1.0, 10.0, 100.0, 90.0);
        let s = signals(&before, &after, Duration::from_secs(4)).expect("window");
        assert_eq!(s.mean_queue_time_seconds, None);
        assert_eq!(s.requests_waiting, 51.0);
    }

    #[test]
    fn older_servers_report_the_deprecated_kv_cache_gauge() {
        let text = "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.75\nvllm:num_requests_waiting{model_name=\"m\"} 0\n";
        let r = VllmReading::from_exposition(&promtext::parse(text).expect("valid"));
        assert_eq!(r.kv_cache_usage, Some(0.75));
        let s = signals(&r, &r, Duration::from_secs(1)).expect("window");
        assert_eq!(s.mean_queue_time_seconds, Some(0.0));
    }
}
