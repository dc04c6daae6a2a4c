//! Prometheus text parsing: no input panics; whatever parses keeps its samples' names and values
//! within the grammar.
#![no_main]

use kubemind::promtext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(exposition) = promtext::parse_with_limit(text, 10_000) {
        for sample in &exposition.samples {
            assert!(!sample.name.is_empty());
            assert!(sample.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'));
            for (key, _) in &sample.labels {
                assert!(!key.is_empty());
            }
        }
    }
});
