//! `kubemind demo` end to end, the real binary: each scenario's outcome from its JSON summary,
//! the text fitting 80 columns, and the adapter it serves read by the real kubectl while it
//! runs.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Process, kubectl_raw, wait_for};

fn demo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubemind"))
        .arg("demo")
        .args(args)
        .output()
        .expect("kubemind demo runs")
}

#[test]
fn each_scenario_ends_as_the_story_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let picture = dir.path().join("demo.svg");
    let output = demo(&[
        "--duration",
        "5m",
        "--speed",
        "0",
        "--output",
        "json",
        "--kubeconfig-out",
        kubeconfig.to_str().expect("utf-8"),
        "--svg",
        picture.to_str().expect("utf-8"),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("one JSON summary");
    let target = summary["target_queue_time_ms"].as_f64().expect("target");
    let scenario = |name: &str| -> Value {
        summary["scenarios"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {summary}"))
    };
    let number = |s: &Value, field: &str| {
        s[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} in {s}"))
    };

    // CPU: the pinned pod is hot, the average is not: it stays at 3
    let cpu = scenario("cpu");
    assert_eq!(
        (number(&cpu, "replicas_max"), number(&cpu, "replicas_end")),
        (3.0, 3.0),
        "{cpu}"
    );
    assert!(
        (20.0..35.0).contains(&number(&cpu, "average_cpu_percent")),
        "{cpu}"
    );

    // kubemind with L4: scales, latency stays high, and the adapter says why
    let l4 = scenario("l4");
    assert!(number(&l4, "replicas_max") > 3.0, "{l4}");
    assert!(number(&l4, "request_imbalance_ratio") > 2.0, "{l4}");
    assert!(number(&l4, "final_queue_time_p99_ms") > target, "{l4}");

    // kubemind with L7: scales and recovers
    let l7 = scenario("l7");
    assert!(number(&l7, "replicas_max") > 3.0, "{l7}");
    assert!(number(&l7, "final_queue_time_p99_ms") < target, "{l7}");
    assert!(number(&l7, "request_imbalance_ratio") < 1.5, "{l7}");
    assert!(number(&l7, "dropped") < number(&l4, "dropped"));

    // and the same run as a picture: both panels, a line per scenario
    let svg = std::fs::read_to_string(&picture).expect("the picture is written");
    assert!(svg.starts_with("<svg"));
    for expected in ["replicas", "queue time", "cpu — ", "l4 — ", "l7 — "] {
        assert!(
            svg.contains(expected),
            "{expected} missing from the picture"
        );
    }
}

#[test]
fn the_text_fits_80_columns() {
    let output = demo(&["--duration", "3m", "--speed", "0"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    for expected in ["timeline", "── cpu", "── l4", "── l7", "request imbalance"] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
}

#[test]
fn kubectl_reads_the_demo_while_it_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let _demo = Process::start(
        dir.path(),
        "demo",
        &[
            "demo",
            "--duration",
            "10m",
            "--speed",
            "10",
            "--scenario",
            "l4",
            "--kubeconfig-out",
            kubeconfig.to_str().expect("utf-8"),
        ],
    );
    wait_for(Duration::from_secs(30), "the demo's kubeconfig", || {
        kubeconfig.exists().then_some(())
    });
    let pods = wait_for(Duration::from_secs(30), "values for the l4 pods", || {
        let output = kubectl_raw(
            &kubeconfig,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo-l4/pods/*/triton_queue_time_ms?labelSelector=app=triton",
        );
        let list: Value = serde_json::from_slice(&output.stdout).ok()?;
        let items = list["items"].as_array()?.clone();
        (items.len() >= 3).then_some(items)
    });
    assert_eq!(pods[0]["describedObject"]["name"], "triton-0");
}
