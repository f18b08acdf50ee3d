//! The bodies that flow through the proxy, wrapped without copying:
//! * [`ReqBody`] — the client's request body on its way upstream, cut off with
//!   [`BodyError::TooLarge`] past `max_body_bytes` (bodies without a `Content-Length`, or that
//!   lie about it) and with [`BodyError::TimedOut`] when it is not complete by its deadline
//!   (`body_read_timeout_ms` from the head). Its errors are the client's: `upstream` maps them
//!   to 413 / 400 / 408, never to a backend failure;
//! * [`GatewayBody`] — what the client receives: a backend's body (which hands its connection
//!   back to the pool at end of stream) or a small fixed body (problem documents). It also holds
//!   the request's [`InflightGuard`], so the slow-client clock restarts only once the response
//!   is complete. A fault on the request ([`crate::fault`]) paces or cuts the backend's body
//!   here ([`Shape`]), and the request's journal record is pushed when the body ends or fails
//!   (before its last bytes are written, so a client that read the whole response finds it).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::io::InflightGuard;
use crate::journal::{Journal, Record};
use crate::upstream::Checkout;

/// Why a request body could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// More than `max_body_bytes` arrived.
    #[error("request body exceeds {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The body was not complete by its deadline.
    #[error("request body not received within {limit:?}")]
    TimedOut {
        /// `body_read_timeout`.
        limit: Duration,
    },
    /// The client's stream failed: malformed chunked framing, a body cut short, a reset
    /// stream.
    #[error("reading the request body: {0}")]
    Client(#[from] hyper::Error),
}

/// A client body with a byte limit and a deadline.
#[derive(Debug)]
pub(crate) struct ReqBody {
    inner: Incoming,
    remaining: u64,
    limit: u64,
    /// When the whole body must have arrived.
    deadline: Instant,
    timeout: Duration,
    /// Armed only the first time the body waits on the client: bodies already buffered with
    /// their head (and bodiless requests) never touch the timer wheel.
    timer: Option<Pin<Box<Sleep>>>,
}

impl ReqBody {
    /// `timeout` runs from `since` (when the head was handed to the proxy).
    pub(crate) fn new(inner: Incoming, limit: u64, since: Instant, timeout: Duration) -> ReqBody {
        ReqBody {
            inner,
            remaining: limit,
            limit,
            deadline: since + timeout,
            timeout,
            timer: None,
        }
    }

    /// Ready (an error) once the deadline passed; arms the timer on first use.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<BodyError> {
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(BodyError::TimedOut {
            limit: self.timeout,
        })
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let polled = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(p) => p,
            Poll::Pending => {
                // Waiting on the client: the deadline wakes us if it comes first.
                let e = ready!(this.poll_deadline(cx));
                return Poll::Ready(Some(Err(e)));
            }
        };
        match polled {
            None => Poll::Ready(None),
            Some(Err(e)) => Poll::Ready(Some(Err(BodyError::Client(e)))),
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref() {
                    let n = d.len() as u64;
                    if n > this.remaining {
                        return Poll::Ready(Some(Err(BodyError::TooLarge { limit: this.limit })));
                    }
                    this.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

enum Kind {
    Full(Option<Bytes>),
    Upstream {
        body: Incoming,
        /// The connection, handed back to its pool at end of stream.
        checkout: Option<Checkout>,
    },
}

/// The error of a response body: the backend's body failed, or a fault cut it.
pub type BodyFailure = Box<dyn std::error::Error + Send + Sync>;

/// How a fault changes the backend's body on its way to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Pieces of at most `piece` bytes, each after `pause` (`slow_body`, `bandwidth`).
    Pace { piece: usize, pause: Duration },
    /// At most `after` bytes and never the last one, then the body fails (`close_mid_body`).
    Cut { after: u64 },
}

/// How long a cut body waits after its last bytes before it fails (`close_mid_body`): the
/// server flushes what it holds while the body is pending.
const CUT_FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// The fault cut the body (`close_mid_body`).
#[derive(Debug, thiserror::Error)]
#[error("the fault `{0}` closed the backend connection mid-body")]
pub(crate) struct CutByFault(pub(crate) Arc<str>);

struct Shaper {
    shape: Shape,
    fault: Arc<str>,
    /// Data received from the backend and not yet passed on.
    pending: Option<Bytes>,
    timer: Option<Pin<Box<Sleep>>>,
    sent: u64,
    /// `Cut`: the next poll fails.
    cut: bool,
}

/// The request's journal record, pushed once when the body ends, fails or is dropped.
struct Ticket {
    journal: Arc<Journal>,
    record: Record,
    start: std::time::Instant,
    cap: usize,
}

/// The response body the client receives.
pub struct GatewayBody {
    kind: Kind,
    guard: Option<InflightGuard>,
    shaper: Option<Box<Shaper>>,
    /// Inline (no allocation per request): the record is a few words.
    ticket: Option<Ticket>,
}

impl std::fmt::Debug for GatewayBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayBody").finish_non_exhaustive()
    }
}

impl From<Bytes> for GatewayBody {
    fn from(b: Bytes) -> Self {
        GatewayBody {
            kind: Kind::Full((!b.is_empty()).then_some(b)),
            guard: None,
            shaper: None,
            ticket: None,
        }
    }
}

// === impl GatewayBody ===

impl GatewayBody {
    /// A backend's body; `checkout` returns to its pool when the body ends.
    pub(crate) fn upstream(body: Incoming, checkout: Checkout) -> GatewayBody {
        let mut b = GatewayBody {
            kind: Kind::Upstream {
                body,
                checkout: Some(checkout),
            },
            guard: None,
            shaper: None,
            ticket: None,
        };
        b.release_if_done();
        b
    }

    /// Paces or cuts the body as the fault `fault` says.
    pub(crate) fn shape(&mut self, shape: Shape, fault: Arc<str>) {
        self.shaper = Some(Box::new(Shaper {
            shape,
            fault,
            pending: None,
            timer: None,
            sent: 0,
            cut: false,
        }));
    }

    /// Attaches the request's in-flight guard (dropped at end of stream).
    pub(crate) fn set_guard(&mut self, guard: InflightGuard) {
        self.guard = Some(guard);
    }

    /// Attaches the request's journal record; a body that has already ended records it now.
    pub(crate) fn set_journal(
        &mut self,
        journal: Arc<Journal>,
        record: Record,
        start: std::time::Instant,
        cap: usize,
    ) {
        if cap == 0 {
            return;
        }
        self.ticket = Some(Ticket {
            journal,
            record,
            start,
            cap,
        });
        if self.is_end_stream() {
            self.record();
        }
    }

    /// Pushes the journal record (once).
    fn record(&mut self) {
        if let Some(t) = self.ticket.take() {
            let Ticket {
                journal,
                mut record,
                start,
                cap,
            } = t;
            record.duration = start.elapsed();
            journal.push(record, cap);
        }
    }

    fn count(&mut self, n: usize) {
        if let Some(t) = &mut self.ticket {
            t.record.bytes += n as u64;
        }
    }

    fn release_if_done(&mut self) {
        if let Kind::Upstream { body, checkout } = &mut self.kind {
            if body.is_end_stream() && self.shaper.as_ref().is_none_or(|s| s.pending.is_none()) {
                if let Some(c) = checkout.take() {
                    c.release();
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Kind::Upstream { checkout, .. } = &mut self.kind {
            if let Some(c) = checkout.take() {
                c.release();
            }
        }
        self.guard = None;
        self.record();
    }

    fn poll_inner(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyFailure>>> {
        let Some(sh) = self.shaper.as_deref_mut() else {
            return match &mut self.kind {
                Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
                Kind::Upstream { body, .. } => Pin::new(body)
                    .poll_frame(cx)
                    .map(|o| o.map(|r| r.map_err(BodyFailure::from))),
            };
        };
        let Kind::Upstream { body, .. } = &mut self.kind else {
            return Poll::Ready(None);
        };
        if sh.cut {
            // Let the server flush the head and the bytes sent before the connection closes
            // (an error of the body aborts it, dropping whatever is still buffered).
            let timer = sh
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(CUT_FLUSH_PAUSE)));
            ready!(timer.as_mut().poll(cx));
            sh.timer = None;
            return Poll::Ready(Some(Err(Box::new(CutByFault(sh.fault.clone())))));
        }
        loop {
            if let Some(buf) = &mut sh.pending {
                match sh.shape {
                    Shape::Pace { piece, pause } => {
                        let timer = sh
                            .timer
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep(pause)));
                        ready!(timer.as_mut().poll(cx));
                        sh.timer = None;
                        let out = buf.split_to(piece.min(buf.len()));
                        if buf.is_empty() {
                            sh.pending = None;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                    Shape::Cut { after } => {
                        // Never the whole body: at most `after` bytes and never the last one.
                        let left =
                            usize::try_from(after.saturating_sub(sh.sent)).unwrap_or(usize::MAX);
                        let last = usize::from(body.is_end_stream());
                        let n = left.min(buf.len().saturating_sub(last));
                        if n == buf.len() {
                            let out = sh.pending.take().unwrap_or_default();
                            sh.sent += out.len() as u64;
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                        let out = buf.split_to(n);
                        sh.cut = true;
                        sh.pending = None;
                        if n == 0 {
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        sh.sent += n as u64;
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
            }
            match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(d) if d.is_empty() => {}
                    Ok(d) => sh.pending = Some(d),
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                None if matches!(sh.shape, Shape::Cut { .. }) => {
                    // An empty or already-sent body still ends cut, never complete.
                    sh.cut = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                other => return Poll::Ready(other.map(|r| r.map_err(BodyFailure::from))),
            }
        }
    }
}

impl Drop for GatewayBody {
    fn drop(&mut self) {
        // A body dropped before its end leaves the upstream connection mid-message: the
        // checkout is dropped (the connection closes) unless the body had already ended.
        self.release_if_done();
        self.record();
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BodyFailure;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyFailure>>> {
        let this = &mut *self;
        let polled = this.poll_inner(cx);
        match &polled {
            Poll::Ready(None) => this.finish(),
            Poll::Ready(Some(Err(_))) => {
                if let Kind::Upstream { checkout, .. } = &mut this.kind {
                    // A broken body: the connection is not reusable.
                    checkout.take();
                }
                this.guard = None;
                this.record();
            }
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    this.count(d.len());
                }
                if this.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        if let Some(sh) = &self.shaper {
            if sh.pending.is_some() || matches!(sh.shape, Shape::Cut { .. }) {
                return false;
            }
        }
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let pending = self
            .shaper
            .as_ref()
            .and_then(|s| s.pending.as_ref())
            .map_or(0, |b| b.len() as u64);
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream { body, .. } => {
                let h = body.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(h.lower() + pending);
                if let Some(u) = h.upper() {
                    out.set_upper(u + pending);
                }
                out
            }
        }
    }
}
