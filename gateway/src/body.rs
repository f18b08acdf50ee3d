//! The bodies that flow through the proxy, wrapped without copying:
//! * [`ReqBody`] — the client's request body on its way upstream, cut off with
//!   [`BodyError::TooLarge`] past `max_body_bytes` (bodies without a `Content-Length`, or that
//!   lie about it);
//! * [`GatewayBody`] — what the client receives: a backend's body (which hands its connection
//!   back to the pool at end of stream) or a small fixed body (problem documents). It also holds
//!   the request's [`InflightGuard`], so the slow-client clock restarts only once the response
//!   is complete.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

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
    /// The client's stream failed.
    #[error("reading the request body: {0}")]
    Client(#[from] hyper::Error),
}

/// A client body with a byte limit.
#[derive(Debug)]
pub(crate) struct ReqBody {
    inner: Incoming,
    remaining: u64,
    limit: u64,
}

impl ReqBody {
    pub(crate) fn new(inner: Incoming, limit: u64) -> ReqBody {
        ReqBody {
            inner,
            remaining: limit,
            limit,
        }
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
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
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
