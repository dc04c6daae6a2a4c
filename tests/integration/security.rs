//! The security matrix of a delegating API server, over real TLS on 127.0.0.1 with certificates
//! made here, against the real binary. TokenReview, SubjectAccessReview and the
//! extension-apiserver-authentication ConfigMap come from the stand-in API server
//! ([`crate::standin`]), whose call counts prove the caching.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use serde_json::Value;

use crate::fixtures::start_standalone_adapter;
use crate::standin::{StandIn, TokenUser};
use crate::util::{Process, wait_for};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("ca");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A client certificate (PEM cert + key) with this CN and O values.
    fn client(&self, common_name: &str, organizations: &[&str]) -> String {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        for organization in organizations {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *organization);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        format!("{}{}", cert.pem(), key.serialize_pem())
    }
}

fn authentication_configmap(client_ca: &Ca, front_proxy_ca: &Ca) -> BTreeMap<String, String> {
    [
        ("client-ca-file", client_ca.pem.clone()),
        ("requestheader-client-ca-file", front_proxy_ca.pem.clone()),
        (
            "requestheader-allowed-names",
            r#"["front-proxy-client"]"#.to_string(),
        ),
        (
            "requestheader-username-headers",
            r#"["X-Remote-User"]"#.to_string(),
        ),
        (
            "requestheader-uid-headers",
            r#"["X-Remote-Uid"]"#.to_string(),
        ),
        (
            "requestheader-group-headers",
            r#"["X-Remote-Group"]"#.to_string(),
        ),
        (
            "requestheader-extra-headers-prefix",
            r#"["X-Remote-Extra-"]"#.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The adapter as the aggregator and other callers reach it.
struct Target {
    server: String,
    server_ca: reqwest::Certificate,
}

impl Target {
    fn client(&self, identity_pem: Option<&str>) -> reqwest::blocking::Client {
        let mut builder = reqwest::blocking::Client::builder()
            .tls_backend_rustls()
            .add_root_certificate(self.server_ca.clone())
            .timeout(Duration::from_secs(10));
        if let Some(pem) = identity_pem {
            builder =
                builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
        }
        builder.build().expect("client")
    }

    /// GET `path` with `headers`; the status and parsed body, or the transport error.
    fn get(
        &self,
        identity_pem: Option<&str>,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value), reqwest::Error> {
        let mut request = self
            .client(identity_pem)
            .get(format!("{}{path}", self.server));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send()?;
        let code = response.status().as_u16();
        let text = response.text()?;
        Ok((
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }
}

fn server_ca(kubeconfig: &Path) -> reqwest::Certificate {
    let credentials = kubemind::adapter::kubeconfig::read(kubeconfig).expect("kubeconfig");
    reqwest::Certificate::from_pem(credentials.ca_pem.as_bytes()).expect("pem")
}

const VALUES: &str = r#"
pods:
  - {namespace: demo, name: triton-0, labels: {app: triton}, metrics: {triton_queue_time_ms: 8000}}
external:
  - {namespace: demo, name: kafka_consumergroup_lag, value: 1200}
"#;
const PODS: &str =
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/*/triton_queue_time_ms";

fn start_adapter(dir: &Path, standin: &StandIn) -> (Process, Target) {
    let delegate = standin.kubeconfig(dir);
    let (process, kubeconfig) = start_standalone_adapter(
        dir,
        VALUES,
        &[
            "--authentication-kubeconfig",
            delegate.to_str().expect("utf-8"),
        ],
    );
    let target = Target {
        server: crate::util::kubeconfig_server(&kubeconfig),
        server_ca: server_ca(&kubeconfig),
    };
    (process, target)
}

#[test]
fn security_matrix() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let client_ca = Ca::new("cluster client CA");
    let front_proxy_ca = Ca::new("front-proxy CA");
    let rogue_ca = Ca::new("rogue CA");
    let standin = StandIn::start(
        HashMap::from([(
            "good-token".to_string(),
            TokenUser {
                name: "bob",
                groups: vec!["dev"],
            },
        )]),
        vec!["bob", "front-user"],
        authentication_configmap(&client_ca, &front_proxy_ca),
    );
    let (adapter, target) = start_adapter(dir.path(), &standin);
    let front_proxy = front_proxy_ca.client("front-proxy-client", &[]);

    // the ConfigMap is read by a watch: wait until the front proxy is trusted
    wait_for(
        Duration::from_secs(60),
        "the front-proxy CA from the ConfigMap",
        || {
            target
                .get(Some(&front_proxy), PODS, &[("X-Remote-User", "front-user")])
                .ok()
                .filter(|(code, _)| *code == 200)
        },
    );

    // health paths are open without credentials
    for path in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(
            target.get(None, path, &[]).expect("answer").0,
            200,
            "{path}"
        );
    }

    // a spoofed X-Remote-User without a client certificate is not trusted: the caller is anonymous
    let (code, body) = target
        .get(
            None,
            PODS,
            &[
                ("X-Remote-User", "bob"),
                ("X-Remote-Group", "system:masters"),
            ],
        )
        .expect("answer");
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["reason"], "Forbidden");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("User \"system:anonymous\""),
        "{body}"
    );

    // a front-proxy certificate from another CA is refused at the handshake
    let rogue = rogue_ca.client("front-proxy-client", &[]);
    assert!(
        target.get(Some(&rogue), "/healthz", &[]).is_err(),
        "rogue CA accepted"
    );

    // trusted CA, CN not allowed: the headers are not believed (401)
    let intruder = front_proxy_ca.client("intruder", &[]);
    let (code, body) = target
        .get(
            Some(&intruder),
            PODS,
            &[
                ("X-Remote-User", "bob"),
                ("X-Remote-Group", "system:masters"),
            ],
        )
        .expect("answer");
    assert_eq!(
        (code, body["reason"].as_str()),
        (401, Some("Unauthorized")),
        "{body}"
    );

    // the front proxy's asserted user, denied by SubjectAccessReview: a 403 Status
    let (code, body) = target
        .get(
            Some(&front_proxy),
            PODS,
            &[("X-Remote-User", "carol"), ("X-Remote-Group", "dev")],
        )
        .expect("answer");
    assert_eq!(code, 403);
    assert_eq!(
        body,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods.custom.metrics.k8s.io \"*\" is forbidden: User \"carol\" cannot get resource \"pods/triton_queue_time_ms\" in API group \"custom.metrics.k8s.io\" in the namespace \"demo\": RBAC: no rule allows it",
            "reason": "Forbidden", "details": {"name": "*", "group": "custom.metrics.k8s.io", "kind": "pods"}, "code": 403})
    );
    let review = standin.access_reviews().last().cloned().expect("a review");
    assert_eq!(review["user"], "carol");
    assert_eq!(
        review["groups"],
        serde_json::json!(["dev", "system:authenticated"])
    );
    assert_eq!(
        review["resourceAttributes"],
        serde_json::json!({"verb": "get", "group": "custom.metrics.k8s.io", "version": "v1beta2", "namespace": "demo",
                           "resource": "pods", "subresource": "triton_queue_time_ms", "name": "*"})
    );

    // allowed answers are cached: five requests, one review
    let before = standin.access_reviews().len();
    for _ in 0..5 {
        let (code, _) = target
            .get(
                Some(&front_proxy),
                PODS,
                &[
                    ("X-Remote-User", "bob"),
                    ("X-Remote-Uid", "u-1"),
                    ("X-Remote-Extra-Scopes", "a"),
                ],
            )
            .expect("answer");
        assert_eq!(code, 200);
    }
    let reviews = standin.access_reviews();
    assert_eq!(reviews.len(), before + 1, "allow answers are cached");
    assert_eq!(reviews.last().map(|r| r["uid"].clone()), Some("u-1".into()));
    assert_eq!(
        reviews.last().map(|r| r["extra"].clone()),
        Some(serde_json::json!({"scopes": ["a"]}))
    );

    // external metrics are authorized with verb list
    let external = "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/kafka_consumergroup_lag";
    let (code, _) = target
        .get(Some(&front_proxy), external, &[("X-Remote-User", "bob")])
        .expect("answer");
    assert_eq!(code, 200);
    let review = standin.access_reviews().last().cloned().expect("a review");
    assert_eq!(review["resourceAttributes"]["verb"], "list");
    assert_eq!(
        review["resourceAttributes"]["resource"],
        "kafka_consumergroup_lag"
    );

    // bearer tokens: a bad one is a 401; a good one is reviewed once and cached
    let (code, body) = target
        .get(None, PODS, &[("Authorization", "Bearer not-a-token")])
        .expect("answer");
    assert_eq!((code, body["reason"].as_str()), (401, Some("Unauthorized")));
    let reviews_before = standin.token_reviews();
    for _ in 0..5 {
        let (code, _) = target
            .get(None, PODS, &[("Authorization", "Bearer good-token")])
            .expect("answer");
        assert_eq!(code, 200);
    }
    assert_eq!(
        standin.token_reviews(),
        reviews_before + 1,
        "token answers are cached"
    );

    // system:masters is allowed without a review
    let admin = client_ca.client("admin", &["system:masters"]);
    let before = standin.access_reviews().len();
    let (code, _) = target.get(Some(&admin), PODS, &[]).expect("answer");
    assert_eq!(code, 200);
    assert_eq!(
        standin.access_reviews().len(),
        before,
        "no review for system:masters"
    );

    // a client-CA certificate: user = CN, groups = O (+ system:authenticated); denied here
    let alice = client_ca.client("alice", &["dev"]);
    let (code, _) = target.get(Some(&alice), "/apis", &[]).expect("answer");
    assert_eq!(code, 403);
    let review = standin.access_reviews().last().cloned().expect("a review");
    assert_eq!(review["user"], "alice");
    assert_eq!(
        review["groups"],
        serde_json::json!(["dev", "system:authenticated"])
    );
    assert_eq!(
        review["nonResourceAttributes"],
        serde_json::json!({"path": "/apis", "verb": "get"})
    );

    // CA rotation in the ConfigMap takes effect without a restart
    let rotated_ca = Ca::new("front-proxy CA 2");
    standin.set_configmap(authentication_configmap(&client_ca, &rotated_ca));
    let rotated = rotated_ca.client("front-proxy-client", &[]);
    wait_for(
        Duration::from_secs(60),
        "the rotated front-proxy CA",
        || {
            target
                .get(Some(&rotated), PODS, &[("X-Remote-User", "bob")])
                .ok()
                .filter(|(code, _)| *code == 200)
        },
    );
    assert!(
        target.get(Some(&front_proxy), "/healthz", &[]).is_err(),
        "the retired front-proxy CA is refused at the handshake"
    );
    assert!(adapter.log().contains("trust updated"), "{}", adapter.log());
}
