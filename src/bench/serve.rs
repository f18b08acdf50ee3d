//! What the bench's child processes run: the hello backend (`vnetsim __echo`), the gateway
//! (`vnetsim __gateway`); the runtime they share with `vnetsim up` is [`crate::runtime`].
//!
//! The hello backend is deliberately tiny (a 12-byte body, no JSON, HTTP/1.1 only, optionally
//! TLS) so that the proxy's cost dominates what the bench measures, as in PERF-NOTES.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use super::BenchError;
use crate::load::{load_path, load_str, TagSource};
use crate::runtime::proxy_runtime;

/// The body every hello backend response carries (12 bytes, as in PERF-NOTES).
pub const HELLO_BODY: &[u8] = b"Hello world\n";

/// Options of the hello backend child.
#[derive(Clone, Debug)]
pub struct EchoChild {
    /// Where to listen (loopback).
    pub listen: SocketAddr,
    /// Written (atomically) once listening: `{"addr", "ca_pem"}`.
    pub ready_file: PathBuf,
    /// Serve TLS with a certificate for these names from a fresh local CA (written next to the
    /// ready file as `backend-ca.pem`).
    pub tls_names: Vec<String>,
}

/// Runs the hello backend until SIGTERM/Ctrl-C.
///
/// # Errors
/// [`BenchError`] when the address is not loopback, cannot be bound, or TLS setup fails.
pub fn run_echo_child(o: &EchoChild) -> Result<(), BenchError> {
    if !o.listen.ip().is_loopback() {
        return Err(BenchError::NotLoopback(o.listen));
    }
    let rt = proxy_runtime(1).map_err(|source| BenchError::Io {
        what: "starting the Tokio runtime".into(),
        source,
    })?;
    rt.block_on(async {
        let listener = TcpListener::bind(o.listen)
            .await
            .map_err(|source| BenchError::Io {
                what: format!("binding {}", o.listen),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| BenchError::Io {
            what: "reading the backend address".into(),
            source,
        })?;
        let (tls, ca_pem) = if o.tls_names.is_empty() {
            (None, None)
        } else {
            let ca = gateway::LocalCa::new().map_err(|e| BenchError::Tls(e.to_string()))?;
            let cert = ca
                .issue(&o.tls_names)
                .map_err(|e| BenchError::Tls(e.to_string()))?;
            let cfg = gateway::tls::server_config(&cert, &[b"http/1.1"])
                .map_err(|e| BenchError::Tls(e.to_string()))?;
            let pem = o
                .ready_file
                .parent()
                .unwrap_or(Path::new("."))
                .join("backend-ca.pem");
            ca.write_pem(&pem)
                .map_err(|e| BenchError::Tls(e.to_string()))?;
            (Some(tokio_rustls::TlsAcceptor::from(cfg)), Some(pem))
        };
        write_ready(&o.ready_file, &json!({"addr": addr, "ca_pem": ca_pem}))?;
        tokio::select! {
            () = serve_hello(listener, tls) => {}
            r = crate::runtime::wait_for_signal() => r.map_err(|source| BenchError::Io {
                what: "waiting for SIGTERM or Ctrl-C".into(),
                source,
            })?,
        }
        Ok(())
    })
}

fn write_ready(path: &Path, doc: &serde_json::Value) -> Result<(), BenchError> {
    Ok(crate::atomic::write(path, doc.to_string().as_bytes())?)
}

/// Serves `HELLO_BODY` to every request, HTTP/1.1 keep-alive, one task per connection.
async fn serve_hello(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                // EMFILE and friends: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_conn(TokioIo::new(tcp)).await,
                Some(acceptor) => {
                    if let Ok(s) = acceptor.accept(tcp).await {
                        serve_conn(TokioIo::new(s)).await;
                    }
                }
            }
        });
    }
}

async fn serve_conn<I>(io: I)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(|_req: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(HELLO_BODY))))
    });
    let _ = http1::Builder::new()
        .writev(false)
        .keep_alive(true)
        .serve_connection(io, svc)
        .await;
}

/// Options of the gateway child.
#[derive(Clone, Debug, Default)]
pub struct GatewayChild {
    /// The fixture (`None`: the embedded default topology).
    pub fixture: Option<PathBuf>,
    /// Written (atomically) once the gateway accepts requests: `{"gateway_url", "addr",
    /// "admin_url", "unchecked_addr"}` (the last `null` unless the knobs ask for it).
    pub ready_file: PathBuf,
    /// `(host, port, socket)`: the sockets that play simulated `host:port`s.
    pub upstreams: Vec<(String, u16, SocketAddr)>,
    /// Rewrite every `https://` backend to clear-text `http://` on the same port (bench only:
    /// the same flows and verdicts, compared with nginx's clear-text proxy).
    pub plain_upstreams: bool,
    /// Trust this PEM certificate for upstream TLS (the TLS hello backend's CA).
    pub extra_root_pem: Option<PathBuf>,
    /// Proxy threads (see [`proxy_runtime`]).
    pub threads: usize,
    /// Bench-only gateway switches.
    pub knobs: gateway::BenchKnobs,
}

/// Runs a gateway exactly as `vnetsim up` does (flow tracking, metrics, timeouts, echo
/// backends), plus the bench's options, until SIGTERM/Ctrl-C.
///
/// # Errors
/// [`BenchError`] when the fixture cannot be loaded, has error findings, or the gateway does
/// not start.
pub fn run_gateway_child(o: &GatewayChild) -> Result<(), BenchError> {
    let loaded = load_fixture(o.fixture.as_deref())?;
    let mut built = loaded.built;
    if o.plain_upstreams {
        built = plain_upstreams(&built);
    }
    let errors: Vec<String> = built
        .findings
        .iter()
        .filter(|f| f.is_error())
        .map(ToString::to_string)
        .collect();
    if !errors.is_empty() {
        return Err(BenchError::Findings(errors.join("; ")));
    }
    let mut opts = gateway::StartOptions::default();
    if let Some(dir) = loaded.recipe.base_dir() {
        opts = opts.base_dir(dir);
    }
    // A reload runs the same load again; the clear-text rewrite is the bench's own, so a
    // gateway serving it has no reload.
    if !o.plain_upstreams {
        opts = opts.reload_with(std::sync::Arc::new(loaded.recipe));
    }
    for (h, p, a) in &o.upstreams {
        opts = opts.upstream(h, *p, *a);
    }
    if let Some(pem) = &o.extra_root_pem {
        opts.extra_roots.push(read_cert(pem)?);
    }
    opts.bench = o.knobs;
    let rt = proxy_runtime(o.threads).map_err(|source| BenchError::Io {
        what: "starting the Tokio runtime".into(),
        source,
    })?;
    rt.block_on(async {
        let gw = gateway::start(built, opts)
            .await
            .map_err(|e| BenchError::Gateway(e.to_string()))?;
        write_ready(
            &o.ready_file,
            &json!({
                "gateway_url": gw.url(),
                "addr": gw.addr(),
                "admin_url": gw.admin_url(),
                "unchecked_addr": gw.bench_unchecked_addr(),
            }),
        )?;
        let r = crate::runtime::wait_for_signal()
            .await
            .map_err(|source| BenchError::Io {
                what: "waiting for SIGTERM or Ctrl-C".into(),
                source,
            });
        gw.shutdown().await;
        r
    })
}

fn load_fixture(path: Option<&Path>) -> Result<crate::load::Loaded, BenchError> {
    match path {
        Some(p) => load_path(p, &TagSource::Fixture),
        None => load_str(
            "fixtures/default.toml",
            crate::harness::DEFAULT_FIXTURE,
            None,
            &TagSource::Fixture,
        ),
    }
    .map_err(|e| BenchError::Fixture(e.to_string()))
}

/// The topology with every `https://host[:port]/path` backend rewritten to
/// `http://host:port/path` and every service in clear text (same hosts and ports, hence the
/// same flows and verdicts).
fn plain_upstreams(built: &sim::Built) -> sim::Built {
    let t = &built.topology;
    let mut f = built.document.fixture().clone();
    for s in f.hosts.iter_mut().flat_map(|h| h.services.iter_mut()) {
        s.tls = false;
    }
    for file in &mut f.apis {
        let Some(api) = t.apis().iter().find(|a| a.name == file.name) else {
            continue;
        };
        let b = &api.backend;
        if b.https {
            let host = if b.host.contains(':') {
                format!("[{}]", b.host)
            } else {
                b.host.clone()
            };
            file.backend = format!("http://{host}:{}{}", b.port, b.path);
        }
    }
    sim::Topology::build(&f, t.service_tags().clone())
}

fn read_cert(path: &Path) -> Result<rustls::pki_types::CertificateDer<'static>, BenchError> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::from_pem_file(path)
        .map_err(|e| BenchError::Tls(format!("{}: {e}", path.display())))
}

/// A client TLS configuration trusting the PEM certificate at `path` (the hello backend's CA),
/// for the direct TLS row.
pub(crate) fn client_tls(path: &Path) -> Result<Arc<rustls::ClientConfig>, BenchError> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(read_cert(path)?)
        .map_err(|e| BenchError::Tls(e.to_string()))?;
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}
