//! Answers kept and sent again: a repeated custom read gets the same bytes while nothing it was
//! built from changed, and the new answer as soon as a publish changes its namespace's objects
//! or one of its samples ages past max-age.

use std::sync::Arc;

use super::*;

const READ: &str =
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/*/queue?labelSelector=app%3Dtriton";

fn publish(store: &Store, values: &[(&str, f64, SystemTime)]) {
    let mut b = SnapshotBuilder::new();
    for (name, value, sampled) in values {
        let pod = b
            .object(Some("demo"), &GroupResource::pods(), name)
            .expect("namespaced");
        pod.labels = labels(&[("app", "triton")]).into();
        pod.insert("queue", Sample::new(*value, *sampled).expect("finite"));
    }
    store.publish(b);
}

fn app(store: Arc<Store>) -> axum::Router {
    let readiness = Readiness::default();
    readiness.set_ready();
    api::router(ApiState {
        store,
        telemetry: Arc::new(Telemetry::new()),
        readiness,
        access: Access::Open,
        external: None,
    })
}

async fn sent_again(app: &axum::Router) -> u64 {
    let metrics = get(app, "/metrics").await.text;
    let line = metrics
        .lines()
        .find(|line| line.starts_with("kubemind_adapter_answers_sent_again_total "))
        .unwrap_or_else(|| panic!("no answers_sent_again counter in\n{metrics}"));
    line.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count")
}

fn pods(reply: &Reply) -> Vec<(String, String)> {
    let items = reply.body["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .map(|item| {
            let name = item["describedObject"]["name"].as_str().unwrap_or_default();
            let value = item["value"].as_str().unwrap_or_default();
            (name.to_string(), value.to_string())
        })
        .collect()
}

#[tokio::test]
async fn a_repeated_read_is_sent_again_until_a_publish_changes_its_values() {
    let store = Arc::new(Store::new(MAX_AGE));
    let now = SystemTime::now();
    publish(&store, &[("triton-0", 5.0, now), ("triton-1", 7.0, now)]);
    let app = app(store.clone());

    let first = get(&app, READ).await;
    assert_eq!(first.code, StatusCode::OK, "{}", first.text);
    assert_eq!(sent_again(&app).await, 0);
    let second = get(&app, READ).await;
    assert_eq!(second.text, first.text);
    assert_eq!(sent_again(&app).await, 1, "the second read is sent again");
    // another read of the same objects is an answer of its own
    let other = get(&app, &READ.replace("app%3Dtriton", "app%21%3Dtriton")).await;
    assert_eq!(pods(&other), vec![]);
    assert_eq!(sent_again(&app).await, 1);

    publish(&store, &[("triton-0", 5.0, now), ("triton-1", 9.0, now)]);
    let after = get(&app, READ).await;
    assert_eq!(
        pods(&after),
        [
            ("triton-0".into(), "5".into()),
            ("triton-1".into(), "9".into())
        ]
    );
    assert_eq!(
        sent_again(&app).await,
        1,
        "the publish changed what it was built from"
    );
    assert_eq!(get(&app, READ).await.text, after.text);
    assert_eq!(sent_again(&app).await, 2);

    // a publish that drops the metric: a 404, never the kept list
    store.publish(SnapshotBuilder::new());
    assert_eq!(get(&app, READ).await.code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_kept_answer_loses_a_sample_the_moment_it_ages_past_max_age() {
    let max_age = Duration::from_secs(6);
    let store = Arc::new(Store::new(max_age));
    let now = SystemTime::now();
    // triton-1's sample is fresh for two more seconds, triton-0's for six
    let ageing = now - (max_age - Duration::from_secs(2));
    publish(&store, &[("triton-0", 5.0, now), ("triton-1", 7.0, ageing)]);
    let app = app(store);

    let first = get(&app, READ).await;
    // (on a machine so busy that the read came after triton-1 aged, there is nothing to see)
    let both_fresh = pods(&first).len() == 2;
    let until_aged = (ageing + max_age)
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(until_aged + Duration::from_millis(200)).await;
    let later = get(&app, READ).await;
    assert_eq!(
        pods(&later),
        [("triton-0".into(), "5".into())],
        "{}",
        later.text
    );
    if both_fresh {
        assert_eq!(
            sent_again(&app).await,
            0,
            "an answer with an aged sample was sent again"
        );
    }
}
