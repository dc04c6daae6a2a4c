//! Two adapter replicas behind one APIService: kube-aggregator sends each request to either, so
//! an HPA reading them in turn must not see two worlds. Both replicas read the same exporter
//! (whose Triton pod's pending count steps up at every collection, every 250 ms); the same
//! request goes to both at once every second; one replica is restarted midway. The values may
//! differ only by how far apart the two replicas' last scrapes were (one `--exporter-interval`
//! plus one exporter collection), and the restarted replica must catch up within a scrape of
//! answering again. The largest gap seen is printed.

use std::time::{Duration, Instant};

use kubemind::quantity::Quantity;

use crate::fixtures::{
    AdapterClient, hpa_standin, port_of, start_cluster_adapter, start_demo_exporter, triton_text,
};
use crate::standin::StandIn;
use crate::util::Process;

const PATH: &str =
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/triton-0/triton_pending_requests";
/// The exporter's collection interval in these tests (`util::start_exporter`).
const COLLECTION: Duration = Duration::from_millis(250);
/// The adapters' `--exporter-interval`.
const SCRAPE: Duration = Duration::from_secs(1);

/// The pending count a replica serves now, if it serves one.
async fn pending(client: &AdapterClient) -> Option<f64> {
    let (code, body) = client.get(PATH.to_string()).await?;
    let value = body["items"][0]["value"].as_str().filter(|_| code == 200)?;
    Quantity::parse(value).ok().map(|q| q.as_f64())
}

fn replica(dir: &std::path::Path, standin: &StandIn, port: &str) -> (Process, AdapterClient) {
    let (process, _, client) = start_cluster_adapter(
        dir,
        standin,
        &[
            "--exporter-port",
            port,
            "--exporter-interval",
            "1s",
            "--exporter-timeout",
            "500ms",
            "--max-age",
            "10s",
        ],
    );
    (process, client)
}

/// How far apart in time two pending counts are: one step per collection.
fn gap(a: f64, b: f64) -> Duration {
    COLLECTION.mul_f64((a - b).abs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_the_same_world() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dirs: Vec<tempfile::TempDir> = (0..4)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    // pending = the collection count: a value that moves at every collection
    let (_exporter, url) =
        start_demo_exporter(dirs[0].path(), |n| triton_text(n * 10, n * 500_000, n));
    let port = port_of(&url);
    let standin = hpa_standin();
    let (_a, a) = replica(dirs[1].path(), &standin, &port);
    let (b_process, b) = replica(dirs[2].path(), &standin, &port);
    let both_serve = |a: &AdapterClient, b: &AdapterClient| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            crate::util::wait_for_async(
                Duration::from_secs(60),
                "both replicas to serve",
                || async { Some((pending(&a).await?, pending(&b).await?)) },
            )
            .await
        }
    };
    both_serve(&a, &b).await;

    // allowed: the replicas' last scrapes up to one scrape interval apart, each page up to one
    // collection old — and on a machine this loaded, one more scrape interval of delay
    let allowed = SCRAPE * 2 + COLLECTION;
    let mut largest = Duration::ZERO;
    for _ in 0..20 {
        let (x, y) = tokio::join!(pending(&a), pending(&b));
        let (x, y) = (x.expect("replica A answers"), y.expect("replica B answers"));
        largest = largest.max(gap(x, y));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // replica B restarts: once it answers again, it agrees within one scrape
    drop(b_process);
    let (_b, b) = replica(dirs[3].path(), &standin, &port);
    both_serve(&a, &b).await;
    let answering = Instant::now();
    crate::util::wait_for_async(
        Duration::from_secs(30),
        "the restarted replica to agree",
        || async {
            let (x, y) = tokio::join!(pending(&a), pending(&b));
            (gap(x?, y?) <= allowed).then_some(())
        },
    )
    .await;
    let converged = answering.elapsed();
    for _ in 0..10 {
        let (x, y) = tokio::join!(pending(&a), pending(&b));
        let (x, y) = (x.expect("replica A answers"), y.expect("replica B answers"));
        largest = largest.max(gap(x, y));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "two replicas: largest gap {} ms over 30 paired reads (allowed {} ms); the restarted one agreed {} ms after answering",
        largest.as_millis(),
        allowed.as_millis(),
        converged.as_millis()
    );
    assert!(
        largest <= allowed,
        "replicas {} ms apart (allowed {} ms)",
        largest.as_millis(),
        allowed.as_millis()
    );
    assert!(
        converged <= SCRAPE * 2,
        "the restarted replica took {} ms to agree",
        converged.as_millis()
    );

    // each replica says how old its freshest value is
    for client in [&a, &b] {
        let age = client
            .newest_value_age("exporter")
            .await
            .expect("the freshness gauge");
        assert!(age < 10.0, "{age}");
    }
}
