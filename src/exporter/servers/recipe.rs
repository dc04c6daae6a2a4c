//! Inference servers read through a *recipe*: which of a pod's series give each server-neutral
//! signal, and how — a gauge as it is, a counter as a rate, a mean as ΣΔsum / ΣΔcount (a
//! histogram's `_sum` and `_count`, or two counters). vLLM, SGLang, TGI and TorchServe are
//! built-in recipes naming every metric each has used across the releases still in use (the
//! first name a page holds wins); any other server is mapped by its pod's `kubemind.io/metrics`
//! annotation in the same terms ([`Recipe::parse_mapping`], format in
//! `docs/gpu-and-inference.md`, Any server).
//!
//! Two readings give the signals over the window between them. Counts of requests are summed
//! over the page's series; ratios and times read from gauges take the largest (the fullest
//! engine, the slowest queue). The mean queue time over a window in which nothing left the
//! queue is 0 when nothing waits, and absent — never 0 — while requests wait (a stall).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use super::{SeriesKey, series_key, summed_delta};
use crate::promtext::{self, Exposition, Sample};

/// A server-neutral signal, as the mapping annotation names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    RequestsWaiting,
    RequestsRunning,
    QueueTimeSeconds,
    KvCacheUsageRatio,
    RequestRate,
}

impl Signal {
    const ALL: [Signal; 5] = [
        Signal::RequestsWaiting,
        Signal::RequestsRunning,
        Signal::QueueTimeSeconds,
        Signal::KvCacheUsageRatio,
        Signal::RequestRate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::RequestsWaiting => "requests_waiting",
            Signal::RequestsRunning => "requests_running",
            Signal::QueueTimeSeconds => "queue_time_seconds",
            Signal::KvCacheUsageRatio => "kv_cache_usage_ratio",
            Signal::RequestRate => "request_rate",
        }
    }

    /// Counts add up over a pod's series (engines, models); ratios and times read from gauges
    /// take the largest.
    fn sums(self) -> bool {
        matches!(
            self,
            Signal::RequestsWaiting | Signal::RequestsRunning | Signal::RequestRate
        )
    }
}

/// Which series of a page, by name (the first name present wins) and label values.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    names: Vec<String>,
    matchers: Vec<(String, String)>,
}

impl Pick {
    fn named(names: &[&str]) -> Pick {
        Pick {
            names: names.iter().map(|n| n.to_string()).collect(),
            matchers: Vec::new(),
        }
    }

    fn with_suffix(&self, suffix: &str) -> Pick {
        Pick {
            names: self.names.iter().map(|n| format!("{n}{suffix}")).collect(),
            matchers: self.matchers.clone(),
        }
    }

    fn matches(&self, sample: &Sample<'_>) -> bool {
        self.matchers
            .iter()
            .all(|(label, value)| sample.label(label) == Some(value.as_str()))
    }

    /// The samples of the first name that has any (finite, non-negative) matching sample.
    fn select<'s, 'a>(
        &self,
        by_name: &'s HashMap<&'a str, Vec<&'s Sample<'a>>>,
    ) -> Vec<&'s Sample<'a>> {
        for name in &self.names {
            let found: Vec<&Sample<'_>> = by_name
                .get(name.as_str())
                .map(|samples| {
                    samples
                        .iter()
                        .copied()
                        .filter(|s| self.matches(s))
                        .collect()
                })
                .unwrap_or_default();
            if !found.is_empty() {
                return found;
            }
        }
        Vec::new()
    }

    fn describe(&self) -> String {
        self.names.join(" or ")
    }
}

/// How a signal is read.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The value now.
    Gauge(Pick),
    /// Growth per second over the window.
    Counter(Pick),
    /// ΣΔsum / ΣΔcount over the window.
    Mean { sum: Pick, count: Pick },
}

/// One signal's source, scaled into the signal's unit (µs → s: 1e-6).
#[derive(Debug, Clone, PartialEq)]
pub struct Ingredient {
    pub signal: Signal,
    source: Source,
    scale: f64,
}

/// A server's recipe: its signals and where they come from.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    ingredients: Vec<Ingredient>,
    /// A mapped pod: every series its mapping names must be on the page (else the scrape
    /// fails with `missing_series`). Built-in recipes name series some releases lack.
    strict: bool,
}

fn gauge(signal: Signal, names: &[&str]) -> Ingredient {
    Ingredient {
        signal,
        source: Source::Gauge(Pick::named(names)),
        scale: 1.0,
    }
}

fn counter(signal: Signal, names: &[&str]) -> Ingredient {
    Ingredient {
        signal,
        source: Source::Counter(Pick::named(names)),
        scale: 1.0,
    }
}

fn histogram(signal: Signal, names: &[&str]) -> Ingredient {
    let base = Pick::named(names);
    Ingredient {
        signal,
        source: Source::Mean {
            sum: base.with_suffix("_sum"),
            count: base.with_suffix("_count"),
        },
        scale: 1.0,
    }
}

/// vLLM (V0 and V1 engines): `kv_cache_usage_perc` replaced `gpu_cache_usage_perc` in V1.
pub static VLLM: LazyLock<Recipe> = LazyLock::new(|| Recipe {
    ingredients: vec![
        gauge(Signal::RequestsWaiting, &["vllm:num_requests_waiting"]),
        gauge(Signal::RequestsRunning, &["vllm:num_requests_running"]),
        gauge(
            Signal::KvCacheUsageRatio,
            &["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
        ),
        histogram(
            Signal::QueueTimeSeconds,
            &["vllm:request_queue_time_seconds"],
        ),
        counter(Signal::RequestRate, &["vllm:request_success_total"]),
    ],
    strict: false,
});

/// SGLang (`--enable-metrics`): the first releases with metrics (late 2024) named the queue
/// and batch gauges `num_requests_waiting` / `num_requests_running`; later ones
/// `num_queue_reqs` / `num_running_reqs`. `num_requests_total` (finished requests) came in
/// early 2025; before it, the end-to-end latency histogram's count is the same number.
pub static SGLANG: LazyLock<Recipe> = LazyLock::new(|| Recipe {
    ingredients: vec![
        gauge(
            Signal::RequestsWaiting,
            &["sglang:num_queue_reqs", "sglang:num_requests_waiting"],
        ),
        gauge(
            Signal::RequestsRunning,
            &["sglang:num_running_reqs", "sglang:num_requests_running"],
        ),
        gauge(Signal::KvCacheUsageRatio, &["sglang:token_usage"]),
        histogram(Signal::QueueTimeSeconds, &["sglang:queue_time_seconds"]),
        counter(
            Signal::RequestRate,
            &[
                "sglang:num_requests_total",
                "sglang:e2e_request_latency_seconds_count",
            ],
        ),
    ],
    strict: false,
});

/// Hugging Face TGI: no labels, no KV-cache gauge; queue time is a histogram in seconds
/// recorded for successful requests, whose count is `tgi_request_success`.
pub static TGI: LazyLock<Recipe> = LazyLock::new(|| Recipe {
    ingredients: vec![
        gauge(Signal::RequestsWaiting, &["tgi_queue_size"]),
        gauge(Signal::RequestsRunning, &["tgi_batch_current_size"]),
        histogram(Signal::QueueTimeSeconds, &["tgi_request_queue_duration"]),
        counter(Signal::RequestRate, &["tgi_request_success"]),
    ],
    strict: false,
});

/// TorchServe (metrics API, `metrics_mode=prometheus` or `legacy`, and the three counters of
/// releases before 0.8): cumulative queue microseconds over requests. No queue-depth gauge
/// exists; `ts_inference_requests_total` counts requests as they arrive, while the latency
/// counters grow as responses leave, so the mean is over arrivals (close at a steady load).
pub static TORCHSERVE: LazyLock<Recipe> = LazyLock::new(|| Recipe {
    ingredients: vec![
        Ingredient {
            signal: Signal::QueueTimeSeconds,
            source: Source::Mean {
                sum: Pick::named(&["ts_queue_latency_microseconds"]),
                count: Pick::named(&["ts_inference_requests_total"]),
            },
            scale: 1e-6,
        },
        counter(Signal::RequestRate, &["ts_inference_requests_total"]),
    ],
    strict: false,
});

/// Why a mapping annotation does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError(pub String);

impl std::fmt::Display for MappingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Recipe {
    /// Reads a mapping annotation: one `SIGNAL = FORM SERIES[{LABEL="VALUE",…}] [* FACTOR]` per
    /// line (or `;`-separated), FORM `gauge`, `counter` or `histogram`, SIGNAL one of
    /// `requests_waiting`, `requests_running`, `queue_time_seconds`, `kv_cache_usage_ratio`,
    /// `request_rate`. Lines starting with `#` are comments.
    pub fn parse_mapping(text: &str) -> Result<Recipe, MappingError> {
        let mut ingredients: Vec<Ingredient> = Vec::new();
        for (number, line) in text.split(['\n', ';']).enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail =
                |problem: String| MappingError(format!("entry {} {line:?}: {problem}", number + 1));
            let (signal, rest) = line
                .split_once('=')
                .ok_or_else(|| fail("expected SIGNAL = FORM SERIES".into()))?;
            let signal = Signal::ALL
                .into_iter()
                .find(|s| s.as_str() == signal.trim())
                .ok_or_else(|| {
                    fail(format!(
                        "{:?} is not a signal ({})",
                        signal.trim(),
                        Signal::ALL.map(Signal::as_str).join(", ")
                    ))
                })?;
            if ingredients.iter().any(|i| i.signal == signal) {
                return Err(fail(format!("{} is mapped twice", signal.as_str())));
            }
            let rest = rest.trim();
            let (form, rest) = rest
                .split_once(char::is_whitespace)
                .ok_or_else(|| fail("expected FORM SERIES".into()))?;
            let (selector, scale) = match rest.rsplit_once('*') {
                Some((selector, factor)) if !factor.contains(['"', '}']) => {
                    let factor: f64 = factor
                        .trim()
                        .parse()
                        .map_err(|_| fail(format!("{:?} is not a number", factor.trim())))?;
                    if !factor.is_finite() || factor <= 0.0 {
                        return Err(fail("the factor must be a positive number".into()));
                    }
                    (selector.trim(), factor)
                }
                _ => (rest.trim(), 1.0),
            };
            let pick = parse_selector(selector).map_err(fail)?;
            let source = match form {
                "gauge" => Source::Gauge(pick),
                "counter" => Source::Counter(pick),
                "histogram" => Source::Mean {
                    sum: pick.with_suffix("_sum"),
                    count: pick.with_suffix("_count"),
                },
                other => {
                    return Err(fail(format!(
                        "{other:?} is not a form (gauge, counter, histogram)"
                    )));
                }
            };
            ingredients.push(Ingredient {
                signal,
                source,
                scale,
            });
        }
        if ingredients.is_empty() {
            return Err(MappingError("maps no signal".into()));
        }
        Ok(Recipe {
            ingredients,
            strict: true,
        })
    }

    /// The series names a reading takes from a page, for a quick check.
    fn wants(&self, name: &str) -> bool {
        self.ingredients.iter().any(|i| match &i.source {
            Source::Gauge(p) | Source::Counter(p) => p.names.iter().any(|n| n == name),
            Source::Mean { sum, count } => sum.names.iter().chain(&count.names).any(|n| n == name),
        })
    }

    /// One reading of a page. A strict recipe whose series are not all there fails, naming them.
    pub fn read(&self, exposition: &Exposition<'_>) -> Result<QueueReading, String> {
        let mut by_name: HashMap<&str, Vec<&Sample<'_>>> = HashMap::new();
        for sample in &exposition.samples {
            if sample.value.is_finite() && sample.value >= 0.0 && self.wants(sample.name) {
                by_name.entry(sample.name).or_default().push(sample);
            }
        }
        let mut missing = Vec::new();
        let mut observed = Vec::with_capacity(self.ingredients.len());
        for ingredient in &self.ingredients {
            let mut absent = |pick: &Pick| missing.push(pick.describe());
            let seen = match &ingredient.source {
                Source::Gauge(pick) => {
                    let samples = pick.select(&by_name);
                    if samples.is_empty() {
                        absent(pick);
                        Observed::Absent
                    } else {
                        let values = samples.iter().map(|s| s.value);
                        Observed::Gauge(if ingredient.signal.sums() {
                            values.sum()
                        } else {
                            values.fold(0.0, f64::max)
                        })
                    }
                }
                Source::Counter(pick) => match counters(pick, &by_name) {
                    Some(series) => Observed::Counter(series),
                    None => {
                        absent(pick);
                        Observed::Absent
                    }
                },
                Source::Mean { sum, count } => {
                    match (counters(sum, &by_name), counters(count, &by_name)) {
                        (Some(sum), Some(count)) => Observed::Mean { sum, count },
                        (sums, counts) => {
                            if sums.is_none() {
                                absent(sum);
                            }
                            if counts.is_none() {
                                absent(count);
                            }
                            Observed::Absent
                        }
                    }
                }
            };
            observed.push(seen);
        }
        if self.strict && !missing.is_empty() {
            return Err(format!("the page has no {}", missing.join(", no ")));
        }
        Ok(QueueReading { observed })
    }

    /// The signals between two readings of this recipe `elapsed` apart (`None` for a zero
    /// window).
    pub fn signals(
        &self,
        previous: &QueueReading,
        current: &QueueReading,
        elapsed: Duration,
    ) -> Option<QueueSignals> {
        let seconds = elapsed.as_secs_f64();
        if seconds <= 0.0 {
            return None;
        }
        let mut signals = QueueSignals::default();
        // the depth first: the mean queue time needs it
        let order = |i: &&Ingredient| i.signal != Signal::RequestsWaiting;
        let mut ingredients: Vec<(usize, &Ingredient)> =
            self.ingredients.iter().enumerate().collect();
        ingredients.sort_by_key(|(_, i)| order(i));
        for (index, ingredient) in ingredients {
            let (Some(before), Some(now)) =
                (previous.observed.get(index), current.observed.get(index))
            else {
                continue;
            };
            let value = match (before, now) {
                (_, Observed::Gauge(value)) => Some(*value),
                (Observed::Counter(before), Observed::Counter(now)) => {
                    Some(summed_delta(before, now) / seconds)
                }
                (Observed::Mean { sum: s0, count: c0 }, Observed::Mean { sum: s1, count: c1 }) => {
                    let (waited, left) = (summed_delta(s0, s1), summed_delta(c0, c1));
                    if left > 0.0 {
                        Some(waited / left)
                    } else if signals.requests_waiting.is_some_and(|w| w > 0.0) {
                        None // requests wait and none left the queue: a stall, not 0
                    } else {
                        Some(0.0)
                    }
                }
                _ => None,
            };
            signals.set(ingredient.signal, value.map(|v| v * ingredient.scale));
        }
        Some(signals)
    }
}

/// The series of a counter pick, by labels; `None` when the page has none.
fn counters(
    pick: &Pick,
    by_name: &HashMap<&str, Vec<&Sample<'_>>>,
) -> Option<HashMap<SeriesKey, f64>> {
    let samples = pick.select(by_name);
    (!samples.is_empty()).then(|| {
        samples
            .into_iter()
            .map(|s| (series_key(s), s.value))
            .collect()
    })
}

/// `NAME` or `NAME{LABEL="VALUE",…}`, read by the exposition parser itself.
fn parse_selector(selector: &str) -> Result<Pick, String> {
    if selector.contains(['\n', '#'])
        || selector.contains(char::is_whitespace) && !selector.contains('{')
    {
        return Err(format!("{selector:?} is not a series selector"));
    }
    let line = format!("{selector} 0\n");
    let parsed =
        promtext::parse(&line).map_err(|_| format!("{selector:?} is not a series selector"))?;
    let [sample] = parsed.samples.as_slice() else {
        return Err(format!("{selector:?} is not a series selector"));
    };
    Ok(Pick {
        names: vec![sample.name.to_string()],
        matchers: sample
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

/// What one page held for each of a recipe's ingredients.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueReading {
    observed: Vec<Observed>,
}

#[derive(Debug, Clone, PartialEq)]
enum Observed {
    Absent,
    Gauge(f64),
    Counter(HashMap<SeriesKey, f64>),
    Mean {
        sum: HashMap<SeriesKey, f64>,
        count: HashMap<SeriesKey, f64>,
    },
}

/// What one server's load looks like over a window; a signal its recipe does not give, or
/// the page did not hold, is absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueSignals {
    pub requests_waiting: Option<f64>,
    pub requests_running: Option<f64>,
    /// Mean time the requests that left the queue over the window had waited.
    pub queue_time_seconds: Option<f64>,
    pub kv_cache_usage_ratio: Option<f64>,
    /// Finished requests per second.
    pub request_rate: Option<f64>,
}

impl QueueSignals {
    fn set(&mut self, signal: Signal, value: Option<f64>) {
        let slot = match signal {
            Signal::RequestsWaiting => &mut self.requests_waiting,
            Signal::RequestsRunning => &mut self.requests_running,
            Signal::QueueTimeSeconds => &mut self.queue_time_seconds,
            Signal::KvCacheUsageRatio => &mut self.kv_cache_usage_ratio,
            Signal::RequestRate => &mut self.request_rate,
        };
        *slot = value;
    }

    pub fn values(&self) -> [Option<f64>; 5] {
        [
            self.requests_waiting,
            self.requests_running,
            self.queue_time_seconds,
            self.kv_cache_usage_ratio,
            self.request_rate,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(recipe: &Recipe, text: &str) -> QueueReading {
        recipe
            .read(&promtext::parse(text).expect("valid exposition"))
            .expect("reads")
    }

    fn vllm_page(waiting: f64, running: f64, kv: f64, sum: f64, count: f64, done: f64) -> String {
        format!(
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
        )
    }

    #[test]
    fn vllm_depth_kv_cache_and_mean_queue_time() {
        let before = read(&VLLM, &vllm_page(3.0, 8.0, 0.5, 10.0, 100.0, 90.0));
        let after = read(&VLLM, &vllm_page(7.0, 8.0, 0.92, 16.0, 112.0, 102.0));
        let s = VLLM
            .signals(&before, &after, Duration::from_secs(4))
            .expect("window");
        assert_eq!(s.requests_waiting, Some(8.0), "summed over engines");
        assert_eq!(s.requests_running, Some(8.0));
        assert_eq!(s.kv_cache_usage_ratio, Some(0.92), "the fullest engine");
        assert_eq!(s.queue_time_seconds, Some(0.5), "6 s waited by 12 requests");
        assert_eq!(s.request_rate, Some(3.0));
    }

    #[test]
    fn waiting_requests_and_nothing_dequeued_is_a_stall_not_zero() {
        let before = read(&VLLM, &vllm_page(30.0, 8.0, 1.0, 10.0, 100.0, 90.0));
        let after = read(&VLLM, &vllm_page(50.0, 8.0, 1.0, 10.0, 100.0, 90.0));
        let s = VLLM
            .signals(&before, &after, Duration::from_secs(4))
            .expect("window");
        assert_eq!(s.queue_time_seconds, None);
        assert_eq!(s.requests_waiting, Some(51.0));
    }

    #[test]
    fn older_vllm_reports_the_deprecated_kv_cache_gauge() {
        let r = read(
            &VLLM,
            "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.75\nvllm:num_requests_waiting{model_name=\"m\"} 0\n",
        );
        let s = VLLM
            .signals(&r, &r, Duration::from_secs(1))
            .expect("window");
        assert_eq!(s.kv_cache_usage_ratio, Some(0.75));
        assert_eq!(s.queue_time_seconds, None, "no histogram on the page");
        assert_eq!(s.request_rate, None, "no counter on the page");
    }

    #[test]
    fn the_newest_name_wins_when_a_page_has_both() {
        let r = read(
            &SGLANG,
            "sglang:num_queue_reqs{model_name=\"m\"} 4\nsglang:num_requests_waiting{name=\"m\"} 9\n",
        );
        let s = SGLANG
            .signals(&r, &r, Duration::from_secs(1))
            .expect("window");
        assert_eq!(s.requests_waiting, Some(4.0));
    }

    #[test]
    fn mappings_parse_with_labels_and_factors() {
        let recipe = Recipe::parse_mapping(
            "# a home-grown server\n\
             requests_waiting = gauge app_queue_depth{stage=\"prefill\"}\n\
             queue_time_seconds = histogram app_queue_wait_ms * 0.001; request_rate = counter app_requests_total",
        )
        .expect("parses");
        let page = |depth: f64, sum: f64, count: f64, done: f64| {
            format!(
                "app_queue_depth{{stage=\"prefill\"}} {depth}\napp_queue_depth{{stage=\"decode\"}} 100\n\
                 app_queue_wait_ms_sum {sum}\napp_queue_wait_ms_count {count}\napp_requests_total{{code=\"200\"}} {done}\n"
            )
        };
        let before = read(&recipe, &page(2.0, 1000.0, 10.0, 10.0));
        let after = read(&recipe, &page(3.0, 5000.0, 30.0, 50.0));
        let s = recipe
            .signals(&before, &after, Duration::from_secs(2))
            .expect("window");
        assert_eq!(s.requests_waiting, Some(3.0), "only stage=prefill");
        assert_eq!(s.queue_time_seconds, Some(0.2), "4000 ms over 20 requests");
        assert_eq!(s.request_rate, Some(20.0));
        assert_eq!(s.requests_running, None, "not mapped");
    }

    #[test]
    fn a_mapped_series_missing_from_the_page_is_named() {
        let recipe = Recipe::parse_mapping(
            "requests_waiting = gauge app_queue_depth\nrequest_rate = counter app_done_total",
        )
        .expect("parses");
        let error = recipe
            .read(&promtext::parse("app_queue_depth 1\n").expect("valid"))
            .expect_err("app_done_total is missing");
        assert!(error.contains("app_done_total"), "{error}");
    }

    #[test]
    fn bad_mappings_say_what_is_wrong() {
        for (text, says) in [
            ("", "maps no signal"),
            ("queue_depth = gauge x", "not a signal"),
            ("requests_waiting gauge x", "expected SIGNAL"),
            ("requests_waiting = summary x", "not a form"),
            ("requests_waiting = gauge x{a=b}", "not a series selector"),
            ("requests_waiting = gauge x * fast", "not a number"),
            ("requests_waiting = gauge x * -1", "positive"),
            (
                "request_rate = counter a\nrequest_rate = counter b",
                "mapped twice",
            ),
            ("requests_waiting = gauge", "expected FORM SERIES"),
        ] {
            let error = Recipe::parse_mapping(text).expect_err(text);
            assert!(error.0.contains(says), "{text:?}: {error}");
        }
    }

    proptest::proptest! {
        /// Any text gets an answer, never a panic; any mapping that parses reads any page.
        #[test]
        fn any_mapping_text_is_answered(mapping in "\\PC{0,120}", page in "[a-z_]{1,8}( [0-9]{1,4})?\n") {
            if let (Ok(recipe), Ok(exposition)) = (Recipe::parse_mapping(&mapping), promtext::parse(&page)) {
                let _ = recipe.read(&exposition);
            }
        }

        /// A mapping written in the documented form parses into what it says.
        #[test]
        fn documented_mappings_parse(
            name in "[a-z_][a-z0-9_]{0,20}",
            label in "[a-z][a-z_]{0,8}",
            value in "[a-zA-Z0-9 ./-]{0,12}",
            factor in 1u32..100_000,
        ) {
            let text = format!("request_rate = counter {name}{{{label}=\"{value}\"}} * {factor}");
            let recipe = Recipe::parse_mapping(&text).expect("documented form");
            let Ingredient { signal, source, scale } = &recipe.ingredients[0];
            proptest::prop_assert_eq!(*signal, Signal::RequestRate);
            proptest::prop_assert_eq!(*scale, f64::from(factor));
            let Source::Counter(pick) = source else { panic!("a counter") };
            proptest::prop_assert_eq!(&pick.names, &vec![name.clone()]);
            proptest::prop_assert_eq!(&pick.matchers, &vec![(label.clone(), value.clone())]);
        }
    }
}
