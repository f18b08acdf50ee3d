//! A small HTTP load generator of our own: N connections (keep-alive, or a new connection per
//! request), bounded by duration and by request count, latencies in an HdrHistogram. Used by the
//! demo's throughput sample and by `vnetsim bench`. Loopback targets only. HTTP/1.1 by default;
//! [`run_proto`] with [`Proto::Http2`] speaks HTTP/2 (prior knowledge in clear text, one stream
//! at a time per connection, so N connections compare with N HTTP/1.1 keep-alive connections).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

/// TLS settings for a target that speaks HTTPS.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// Client configuration (trusting the local CA).
    pub config: Arc<rustls::ClientConfig>,
    /// Name to send in SNI and verify.
    pub server_name: String,
}

/// What to load.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// The loopback socket to connect to.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// Path and query of every request.
    pub path: String,
    /// Concurrent connections.
    pub connections: usize,
    /// How long to run.
    pub duration: Duration,
    /// Stop after this many requests in total (whichever bound comes first).
    pub max_requests: Option<u64>,
    /// Open a new connection for every request (measures per-flow cost).
    pub connection_per_request: bool,
    /// HTTPS to the target.
    pub tls: Option<ClientTls>,
}

/// Why a load run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The target is not a loopback address.
    #[error("refusing to load {0}: the load generator only targets loopback addresses")]
    NotLoopback(SocketAddr),
    /// The TLS server name is invalid.
    #[error("invalid TLS server name `{0}`")]
    ServerName(String),
    /// No request succeeded and the first error is this.
    #[error("no request succeeded: {0}")]
    NothingSucceeded(String),
}

/// The outcome of a load run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadResult {
    /// Successful (2xx) requests.
    pub requests: u64,
    /// Failed requests (non-2xx, connection or protocol errors).
    pub errors: u64,
    /// Wall time of the run in seconds.
    pub seconds: f64,
    /// Successful requests per second.
    pub rps: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Every successful request's latency, microseconds (to merge runs).
    #[serde(skip)]
    pub latency_us: Histogram<u64>,
}

struct Shared {
    issued: AtomicU64,
    max: u64,
    deadline: Instant,
}

impl Shared {
    fn take(&self) -> bool {
        Instant::now() < self.deadline && self.issued.fetch_add(1, Ordering::Relaxed) < self.max
    }
}

/// The HTTP version the load generator speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 (keep-alive unless `connection_per_request`).
    #[default]
    Http1,
    /// HTTP/2: prior knowledge in clear text, ALPN `h2` over TLS; one stream at a time per
    /// connection.
    Http2,
}

enum Conn {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

async fn handshake<I>(io: I, proto: Proto) -> Result<Conn, String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match proto {
        Proto::Http1 => {
            let (s, conn) = http1::handshake(TokioIo::new(io))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Conn::H1(s))
        }
        Proto::Http2 => {
            let (s, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Conn::H2(s))
        }
    }
}

async fn connect(spec: &LoadSpec, proto: Proto) -> Result<Conn, String> {
    let tcp = TcpStream::connect(spec.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", spec.addr))?;
    let _ = tcp.set_nodelay(true);
    match &spec.tls {
        None => handshake(tcp, proto).await,
        Some(t) => {
            let name = ServerName::try_from(t.server_name.clone())
                .map_err(|e| format!("server name: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(t.config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            handshake(tls, proto).await
        }
    }
}

async fn one(s: &mut Conn, spec: &LoadSpec) -> Result<(), String> {
    let mut req = http::Request::get(spec.path.as_str())
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let sent = match s {
        Conn::H1(s) => {
            req.headers_mut().insert(
                http::header::HOST,
                http::HeaderValue::from_str(&spec.host).map_err(|e| format!("host: {e}"))?,
            );
            s.ready().await.map_err(|e| format!("connection: {e}"))?;
            s.send_request(req).await
        }
        Conn::H2(s) => {
            let uri = format!("http://{}{}", spec.host, spec.path);
            *req.uri_mut() = uri.parse().map_err(|e| format!("uri {uri}: {e}"))?;
            s.ready().await.map_err(|e| format!("connection: {e}"))?;
            s.send_request(req).await
        }
    };
    let resp = sent.map_err(|e| format!("send: {e}"))?;
    let status = resp.status();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

struct Worker {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn worker(spec: Arc<LoadSpec>, shared: Arc<Shared>, proto: Proto) -> Worker {
    let mut w = Worker {
        hist: Histogram::new_with_bounds(1, 60_000_000, 3)
            .expect("static histogram bounds are valid"),
        ok: 0,
        errors: 0,
        first_error: None,
    };
    let mut conn: Option<Conn> = None;
    while shared.take() {
        let start = Instant::now();
        let result = async {
            if conn.is_none() || spec.connection_per_request {
                conn = Some(connect(&spec, proto).await?);
            }
            let c = conn.as_mut().ok_or_else(|| "no connection".to_string())?;
            one(c, &spec).await
        }
        .await;
        match result {
            Ok(()) => {
                w.ok += 1;
                let us = start.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                let _ = w.hist.record(us.max(1));
            }
            Err(e) => {
                w.errors += 1;
                conn = None;
                w.first_error.get_or_insert(e);
            }
        }
    }
    w
}

/// Runs the load over HTTP/1.1 and reports throughput and latency percentiles.
///
/// # Errors
/// [`LoadError`] when the target is not loopback, or when not a single request succeeded.
pub async fn run(spec: LoadSpec) -> Result<LoadResult, LoadError> {
    run_proto(spec, Proto::Http1).await
}

/// Runs the load over `proto` and reports throughput and latency percentiles.
///
/// # Errors
/// [`LoadError`] when the target is not loopback, or when not a single request succeeded.
pub async fn run_proto(spec: LoadSpec, proto: Proto) -> Result<LoadResult, LoadError> {
    if !spec.addr.ip().is_loopback() {
        return Err(LoadError::NotLoopback(spec.addr));
    }
    if let Some(t) = &spec.tls {
        ServerName::try_from(t.server_name.clone())
            .map_err(|_| LoadError::ServerName(t.server_name.clone()))?;
    }
    let started = Instant::now();
    let shared = Arc::new(Shared {
        issued: AtomicU64::new(0),
        max: spec.max_requests.unwrap_or(u64::MAX),
        deadline: started + spec.duration,
    });
    let spec = Arc::new(spec);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..spec.connections.max(1) {
        tasks.spawn(worker(spec.clone(), shared.clone(), proto));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .expect("static histogram bounds are valid");
    let (mut ok, mut errors, mut first_error) = (0, 0, None);
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(w) => {
                let _ = hist.add(&w.hist);
                ok += w.ok;
                errors += w.errors;
                if first_error.is_none() {
                    first_error = w.first_error;
                }
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("worker panicked: {e}"));
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if ok == 0 {
        return Err(LoadError::NothingSucceeded(
            first_error.unwrap_or_else(|| "no request was sent".into()),
        ));
    }
    Ok(LoadResult {
        requests: ok,
        errors,
        seconds,
        rps: ok as f64 / seconds.max(1e-9),
        p50_us: hist.value_at_quantile(0.50) as f64,
        p99_us: hist.value_at_quantile(0.99) as f64,
        first_error,
        latency_us: hist,
    })
}
