//! Fetching a `/metrics` page, shared by the exporter (scraping inference servers) and the
//! adapter (scraping exporters): one GET under the client's timeout (redirects are not
//! followed — a page is the pod's own or none, never another server's answered in its name),
//! the body read up to a cap, and the parse run where it belongs — inline for a small page, on
//! the blocking pool for a large one (CPU work never holds an async worker for long).
//!
//! Two clients: [`client`] (HTTP or HTTPS, a connection per fetch) for the exporter's
//! inference servers, and [`KeptAliveClient`] (plain HTTP/1, a connection kept per server)
//! for the adapter's scrape of every exporter each interval.

mod kept_alive;

pub use kept_alive::{KeptAliveClient, ReadError, Response, read_response};

/// Bodies up to this size are parsed inline; they take microseconds.
const INLINE_PARSE_BYTES: usize = 256 * 1024;
/// The most a body is sized for up front, from its announced length.
const PRESIZE_AT_MOST: usize = 4 * 1024 * 1024;

/// Why a page could not be fetched (bounded, for telemetry labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("timed out")]
    Timeout,
    #[error("could not connect")]
    Connect,
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("redirected (HTTP {0}); redirects are not followed")]
    Redirect(u16),
    #[error("the body broke off")]
    Body,
    #[error("the page is larger than the cap")]
    TooLarge,
    #[error("the parse task failed")]
    Parse,
}

/// An HTTP client for scraping: the deadline for connecting and for the whole exchange, no
/// redirects followed.
///
/// HTTPS servers are verified against the system's CA certificates. Where there are none (a
/// minimal image without `/etc/ssl/certs`), the client is still built — plain HTTP, which
/// inference servers and exporters speak, works; HTTPS targets then fail to verify — rather
/// than leaving the exporter with no client at all.
pub fn client(timeout: std::time::Duration) -> Result<reqwest::Client, reqwest::Error> {
    builder(timeout).build().or_else(|error| {
        tracing::warn!(
            %error,
            "no system CA certificates: HTTPS targets cannot be verified; plain HTTP works"
        );
        builder(timeout).tls_certs_only(Vec::new()).build()
    })
}

/// The same client without the system's CA certificates, for `http://` pages only: it loads
/// and holds no roots (a few hundred KiB saved where every target speaks plain HTTP).
pub fn plain_client(timeout: std::time::Duration) -> Result<reqwest::Client, reqwest::Error> {
    builder(timeout).tls_certs_only(Vec::new()).build()
}

/// The client settings every page fetch shares.
fn builder(timeout: std::time::Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
}

/// GETs `url` and returns its body, refusing one larger than `max_bytes`.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    max_bytes: usize,
) -> Result<Vec<u8>, FetchError> {
    Ok(fetch_request(client.get(url), max_bytes).await?.body)
}

/// A fetched page and the media type it was served as.
#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// The response's `Content-Type`, where it has one.
    pub content_type: Option<String>,
}

async fn fetch_request(
    request: reqwest::RequestBuilder,
    max_bytes: usize,
) -> Result<Fetched, FetchError> {
    let mut response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            FetchError::Timeout
        } else {
            FetchError::Connect
        }
    })?;
    let mut body = accepted_head(response.status(), response.content_length(), max_bytes)?;
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    while let Some(chunk) = response.chunk().await.map_err(|_| FetchError::Body)? {
        append_capped(&mut body, &chunk, max_bytes)?;
    }
    Ok(Fetched { body, content_type })
}

/// Checks an answer's status and announced length; returns the list its body is read into.
fn accepted_head(
    status: http::StatusCode,
    announced: Option<u64>,
    max_bytes: usize,
) -> Result<Vec<u8>, FetchError> {
    if status.is_redirection() {
        return Err(FetchError::Redirect(status.as_u16()));
    }
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    let announced = announced.unwrap_or(0);
    if announced > max_bytes as u64 {
        return Err(FetchError::TooLarge);
    }
    // sized by the length the server announced (up to a bound, since that is the server's
    // word): a body read into a list that doubles holds up to twice its size, and many pages
    // are read at once
    Ok(Vec::with_capacity(
        usize::try_from(announced).map_or(0, |n| n.min(PRESIZE_AT_MOST)),
    ))
}

/// Appends a piece of a body, refusing to pass `max_bytes` in all.
fn append_capped(body: &mut Vec<u8>, piece: &[u8], max_bytes: usize) -> Result<(), FetchError> {
    if body.len() + piece.len() > max_bytes {
        return Err(FetchError::TooLarge);
    }
    body.extend_from_slice(piece);
    Ok(())
}

/// Runs `parse` over `body`: inline when small, on the blocking pool when large.
pub async fn parse<T: Send + 'static>(
    body: Vec<u8>,
    parse: impl FnOnce(&[u8]) -> T + Send + 'static,
) -> Result<T, FetchError> {
    if body.len() <= INLINE_PARSE_BYTES {
        return Ok(parse(&body));
    }
    tokio::task::spawn_blocking(move || parse(&body))
        .await
        .map_err(|_| FetchError::Parse)
}
