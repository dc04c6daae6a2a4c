//! `kubemind preflight` against the stand-in API server: an external-metrics APIService that
//! KEDA serves is refused, naming KEDA's Service and the overlay to use; that overlay passes;
//! `--force` proceeds; kubemind's own APIService is no conflict.

use std::process::{Command, Output};

use serde_json::json;

use crate::standin::StandIn;

const EXTERNAL: &str =
    "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.external.metrics.k8s.io";
const CUSTOM: &str = "/apis/apiregistration.k8s.io/v1/apiservices/v1beta2.custom.metrics.k8s.io";

fn apiservice(
    name: &str,
    group: &str,
    version: &str,
    namespace: &str,
    service: &str,
) -> serde_json::Value {
    json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
           "metadata": {"name": name},
           "spec": {"group": group, "version": version, "groupPriorityMinimum": 100,
                    "versionPriority": 100, "service": {"namespace": namespace, "name": service}}})
}

fn preflight(kubeconfig: &std::path::Path, extra: &[&str]) -> (Output, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kubemind"))
        .arg("preflight")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(extra)
        .output()
        .expect("preflight runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

#[test]
fn an_apiservice_keda_serves_is_not_taken_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let standin = StandIn::start(Default::default(), vec![], Default::default());
    standin.set_object(
        EXTERNAL,
        apiservice(
            "v1beta1.external.metrics.k8s.io",
            "external.metrics.k8s.io",
            "v1beta1",
            "keda",
            "keda-operator-metrics-apiserver",
        ),
    );
    let kubeconfig = standin.kubeconfig(dir.path());

    let (output, text) = preflight(&kubeconfig, &[]);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(
            "v1beta1.external.metrics.k8s.io: served by keda/keda-operator-metrics-apiserver"
        ),
        "{text}"
    );
    assert!(text.contains("use the custom-only overlay"), "{text}");
    assert!(
        text.contains("ok    v1beta2.custom.metrics.k8s.io: not registered yet"),
        "{text}"
    );

    // the overlay it names leaves KEDA's APIService alone
    let (output, text) = preflight(&kubeconfig, &["--overlay", "custom-only"]);
    assert!(output.status.success(), "{text}");
    assert!(!text.contains("external"), "{text}");

    // --force proceeds, saying what it takes over
    let (output, text) = preflight(&kubeconfig, &["--force"]);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("--force: taking over v1beta1.external.metrics.k8s.io"),
        "{text}"
    );

    // kubemind's own registration is no conflict
    standin.set_object(
        CUSTOM,
        apiservice(
            "v1beta2.custom.metrics.k8s.io",
            "custom.metrics.k8s.io",
            "v1beta2",
            "kubemind",
            "kubemind-adapter",
        ),
    );
    let (output, text) = preflight(&kubeconfig, &["--overlay", "custom-only"]);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("ok    v1beta2.custom.metrics.k8s.io: already kubemind's"),
        "{text}"
    );
}
