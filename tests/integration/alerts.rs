//! The alert rules with the real promtool: `check rules` on the plain file, `test rules` with
//! series that must and must not fire each alert (tests/alerts/), and the PrometheusRule in
//! apiservice/base/ holding exactly the same groups.

use std::process::Command;

use serde_json::Value;

const RULES: &str = "apiservice/alerts/kubemind-rules.yaml";

fn promtool(args: &[&str]) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("promtool runs (apt-get install prometheus)");
    assert!(
        output.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    promtool(&["check", "rules", RULES]);
    promtool(&["test", "rules", "tests/alerts/kubemind-rules.test.yaml"]);
}

#[test]
fn the_prometheus_rule_holds_the_same_groups() {
    let read = |path: &str| -> Value {
        let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
            .expect("readable");
        serde_norway::from_str(&text).expect("YAML")
    };
    let plain = read(RULES);
    let operator = read("apiservice/base/alerts.yaml");
    assert_eq!(operator["kind"], "PrometheusRule");
    assert_eq!(plain["groups"], operator["spec"]["groups"]);
    assert!(plain["groups"].as_array().is_some_and(|g| g.len() == 2));
}
