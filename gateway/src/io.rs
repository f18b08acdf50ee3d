//! The slow-client guard: [`TimedIo`] wraps a client connection and enforces the header-read
//! timeout itself, because hyper's own timeout closes the socket without an answer and the
//! contract is "408 `CLIENT_TIMEOUT`, then close".
//!
//! The clock runs whenever no request of the connection is being served ([`ConnState`] counts
//! requests in flight; the proxy holds an [`InflightGuard`] from the moment hyper hands it a
//! parsed head until the response body ends). It restarts each time the connection becomes
//! idle, so it is also the keep-alive idle limit. When it expires:
//! * HTTP/1, with part of a head received, or before the first request: a complete
//!   `408` problem response is written and the connection is closed;
//! * HTTP/1 idle between requests: closed silently (an unsolicited 408 there races with the
//!   client's next request);
//! * HTTP/2 (detected from the connection preface, or ALPN): a request head arrives in one
//!   HEADERS block, so the guard is on the connection: no preface or no stream within the
//!   limit → closed.
//!
//! It also gives hyper's own refusals of an HTTP/1 head the gateway's answer. hyper refuses a
//! head with more than [`crate::config::MAX_HEADER_FIELDS`] fields, or one that does not fit
//! its read buffer, before the service ever sees it, and writes a bare `431` with no body.
//! That write is recognised here — a `431` status line written while no request of this
//! connection has reached the service since the connection last became idle — and replaced
//! by the `application/problem+json` answer of `HEADERS_TOO_LARGE`, then the connection closes.
//! Either answer is recorded in [`ConnState`] for the client-fault counter.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::error::{ErrorCode, ProxyError};
use crate::lock;

/// A deadline clock re-armed lazily: one timer entry that may be armed *earlier* than the
/// deadline it is asked about (a previous request's, a previous idle period's) and is moved
/// only when it fires early. Callers whose deadlines only move forward (each request on a
/// connection, each idle period) touch the timer wheel about once per timeout, not once per
/// request.
#[derive(Debug)]
pub(crate) struct LazyClock(Pin<Box<Sleep>>);

impl LazyClock {
    /// A clock armed in the past: the first deadline asked about arms it.
    pub(crate) fn new() -> LazyClock {
        LazyClock(Box::pin(tokio::time::sleep_until(Instant::now())))
    }

    /// Ready once `deadline` has passed (never earlier, never much later).
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        loop {
            ready!(self.0.as_mut().poll(cx));
            if self.0.deadline() >= deadline {
                return Poll::Ready(());
            }
            // Armed for an earlier deadline: wait for this one.
            self.0.as_mut().reset(deadline);
        }
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Requests in flight on one client connection, shared by [`TimedIo`] and the service.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    inflight: AtomicUsize,
    /// Requests handed to the service so far: a write with no new request since the
    /// connection became idle can only be hyper answering a head it refused.
    begun: AtomicU64,
    /// The refusal [`TimedIo`] wrote itself (408 or 431), for the client-fault counter.
    answered: Mutex<Option<ErrorCode>>,
    /// Bumped each time the connection becomes idle; [`TimedIo`] restarts its clock on change.
    idle_epoch: AtomicU64,
    /// The connection task, when it last read while a request was in flight (its clock was not
    /// armed then): woken when the connection becomes idle, so that the idle clock starts even
    /// if hyper does not read again on its own.
    reader: Mutex<Option<Waker>>,
}

impl ConnState {
    /// Marks a request as in flight until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> InflightGuard {
        self.begun.fetch_add(1, Ordering::AcqRel);
        self.inflight.fetch_add(1, Ordering::AcqRel);
        InflightGuard(self.clone())
    }

    /// The refusal the connection guard answered itself, if any (read when the connection
    /// ends).
    pub(crate) fn answered(&self) -> Option<ErrorCode> {
        *lock(&self.answered)
    }
}

/// Holds a request in flight (see [`ConnState`]).
#[derive(Debug)]
pub(crate) struct InflightGuard(Arc<ConnState>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_epoch.fetch_add(1, Ordering::AcqRel);
            let reader = lock(&self.0.reader).take();
            if let Some(w) = reader {
                w.wake();
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Clear text, protocol not known yet (`matched` preface bytes so far).
    Detect {
        matched: usize,
    },
    Http1,
    Http2,
}

enum Phase {
    Active,
    /// Writing the guard's own answer (408 or 431), then closing.
    Answering {
        bytes: Bytes,
        pos: usize,
    },
    Closed,
}

/// A client connection with the header-read deadline (see the module docs).
pub(crate) struct TimedIo<T> {
    inner: T,
    state: Arc<ConnState>,
    timeout: Duration,
    /// `max_header_bytes`, named in the 431 answer.
    head_limit: usize,
    /// [`ConnState::begun`] when the connection last became idle.
    begun_at_idle: u64,
    /// The deadline is `idle_since + timeout`; the clock is re-armed lazily, not on every
    /// request (each reset is a timer-wheel removal and insertion).
    clock: LazyClock,
    /// When the connection last became idle (or was accepted).
    idle_since: Instant,
    seen_epoch: u64,
    served_any: bool,
    head_bytes: usize,
    mode: Mode,
    phase: Phase,
}

// === impl TimedIo ===

impl<T> TimedIo<T> {
    /// Wraps `inner`; `h2` is true when ALPN already chose HTTP/2. `timeout`: the header-read
    /// timeout; `head_limit`: `max_header_bytes`.
    pub(crate) fn new(
        inner: T,
        state: Arc<ConnState>,
        timeout: Duration,
        head_limit: usize,
        h2: Option<bool>,
    ) -> Self {
        TimedIo {
            inner,
            state,
            timeout,
            head_limit,
            begun_at_idle: 0,
            clock: LazyClock::new(),
            idle_since: Instant::now(),
            seen_epoch: 0,
            served_any: false,
            head_bytes: 0,
            mode: match h2 {
                Some(true) => Mode::Http2,
                Some(false) => Mode::Http1,
                None => Mode::Detect { matched: 0 },
            },
            phase: Phase::Active,
        }
    }

    fn observe(&mut self, data: &[u8]) {
        if self.state.inflight.load(Ordering::Acquire) == 0 {
            self.head_bytes = self.head_bytes.saturating_add(data.len());
        }
        if let Mode::Detect { matched } = self.mode {
            let want = &H2_PREFACE[matched..];
            let n = want.len().min(data.len());
            self.mode = if data[..n] != want[..n] {
                Mode::Http1
            } else if matched + n == H2_PREFACE.len() {
                Mode::Http2
            } else {
                Mode::Detect {
                    matched: matched + n,
                }
            };
        }
    }

    fn on_deadline(&mut self) -> Phase {
        let answer = match self.mode {
            Mode::Http2 => false,
            Mode::Detect { matched } if matched > 0 => false,
            Mode::Http1 | Mode::Detect { .. } => self.head_bytes > 0 || !self.served_any,
        };
        if !answer {
            return Phase::Closed;
        }
        self.answer(&ProxyError::ClientTimeout {
            limit_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Whether hyper is writing its own refusal of a head: a `431` status line while no
    /// request has reached the service since the connection became idle (hyper calls the
    /// service for every head it accepts, and writes nothing else before one).
    ///
    /// Internal: `begun_at_idle` moves in `poll_read`, and hyper reads between the end of a
    /// response's body and the last write of it only when the socket pushed back; such a
    /// continuation write would also have to start with a `431` status line to be taken for
    /// hyper's.
    fn is_hyper_refusal(&self, buf: &[u8]) -> bool {
        self.mode != Mode::Http2
            && (buf.starts_with(b"HTTP/1.1 431 ") || buf.starts_with(b"HTTP/1.0 431 "))
            && self.state.inflight.load(Ordering::Acquire) == 0
            && self.state.begun.load(Ordering::Acquire) == self.begun_at_idle
    }

    /// The phase that writes `err` as a complete HTTP/1.1 answer, then closes.
    fn answer(&self, err: &ProxyError) -> Phase {
        *lock(&self.state.answered) = Some(err.code());
        let status = err.status();
        let body = err.problem().to_bytes();
        let mut head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or(""),
            crate::error::PROBLEM_JSON,
            body.len()
        )
        .into_bytes();
        head.extend_from_slice(&body);
        Phase::Answering {
            bytes: Bytes::from(head),
            pos: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> TimedIo<T> {
    /// Writes the rest of the guard's answer and flushes it (no-op in other phases).
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Phase::Answering { bytes, pos } = &mut self.phase {
            while *pos < bytes.len() {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*pos..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *pos += n;
            }
            ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "request head not received in time")
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Closed => return Poll::Ready(Err(timed_out())),
                Phase::Answering { .. } => {
                    ready!(this.poll_answer(cx))?;
                    let _ = Pin::new(&mut this.inner).poll_shutdown(cx);
                    this.phase = Phase::Closed;
                }
                Phase::Active => {
                    let epoch = this.state.idle_epoch.load(Ordering::Acquire);
                    if epoch != this.seen_epoch {
                        this.seen_epoch = epoch;
                        this.served_any = true;
                        this.head_bytes = 0;
                        this.idle_since = Instant::now();
                        this.begun_at_idle = this.state.begun.load(Ordering::Acquire);
                    }
                    let busy = this.state.inflight.load(Ordering::Acquire) > 0;
                    if !busy
                        && this
                            .clock
                            .poll_expired(cx, this.idle_since + this.timeout)
                            .is_ready()
                    {
                        this.phase = this.on_deadline();
                        continue;
                    }
                    let before = buf.filled().len();
                    let read = Pin::new(&mut this.inner).poll_read(cx, buf);
                    if read.is_pending() && busy {
                        // Waiting on the socket alone: have the request's end wake us (see
                        // `ConnState::reader`). Checked again after registering, in case the
                        // request ended in between.
                        let mut reader = lock(&this.state.reader);
                        if !reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                            *reader = Some(cx.waker().clone());
                        }
                        drop(reader);
                        if this.state.inflight.load(Ordering::Acquire) == 0 {
                            continue;
                        }
                    }
                    ready!(read)?;
                    let new = &buf.filled()[before..];
                    if !new.is_empty() {
                        this.observe(new);
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.phase {
            Phase::Active if this.is_hyper_refusal(buf) => {
                this.phase = this.answer(&ProxyError::HeadRefused {
                    limit: this.head_limit,
                    max_fields: crate::config::MAX_HEADER_FIELDS,
                });
                // hyper's bytes are taken as written; ours go out on its flush.
                Poll::Ready(Ok(buf.len()))
            }
            Phase::Active => Pin::new(&mut this.inner).poll_write(cx, buf),
            // Nothing follows the guard's own answer on this connection.
            Phase::Answering { .. } | Phase::Closed => Poll::Ready(Ok(buf.len())),
        }
    }

    // Internal: no `poll_write_vectored`, so every write passes `poll_write` and its check
    // (the front door's hyper is built with `writev(false)` anyway).

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_answer(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_answer(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(h2: Option<bool>) -> TimedIo<tokio::io::DuplexStream> {
        let (a, _b) = tokio::io::duplex(64);
        TimedIo::new(a, Arc::default(), Duration::from_secs(1), 4096, h2)
    }

    #[tokio::test]
    async fn the_h2_preface_is_detected_across_reads() {
        let mut t = io(None);
        t.observe(b"PRI * HTTP/2");
        assert_eq!(t.mode, Mode::Detect { matched: 12 });
        t.observe(b".0\r\n\r\nSM\r\n\r\n");
        assert_eq!(t.mode, Mode::Http2);
        let mut t = io(None);
        t.observe(b"GET / HTTP/1.1\r\n");
        assert_eq!(t.mode, Mode::Http1);
    }

    #[tokio::test]
    async fn only_http1_heads_get_a_408() {
        // Part of an HTTP/1 head: answer 408.
        let mut t = io(None);
        t.observe(b"GET / HT");
        assert!(matches!(t.on_deadline(), Phase::Answering { .. }));
        assert_eq!(t.state.answered(), Some(ErrorCode::ClientTimeout));
        // A fresh connection that sent nothing: answer 408 as well.
        assert!(matches!(io(None).on_deadline(), Phase::Answering { .. }));
        // HTTP/2 (ALPN or partial preface): close without HTTP/1 text.
        assert!(matches!(io(Some(true)).on_deadline(), Phase::Closed));
        let mut t = io(None);
        t.observe(b"PRI *");
        assert!(matches!(t.on_deadline(), Phase::Closed));
        // Idle between requests: close silently.
        let mut t = io(Some(false));
        t.served_any = true;
        assert!(matches!(t.on_deadline(), Phase::Closed));
    }

    struct Count(AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// A read that waited on the socket while a request was in flight is woken when the
    /// request ends (hyper need not read again by itself), and the idle clock then closes the
    /// connection. Without the wake-up the connection stayed open until the client left.
    #[tokio::test(start_paused = true)]
    async fn the_end_of_a_request_wakes_a_reader_waiting_on_the_socket() {
        use tokio::io::AsyncReadExt as _;
        let (a, _b) = tokio::io::duplex(64);
        let state = Arc::new(ConnState::default());
        let mut t = TimedIo::new(a, state.clone(), Duration::from_secs(1), 4096, Some(false));
        let guard = state.begin();
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(woken.clone());
        let mut buf = [0u8; 8];
        let mut rb = ReadBuf::new(&mut buf);
        let polled = Pin::new(&mut t).poll_read(&mut Context::from_waker(&waker), &mut rb);
        assert!(polled.is_pending());
        assert_eq!(woken.0.load(Ordering::Acquire), 0);
        drop(guard);
        assert_eq!(
            woken.0.load(Ordering::Acquire),
            1,
            "the request's end woke the reader"
        );
        let start = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(10), t.read(&mut buf)).await;
        let err = r
            .expect("closed by the idle limit")
            .expect_err("closed, not data");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    /// hyper's bare 431 for a head it refused becomes the problem document; the same bytes
    /// written once a request reached the service (a backend's 431, passed through) do not.
    #[tokio::test]
    async fn hypers_own_431_becomes_a_problem_document() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        let (a, mut b) = tokio::io::duplex(4096);
        let state = Arc::new(ConnState::default());
        let mut t = TimedIo::new(a, state.clone(), Duration::from_secs(1), 4096, Some(false));
        t.write_all(bare).await.unwrap();
        t.flush().await.unwrap();
        t.shutdown().await.unwrap();
        let mut out = String::new();
        b.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(out.contains("application/problem+json"), "{out}");
        assert!(out.contains("\"code\":\"HEADERS_TOO_LARGE\""), "{out}");
        assert_eq!(state.answered(), Some(ErrorCode::HeadersTooLarge));

        // A request reached the service: the write is the service's, passed through as is.
        let (a, mut b) = tokio::io::duplex(4096);
        let state = Arc::new(ConnState::default());
        let mut t = TimedIo::new(a, state.clone(), Duration::from_secs(1), 4096, Some(false));
        drop(state.begin());
        t.write_all(bare).await.unwrap();
        t.shutdown().await.unwrap();
        let mut out = Vec::new();
        b.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, bare);
        assert_eq!(state.answered(), None);
    }

    #[test]
    fn guards_count_requests_in_flight() {
        let s = Arc::new(ConnState::default());
        let a = s.begin();
        let b = s.begin();
        drop(a);
        assert_eq!(s.idle_epoch.load(Ordering::Acquire), 0);
        drop(b);
        assert_eq!(s.idle_epoch.load(Ordering::Acquire), 1);
    }
}
