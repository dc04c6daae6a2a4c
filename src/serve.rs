//! Serving HTTP(S) to clients that may not behave: the accept loop both the adapter and the
//! exporter listen with. It owns, per connection, what the process can afford to give one peer:
//!
//! - **a cap on connections**, in total and per peer address. At the total cap, an idle
//!   connection (no request in flight) is closed to make room — one that never made a request
//!   first, then the one idle longest, with an h2 GOAWAY or a TLS close_notify so that its
//!   client moves on cleanly — so a flood of silent connections cannot lock out the kubelet's
//!   probes or a real client; when none is idle, the new connection is refused. Past the per-address cap, new connections from that
//!   address are refused. The total cap is also kept under the process's open-file limit
//!   (raised to its hard limit at start), so the sources keep file descriptors for their own
//!   work.
//! - **deadlines**: the TLS handshake within `handshake_timeout`; a request head, once begun,
//!   within `header_read_timeout` (HTTP/1); and any connection — HTTP/1 or h2, one that never
//!   sends a byte after the handshake or one that only answers pings — is closed after
//!   `idle_timeout` without a request in flight.
//! - **accounting**: [`ConnectionStats`], served on the process's own `/metrics`.
//!
//! TLS is optional (the exporter serves plain HTTP): the verified peer certificates of a TLS
//! connection reach the handlers as a [`PeerCertificates`] extension. A TLS 1.2 client that
//! tries to renegotiate gets rustls' `no_renegotiation` alert at once, and the connection is
//! closed ([`RenegotiationGuard`]). Shutdown stops accepting,
//! lets open connections finish what they serve, and ends when they have or when the grace
//! period is over.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::promtext::{MetricType, Writer};
use axum::Router;
use axum::extract::Request;
use axum_server::tls_rustls::RustlsConfig;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// The client certificates a connection presented and rustls verified, if any.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerCertificates(pub Option<Arc<[CertificateDer<'static>]>>);

/// What one peer, and all of them, may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    /// Largest request line plus headers (HTTP/1), or header list (h2).
    pub max_request_head_bytes: usize,
    /// Concurrent requests on one h2 connection.
    pub max_concurrent_streams: u32,
}

/// File descriptors kept back from connections for the process's own files and sockets.
const FD_RESERVE: u64 = 64;
/// Headers in one request head.
const MAX_HEADERS: usize = 64;
/// How often each connection checks whether it has been idle too long.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// How long accepting waits for a connection closed at the cap to be gone.
const EVICTION_WAIT: Duration = Duration::from_millis(200);
/// How long a connection being closed (idle, or for a new one) has to say goodbye, so that a
/// client's next request goes to a new connection instead of failing on this one.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The connection flags, shared by the adapter and the exporter (defaults differ per role).
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// Connections held at once; at the cap the one idle longest is closed for a new one.
    /// Kept under the open-file limit.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Connections held at once from one address; more are refused.
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// A connection with no request in flight for this long is closed (also one that never
    /// sends a request after the TLS handshake, or an h2 connection that only answers pings).
    #[arg(long, value_parser = crate::process::parse_duration, value_name = "DURATION")]
    pub idle_timeout: Option<Duration>,
    /// Time to send a request head once begun (HTTP/1).
    #[arg(long, value_parser = crate::process::parse_duration, value_name = "DURATION")]
    pub request_header_timeout: Option<Duration>,
    /// Largest request head (request line and headers; h2: the header list).
    #[arg(long, value_name = "BYTES")]
    pub max_request_header_bytes: Option<usize>,
    /// Concurrent requests on one h2 connection.
    #[arg(long, value_name = "N")]
    pub max_concurrent_streams: Option<u32>,
}

impl ConnectionArgs {
    /// The limits, from these flags over `defaults`, the total kept under the open-file limit.
    pub fn limits(&self, defaults: Limits) -> Limits {
        let wanted = self.max_connections.unwrap_or(defaults.max_connections);
        Limits {
            max_connections: wanted.min(connection_budget()).max(1),
            max_connections_per_peer: self
                .max_connections_per_ip
                .unwrap_or(defaults.max_connections_per_peer)
                .max(1),
            idle_timeout: self.idle_timeout.unwrap_or(defaults.idle_timeout),
            header_read_timeout: self
                .request_header_timeout
                .unwrap_or(defaults.header_read_timeout),
            max_request_head_bytes: self
                .max_request_header_bytes
                .unwrap_or(defaults.max_request_head_bytes),
            max_concurrent_streams: self
                .max_concurrent_streams
                .unwrap_or(defaults.max_concurrent_streams)
                .max(1),
            ..defaults
        }
    }
}

/// The connections the open-file limit leaves room for, after raising the soft limit to the
/// hard one (as Go's runtime does).
fn connection_budget() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only the struct passed.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return usize::MAX;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        limit.rlim_cur
    };
    usize::try_from(soft.saturating_sub(FD_RESERVE).max(1)).unwrap_or(usize::MAX)
}

/// Why a connection was refused: the `reason` of `…_connections_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// At the total cap with no idle connection to close.
    Total,
    /// At the cap for one address.
    PerPeer,
}

impl Refusal {
    const ALL: [Refusal; 2] = [Refusal::Total, Refusal::PerPeer];

    fn label(self) -> &'static str {
        match self {
            Refusal::Total => "total",
            Refusal::PerPeer => "per_peer",
        }
    }
}

/// Why the server closed a connection: the `reason` of `…_connections_closed_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closure {
    /// Silent past the idle timeout.
    Idle,
    /// Closed at the cap to admit a new one.
    Evicted,
    /// TLS failed or timed out.
    Handshake,
    /// A TLS 1.2 client tried to renegotiate.
    Renegotiation,
}

impl Closure {
    const ALL: [Closure; 4] = [
        Closure::Idle,
        Closure::Evicted,
        Closure::Handshake,
        Closure::Renegotiation,
    ];

    fn label(self) -> &'static str {
        match self {
            Closure::Idle => "idle",
            Closure::Evicted => "evicted",
            Closure::Handshake => "handshake",
            Closure::Renegotiation => "renegotiation",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    /// [`Refusal::label`].
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClosedLabels {
    /// [`Closure::label`].
    reason: &'static str,
}

/// The series' help texts, the same on both renderings.
const OPEN_HELP: &str = "Connections held now";
const ACCEPTED_HELP: &str = "Connections accepted";
const REFUSED_HELP: &str =
    "Connections refused at a cap (total: no idle connection to close; per_peer)";
const CLOSED_HELP: &str =
    "Connections closed by the server (idle, evicted at the cap, handshake failed, renegotiation)";

/// Connection accounting, for the process's `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    open: Gauge,
    accepted: Counter,
    refused: Family<RefusedLabels, Counter>,
    closed: Family<ClosedLabels, Counter>,
}

impl ConnectionStats {
    /// Registers the series as `PREFIX_connections_open`, `…_accepted_total`,
    /// `…_refused_total{reason}`, `…_closed_total{reason}`.
    pub(crate) fn register(&self, registry: &mut Registry, prefix: &str) {
        registry.register(
            format!("{prefix}_connections_open"),
            OPEN_HELP,
            self.open.clone(),
        );
        registry.register(
            format!("{prefix}_connections_accepted"),
            ACCEPTED_HELP,
            self.accepted.clone(),
        );
        registry.register(
            format!("{prefix}_connections_refused"),
            REFUSED_HELP,
            self.refused.clone(),
        );
        registry.register(
            format!("{prefix}_connections_closed"),
            CLOSED_HELP,
            self.closed.clone(),
        );
    }

    /// The same series in Prometheus text format 0.0.4, for a page rendered by hand.
    pub fn render(&self, prefix: &str) -> String {
        let mut page = Writer::new();
        let open = format!("{prefix}_connections_open");
        page.family(&open, MetricType::Gauge, OPEN_HELP);
        page.sample(&open, &[], self.open.get() as f64);
        let accepted = format!("{prefix}_connections_accepted_total");
        page.family(&accepted, MetricType::Counter, ACCEPTED_HELP);
        page.sample(&accepted, &[], self.accepted.get() as f64);
        let refused = format!("{prefix}_connections_refused_total");
        page.family(&refused, MetricType::Counter, REFUSED_HELP);
        for refusal in Refusal::ALL {
            let reason = refusal.label();
            let count = self.refused.get_or_create(&RefusedLabels { reason }).get();
            page.sample(&refused, &[("reason", reason)], count as f64);
        }
        let closed = format!("{prefix}_connections_closed_total");
        page.family(&closed, MetricType::Counter, CLOSED_HELP);
        for closure in Closure::ALL {
            let reason = closure.label();
            let count = self.closed.get_or_create(&ClosedLabels { reason }).get();
            page.sample(&closed, &[("reason", reason)], count as f64);
        }
        page.finish()
    }

    fn closed(&self, closure: Closure) {
        let reason = closure.label();
        self.closed.get_or_create(&ClosedLabels { reason }).inc();
    }

    fn refused(&self, refusal: Refusal) {
        let reason = refusal.label();
        self.refused.get_or_create(&RefusedLabels { reason }).inc();
    }
}

/// One connection's activity, shared by its task and the registry.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    /// Requests begun on this connection.
    requests: AtomicU64,
    /// Milliseconds since `epoch` of the last request's start or end (or the connection's).
    last_active_ms: AtomicU64,
    epoch: Instant,
    evict: Notify,
}

impl Activity {
    fn new(epoch: Instant) -> Activity {
        let activity = Activity {
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_active_ms: AtomicU64::new(0),
            epoch,
            evict: Notify::new(),
        };
        activity.touch();
        activity
    }

    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(now, Ordering::Relaxed);
    }

    /// Whether any request was made on this connection.
    fn served(&self) -> bool {
        self.requests.load(Ordering::Relaxed) > 0
    }

    /// How long nothing has been in flight; `None` while a request is.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(last))
    }
}

/// Every open connection, for the caps.
#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    per_peer: HashMap<IpAddr, usize>,
    connections: HashMap<u64, Entry>,
    /// Connections told to close for a new one and not gone yet.
    evicting: usize,
}

#[derive(Debug)]
struct Entry {
    peer: IpAddr,
    activity: Arc<Activity>,
    evicting: bool,
    /// Told when the connection is gone (set when it is closed for a new one).
    on_close: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Admission decisions over [`Open`].
pub struct Admission {
    limits: Limits,
    stats: Arc<ConnectionStats>,
    open: Mutex<Open>,
    epoch: Instant,
}

/// A connection's place among the open ones, given back when dropped.
struct Admitted {
    admission: Arc<Admission>,
    id: u64,
    activity: Arc<Activity>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission.release(self.id);
    }
}

impl Admission {
    /// The caps in `limits`, counted in `stats`.
    pub fn new(limits: Limits, stats: Arc<ConnectionStats>) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            stats,
            open: Mutex::new(Open::default()),
            epoch: Instant::now(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // every update keeps the counts consistent: a panic elsewhere leaves them usable
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a connection from `peer`, closing an idle one when at the total cap; then also
    /// returns what tells when that one is gone.
    fn admit(
        self: &Arc<Self>,
        peer: IpAddr,
    ) -> Result<(Admitted, Option<tokio::sync::oneshot::Receiver<()>>), Refusal> {
        let mut open = self.lock();
        let mut evicted = None;
        if open.per_peer.get(&peer).copied().unwrap_or(0) >= self.limits.max_connections_per_peer {
            return Err(Refusal::PerPeer);
        }
        if open.connections.len() - open.evicting >= self.limits.max_connections {
            // a connection that never made a request goes first, then the idlest
            let idlest = open
                .connections
                .iter_mut()
                .filter(|(_, entry)| !entry.evicting)
                .filter_map(|(_, entry)| {
                    let idle = entry.activity.idle_for()?;
                    Some(((!entry.activity.served(), idle), entry))
                })
                .max_by_key(|(rank, _)| *rank)
                .map(|(_, entry)| entry);
            let Some(victim) = idlest else {
                return Err(Refusal::Total);
            };
            let (closed, gone) = tokio::sync::oneshot::channel();
            victim.evicting = true;
            victim.on_close = Some(closed);
            victim.activity.evict.notify_one();
            open.evicting += 1;
            evicted = Some(gone);
        }
        open.next_id += 1;
        let id = open.next_id;
        let activity = Arc::new(Activity::new(self.epoch));
        open.connections.insert(
            id,
            Entry {
                peer,
                activity: activity.clone(),
                evicting: false,
                on_close: None,
            },
        );
        *open.per_peer.entry(peer).or_default() += 1;
        self.stats.open.set(open.connections.len() as i64);
        Ok((
            Admitted {
                admission: self.clone(),
                id,
                activity,
            },
            evicted,
        ))
    }

    fn release(&self, id: u64) {
        let mut open = self.lock();
        if let Some(mut entry) = open.connections.remove(&id) {
            if entry.evicting {
                open.evicting -= 1;
            }
            if let Some(closed) = entry.on_close.take() {
                let _ = closed.send(());
            }
            if let Some(count) = open.per_peer.get_mut(&entry.peer) {
                *count -= 1;
                if *count == 0 {
                    open.per_peer.remove(&entry.peer);
                }
            }
        }
        self.stats.open.set(open.connections.len() as i64);
    }
}

/// Counts a request in flight on its connection until its response body is done — all sent,
/// or dropped because the client went away or reset the stream — so a connection streaming a
/// long answer (KEDA's `StreamIsActive`) is busy, not idle, and a cancelled request frees it.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, B> tower::Service<Request<B>> for Tracked<S>
where
    S: tower::Service<Request<B>, Response = http::Response<axum::body::Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<TrackedBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let in_flight = InFlight::begin(self.activity.clone());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|inner| TrackedBody {
                inner,
                _in_flight: in_flight,
            }))
        })
    }
}

/// One request in flight on a connection, from its start until this is dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.requests.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted in flight while it lives.
struct TrackedBody {
    inner: axum::body::Body,
    /// Held, never read: dropping the body ends the request.
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = <axum::body::Body as http_body::Body>::Data;
    type Error = <axum::body::Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A running server: its address, and how to stop it.
pub struct Running {
    pub local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets open connections finish what they serve, and returns when they
    /// have or after `grace`.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// Binds `listen` and serves `app` on it, over TLS when `tls` is given, admitting connections
/// through `admission` — one per process, shared by all its listeners, so the caps and the
/// open-file budget hold for the process.
pub async fn spawn(
    listen: SocketAddr,
    tls: Option<RustlsConfig>,
    app: Router,
    admission: Arc<Admission>,
) -> io::Result<Running> {
    let listener = TcpListener::bind(listen).await?;
    let local_addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, tls, app, admission, stopped));
    Ok(Running {
        local_addr,
        stop,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<RustlsConfig>,
    app: Router,
    admission: Arc<Admission>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // out of file descriptors, or a connection reset before it was accepted
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (admitted, evicted) = match admission.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                admission.stats.refused(refusal);
                drop(stream);
                continue;
            }
        };
        admission.stats.accepted.inc();
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(
            stream,
            tls.clone(),
            app.clone(),
            admitted,
            stopped.clone(),
        ));
        // a flood makes way one connection at a time: the closed one gives its descriptor back
        // before the next is accepted (a client that made requests gets a moment more to be
        // told goodbye)
        if let Some(gone) = evicted {
            let _ = tokio::time::timeout(EVICTION_WAIT, gone).await;
        }
    }
    drop(listener);
    // finish what is open; the caller bounds how long
    while connections.join_next().await.is_some() {}
}

async fn connection(
    stream: TcpStream,
    tls: Option<RustlsConfig>,
    app: Router,
    admitted: Admitted,
    stopped: watch::Receiver<bool>,
) {
    let limits = admitted.admission.limits;
    let stats = admitted.admission.stats.clone();
    match tls {
        None => {
            let app = app.layer(axum::Extension(PeerCertificates::default()));
            http(
                TokioIo::new(stream),
                app,
                &admitted,
                limits,
                &stats,
                stopped,
            )
            .await;
        }
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.get_inner());
            let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
            let stream = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(_)) | Err(_) => {
                        stats.closed(Closure::Handshake);
                        return;
                    }
                },
                // a connection still shaking hands is idle too: it can make way at the cap
                _ = admitted.activity.evict.notified() => {
                    stats.closed(Closure::Evicted);
                    return;
                }
            };
            let certificates = stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect());
            let app = app.layer(axum::Extension(PeerCertificates(certificates)));
            let guarded = RenegotiationGuard {
                inner: stream,
                stats: stats.clone(),
            };
            http(
                TokioIo::new(guarded),
                app,
                &admitted,
                limits,
                &stats,
                stopped,
            )
            .await;
        }
    }
}

/// A TLS stream that answers a renegotiation attempt at once. rustls never renegotiates: it
/// queues a `no_renegotiation` warning alert when a TLS 1.2 client sends a new ClientHello —
/// but only a write sends it, and a server waiting for the next request does not write, so the
/// client would hang. Nothing else makes a TLS 1.2 server connection want to write after a
/// read; so when one does, the alert is flushed and the connection ends (the read returns
/// end-of-stream).
struct RenegotiationGuard {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    stats: Arc<ConnectionStats>,
}

impl tokio::io::AsyncRead for RenegotiationGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let session = |this: &Self| {
            let connection = this.inner.get_ref().1;
            (
                connection.wants_write(),
                connection.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_2),
            )
        };
        let (wanted_write, _) = session(&self);
        let filled = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        let (wants_write, tls12) = session(&self);
        if tls12 && !wanted_write && wants_write && buf.filled().len() == filled {
            let _ = tokio::io::AsyncWrite::poll_flush(Pin::new(&mut self.inner), cx);
            self.stats.closed(Closure::Renegotiation);
            return Poll::Ready(Ok(()));
        }
        read
    }
}

impl tokio::io::AsyncWrite for RenegotiationGuard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves HTTP/1 or h2 on one connection until it ends, idles out, is evicted, or the server
/// stops (then gracefully).
async fn http<I>(
    io: TokioIo<I>,
    app: Router,
    admitted: &Admitted,
    limits: Limits,
    stats: &ConnectionStats,
    mut stopped: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_request_head_bytes.max(8192))
        .max_headers(MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_request_head_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let activity = admitted.activity.clone();
    let service = TowerToHyperService::new(Tracked {
        inner: app,
        activity: activity.clone(),
    });
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let mut check = tokio::time::interval(IDLE_CHECK);
    // once closing (idle, or for a new one): the graceful shutdown began — an h2 GOAWAY, a TLS
    // close_notify — and by when the connection must be gone
    let mut closing: Option<Instant> = None;
    let mut draining = false;
    loop {
        let mut close = None;
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = check.tick() => {
                if closing.is_some_and(|deadline| Instant::now() >= deadline) {
                    return;
                }
                if activity.idle_for().is_some_and(|idle| idle >= limits.idle_timeout) {
                    close = Some(Closure::Idle);
                }
            }
            _ = activity.evict.notified() => close = Some(Closure::Evicted),
            changed = stopped.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
        if let Some(closure) = close
            && closing.is_none()
        {
            stats.closed(closure);
            if !activity.served() {
                // no client to say goodbye to: it never made a request
                return;
            }
            connection.as_mut().graceful_shutdown();
            closing = Some(Instant::now() + CLOSE_GRACE);
        }
    }
}
