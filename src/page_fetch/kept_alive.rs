//! A keep-alive HTTP/1.1 client for `http://` pages fetched from the same servers again and
//! again: the adapter scrapes every exporter each interval. Opening a connection per scrape cost
//! the adapter a TCP handshake and teardown per page, a third of its CPU time at a thousand
//! exporters; hyper's client keeps connections, but each idle one holds about 22 KiB (a read
//! buffer, a header buffer and a request channel of 8 KiB each), 22 MiB at a thousand
//! exporters. Here an idle connection is its socket and nothing else: a page is read into a
//! buffer of its own, freed once read.
//!
//! The response is read by RFC 9112: its head parsed by `httparse` (hyper's own parser),
//! informational (1xx) heads skipped, the body framed by `Transfer-Encoding: chunked`, by
//! `Content-Length`, or else by the connection's close (§6.3); a transfer coding other than
//! chunked, which this client never asks for, is refused rather than handed on still coded. A
//! connection is kept only where that framing ends the body exactly and the server did not ask
//! to close it (HTTP/1.1 without `Connection: close`), and is sent on again only if it has
//! nothing to read — not its end, not an answer nobody asked for. A close or reset that races
//! the request on a kept connection, before any byte of an answer, sends the request, a GET,
//! again on a new connection (§9.3.1); once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{FetchError, Fetched, accepted_head, append_capped};

/// Largest response head (status line and header fields) read.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in a response head.
const MAX_HEADERS: usize = 64;
/// Largest chunk-size line or trailer section read.
const MAX_CHUNK_LINE_BYTES: usize = 4 * 1024;
/// How much is read at a time: a compact exporter page in one read.
const READ_BYTES: usize = 8 * 1024;
/// How long a connection is kept without a fetch: under the exporter's own idle timeout
/// (30 s), so the client lets go first and a server that went away does not hold a socket.
const IDLE_AT_MOST: Duration = Duration::from_secs(20);

/// Fetches pages over connections kept open between fetches, one per server. Clones share
/// the connections. Redirects are not followed; the deadline covers connecting and the whole
/// exchange.
#[derive(Clone)]
pub struct KeptAliveClient {
    inner: Arc<Inner>,
}

struct Inner {
    timeout: Duration,
    idle: Mutex<IdleConnections>,
}

/// Connections waiting for their server's next fetch, by `host:port`.
#[derive(Default)]
struct IdleConnections {
    by_authority: HashMap<String, (TcpStream, Instant)>,
    swept: Option<Instant>,
}

/// A page read from a connection, and whether the connection can carry another request.
#[derive(Debug)]
pub struct Response {
    pub fetched: Fetched,
    pub reusable: bool,
}

/// How a response failed: not at all begun (a kept connection its server closed), or
/// otherwise.
#[derive(Debug, PartialEq)]
pub enum ReadError {
    NoAnswer,
    Failed(FetchError),
}

impl From<FetchError> for ReadError {
    fn from(error: FetchError) -> ReadError {
        ReadError::Failed(error)
    }
}

/// Where a URL's request goes and its bytes.
struct Target {
    authority: String,
    request: Vec<u8>,
}

impl Target {
    /// `None` for a URL this client cannot fetch (not `http://`, no host, a header value
    /// that could break the request's lines).
    fn of(url: &str, accept: &str) -> Option<Target> {
        let uri: http::Uri = url.parse().ok()?;
        if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
            return None;
        }
        let authority = uri.authority()?;
        let host_port = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        http::HeaderValue::from_str(accept).ok()?;
        let path = uri.path_and_query().map_or("/", |path| path.as_str());
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: {accept}\r\nUser-Agent: kubemind/{}\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        Some(Target {
            authority: host_port,
            request: request.into_bytes(),
        })
    }
}

impl KeptAliveClient {
    /// `timeout`: the deadline for connecting and for the whole exchange.
    pub fn new(timeout: Duration) -> KeptAliveClient {
        KeptAliveClient {
            inner: Arc::new(Inner {
                timeout,
                idle: Mutex::new(IdleConnections::default()),
            }),
        }
    }

    /// GETs `url` (`http://` only) with an `Accept` header (the answer says which form it is
    /// in), refusing a body larger than `max_bytes`.
    pub async fn fetch_accepting(
        &self,
        url: &str,
        accept: &str,
        max_bytes: usize,
    ) -> Result<Fetched, FetchError> {
        // a URL this client cannot send is a server it cannot connect to
        let target = Target::of(url, accept).ok_or(FetchError::Connect)?;
        tokio::time::timeout(self.inner.timeout, self.exchange(&target, max_bytes))
            .await
            .map_err(|_| FetchError::Timeout)?
    }

    /// Number of connections kept open now.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.idle().by_authority.len()
    }

    async fn exchange(&self, target: &Target, max_bytes: usize) -> Result<Fetched, FetchError> {
        let on_kept = match self.take(&target.authority) {
            Some(kept) => match send_and_read(kept, &target.request, max_bytes).await {
                Err(ReadError::NoAnswer) => None, // closed by its server while idle
                answered => Some(answered),
            },
            None => None,
        };
        let outcome = match on_kept {
            Some(answered) => answered,
            None => {
                let fresh = TcpStream::connect(target.authority.as_str())
                    .await
                    .map_err(|_| FetchError::Connect)?;
                // the request goes out in one write; the reply should not wait on an ACK either
                fresh.set_nodelay(true).map_err(|_| FetchError::Connect)?;
                send_and_read(fresh, &target.request, max_bytes).await
            }
        };
        match outcome {
            Ok((fetched, reusable)) => {
                if let Some(stream) = reusable {
                    self.keep(&target.authority, stream);
                }
                Ok(fetched)
            }
            Err(ReadError::Failed(error)) => Err(error),
            // a new connection that closes unanswered: the answer broke off before it began
            Err(ReadError::NoAnswer) => Err(FetchError::Body),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, IdleConnections> {
        // the map is whole after any panic (one insert or remove), so a poisoned lock is used
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The server's kept connection, unless it has been idle too long or its server has
    /// closed it or sent something unasked (a `408`, say) while it was idle.
    fn take(&self, authority: &str) -> Option<TcpStream> {
        let now = Instant::now();
        let (stream, since) = {
            let mut idle = self.idle();
            idle.sweep_if_due(now);
            idle.by_authority.remove(authority)?
        };
        if now.duration_since(since) >= IDLE_AT_MOST {
            return None;
        }
        // an idle connection has nothing to read: not even its end
        let mut probe = [0u8; 1];
        match stream.try_read(&mut probe) {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Some(stream),
            _ => None,
        }
    }

    /// Keeps the connection a page came over, which can carry another request.
    fn keep(&self, authority: &str, stream: TcpStream) {
        let now = Instant::now();
        let mut idle = self.idle();
        idle.by_authority
            .insert(authority.to_string(), (stream, now));
        idle.sweep_if_due(now);
    }
}

impl IdleConnections {
    /// Closes the connections idle too long (servers gone), at most once per
    /// [`IDLE_AT_MOST`].
    fn sweep_if_due(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|swept| now.duration_since(swept) < IDLE_AT_MOST)
        {
            return;
        }
        self.by_authority
            .retain(|_, (_, since)| now.duration_since(*since) < IDLE_AT_MOST);
        self.swept = Some(now);
    }
}

/// Sends the request and reads the answer; the connection comes back where it can carry
/// another request.
async fn send_and_read(
    mut stream: TcpStream,
    request: &[u8],
    max_bytes: usize,
) -> Result<(Fetched, Option<TcpStream>), ReadError> {
    // a write refused on a kept connection: its server closed it (the request is sent again)
    stream
        .write_all(request)
        .await
        .map_err(|_| ReadError::NoAnswer)?;
    let Response { fetched, reusable } = read_response(&mut stream, max_bytes).await?;
    Ok((fetched, reusable.then_some(stream)))
}

/// How a response's body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// What a response's head says.
struct Head {
    status: http::StatusCode,
    content_type: Option<String>,
    framing: Framing,
    /// HTTP/1.1 and no `Connection: close`, and no framing that asks for a close.
    keep_alive: bool,
    /// Bytes the head took in the buffer.
    length: usize,
}

impl Head {
    fn of(response: &httparse::Response<'_, '_>, length: usize) -> Result<Head, FetchError> {
        let status = response
            .code
            .and_then(|code| http::StatusCode::from_u16(code).ok())
            .ok_or(FetchError::Body)?;
        let (mut content_type, mut codings) = (None, None::<Vec<String>>);
        let (mut content_length, mut close) = (None::<u64>, false);
        for header in response.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("content-type") {
                content_type = std::str::from_utf8(header.value)
                    .ok()
                    .map(|value| value.trim().to_string());
                continue;
            }
            let framing_field = ["transfer-encoding", "content-length", "connection"]
                .iter()
                .any(|field| name.eq_ignore_ascii_case(field));
            if !framing_field {
                continue; // any other field may hold what it likes
            }
            let value = std::str::from_utf8(header.value).map_err(|_| FetchError::Body)?;
            let tokens = || value.split(',').map(str::trim).filter(|t| !t.is_empty());
            if name.eq_ignore_ascii_case("transfer-encoding") {
                // codings accumulate over fields, in the order they were applied
                codings
                    .get_or_insert_default()
                    .extend(tokens().map(str::to_ascii_lowercase));
            } else if name.eq_ignore_ascii_case("content-length") {
                // digits only; a list of one repeated value is that value, any other list is
                // no length at all (§6.3)
                for token in tokens() {
                    let length: u64 = token
                        .bytes()
                        .all(|byte| byte.is_ascii_digit())
                        .then(|| token.parse().ok())
                        .flatten()
                        .ok_or(FetchError::Body)?;
                    if content_length.is_some_and(|seen| seen != length) {
                        return Err(FetchError::Body);
                    }
                    content_length = Some(length);
                }
            } else {
                close |= tokens().any(|token| token.eq_ignore_ascii_case("close"));
            }
        }
        let framing =
            if status == http::StatusCode::NO_CONTENT || status == http::StatusCode::NOT_MODIFIED {
                Framing::None
            } else if let Some(codings) = &codings {
                // this client asks for no coding but chunked, which only HTTP/1.1 may send (§6.1):
                // anything else would be handed on still coded
                if response.version != Some(1) || codings.as_slice() != ["chunked"] {
                    return Err(FetchError::Body);
                }
                // Transfer-Encoding overrides Content-Length (§6.3)
                Framing::Chunked
            } else if let Some(length) = content_length {
                Framing::Length(length)
            } else {
                Framing::UntilClose
            };
        let keep_alive = response.version == Some(1)
            && !close
            && framing != Framing::UntilClose
            && !(codings.is_some() && content_length.is_some());
        Ok(Head {
            status,
            content_type,
            framing,
            keep_alive,
            length,
        })
    }

    fn announced(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(length) => Some(length),
            Framing::None => Some(0),
            Framing::Chunked | Framing::UntilClose => None,
        }
    }
}

/// Reads one response from `reader`: its head, then its body as the head frames it, at most
/// `max_bytes`. Public for the fuzz target.
pub async fn read_response<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Response, ReadError> {
    let mut buffer: Vec<u8> = Vec::with_capacity(READ_BYTES);
    let mut answered = false;
    let head = loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buffer) {
            Ok(httparse::Status::Complete(length)) => {
                let head = Head::of(&response, length)?;
                // an informational answer (100 Continue, 103 Early Hints): the final one follows;
                // 101 would switch protocols, which this client never asks for
                if head.status.is_informational()
                    && head.status != http::StatusCode::SWITCHING_PROTOCOLS
                {
                    buffer.drain(..length);
                    continue;
                }
                break head;
            }
            Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD_BYTES => {
                // the end, or a reset, before any byte: a kept connection its server closed
                match read_more(reader, &mut buffer).await {
                    Ok(0) | Err(_) if !answered => return Err(ReadError::NoAnswer),
                    Ok(0) => return Err(FetchError::Body.into()),
                    Err(error) => return Err(error.into()),
                    Ok(_) => answered = true,
                }
            }
            Ok(httparse::Status::Partial) | Err(_) => return Err(FetchError::Body.into()),
        }
    };
    let mut body = accepted_head(head.status, head.announced(), max_bytes)?;
    buffer.drain(..head.length);
    let exact = match head.framing {
        Framing::None => buffer.is_empty(),
        Framing::Length(length) => {
            // within max_bytes: accepted_head refused a larger one
            let length = usize::try_from(length).map_err(|_| FetchError::TooLarge)?;
            let held = buffer.len().min(length);
            body.extend_from_slice(&buffer[..held]);
            let exact = buffer.len() <= length;
            let wanted = (length - held) as u64;
            reader
                .take(wanted)
                .read_to_end(&mut body)
                .await
                .map_err(|_| FetchError::Body)?;
            if body.len() < length {
                return Err(FetchError::Body.into());
            }
            exact
        }
        Framing::Chunked => read_chunked(reader, buffer, &mut body, max_bytes).await?,
        Framing::UntilClose => {
            append_capped(&mut body, &buffer, max_bytes)?;
            let room = u64::try_from(max_bytes - body.len()).unwrap_or(u64::MAX);
            reader
                .take(room.saturating_add(1))
                .read_to_end(&mut body)
                .await
                .map_err(|_| FetchError::Body)?;
            if body.len() > max_bytes {
                return Err(FetchError::TooLarge.into());
            }
            false
        }
    };
    Ok(Response {
        fetched: Fetched {
            body,
            content_type: head.content_type,
        },
        reusable: head.keep_alive && exact,
    })
}

/// Reads more into `buffer`; 0 at the end of the stream.
async fn read_more<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut Vec<u8>,
) -> Result<usize, FetchError> {
    buffer.reserve(READ_BYTES);
    reader.read_buf(buffer).await.map_err(|_| FetchError::Body)
}

/// Decodes a chunked body (RFC 9112 §7.1) from what is already in `raw`, then the reader;
/// chunk extensions and trailer fields are read past and dropped. Returns whether the body
/// ended exactly where the bytes read so far end (nothing of another response read with it).
///
/// `raw` holds only chunk-size lines, trailers and what a read brought with them: a chunk's
/// data goes from the reader straight into `body`. What was read is dropped from `raw` only
/// before the next read, so many small chunks cost no copying.
async fn read_chunked<R: AsyncRead + Unpin>(
    reader: &mut R,
    mut raw: Vec<u8>,
    body: &mut Vec<u8>,
    max_bytes: usize,
) -> Result<bool, ReadError> {
    let mut at = 0;
    // every chunk, up to the last (size 0)
    loop {
        // a size has at least one hex digit; httparse reads a bare line as 0
        if raw.get(at).is_some_and(|first| !first.is_ascii_hexdigit()) {
            return Err(FetchError::Body.into());
        }
        match httparse::parse_chunk_size(&raw[at..]) {
            Ok(httparse::Status::Complete((line, 0))) => {
                at += line;
                break;
            }
            Ok(httparse::Status::Complete((line, size))) => {
                at += line;
                let room = max_bytes.saturating_sub(body.len());
                let size = usize::try_from(size)
                    .ok()
                    .filter(|size| *size <= room)
                    .ok_or(FetchError::TooLarge)?;
                let held = size.min(raw.len() - at);
                body.extend_from_slice(&raw[at..at + held]);
                at += held;
                let rest = (size - held) as u64;
                let before = body.len();
                reader
                    .take(rest)
                    .read_to_end(body)
                    .await
                    .map_err(|_| FetchError::Body)?;
                if ((body.len() - before) as u64) < rest {
                    return Err(FetchError::Body.into());
                }
                // the CRLF that ends the chunk's data
                while raw.len() - at < 2 {
                    refill(reader, &mut raw, &mut at).await?;
                }
                if &raw[at..at + 2] != b"\r\n" {
                    return Err(FetchError::Body.into());
                }
                at += 2;
            }
            Ok(httparse::Status::Partial) if raw.len() - at < MAX_CHUNK_LINE_BYTES => {
                refill(reader, &mut raw, &mut at).await?;
            }
            Ok(httparse::Status::Partial) | Err(_) => return Err(FetchError::Body.into()),
        }
    }
    // the trailer section: field lines up to an empty one
    let mut trailers = 0;
    loop {
        match raw[at..].windows(2).position(|pair| pair == b"\r\n") {
            Some(0) => return Ok(raw.len() == at + 2),
            Some(line) if trailers + line < MAX_HEAD_BYTES => {
                trailers += line + 2;
                at += line + 2;
            }
            None if raw.len() - at < MAX_CHUNK_LINE_BYTES => {
                refill(reader, &mut raw, &mut at).await?;
            }
            Some(_) | None => return Err(FetchError::Body.into()),
        }
    }
}

/// Drops what was read from `raw` (up to `at`) and reads more after the rest; the stream
/// ending here is the body breaking off.
async fn refill<R: AsyncRead + Unpin>(
    reader: &mut R,
    raw: &mut Vec<u8>,
    at: &mut usize,
) -> Result<(), FetchError> {
    raw.drain(..*at);
    *at = 0;
    match read_more(reader, raw).await? {
        0 => Err(FetchError::Body),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    //! The framing cases follow RFC 9112: §6.3 (message body length), §7.1 (chunked transfer
    //! coding), §9.3 (persistence) and §9.3.1 (retrying an idempotent request).

    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;

    /// A stream that gives its bytes in the pieces it was made of, one per read.
    struct Pieces(std::collections::VecDeque<Vec<u8>>);

    impl Pieces {
        fn whole(bytes: &[u8]) -> Pieces {
            Pieces([bytes.to_vec()].into())
        }

        /// `bytes` cut at each of `cuts` (positions inside it, any order; others ignored): no
        /// piece is empty, since an empty read is the end of the stream.
        fn cut(bytes: &[u8], cuts: &[usize]) -> Pieces {
            let mut cuts: Vec<usize> = cuts
                .iter()
                .copied()
                .filter(|cut| (1..bytes.len()).contains(cut))
                .collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut pieces = std::collections::VecDeque::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                pieces.push_back(bytes[from..cut].to_vec());
                from = cut;
            }
            Pieces(pieces)
        }
    }

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if let Some(mut piece) = self.0.pop_front() {
                let taken = piece.len().min(buf.remaining());
                buf.put_slice(&piece[..taken]);
                if taken < piece.len() {
                    self.0.push_front(piece.split_off(taken));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    async fn read(bytes: &[u8], max_bytes: usize) -> Result<Response, ReadError> {
        read_response(&mut Pieces::whole(bytes), max_bytes).await
    }

    async fn body(bytes: &[u8]) -> (String, bool) {
        let response = read(bytes, 1 << 20).await.expect("reads");
        let body = String::from_utf8(response.fetched.body).expect("text");
        (body, response.reusable)
    }

    #[test]
    fn a_request_names_its_host_and_goes_to_its_address() {
        for (url, authority, host, path) in [
            (
                "http://10.1.2.3:9400/metrics",
                "10.1.2.3:9400",
                "10.1.2.3:9400",
                "/metrics",
            ),
            (
                "http://[fd00::7]:9400/metrics",
                "[fd00::7]:9400",
                "[fd00::7]:9400",
                "/metrics",
            ),
            (
                "http://exporter.example/m?x=1",
                "exporter.example:80",
                "exporter.example",
                "/m?x=1",
            ),
            (
                "http://10.1.2.3:9400",
                "10.1.2.3:9400",
                "10.1.2.3:9400",
                "/",
            ),
        ] {
            let target = Target::of(url, "text/plain").expect("a target");
            assert_eq!(target.authority, authority);
            let request = String::from_utf8(target.request).expect("text");
            let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/plain\r\n");
            assert!(request.starts_with(&head), "{request}");
            assert!(request.ends_with("\r\n\r\n"), "{request}");
        }
        // the address connected to is the URL's own (IPv6 in brackets, as a socket address)
        let v6 = Target::of("http://[fd00::7]:9400/metrics", "*/*").expect("a target");
        assert!(v6.authority.parse::<std::net::SocketAddr>().is_ok());
    }

    #[tokio::test]
    async fn a_content_length_body_keeps_an_http_1_1_connection() {
        let (text, reusable) =
            body(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
                .await;
        assert_eq!((text.as_str(), reusable), ("hello", true));
        let response = read(b"HTTP/1.1 200 OK\r\nContent-Type: application/json; v=1\r\nX-Note: caf\xe9\r\nContent-Length: 2\r\n\r\n{}", 100)
            .await
            .expect("reads");
        assert_eq!(
            response.fetched.content_type.as_deref(),
            Some("application/json; v=1")
        );
    }

    #[tokio::test]
    async fn a_connection_is_kept_only_where_the_server_lets_it_and_the_body_ends_exactly() {
        for (answer, kept) in [
            (
                &b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"[..],
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok",
                false,
            ),
            // HTTP/1.0 persists only by a keep-alive this client does not ask for
            (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
            // no length: the body runs to the close
            (b"HTTP/1.1 200 OK\r\n\r\nok", false),
            // bytes past the body: not an answer to anything this client asked
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1",
                false,
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", true),
        ] {
            let (text, reusable) = body(answer).await;
            assert_eq!(text, "ok", "{}", String::from_utf8_lossy(answer));
            assert_eq!(reusable, kept, "{}", String::from_utf8_lossy(answer));
        }
    }

    #[tokio::test]
    async fn a_chunked_body_is_decoded_with_extensions_and_trailers() {
        let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nChecksum: 1\r\nMore: 2\r\n\r\n";
        assert_eq!(body(answer).await, ("hello world".to_string(), true));
        // Transfer-Encoding overrides Content-Length, and such a connection is not kept
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n\
            2\r\nok\r\n0\r\n\r\n";
        assert_eq!(body(both).await, ("ok".to_string(), false));
        // many small chunks in one read, each its own size line
        let mut many = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..10_000 {
            many.extend_from_slice(b"1\r\nx\r\n");
        }
        many.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(body(&many).await, ("x".repeat(10_000), true));
    }

    #[tokio::test]
    async fn informational_answers_are_skipped_and_204_has_no_body() {
        let answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nend";
        assert_eq!(body(answer).await, ("end".to_string(), true));
        assert_eq!(
            body(b"HTTP/1.1 204 No Content\r\n\r\n").await,
            (String::new(), true)
        );
    }

    #[tokio::test]
    async fn what_is_refused_says_why() {
        let failed = |error| Err(ReadError::Failed(error));
        let cases: &[(&[u8], Result<(), ReadError>)] = &[
            (b"", Err(ReadError::NoAnswer)),
            (b"HTTP/1.1 200 O", failed(FetchError::Body)),
            (b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n", failed(FetchError::Redirect(302))),
            (b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n", failed(FetchError::Status(503))),
            (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", failed(FetchError::Status(101))),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", failed(FetchError::TooLarge)),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhal", failed(FetchError::Body)),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nhal", failed(FetchError::Body)),
            (b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\nhal", failed(FetchError::Body)),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", failed(FetchError::Body)),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nabcdefgh\r\n8\r\nabcdefgh\r\n0\r\n\r\n", failed(FetchError::TooLarge)),
            (b"HTTP/1.1 200 OK\r\n\r\n0123456789ABC", failed(FetchError::TooLarge)),
            // Content-Length is digits only
            (b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nhal", failed(FetchError::Body)),
            // codings this client never asked for, or chunked from an HTTP/1.0 server (§6.1)
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nraw", failed(FetchError::Body)),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", failed(FetchError::Body)),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", failed(FetchError::Body)),
            (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", failed(FetchError::Body)),
            // a chunk size has at least one digit (§7.1); httparse alone reads these as 0
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n\r\n\r\n", failed(FetchError::Body)),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;ext\r\n\r\n", failed(FetchError::Body)),
            // a chunk that ends before its size
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc", failed(FetchError::Body)),
        ];
        for (answer, expected) in cases {
            let got = read(answer, 10).await.map(|_| ());
            assert_eq!(&got, expected, "{}", String::from_utf8_lossy(answer));
        }
        // a size near the largest there is, with no cap to speak of, neither overflows nor
        // waits for data that never comes
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffe\r\nab";
        assert_eq!(
            read(huge, usize::MAX).await.map(|_| ()),
            failed(FetchError::Body)
        );
        let until_close = b"HTTP/1.1 200 OK\r\n\r\nall of it";
        let response = read(until_close, usize::MAX).await.expect("reads");
        assert_eq!(response.fetched.body, b"all of it");
    }

    /// A body as chunks of the given sizes (the rest in a last one), after a head.
    fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
        let mut answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut rest = body;
        for size in sizes.iter().copied().chain([usize::MAX]) {
            let (chunk, after) = rest.split_at(size.min(rest.len()));
            if !chunk.is_empty() {
                answer.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                answer.extend_from_slice(chunk);
                answer.extend_from_slice(b"\r\n");
            }
            rest = after;
        }
        answer.extend_from_slice(b"0\r\n\r\n");
        answer
    }

    proptest::proptest! {
        #[test]
        fn any_answer_read_in_any_pieces_gives_the_same_body(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..3000),
            sizes in proptest::collection::vec(1usize..700, 0..8),
            cuts in proptest::collection::vec(0usize..4000, 0..12),
            by_length in proptest::bool::ANY,
        ) {
            let answer = if by_length {
                let mut answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
                answer.extend_from_slice(&body);
                answer
            } else {
                chunked(&body, &sizes)
            };
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let response = runtime
                .block_on(read_response(&mut Pieces::cut(&answer, &cuts), 1 << 20))
                .expect("reads");
            proptest::prop_assert_eq!(response.fetched.body, body);
            proptest::prop_assert!(response.reusable);
        }

        /// Valid answers, then bytes overwritten and the end cut off: whatever is read from
        /// them stays within the cap, and a connection is kept only after a body that ended
        /// exactly as framed.
        #[test]
        fn damaged_answers_never_panic_or_pass_the_cap(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            sizes in proptest::collection::vec(1usize..100, 0..6),
            by_length in proptest::bool::ANY,
            damage in proptest::collection::vec((0usize..600, proptest::num::u8::ANY), 0..4),
            keep in 0usize..700,
            cuts in proptest::collection::vec(0usize..600, 0..6),
            cap in 0usize..400,
        ) {
            let mut answer = if by_length {
                let mut answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
                answer.extend_from_slice(&body);
                answer
            } else {
                chunked(&body, &sizes)
            };
            for (at, byte) in damage {
                if let Some(place) = answer.get_mut(at) {
                    *place = byte;
                }
            }
            answer.truncate(keep);
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            if let Ok(response) = runtime.block_on(read_response(&mut Pieces::cut(&answer, &cuts), cap)) {
                proptest::prop_assert!(response.fetched.body.len() <= cap);
            }
        }

        #[test]
        fn no_bytes_make_it_panic_or_pass_the_cap(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..6),
        ) {
            let mut answer = b"HTTP/1.1 200 OK\r\n".to_vec();
            answer.extend_from_slice(&bytes);
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            if let Ok(response) = runtime.block_on(read_response(&mut Pieces::cut(&answer, &cuts), 64)) {
                proptest::prop_assert!(response.fetched.body.len() <= 64);
            }
        }
    }

    /// What the test server does with the requests on a connection.
    #[derive(Clone, Copy)]
    enum Serving {
        /// Answers each.
        Each,
        /// Answers the first and closes the connection, without saying so (as a server
        /// closing an idle connection does).
        CloseAfterOne,
        /// Answers the first; takes the second and closes without answering, or resets the
        /// connection (a close that raced the request).
        DropSecond { reset: bool },
    }

    const PAGE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npage";

    /// A server on loopback serving [`PAGE`] as `serving` says, counting the connections it
    /// accepted.
    async fn server(serving: Serving) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let url = format!("http://{}/metrics", listener.local_addr().expect("address"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut request, mut answered) = (Vec::new(), 0);
                    let mut piece = [0u8; 1024];
                    while let Ok(read) = stream.read(&mut piece).await {
                        if read == 0 {
                            return;
                        }
                        request.extend_from_slice(&piece[..read]);
                        if !request.ends_with(b"\r\n\r\n") {
                            continue;
                        }
                        request.clear();
                        if let (Serving::DropSecond { reset }, 1) = (serving, answered) {
                            if reset {
                                let _ = stream.set_zero_linger();
                            }
                            return; // dropped: closed, or reset
                        }
                        if stream.write_all(PAGE).await.is_err() {
                            return;
                        }
                        answered += 1;
                        if let Serving::CloseAfterOne = serving {
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    async fn fetch_page(client: &KeptAliveClient, url: &str) {
        let fetched = client
            .fetch_accepting(url, "text/plain", 100)
            .await
            .expect("fetches");
        assert_eq!(fetched.body, b"page");
    }

    #[tokio::test]
    async fn one_connection_carries_every_fetch_from_a_server() {
        use std::sync::atomic::Ordering;
        let (url, accepted) = server(Serving::Each).await;
        let client = KeptAliveClient::new(Duration::from_secs(5));
        for _ in 0..5 {
            fetch_page(&client, &url).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(client.kept(), 1);
    }

    #[tokio::test]
    async fn a_connection_its_server_closed_while_idle_is_not_sent_on() {
        use std::sync::atomic::Ordering;
        let (url, accepted) = server(Serving::CloseAfterOne).await;
        let client = KeptAliveClient::new(Duration::from_secs(5));
        for fetches in 1..=3 {
            fetch_page(&client, &url).await;
            assert_eq!(client.kept(), 1, "kept: the server did not say it closes");
            // the server's close reaches the client before its next fetch
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!(accepted.load(Ordering::SeqCst), fetches);
        }
    }

    #[tokio::test]
    async fn a_close_or_reset_that_races_the_request_sends_it_again_on_a_new_connection() {
        use std::sync::atomic::Ordering;
        for reset in [false, true] {
            let (url, accepted) = server(Serving::DropSecond { reset }).await;
            let client = KeptAliveClient::new(Duration::from_secs(5));
            fetch_page(&client, &url).await;
            assert_eq!(client.kept(), 1);
            // sent on the kept connection, which the server drops unanswered: sent again
            fetch_page(&client, &url).await;
            assert_eq!(accepted.load(Ordering::SeqCst), 2, "reset: {reset}");
        }
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out_and_a_bad_url_cannot_connect() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let url = format!("http://{}/metrics", listener.local_addr().expect("address"));
        let client = KeptAliveClient::new(Duration::from_millis(200));
        assert_eq!(
            client.fetch_accepting(&url, "text/plain", 100).await.err(),
            Some(FetchError::Timeout)
        );
        for url in ["https://127.0.0.1/metrics", "http:///metrics", "not a url"] {
            assert_eq!(
                client.fetch_accepting(url, "text/plain", 100).await.err(),
                Some(FetchError::Connect),
                "{url}"
            );
        }
        assert_eq!(
            client
                .fetch_accepting(&url, "text/plain\r\nX: y", 100)
                .await
                .err(),
            Some(FetchError::Connect)
        );
        drop(listener);
    }
}
