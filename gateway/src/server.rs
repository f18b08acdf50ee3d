//! The front door: the accept loop, TLS, HTTP/1.1 + HTTP/2 (h2c prior knowledge and ALPN)
//! through hyper-util's auto builder, the connection cap, and graceful shutdown.
//!
//! Each accepted connection takes a permit of the `max_connections` semaphore first (further
//! clients wait in the listen backlog), reads the snapshot's limits once, and is served by a
//! task watched by hyper-util's `GracefulShutdown`. On shutdown the listener closes, every
//! connection is asked to finish its in-flight requests, and whatever is still running after
//! `shutdown_grace_ms` is aborted.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::config::Limits;
use crate::io::{ConnState, TimedIo};
use crate::proxy::{self, ConnInfo};
use crate::state::Shared;

/// HTTP/2 PING interval that detects dead clients.
pub const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// How long an HTTP/2 PING may go unanswered before the connection is closed.
pub const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Concurrent streams per HTTP/2 connection.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 256;

/// Resolves when shutdown is signalled (or the signalling side is gone).
pub(crate) async fn signalled(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Serves the front door until `shutdown`, then drains (see the module docs). `check`: new
/// flows of its connections ask the NSGs (`false` only for the bench's unchecked front door,
/// `BenchKnobs::unchecked_listen`).
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    check: bool,
) {
    let graceful = GracefulShutdown::new();
    let mut conns: JoinSet<()> = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = shared.conn_limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = signalled(&mut shutdown) => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    warn!(cause = %e, "accept failed");
                    drop(permit);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = signalled(&mut shutdown) => break,
        };
        while conns.try_join_next().is_some() {}
        conns.spawn(serve_conn(
            shared.clone(),
            tcp,
            peer,
            permit,
            graceful.watcher(),
            check,
        ));
    }
    drop(listener);
    let grace = shared.snapshot().limits.shutdown_grace;
    let open = graceful.count();
    tokio::select! {
        () = graceful.shutdown() => debug!(connections = open, "front door drained"),
        () = tokio::time::sleep(grace) => {
            warn!(grace_ms = grace.as_millis() as u64, "shutdown grace elapsed; closing the remaining connections");
        }
    }
    conns.shutdown().await;
    // Idle pooled connections hold their pool alive from their own tasks: close them here so a
    // dropped handle releases everything too.
    shared.res.close_all();
}

async fn serve_conn(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    watcher: Watcher,
    check: bool,
) {
    let metrics = &shared.res.metrics;
    metrics.client_connections.fetch_add(1, Ordering::Relaxed);
    metrics
        .client_connections_total
        .fetch_add(1, Ordering::Relaxed);
    let _ = tcp.set_nodelay(true);
    let state = shared.snapshot();
    let limits = state.limits.clone();
    let acceptor = state.front_tls.clone();
    drop(state);
    let cstate = Arc::new(ConnState::default());
    match acceptor {
        Some(acceptor) => {
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let h2 = tls.get_ref().1.alpn_protocol().map(|p| p == b"h2");
                    let info = Arc::new(ConnInfo::new(peer, true, cstate.clone(), check));
                    let io = TimedIo::new(
                        tls,
                        cstate.clone(),
                        limits.header_read_timeout,
                        limits.max_header_bytes,
                        h2,
                    );
                    serve_http(&shared, io, info, &limits, watcher).await;
                }
                Ok(Err(e)) => debug!(%peer, cause = %e, "TLS handshake failed"),
                Err(_) => debug!(%peer, "TLS handshake timed out"),
            }
        }
        None => {
            let info = Arc::new(ConnInfo::new(peer, false, cstate.clone(), check));
            let io = TimedIo::new(
                tcp,
                cstate.clone(),
                limits.header_read_timeout,
                limits.max_header_bytes,
                None,
            );
            serve_http(&shared, io, info, &limits, watcher).await;
        }
    }
    // A head refused before it reached the service (408, 431) is a client fault too.
    if let Some(code) = cstate.answered() {
        metrics.client_fault(code);
    }
    metrics.client_connections.fetch_sub(1, Ordering::Relaxed);
    shared.release_permit(permit);
}

async fn serve_http<I>(
    shared: &Arc<Shared>,
    io: TimedIo<I>,
    info: Arc<ConnInfo>,
    limits: &Limits,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // The header-read timeout is enforced by `TimedIo` (with a 408 answer).
        .header_read_timeout(None)
        // Internal: `max_headers` is left at hyper's default, `config::MAX_HEADER_FIELDS`;
        // setting it, even to the same value, makes hyper initialise its field array on every
        // parse. `TimedIo` gives hyper's 431 the problem document.
        .keep_alive(true)
        .writev(false)
        .max_buf_size(limits.h1_max_buf());
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(H2_KEEPALIVE_INTERVAL))
        .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT)
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(u32::try_from(limits.h1_max_buf()).unwrap_or(u32::MAX));
    let peer = info.peer;
    let shared = shared.clone();
    let svc = service_fn(move |req| proxy::handle(shared.clone(), info.clone(), req));
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    if let Err(e) = watcher.watch(conn).await {
        debug!(%peer, cause = %e, "client connection ended with an error");
    }
}
