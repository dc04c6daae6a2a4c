//! A mapped server's `kubemind.io/metrics` annotation, and its pages: no mapping text panics;
//! whatever parses reads any page, and two readings give signals that are never negative.
#![no_main]

use std::time::Duration;

use kubemind::exporter::servers::recipe::Recipe;
use kubemind::promtext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str, &str)| {
    let (mapping, first, second) = input;
    let Ok(recipe) = Recipe::parse_mapping(mapping) else {
        return;
    };
    let read = |page: &str| {
        let exposition = promtext::parse_with_limit(page, 1_000).ok()?;
        recipe.read(&exposition).ok()
    };
    if let (Some(before), Some(after)) = (read(first), read(second)) {
        let signals = recipe.signals(&before, &after, Duration::from_secs(1)).expect("a window");
        for value in signals.values().into_iter().flatten() {
            assert!(!(value < 0.0), "{value}");
        }
    }
});
