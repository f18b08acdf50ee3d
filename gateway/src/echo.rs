//! The built-in `echo` backend (`serve = "echo"`): a real HTTP server on a loopback port that
//! plays one simulated `host:port`. It answers every request with 200 and a JSON document naming
//! the simulated host and port it plays and what it received:
//!
//! ```json
//! {"host": "orders", "port": 443, "tls": true, "version": "HTTP/1.1", "method": "GET",
//!  "path": "/v1/items", "query": "a=1", "headers": {"host": "orders.internal.contoso.com"},
//!  "body_bytes": 0}
//! ```
//!
//! Repeated headers are joined with `", "`. It speaks HTTP/1.1 and HTTP/2 (ALPN over TLS, prior
//! knowledge in clear text) and, for `tls = true` services, presents a certificate from the
//! local CA for the host's DNS names and addresses. It counts the requests it received so tests
//! can prove that a denied flow never reached it. A request header `x-echo-delay-ms: N` makes it
//! answer N ms late (at most 10 s), to play a slow backend or hold a flow busy.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// What an echo backend answers (also what tests deserialize).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EchoReply {
    /// The simulated host it plays (the `[[hosts]]` name).
    pub host: String,
    /// The simulated port it plays.
    pub port: u16,
    /// Whether the request arrived over TLS.
    pub tls: bool,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// The method.
    pub method: String,
    /// The path as received.
    pub path: String,
    /// The query as received, without `?`.
    pub query: Option<String>,
    /// The request headers (lower-case names; repeated values joined with `", "`).
    pub headers: BTreeMap<String, String>,
    /// Bytes of request body received.
    pub body_bytes: u64,
}

/// A running echo backend; dropping it stops it (listener and connections).
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    host: String,
    port: u16,
    tls: bool,
    requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Identity {
    host: String,
    port: u16,
    tls: bool,
    requests: Arc<AtomicU64>,
}

// === impl EchoServer ===

impl EchoServer {
    /// Binds `127.0.0.1:0` and serves on `rt`, playing `host:port` (with TLS when `tls` is set).
    ///
    /// # Errors
    /// When the loopback listener cannot be bound.
    pub fn start(
        rt: &tokio::runtime::Handle,
        host: &str,
        port: u16,
        tls: Option<Arc<ServerConfig>>,
    ) -> io::Result<EchoServer> {
        let std_listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let identity = Arc::new(Identity {
            host: host.to_string(),
            port,
            tls: tls.is_some(),
            requests: requests.clone(),
        });
        let listener = {
            let _guard = rt.enter();
            TcpListener::from_std(std_listener)?
        };
        let is_tls = identity.tls;
        let task = rt.spawn(accept_loop(listener, identity, tls.map(TlsAcceptor::from)));
        Ok(EchoServer {
            addr,
            host: host.to_string(),
            port,
            tls: is_tls,
            requests,
            task,
        })
    }

    /// The loopback socket it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The simulated host it plays.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The simulated port it plays.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether it speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

async fn accept_loop(listener: TcpListener, id: Arc<Identity>, tls: Option<TlsAcceptor>) {
    // Internal: the JoinSet owns every connection task, so aborting this loop (on drop of the
    // `EchoServer`) aborts them all.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _peer)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let id = id.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                serve(TokioIo::new(stream), id).await;
                            }
                        }
                        None => serve(TokioIo::new(tcp), id).await,
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve<I>(io: I, id: Arc<Identity>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let id = id.clone();
        async move { Ok::<_, Infallible>(answer(req, &id).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, svc)
        .await;
}

/// Request header that makes the echo backend answer late: a whole number of milliseconds,
/// capped at [`MAX_DELAY`]. Tests use it to hold a flow busy or to play a slow backend.
pub const DELAY_HEADER: &str = "x-echo-delay-ms";

/// Longest delay [`DELAY_HEADER`] can ask for.
pub const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(10);

async fn answer(req: Request<Incoming>, id: &Identity) -> Response<Full<Bytes>> {
    id.requests.fetch_add(1, Ordering::Relaxed);
    let delay = req
        .headers()
        .get(DELAY_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|ms| std::time::Duration::from_millis(ms).min(MAX_DELAY));
    let (parts, mut body) = req.into_parts();
    let mut body_bytes = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    body_bytes += d.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let reply = EchoReply {
        host: id.host.clone(),
        port: id.port,
        tls: id.tls,
        version: format!("{:?}", parts.version),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers,
        body_bytes,
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let body = serde_json::to_vec(&reply).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
