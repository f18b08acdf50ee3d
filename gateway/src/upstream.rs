//! Upstream connections: per-backend keep-alive pools of `hyper::client::conn::http1`
//! connections, dialled only to the loopback socket that plays the backend, and only after
//! [`crate::policy`] admitted the new flow.
//!
//! A pooled connection is an established flow: reusing it asks `sim` nothing. A connection goes
//! back to its pool when the response body reaches its end ([`Checkout::release`]); a body
//! dropped early closes it, and so does the end of a response on a flushed flow (a flushed flow
//! is never lent again; see [`crate::flows`]). A request that a reused connection could not even
//! start (the backend closed it while idle) is retried once on another connection.
//!
//! A connection-level fault ([`crate::fault`]) is decided here for each new connection: it
//! dials a fault sink instead of the backend, or stalls the backend's connection; the failure
//! then maps to its code like any other.
//!
//! Failures map to codes here, once: connection refused → `BACKEND_REFUSED`, reset →
//! `BACKEND_RESET`, connect or response timeout → `BACKEND_TIMEOUT`, TLS → `BACKEND_TLS`.
//! A request whose *client* body failed (too large, malformed, cut short, too slow) is the
//! client's fault (`BODY_TOO_LARGE`, `BAD_REQUEST_BODY`, `CLIENT_TIMEOUT`), whatever the
//! backend connection saw; that connection holds half a request, so it is closed, never pooled.

use std::error::Error as _;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tracing::debug;

use crate::body::{BodyError, ReqBody};
use crate::config::{MAX_IDLE_PER_BACKEND, UPSTREAM_IDLE_TIMEOUT};
use crate::error::ProxyError;
use crate::fault::Stalled;
use crate::flows::FlowHop;
use crate::flows::{FlowEntry, FlowTable, NewFlow};
use crate::io::LazyClock;
use crate::lock;
use crate::metrics::PoolGauge;
use crate::policy::{Admitted, PolicyState, Route};
use crate::resources::Resources;

/// One open upstream connection and the flow it is.
pub(crate) struct Conn {
    sender: SendRequest<ReqBody>,
    pub(crate) flow: Arc<FlowEntry>,
    /// The response-head clock of this connection (see [`LazyClock`]): a request on a pooled
    /// connection touches the timer wheel about once per `response_timeout`, not per request.
    watchdog: LazyClock,
}

/// Waits for `fut` (the response head) until `deadline`. `None`: the deadline passed first.
async fn within<F: Future>(
    watchdog: &mut LazyClock,
    deadline: tokio::time::Instant,
    fut: F,
) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        watchdog.poll_expired(cx, deadline).map(|()| None)
    })
    .await
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Keep-alive connections to one backend (scheme, host, port).
pub(crate) struct Pool {
    /// `https://orders.internal.contoso.com:443`.
    pub(crate) label: String,
    idle: Mutex<Vec<Idle>>,
    /// Open connections (idle or busy).
    open: AtomicUsize,
}

// === impl Pool ===

impl Pool {
    pub(crate) fn new(label: String) -> Pool {
        Pool {
            label,
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
        }
    }

    /// The most recently used live idle connection (LIFO keeps few connections warm).
    fn take(&self) -> Option<Conn> {
        let now = Instant::now();
        let mut idle = lock(&self.idle);
        while let Some(i) = idle.pop() {
            if i.conn.sender.is_closed() || i.conn.flow.is_cut() {
                continue;
            }
            if !i.conn.flow.reusable() {
                // Flushed while idle: a new request gets a new flow.
                i.conn.flow.close();
                continue;
            }
            if now.saturating_duration_since(i.since) > UPSTREAM_IDLE_TIMEOUT {
                i.conn.flow.close();
                continue;
            }
            return Some(i.conn);
        }
        None
    }

    fn put(&self, conn: Conn) {
        if conn.sender.is_closed() || conn.flow.is_cut() {
            return;
        }
        if !conn.flow.reusable() {
            // Flushed while it carried a request: its response has ended, close it now.
            conn.flow.close();
            return;
        }
        let mut idle = lock(&self.idle);
        if idle.len() >= MAX_IDLE_PER_BACKEND {
            conn.flow.close();
            return;
        }
        idle.push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Closes the idle connections whose flows were flushed; returns how many.
    pub(crate) fn close_flushed(&self) -> usize {
        let mut idle = lock(&self.idle);
        let before = idle.len();
        idle.retain(|i| {
            let keep = i.conn.flow.reusable();
            if !keep {
                i.conn.flow.close();
            }
            keep
        });
        before - idle.len()
    }

    /// Closes every idle connection (shutdown).
    pub(crate) fn clear(&self) {
        for i in lock(&self.idle).drain(..) {
            i.conn.flow.close();
        }
    }

    pub(crate) fn gauge(&self) -> PoolGauge {
        PoolGauge {
            backend: self.label.clone(),
            idle: lock(&self.idle).len(),
            open: self.open.load(Ordering::Relaxed),
        }
    }
}

/// A connection lent to one request; [`Checkout::release`] hands it back.
pub(crate) struct Checkout {
    pool: Arc<Pool>,
    conn: Conn,
    /// Bench only (`BenchKnobs::upstream_per_request`): close instead of pooling.
    close_after: bool,
}

impl Checkout {
    /// Returns the connection to its pool (the response ended cleanly).
    pub(crate) fn release(self) {
        if self.close_after {
            self.conn.flow.close();
            return;
        }
        self.pool.put(self.conn);
    }

    /// The id of the flow carrying the request.
    pub(crate) fn flow_id(&self) -> u64 {
        self.conn.flow.id
    }
}

/// What the journal learns of the backend leg, whether the request succeeds or not.
#[derive(Default)]
pub(crate) struct Leg {
    /// `Some(true)`: a new flow was admitted; `Some(false)`: a pooled flow carried it.
    pub(crate) new_flow: Option<bool>,
    /// The admitted flow's hops (the journal's `rule`).
    pub(crate) hops: Option<Arc<[FlowHop]>>,
    /// The fault applied to the new connection.
    pub(crate) fault: Option<Arc<str>>,
}

/// A pooled connection, or a newly admitted flow.
async fn checkout(
    res: &Resources,
    state: &PolicyState,
    route: &Route,
    check: bool,
    leg: &mut Leg,
) -> Result<(Conn, bool), ProxyError> {
    match route.pool.take() {
        Some(c) => {
            leg.new_flow = Some(false);
            leg.hops = Some(c.flow.hops.clone());
            Ok((c, true))
        }
        None => Ok((dial(res, state, route, check, leg).await?, false)),
    }
}

/// Opens (or reuses) a flow to the route's backend without sending anything: a `status` fault
/// answers in the backend's place once admission let the flow through. Returns whether the
/// flow is new; the connection goes back to its pool.
pub(crate) async fn open(
    res: &Resources,
    state: &PolicyState,
    route: &Route,
    check: bool,
    leg: &mut Leg,
) -> Result<bool, ProxyError> {
    let (conn, reused) = checkout(res, state, route, check, leg).await?;
    route.pool.put(conn);
    Ok(!reused)
}

/// Sends `req` to the route's backend on a pooled connection or a newly admitted flow (`check`:
/// admission asks the NSGs; `false` only from the bench's unchecked front door), after `delay`
/// (a `latency` fault; it counts against the response timeout). Returns the response head, the
/// connection (to hand back when the body ends) and whether the flow is new.
pub(crate) async fn send(
    res: &Resources,
    state: &PolicyState,
    route: &Route,
    mut req: Request<ReqBody>,
    check: bool,
    delay: Option<std::time::Duration>,
    leg: &mut Leg,
) -> Result<(Response<Incoming>, Checkout, bool), ProxyError> {
    let mut retried = false;
    loop {
        let (mut conn, reused) = checkout(res, state, route, check, leg).await?;
        if conn.sender.ready().await.is_err() {
            if reused {
                continue;
            }
            return Err(ProxyError::Reset {
                backend: route.backend.authority.clone(),
                reason: "the new connection closed before the request could be sent".into(),
            });
        }
        conn.flow.requests.fetch_add(1, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + state.limits.response_timeout;
        let sent = match delay {
            None => {
                within(
                    &mut conn.watchdog,
                    deadline,
                    conn.sender.try_send_request(req),
                )
                .await
            }
            Some(d) => {
                let sender = &mut conn.sender;
                let delayed = async move {
                    tokio::time::sleep(d).await;
                    sender.try_send_request(req).await
                };
                within(&mut conn.watchdog, deadline, delayed).await
            }
        };
        match sent.ok_or(()) {
            Err(()) => {
                conn.flow.close();
                return Err(ProxyError::Timeout {
                    backend: route.backend.authority.clone(),
                    what: "the response head",
                    waited_ms: millis(state.limits.response_timeout),
                });
            }
            Ok(Ok(resp)) => {
                let checkout = Checkout {
                    pool: route.pool.clone(),
                    conn,
                    close_after: res.options.bench.upstream_per_request,
                };
                return Ok((resp, checkout, !reused));
            }
            Ok(Err(mut e)) => {
                if let Some(r) = e.take_message() {
                    if reused && !retried {
                        req = r;
                        retried = true;
                        continue;
                    }
                }
                let err = send_error(&e.into_error(), &conn.flow, route);
                if err.code().is_client_fault() {
                    // Half a request went upstream: close now rather than when hyper notices.
                    conn.flow.close();
                }
                return Err(err);
            }
        }
    }
}

pub(crate) fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Opens a new flow: policy admission, TCP (and TLS) to the loopback socket, HTTP/1.1 handshake.
async fn dial(
    res: &Resources,
    state: &PolicyState,
    route: &Route,
    check: bool,
    leg: &mut Leg,
) -> Result<Conn, ProxyError> {
    let source_port = res.flows.next_source_port();
    let admitted = match state.admit(route, source_port, &res.metrics, check) {
        Ok(a) => a,
        Err(e) => return Err(drop_or_answer(state, e).await),
    };
    leg.new_flow = Some(true);
    leg.hops = Some(admitted.hops.clone());
    let backend = &route.backend.authority;
    let mut target = admitted.target;
    let fault = res.faults.pick(&admitted.host, route.backend.port, true);
    let mut stall = false;
    if let Some(f) = &fault {
        leg.fault = Some(f.name.clone());
        match res.faults.sink(f.action, &res.rt, &res.ca) {
            Ok(Some(sink)) => target = sink,
            Ok(None) => stall = f.action == sim::FaultAction::Timeout,
            Err(e) => {
                return Err(ProxyError::Refused {
                    backend: backend.clone(),
                    reason: format!("fault `{}`: {e}", f.name),
                })
            }
        }
    }
    let limit = state.limits.connect_timeout;
    let tcp = match tokio::time::timeout(limit, TcpStream::connect(target)).await {
        Err(_) => {
            return Err(ProxyError::Timeout {
                backend: backend.clone(),
                what: "the TCP connect",
                waited_ms: millis(limit),
            })
        }
        Ok(Err(e)) => return Err(connect_error(&e, backend, target)),
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    if route.upstream_tls {
        let connector = tokio_rustls::TlsConnector::from(res.upstream_tls.clone());
        let tls =
            match tokio::time::timeout(limit, connector.connect(route.server_name.clone(), tcp))
                .await
            {
                Err(_) => {
                    return Err(ProxyError::Timeout {
                        backend: backend.clone(),
                        what: "the TLS handshake",
                        waited_ms: millis(limit),
                    })
                }
                Ok(Err(e)) => return Err(tls_error(&e, backend, target)),
                Ok(Ok(s)) => s,
            };
        if stall {
            return handshake(res, route, admitted, Stalled(tls)).await;
        }
        handshake(res, route, admitted, tls).await
    } else if stall {
        handshake(res, route, admitted, Stalled(tcp)).await
    } else {
        handshake(res, route, admitted, tcp).await
    }
}

/// In `drop` mode a denied SYN goes unanswered: wait the connect timeout, then time out.
async fn drop_or_answer(state: &PolicyState, e: ProxyError) -> ProxyError {
    match e {
        ProxyError::Policy { backend, outcome }
            if state.limits.deny_mode == sim::DenyMode::Drop
                && outcome.code == crate::error::ErrorCode::NsgDenied =>
        {
            tokio::time::sleep(state.limits.connect_timeout).await;
            ProxyError::Dropped {
                backend,
                waited_ms: millis(state.limits.connect_timeout),
                outcome,
            }
        }
        other => other,
    }
}

async fn handshake<I>(
    res: &Resources,
    route: &Route,
    admitted: Admitted,
    io: I,
) -> Result<Conn, ProxyError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .writev(false)
        .handshake::<_, ReqBody>(TokioIo::new(io))
        .await
        .map_err(|e| ProxyError::Reset {
            backend: route.backend.authority.clone(),
            reason: format!("HTTP/1.1 handshake with {} failed: {e}", admitted.target),
        })?;
    let flow = res.flows.insert(NewFlow {
        flow: admitted.flow,
        backend: route.authority.clone(),
        host: admitted.host,
        upstream: admitted.target,
        tls: route.upstream_tls,
        hops: admitted.hops,
    });
    route.pool.open.fetch_add(1, Ordering::Relaxed);
    let task = tokio::spawn(drive(
        conn,
        Ended {
            flow: flow.clone(),
            table: res.flows.clone(),
            pool: route.pool.clone(),
        },
    ));
    flow.attach(task.abort_handle());
    Ok(Conn {
        sender,
        flow,
        watchdog: LazyClock::new(),
    })
}

/// Forgets a flow when its connection task ends, however it ends: the connection finished,
/// or [`FlowEntry::close`] aborted the task (which drops the connection and closes the socket).
struct Ended {
    flow: Arc<FlowEntry>,
    table: Arc<FlowTable>,
    pool: Arc<Pool>,
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.table.remove(&self.flow);
        self.pool.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs one upstream connection until it ends (an abort ends it early, see [`Ended`]).
async fn drive<F>(conn: F, ended: Ended)
where
    F: Future<Output = hyper::Result<()>>,
{
    if let Err(e) = conn.await {
        debug!(flow = %ended.flow.describe(), cause = %e, "upstream connection ended");
    }
}

fn connect_error(e: &io::Error, backend: &str, target: SocketAddr) -> ProxyError {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => ProxyError::Reset {
            backend: backend.to_string(),
            reason: format!("connection to {target} reset while connecting"),
        },
        io::ErrorKind::ConnectionRefused => ProxyError::Refused {
            backend: backend.to_string(),
            reason: format!("connection to {target} refused (nothing listens there)"),
        },
        _ => ProxyError::Refused {
            backend: backend.to_string(),
            reason: format!("connecting to {target}: {e}"),
        },
    }
}

fn tls_error(e: &io::Error, backend: &str, target: SocketAddr) -> ProxyError {
    if let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return ProxyError::Tls {
            backend: backend.to_string(),
            reason: format!("{r} (with {target}; trusted roots: the local CA)"),
        };
    }
    match e.kind() {
        // A write after the peer's RST may report a broken pipe rather than the reset itself.
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => ProxyError::Reset {
            backend: backend.to_string(),
            reason: format!("connection to {target} reset during the TLS handshake"),
        },
        _ => ProxyError::Tls {
            backend: backend.to_string(),
            reason: format!("{e} (with {target})"),
        },
    }
}

/// The client's fault behind a failed send, when the request body (not the backend) failed.
fn client_body_error(e: &hyper::Error) -> Option<ProxyError> {
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(b) = s.downcast_ref::<BodyError>() {
            return Some(match b {
                BodyError::TooLarge { limit } => ProxyError::BodyTooLarge { limit: *limit },
                BodyError::TimedOut { limit } => ProxyError::BodyTimeout {
                    limit_ms: millis(*limit),
                },
                BodyError::Client(c) => ProxyError::BadBody {
                    reason: c
                        .source()
                        .map_or_else(|| c.to_string(), |s| format!("{c}: {s}")),
                },
            });
        }
        src = s.source();
    }
    None
}

fn send_error(e: &hyper::Error, flow: &FlowEntry, route: &Route) -> ProxyError {
    let backend = route.backend.authority.clone();
    if let Some(reason) = flow.cut_reason() {
        return ProxyError::Reset {
            backend,
            reason: reason.to_string(),
        };
    }
    if let Some(client) = client_body_error(e) {
        return client;
    }
    if e.is_parse() {
        return ProxyError::Protocol {
            backend,
            reason: format!("invalid HTTP response: {e}"),
        };
    }
    let cause = e
        .source()
        .map(|s| format!("{e}: {s}"))
        .unwrap_or_else(|| e.to_string());
    ProxyError::Reset {
        backend,
        reason: format!(
            "connection to {} ended before the response: {cause}",
            flow.upstream
        ),
    }
}
