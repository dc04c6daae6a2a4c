//! prometheus-adapter's configuration and its templates: no input panics; a configuration
//! that checks can name series, plan its queries and render them.
#![no_main]

use kubemind::adapter::sources::prometheus::{config, plan};
use kubemind::selector::Selector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(rules) = config::parse(text, "fuzz.yaml") else {
        return;
    };
    for rule in &rules.rules {
        let _ = plan::discovery_query(rule);
        let _ = rule.metric_name(text);
        let _ = plan::external_query(rule, "series", "ns", &Selector::default());
    }
});
