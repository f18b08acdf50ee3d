//! The bodies that flow through the proxy, wrapped without copying:
//! * [`ReqBody`] — the client's request body on its way upstream, cut off with
//!   [`BodyError::TooLarge`] past `max_body_bytes` (bodies without a `Content-Length`, or that
//!   lie about it) and with [`BodyError::TimedOut`] when it is not complete by its deadline
//!   (`body_read_timeout_ms` from the head). Its errors are the client's: `upstream` maps them
//!   to 413 / 400 / 408, never to a backend failure;
//! * [`GatewayBody`] — what the client receives: a backend's body (which hands its connection
//!   back to the pool at end of stream) or a small fixed body (problem documents). It also holds
//!   the request's [`InflightGuard`], so the slow-client clock restarts only once the response
//!   is complete.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::io::InflightGuard;
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

/// The response body the client receives.
pub struct GatewayBody {
    kind: Kind,
    guard: Option<InflightGuard>,
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
        };
        b.release_if_done();
        b
    }

    /// Attaches the request's in-flight guard (dropped at end of stream).
    pub(crate) fn set_guard(&mut self, guard: InflightGuard) {
        self.guard = Some(guard);
    }

    fn release_if_done(&mut self) {
        if let Kind::Upstream { body, checkout } = &mut self.kind {
            if body.is_end_stream() {
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
    }
}

impl Drop for GatewayBody {
    fn drop(&mut self) {
        // A body dropped before its end leaves the upstream connection mid-message: the
        // checkout is dropped (the connection closes) unless the body had already ended.
        self.release_if_done();
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = match &mut this.kind {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream { body, .. } => Pin::new(body).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(None) => this.finish(),
            Poll::Ready(Some(Err(_))) => {
                if let Kind::Upstream { checkout, .. } = &mut this.kind {
                    // A broken body: the connection is not reusable.
                    checkout.take();
                }
                this.guard = None;
            }
            Poll::Ready(Some(Ok(_))) => {
                if this.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream { body, .. } => body.size_hint(),
        }
    }
}
