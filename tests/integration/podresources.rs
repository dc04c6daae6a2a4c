//! GPU → pod attribution against a real gRPC server on a unix socket speaking
//! `v1.PodResourcesLister/List` (tonic, HTTP/2), as the kubelet does ([`kubemind::sim::kubelet`]).

use std::time::Duration;

use kubemind::exporter::pods::{self, Attributions, DeviceId, ListPodResourcesResponse};
use kubemind::sim::kubelet::{Kubelet, pod};

#[tokio::test]
async fn every_device_id_form_is_attributed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("kubelet.sock");
    let kubelet = Kubelet::default();
    *kubelet.answer.lock().expect("lock") = ListPodResourcesResponse {
        pod_resources: vec![
            pod("demo", "triton-0", "nvidia.com/gpu", &["GPU-aaaa"]),
            pod("demo", "shared-1", "nvidia.com/gpu", &["GPU-bbbb::1"]),
            pod("demo", "shared-2", "nvidia.com/gpu", &["GPU-bbbb::2"]),
            pod("ml", "small", "nvidia.com/mig-1g.10gb", &["MIG-cccc"]),
            pod("gke", "job", "nvidia.com/gpu", &["nvidia2", "nvidia3/gi1"]),
            pod("idx", "job", "nvidia.com/gpu", &["5"]),
            pod("other", "fpga", "example.com/fpga", &["GPU-not-ours"]),
        ],
    };
    let _server = kubelet.serve(&socket).expect("serves");
    let answer = pods::list(&socket).await.expect("List answers");
    let held: Vec<(DeviceId, String)> = pods::holders(&answer)
        .into_iter()
        .map(|(id, holder)| {
            (
                id,
                format!("{}/{}/{}", holder.namespace, holder.pod, holder.container),
            )
        })
        .collect();
    assert_eq!(
        held,
        [
            (
                DeviceId::Gpu {
                    uuid: "GPU-aaaa".into(),
                    replica: None
                },
                "demo/triton-0/server".into()
            ),
            (
                DeviceId::Gpu {
                    uuid: "GPU-bbbb".into(),
                    replica: Some(1)
                },
                "demo/shared-1/server".into()
            ),
            (
                DeviceId::Gpu {
                    uuid: "GPU-bbbb".into(),
                    replica: Some(2)
                },
                "demo/shared-2/server".into()
            ),
            (
                DeviceId::Mig {
                    uuid: "MIG-cccc".into(),
                    replica: None
                },
                "ml/small/server".into()
            ),
            (
                DeviceId::Index {
                    index: 2,
                    gpu_instance: None,
                    vgpu: None
                },
                "gke/job/server".into()
            ),
            (
                DeviceId::Index {
                    index: 3,
                    gpu_instance: Some(1),
                    vgpu: None
                },
                "gke/job/server".into()
            ),
            (
                DeviceId::Index {
                    index: 5,
                    gpu_instance: None,
                    vgpu: None
                },
                "idx/job/server".into()
            ),
        ]
    );
}

#[tokio::test]
async fn answers_larger_than_four_mebibytes_decode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("kubelet.sock");
    let kubelet = Kubelet::default();
    let long = "x".repeat(200);
    *kubelet.answer.lock().expect("lock") = ListPodResourcesResponse {
        pod_resources: (0..30_000)
            .map(|i| {
                pod(
                    "busy",
                    &format!("pod-{i}-{long}"),
                    "nvidia.com/gpu",
                    &["GPU-dddd::1"],
                )
            })
            .collect(),
    };
    let _server = kubelet.serve(&socket).expect("serves");
    let answer = pods::list(&socket).await.expect("a 6+ MiB answer decodes");
    assert_eq!(answer.pod_resources.len(), 30_000);
    assert!(prost::Message::encoded_len(&answer) > 4 * 1024 * 1024);
}

/// How long attributions are cached: long enough that five cached reads in a row fit in it on
/// a loaded machine.
const REFRESH: Duration = Duration::from_secs(2);

#[tokio::test]
async fn the_kubelet_is_called_at_most_once_per_refresh_and_outages_keep_the_last_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("kubelet.sock");
    let kubelet = Kubelet::default();
    *kubelet.answer.lock().expect("lock") = ListPodResourcesResponse {
        pod_resources: vec![pod("demo", "triton-0", "nvidia.com/gpu", &["GPU-aaaa"])],
    };
    let server = kubelet.serve(&socket).expect("serves");
    let mut attributions = Attributions::new(socket.clone(), REFRESH);
    for _ in 0..5 {
        assert_eq!(attributions.get().await.len(), 1);
    }
    assert_eq!(kubelet.calls(), 1, "cached within the refresh");
    assert!(attributions.up);
    tokio::time::sleep(REFRESH + Duration::from_millis(50)).await;
    attributions.get().await;
    assert_eq!(kubelet.calls(), 2, "refreshed after it");

    server.abort();
    let _ = server.await;
    std::fs::remove_file(&socket).expect("socket gone");
    tokio::time::sleep(REFRESH + Duration::from_millis(50)).await;
    assert_eq!(
        attributions.get().await.len(),
        1,
        "the last good attribution stays"
    );
    assert!(!attributions.up);
}
