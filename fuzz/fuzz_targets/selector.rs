//! Label-selector parsing: no input panics, and whatever parses prints back to the same selector.
#![no_main]

use kubemind::selector::Selector;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|input: &str| {
    if let Ok(selector) = Selector::parse(input) {
        let printed = selector.to_string();
        let reparsed = Selector::parse(&printed).expect("the printed form parses");
        assert_eq!(reparsed, selector, "{input:?} printed as {printed:?}");
        let _ = selector.matches(&BTreeMap::<String, String>::new());
        let _ = selector.to_label_selector();
    }
});
