//! `kubemind preflight`: before kubemind registers its APIServices, who serves them now? Only
//! one Service can back each APIService: applying kubemind where KEDA owns
//! `v1beta1.external.metrics.k8s.io`, or prometheus-adapter owns `custom.metrics.k8s.io`,
//! would silently take them over and break every HPA they serve. This reads each APIService
//! the chosen overlay registers and refuses, naming the current owner's Service and the overlay
//! to use instead, unless `--force`. `make deploy` runs it first.

pub mod args;

use anyhow::Context as _;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::Api;

use args::{Overlay, PreflightArgs};

const CUSTOM: [&str; 2] = [
    "v1beta2.custom.metrics.k8s.io",
    "v1beta1.custom.metrics.k8s.io",
];
const EXTERNAL: [&str; 1] = ["v1beta1.external.metrics.k8s.io"];

/// The APIServices an overlay registers.
pub fn registered_by(overlay: Overlay) -> Vec<&'static str> {
    match overlay {
        Overlay::Default => CUSTOM.iter().chain(&EXTERNAL).copied().collect(),
        Overlay::CustomOnly => CUSTOM.to_vec(),
        Overlay::ExternalOnly => EXTERNAL.to_vec(),
    }
}

/// Who serves an APIService now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Not registered.
    Nobody,
    /// kubemind's own Service.
    Kubemind,
    /// Another Service (`namespace/name`), or the API server itself (`None`).
    Other(Option<String>),
}

/// The owner of `service`, as kubemind's Service `ours` (`namespace/name`) sees it.
pub fn owner(service: Option<&APIService>, ours: &str) -> Owner {
    let Some(service) = service else {
        return Owner::Nobody;
    };
    let backing = service
        .spec
        .as_ref()
        .and_then(|spec| spec.service.as_ref())
        .map(|s| {
            format!(
                "{}/{}",
                s.namespace.as_deref().unwrap_or_default(),
                s.name.as_deref().unwrap_or_default()
            )
        });
    match backing {
        Some(backing) if backing == ours => Owner::Kubemind,
        other => Owner::Other(other),
    }
}

/// The overlay that leaves `taken` (APIServices another Service owns) alone, if one does.
fn instead(taken: &[&str]) -> Option<&'static str> {
    let custom = taken.iter().any(|name| CUSTOM.contains(name));
    let external = taken.iter().any(|name| EXTERNAL.contains(name));
    match (custom, external) {
        (false, true) => Some("custom-only"),
        (true, false) => Some("external-only"),
        _ => None,
    }
}

/// Reads the cluster's APIServices and prints a verdict; an error when one would be taken over
/// without `--force`.
pub async fn run(args: PreflightArgs) -> anyhow::Result<()> {
    let kubeconfig = crate::process::read_kubeconfig("--kubeconfig", args.kubeconfig.as_deref())?;
    let client = crate::process::kube_client(kubeconfig).await?;
    let api = Api::<APIService>::all(client);
    let ours = format!("{}/{}", args.service_namespace, args.service_name);
    let mut taken = Vec::new();
    for name in registered_by(args.overlay) {
        let existing = api
            .get_opt(name)
            .await
            .with_context(|| format!("reading APIService {name}"))?;
        match owner(existing.as_ref(), &ours) {
            Owner::Nobody => println!("ok    {name}: not registered yet"),
            Owner::Kubemind => println!("ok    {name}: already kubemind's ({ours})"),
            Owner::Other(backing) => {
                let who = backing.unwrap_or_else(|| "the API server itself".into());
                println!(
                    "TAKEN {name}: served by {who}; applying kubemind would take it over and \
                     break every HPA that reads it there"
                );
                taken.push(name);
            }
        }
    }
    if taken.is_empty() {
        return Ok(());
    }
    let advice = match instead(&taken) {
        Some(overlay) => format!(
            "use the {overlay} overlay (make deploy OVERLAY={overlay}, or kubectl apply -k \
             apiservice/{overlay}/)"
        ),
        None => "both metrics APIs are served by others: kubemind would replace them".into(),
    };
    if args.force {
        println!("--force: taking over {}", taken.join(", "));
        return Ok(());
    }
    anyhow::bail!("{advice}; or --force to take over {}", taken.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apiservice(namespace: &str, name: &str) -> APIService {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
            "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1",
                     "groupPriorityMinimum": 100, "versionPriority": 100,
                     "service": {"namespace": namespace, "name": name}}
        }))
        .expect("APIService")
    }

    #[test]
    fn owners_and_the_overlay_to_use() {
        let keda = apiservice("keda", "keda-operator-metrics-apiserver");
        assert_eq!(
            owner(Some(&keda), "kubemind/kubemind-adapter"),
            Owner::Other(Some("keda/keda-operator-metrics-apiserver".into()))
        );
        let ours = apiservice("kubemind", "kubemind-adapter");
        assert_eq!(
            owner(Some(&ours), "kubemind/kubemind-adapter"),
            Owner::Kubemind
        );
        assert_eq!(owner(None, "kubemind/kubemind-adapter"), Owner::Nobody);
        assert_eq!(
            instead(&["v1beta1.external.metrics.k8s.io"]),
            Some("custom-only")
        );
        assert_eq!(
            instead(&["v1beta2.custom.metrics.k8s.io"]),
            Some("external-only")
        );
        assert_eq!(registered_by(Overlay::CustomOnly).len(), 2);
    }
}
