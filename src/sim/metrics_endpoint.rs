//! HTTP endpoints serving scripted `/metrics` pages: the n-th scrape gets `page(n)`, so
//! counters can advance per scrape as a busy server's do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Serves `page(n)` at `/metrics` on 127.0.0.1 (a free port) until the runtime stops; returns
/// the URL.
pub fn serve(page: impl Fn(u64) -> String + Send + Sync + 'static) -> std::io::Result<String> {
    let page = Arc::new(page);
    let scrapes = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let page = page.clone();
            let n = scrapes.fetch_add(1, Ordering::SeqCst) + 1;
            async move { page(n) }
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let url = format!("http://{}/metrics", listener.local_addr()?);
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}
