//! The dashboards and the alert rules name only series that exist: the exporter's (from the
//! catalogue, plus its connection accounting) and the adapter's own telemetry, read from what
//! each actually writes.

use std::collections::BTreeSet;

use kubemind::adapter::store::Store;
use kubemind::adapter::telemetry::Telemetry;
use kubemind::serve::ConnectionStats;

/// The series named by `# TYPE` lines of an exposition, with the suffixes each type has.
fn typed_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if (words.next(), words.next()) != (Some("#"), Some("TYPE")) {
            continue;
        }
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                names.insert(name.to_string());
                names.insert(format!("{}_total", name.trim_end_matches("_total")));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_string());
            }
        }
    }
    names
}

fn existing_series() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = kubemind::catalogue::SERIES
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    names.extend(typed_names(
        &ConnectionStats::default().render("kubemind_exporter"),
    ));
    // every family of the adapter's telemetry with one sample, so each is written
    let telemetry = Telemetry::new();
    telemetry.observe_request("pods", 200, std::time::Duration::from_millis(1));
    telemetry.count_values_served("custom", 1);
    telemetry.count_source_refresh("exporter", true);
    telemetry.count_tls_reload(true);
    telemetry.observe_exporter_pages(&[("kubemind/exporter-1".to_string(), 1.0)]);
    telemetry.observe_newest_value("exporter", std::time::SystemTime::now());
    telemetry.count_prometheus_query("rule", true);
    telemetry.set_prometheus_circuit_open(false);
    let store = Store::new(std::time::Duration::from_secs(30));
    names.extend(typed_names(&telemetry.encode(&store.load())));
    names
}

/// Every `kubemind_…` name in `text` (a name ending in `_` is a prefix in a regex, left out).
fn named_series(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = text[at..].find("kubemind_") {
        let start = at + found;
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b':');
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        let name = &text[start..end];
        if !preceded && !name.ends_with('_') {
            names.insert(name.to_string());
        }
        at = end;
    }
    names
}

#[test]
fn dashboards_and_alerts_name_only_series_that_exist() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(format!("{root}/dashboards"))
        .expect("dashboards/")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.push(format!("{root}/apiservice/alerts/kubemind-rules.yaml").into());
    files.push(format!("{root}/apiservice/base/alerts.yaml").into());
    let existing = existing_series();
    let mut named = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        for name in named_series(&text) {
            named += 1;
            assert!(
                existing.contains(&name),
                "{} names {name}, which no kubemind process writes",
                file.display()
            );
        }
    }
    assert!(named > 20, "only {named} names found: is the scan right?");
    // and the scan sees a wrong name
    assert!(!existing.contains("kubemind_triton_queue_time_ms"));
}
