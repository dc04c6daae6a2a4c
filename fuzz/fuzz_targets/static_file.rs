//! The static-metrics file parser: no input panics; whatever validates builds a snapshot.
#![no_main]

use kubemind::adapter::sources::static_file::StaticMetrics;
use libfuzzer_sys::fuzz_target;
use std::time::SystemTime;

fuzz_target!(|text: &str| {
    if let Ok(metrics) = StaticMetrics::parse(text) {
        let now = SystemTime::now();
        let _ = metrics.snapshot(now).build(1, now);
    }
});
