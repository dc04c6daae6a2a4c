//! Which inference servers run on this node: a kube reflector over the node's pods
//! (`fieldSelector=spec.nodeName=$NODE_NAME`), and the annotations that make a pod a target.
//!
//! | annotation | meaning | default |
//! |---|---|---|
//! | `kubemind.io/scrape` | `triton`, `vllm`, `sglang`, `tgi`, `torchserve` or `mapped` | not scraped |
//! | `kubemind.io/port` | metrics port | Triton 8002, vLLM 8000, SGLang 30000, TGI 80, TorchServe 8082; required for `mapped` |
//! | `kubemind.io/path` | metrics path | `/metrics` |
//! | `kubemind.io/metrics` | a `mapped` server's mapping of its series to signals | required for `mapped` |
//!
//! Only running pods with an IP are targets. The reflector keeps the last known pods while the
//! API server is unreachable (kube's watcher retries with backoff), so scraping goes on.

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;

use super::servers::scrape::{ServerKind, Target};

pub(crate) const SCRAPE: &str = "kubemind.io/scrape";
pub(crate) const PORT: &str = "kubemind.io/port";
pub const PATH: &str = "kubemind.io/path";
pub const MAPPING: &str = "kubemind.io/metrics";

/// The target a pod's annotations describe, if any (`Err` names a bad annotation).
pub(crate) fn target_of(pod: &Pod) -> Result<Option<Target>, String> {
    let annotations = pod.metadata.annotations.as_ref();
    let Some(kind) = annotations.and_then(|a| a.get(SCRAPE)) else {
        return Ok(None);
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let kind = ServerKind::parse(kind.trim()).ok_or_else(|| {
        format!(
            "{namespace}/{name}: {SCRAPE}={kind:?} is not one of {}",
            ServerKind::names()
        )
    })?;
    let status = pod.status.as_ref();
    let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
    let Some(ip) = status
        .and_then(|s| s.pod_ip.as_deref())
        .filter(|ip| !ip.is_empty())
    else {
        return Ok(None);
    };
    if !running {
        return Ok(None);
    }
    let port = match (annotations.and_then(|a| a.get(PORT)), kind.default_port()) {
        (Some(port), _) => port
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("{namespace}/{name}: {PORT}={port:?} is not a port"))?,
        (None, Some(port)) => port,
        (None, None) => {
            return Err(format!(
                "{namespace}/{name}: a {} server needs {PORT}",
                kind.as_str()
            ));
        }
    };
    let path = match annotations.and_then(|a| a.get(PATH)) {
        Some(path) if path.starts_with('/') => path.clone(),
        Some(path) => {
            return Err(format!(
                "{namespace}/{name}: {PATH}={path:?} must start with '/'"
            ));
        }
        None => "/metrics".to_string(),
    };
    // a mapped pod stays a target with a missing or bad mapping: its scrapes then fail with
    // reason `mapping`, on the page and in the log, where an operator looks
    let mapping = (kind == ServerKind::Mapped).then(|| {
        annotations
            .and_then(|a| a.get(MAPPING))
            .cloned()
            .unwrap_or_default()
    });
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    Ok(Some(Target {
        namespace,
        pod: name,
        kind,
        url: format!("http://{host}:{port}{path}"),
        mapping,
    }))
}

/// Starts the reflector over this node's pods (annotations kept: they name the targets); the
/// store answers at once, empty until listed.
pub(crate) fn watch_node_pods(client: kube::Client, node: &str) -> Store<Pod> {
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    crate::watch::reflect(&client, config, true)
}

/// The targets among the pods the store holds; bad annotations are logged and skipped.
pub fn targets(store: &Store<Pod>) -> Vec<Target> {
    let mut targets: Vec<Target> = store
        .state()
        .iter()
        .filter_map(|pod| match target_of(pod) {
            Ok(target) => target,
            Err(problem) => {
                tracing::debug!(%problem, "pod not scraped");
                None
            }
        })
        .collect();
    targets.sort();
    targets
}

/// The node's pods by UID (what a process's cgroup names), as (namespace, name).
pub fn pods_by_uid(store: &Store<Pod>) -> std::collections::HashMap<String, (String, String)> {
    store
        .state()
        .iter()
        .filter_map(|pod| {
            let meta = &pod.metadata;
            Some((
                meta.uid.clone()?,
                (meta.namespace.clone()?, meta.name.clone()?),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(annotations: &[(&str, &str)], phase: &str, ip: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("triton-0".into()),
                namespace: Some("demo".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.into()),
                pod_ip: ip.map(String::from),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn annotations_make_targets() {
        let url = |p: &Pod| target_of(p).expect("valid").map(|t| (t.kind, t.url));
        assert_eq!(
            url(&pod(&[(SCRAPE, "triton")], "Running", Some("10.0.0.7"))),
            Some((ServerKind::Triton, "http://10.0.0.7:8002/metrics".into()))
        );
        assert_eq!(
            url(&pod(
                &[(SCRAPE, "vllm"), (PORT, "9000"), (PATH, "/stats")],
                "Running",
                Some("fd00::7")
            )),
            Some((ServerKind::Vllm, "http://[fd00::7]:9000/stats".into()))
        );
        assert_eq!(
            url(&pod(&[], "Running", Some("10.0.0.7"))),
            None,
            "not annotated"
        );
        assert_eq!(
            url(&pod(&[(SCRAPE, "triton")], "Pending", Some("10.0.0.7"))),
            None,
            "not running"
        );
        assert_eq!(
            url(&pod(&[(SCRAPE, "triton")], "Running", None)),
            None,
            "no IP yet"
        );
        assert_eq!(
            url(&pod(&[(SCRAPE, "tgi")], "Running", Some("10.0.0.7"))),
            Some((ServerKind::Tgi, "http://10.0.0.7:80/metrics".into()))
        );
        let mapped = target_of(&pod(
            &[
                (SCRAPE, "mapped"),
                (PORT, "9090"),
                (MAPPING, "request_rate = counter x_total"),
            ],
            "Running",
            Some("10.0.0.7"),
        ))
        .expect("valid")
        .expect("a target");
        assert_eq!(
            mapped.mapping.as_deref(),
            Some("request_rate = counter x_total")
        );
        for bad in [
            &[(SCRAPE, "tensorrt")][..],
            &[(SCRAPE, "mapped")],
            &[(SCRAPE, "triton"), (PORT, "http")],
            &[(SCRAPE, "vllm"), (PATH, "metrics")],
        ] {
            assert!(
                target_of(&pod(bad, "Running", Some("10.0.0.7"))).is_err(),
                "{bad:?}"
            );
        }
    }
}
