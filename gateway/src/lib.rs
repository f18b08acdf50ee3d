//! `gateway` — the data plane that plays an API Management gateway attached to a simulated
//! VNet. It receives real HTTP requests on a loopback listener, routes them to API backends,
//! and opens each new backend connection only after `sim` allowed that flow from the APIM
//! instance's source address. Backends are real servers on loopback; their simulated addresses
//! are never dialled.
//!
//! # Map of the modules
//! - [`server`] — the front door: accept loop, TLS with ALPN, HTTP/1.1 + HTTP/2, connection
//!   cap, graceful shutdown.
//! - `io` — the slow-client guard (header-read timeout with a 408 answer).
//! - `proxy` — one request: open-proxy refusals, routing, in-place rewriting, hop-by-hop
//!   stripping.
//! - `policy` — the immutable policy snapshot and per-flow admission: it asks `sim` (the API's
//!   flow, the verdict) and applies the answer.
//! - `state` — the snapshot in force and changes to it (refused whole on error findings);
//!   `sim` says which established flows a change cuts.
//! - `resources` — what outlives snapshots: pools, echo backends, the CA, start options.
//! - [`reload`] — the hook through which the owner's loader gives the gateway new topologies
//!   (the gateway reads no topology files).
//! - `upstream` — per-backend keep-alive pools of HTTP/1.1 client connections, TLS to HTTPS
//!   backends, failure → code mapping.
//! - [`flows`] — the flow table (established upstream connections).
//! - `body` — request-body limit and the response body that returns connections to the pool.
//! - [`error`] — [`error::ProxyError`]: codes, the code → status table, problem documents.
//! - [`config`] — limits and their documented defaults.
//! - [`tls`] — the local CA and rustls configurations.
//! - [`file`] — bounded reads of regular files (PEM files here; every file the root crate reads).
//! - [`echo`] — the built-in `echo` backend.
//! - `admin` — the admin listener: reload, rule changes, flows, metrics.
//! - `metrics` — counters in the Prometheus text format.
//!
//! # Runtime and what can change
//! [`start`] spawns its tasks on the calling Tokio runtime. `../shared/PERF-NOTES.md` found a
//! `current_thread` runtime per free core fastest on small machines; the gateway needs nothing
//! from a multi-thread runtime. Every topology and limit may change at runtime
//! ([`GatewayHandle::reload`], [`GatewayHandle::set_nsg_rules`], the admin API) except the
//! listen addresses and the admin token, which are fixed at start; a changed
//! `max_header_bytes` or `header_read_timeout_ms` applies to new client connections.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let text = std::fs::read_to_string("fixtures/default.toml")?;
//! let fixture = sim::fixture::Fixture::parse(&text, sim::fixture::Format::Toml)?;
//! let built = sim::Topology::build(&fixture, sim::ServiceTagTable::builtin());
//! let gw = gateway::start(built, gateway::StartOptions::default()).await?;
//! println!("gateway {} admin {} token {}", gw.url(), gw.admin_url(), gw.admin_token());
//! gw.shutdown().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod config;
pub mod echo;
pub mod error;
pub mod file;
pub mod flows;
pub mod reload;
pub mod server;
pub mod tls;

mod admin;
mod body;
mod io;
mod metrics;
mod policy;
mod proxy;
mod resources;
mod state;
mod upstream;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use sim::fixture::RawRule;
use sim::{Built, Topology};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Locks `m`, also after a panic elsewhere poisoned it: every mutex of the gateway guards
/// state that stays consistent between statements (a list, a counter, a cached value).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub use body::GatewayBody;
pub use config::{LimitOverrides, Limits};
pub use flows::{FlowHop, FlowInfo, FlowTableMemory};
pub use reload::{Reload, ReloadBody, ReloadError, ReloadHook};
pub use resources::EchoInfo;
pub use state::{ChangeError, ChangeReport};
pub use tls::LocalCa;

/// Maps one simulated `host:port` to a real socket that plays it (e.g. a wiremock server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamOverride {
    /// A `[[hosts]]` name or one of its DNS names (case-insensitive).
    pub host: String,
    /// The service port on that host.
    pub port: u16,
    /// The socket to dial (loopback unless `allow_non_loopback_upstreams`).
    pub addr: SocketAddr,
}

/// How to start a gateway. `Default` starts the built-in echo backends and takes everything
/// else from the fixture.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// Front door address (overrides `[gateway] listen`; default `127.0.0.1:0`).
    pub listen: Option<SocketAddr>,
    /// Admin address (overrides `[gateway] admin_listen`; default `127.0.0.1:0`).
    pub admin_listen: Option<SocketAddr>,
    /// Admin bearer token (overrides `[gateway] admin_token`; default random per start).
    pub admin_token: Option<String>,
    /// Sockets that play simulated `host:port`s; they win over `upstream` and `serve`.
    pub upstreams: Vec<UpstreamOverride>,
    /// Start a built-in echo backend for each `serve = "echo"` service (default true).
    pub start_echo: bool,
    /// The owner's loader: what a `POST /admin/reload` runs again (see [`reload`]); without
    /// one, a reload is refused (`400 NO_FIXTURE_PATH`).
    pub reload: Option<ReloadHook>,
    /// The folder relative paths of the topology (`[gateway] tls_cert`, `tls_key`) are read
    /// from (default: the current directory).
    pub base_dir: Option<PathBuf>,
    /// Start with, and apply changes to, topologies whose only error findings are the APIM
    /// preflight's (default false: any error finding refuses the start and every change, as
    /// `vnetsim up` refuses to start with them).
    pub accept_preflight_errors: bool,
    /// Limits that override the fixture's `[gateway]` values.
    pub limits: LimitOverrides,
    /// The CA to use (default: a new one). Pass one to issue certificates for your own TLS
    /// backends before starting.
    pub ca: Option<Arc<LocalCa>>,
    /// Extra roots trusted for upstream TLS, besides the local CA.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Where to write the CA certificate (default: a fresh directory under the temp dir).
    pub ca_pem_path: Option<PathBuf>,
    /// Bench-only switches (all off by default); see [`BenchKnobs`].
    pub bench: BenchKnobs,
}

/// **Bench-only** switches that `vnetsim bench` uses to isolate the cost of the per-flow policy
/// check. All are off by default, and a real deployment never turns them on: connections to
/// the `unchecked_listen` front door are not held to the NSG verdicts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BenchKnobs {
    /// Close each upstream connection after one response instead of pooling it, so every
    /// request opens (and asks `sim` about) a new flow.
    pub upstream_per_request: bool,
    /// A second front door (loopback) whose connections admit new flows **without asking
    /// `sim`** (no verdict, no flow-verdict metric, no NSG hops on the flow), while the main
    /// front door keeps checking: the same process
    /// measured with and without its policy check ([`GatewayHandle::bench_unchecked_addr`]).
    /// Both front doors share the upstream pools, so pair it with `upstream_per_request`.
    pub unchecked_listen: Option<SocketAddr>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            listen: None,
            admin_listen: None,
            admin_token: None,
            upstreams: Vec::new(),
            start_echo: true,
            reload: None,
            base_dir: None,
            accept_preflight_errors: false,
            limits: LimitOverrides::default(),
            ca: None,
            extra_roots: Vec::new(),
            ca_pem_path: None,
            bench: BenchKnobs::default(),
        }
    }
}

// === impl StartOptions ===

impl StartOptions {
    /// Adds an upstream override: `host:port` of the topology is played by `addr`.
    pub fn upstream(mut self, host: &str, port: u16, addr: SocketAddr) -> Self {
        self.upstreams.push(UpstreamOverride {
            host: host.to_string(),
            port,
            addr,
        });
        self
    }

    /// The owner's loader, run again by `POST /admin/reload`.
    pub fn reload_with(mut self, hook: Arc<dyn Reload>) -> Self {
        self.reload = Some(ReloadHook(hook));
        self
    }

    /// The folder relative paths of the topology are read from.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// Sets the limit overrides.
    pub fn limits(mut self, limits: LimitOverrides) -> Self {
        self.limits = limits;
        self
    }

    /// Uses `ca` as the local CA.
    pub fn ca(mut self, ca: Arc<LocalCa>) -> Self {
        self.ca = Some(ca);
        self
    }

    /// Sets the admin token.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into());
        self
    }
}

/// Why the gateway did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `start` was not called inside a Tokio runtime.
    #[error("gateway::start must run inside a Tokio runtime")]
    NoRuntime,
    /// The topology was refused (error findings, non-loopback upstream, ...).
    #[error("the topology was refused: {0}")]
    Refused(#[from] ChangeError),
    /// A listen address is not valid or not loopback.
    #[error("{what} `{addr}`: {reason}")]
    Listen {
        /// `listen` or `admin_listen`.
        what: &'static str,
        /// The address as given.
        addr: String,
        /// What is wrong.
        reason: String,
    },
    /// A listener could not be bound.
    #[error("binding {what} {addr}: {source}")]
    Bind {
        /// `listen` or `admin_listen`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// An upstream override names no `host:port` of the topology.
    #[error("upstream override {host}:{port}: no [[hosts]] entry named `{host}` (or with that DNS name) has a service on port {port}")]
    UnknownUpstream {
        /// The host as given.
        host: String,
        /// The port.
        port: u16,
    },
    /// The CA or a TLS configuration could not be made.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The random admin token could not be generated.
    #[error("generating the admin token: {0}")]
    Random(rustls::Error),
}

fn listen_addr(
    what: &'static str,
    given: Option<SocketAddr>,
    fixture: Option<&str>,
) -> Result<SocketAddr, StartError> {
    let addr = match (given, fixture) {
        (Some(a), _) => a,
        (None, Some(s)) => s.trim().parse().map_err(|_| StartError::Listen {
            what,
            addr: s.to_string(),
            reason: "expected ip:port, e.g. 127.0.0.1:8080".into(),
        })?,
        (None, None) => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    };
    if !addr.ip().is_loopback() {
        return Err(StartError::Listen {
            what,
            addr: addr.to_string(),
            reason: "the gateway listens on loopback only (127.0.0.1 or ::1)".into(),
        });
    }
    Ok(addr)
}

/// Binds `addr` and returns the listener with the socket it got (the port, when `addr` asks
/// for any).
async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let err = |source| StartError::Bind { what, addr, source };
    let l = TcpListener::bind(addr).await.map_err(err)?;
    let at = l.local_addr().map_err(err)?;
    Ok((l, at))
}

/// Starts a gateway for `built` on the current Tokio runtime: the front door, the admin
/// listener and the echo backends. Returns once every listener is bound.
///
/// # Errors
/// [`StartError`] when the topology has structural error findings, an address is not
/// loopback or cannot be bound, an upstream override names nothing, or TLS setup fails.
pub async fn start(built: Built, opts: StartOptions) -> Result<GatewayHandle, StartError> {
    let rt = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
    for o in &opts.upstreams {
        let t = &built.topology;
        let known = t
            .host_by_name_or_dns(&o.host)
            .is_some_and(|h| t.hosts()[h].services.iter().any(|s| s.port == o.port));
        if !known {
            return Err(StartError::UnknownUpstream {
                host: o.host.clone(),
                port: o.port,
            });
        }
    }
    let g = built.topology.gateway().clone();
    let listen = listen_addr("listen", opts.listen, g.listen.as_deref())?;
    let admin_listen = listen_addr("admin_listen", opts.admin_listen, g.admin_listen.as_deref())?;
    let token: Arc<str> = match opts.admin_token.clone().or(g.admin_token.clone()) {
        Some(t) => Arc::from(t),
        None => Arc::from(tls::random_hex(16).map_err(StartError::Random)?),
    };
    let ca = match &opts.ca {
        Some(ca) => ca.clone(),
        None => Arc::new(LocalCa::new()?),
    };
    let upstream_tls = ca.client_config(&opts.extra_roots, &[b"http/1.1"])?;
    let (ca_pem_path, ca_dir) = match &opts.ca_pem_path {
        Some(p) => (p.clone(), None),
        None => {
            let dir = std::env::temp_dir().join(format!(
                "vnetsim-{}-{}",
                std::process::id(),
                tls::random_hex(6).map_err(StartError::Random)?
            ));
            std::fs::create_dir_all(&dir).map_err(|source| {
                StartError::Tls(tls::TlsError::Write {
                    path: dir.display().to_string(),
                    source,
                })
            })?;
            (dir.join("ca.pem"), Some(dir))
        }
    };
    ca.write_pem(&ca_pem_path)?;

    let options = resources::PolicyOptions {
        upstreams: opts
            .upstreams
            .iter()
            .map(|o| (o.host.clone(), o.port, o.addr))
            .collect(),
        limits: opts.limits.clone(),
        start_echo: opts.start_echo,
        base_dir: opts.base_dir.clone(),
        reload: opts.reload.clone(),
        accept_preflight_errors: opts.accept_preflight_errors,
        bench: opts.bench,
    };
    let res = resources::Resources::new(ca.clone(), upstream_tls, options, rt.clone());
    let shared = Arc::new(state::Shared::new(res, built)?);

    let (front, addr) = bind("listen", listen).await?;
    let (admin, admin_addr) = bind("admin_listen", admin_listen).await?;
    let unchecked = match opts.bench.unchecked_listen {
        Some(a) => {
            let what = "bench unchecked_listen";
            Some(bind(what, listen_addr(what, Some(a), None)?).await?)
        }
        None => None,
    };
    let (stop, stopped) = watch::channel(false);
    let front_task = rt.spawn(server::run(front, shared.clone(), stopped.clone(), true));
    let mut tasks = vec![front_task];
    let bench_unchecked_addr = unchecked.map(|(l, at)| {
        tasks.push(rt.spawn(server::run(l, shared.clone(), stopped.clone(), false)));
        at
    });
    tasks.push(rt.spawn(admin::run(admin, shared.clone(), token.clone(), stopped)));
    tracing::info!(%addr, %admin_addr, "gateway started");
    Ok(GatewayHandle {
        shared,
        addr,
        admin_addr,
        token,
        ca,
        ca_pem_path,
        ca_dir,
        stop,
        tasks,
        bench_unchecked_addr,
    })
}

/// A running gateway. Dropping it signals shutdown (in-flight requests still get the grace
/// period); [`GatewayHandle::shutdown`] also waits for the drain and closes every upstream
/// connection and echo backend.
pub struct GatewayHandle {
    shared: Arc<state::Shared>,
    addr: SocketAddr,
    admin_addr: SocketAddr,
    token: Arc<str>,
    ca: Arc<LocalCa>,
    ca_pem_path: PathBuf,
    /// The temp directory created for the CA file, removed on drop.
    ca_dir: Option<PathBuf>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    bench_unchecked_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHandle")
            .field("addr", &self.addr)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(dir) = self.ca_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

// === impl GatewayHandle ===

impl GatewayHandle {
    /// The front door's socket.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://` when the front door speaks TLS).
    pub fn url(&self) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Whether the front door speaks TLS (`[gateway] tls = true`).
    pub fn is_tls(&self) -> bool {
        self.shared.snapshot().front_tls.is_some()
    }

    /// Bench only: the socket of the front door that skips the policy check
    /// ([`BenchKnobs::unchecked_listen`]), when one was asked for.
    pub fn bench_unchecked_addr(&self) -> Option<SocketAddr> {
        self.bench_unchecked_addr
    }

    /// The admin listener's socket.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// `http://127.0.0.1:PORT` of the admin listener.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        &self.token
    }

    /// The local CA (to issue certificates for your own TLS backends).
    pub fn ca(&self) -> &Arc<LocalCa> {
        &self.ca
    }

    /// The local CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// Where the CA certificate was written.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem_path
    }

    /// Replaces one NSG's custom rules (as `PUT /admin/nsgs/{name}/security_rules`).
    ///
    /// # Errors
    /// [`ChangeError`] when the NSG is unknown, a rule is malformed or the result has error
    /// findings; the running state is then unchanged.
    pub fn set_nsg_rules(&self, nsg: &str, rules: &[RawRule]) -> Result<ChangeReport, ChangeError> {
        self.shared.set_nsg_rules(nsg, rules)
    }

    /// Replaces the whole topology (listen addresses stay).
    ///
    /// # Errors
    /// [`ChangeError::Invalid`] when `built` has error findings (APIM preflight errors pass
    /// only with [`StartOptions::accept_preflight_errors`]), or another refusal; the running
    /// state is then unchanged.
    pub fn reload(&self, built: Built) -> Result<ChangeReport, ChangeError> {
        self.shared.apply(built)
    }

    /// Runs the owner's loader again (as `POST /admin/reload`): with `body`, in place of the
    /// start's inputs.
    ///
    /// # Errors
    /// [`ChangeError::Load`] without a reload hook or when the loader fails; otherwise as
    /// [`GatewayHandle::reload`].
    pub fn reload_inputs(&self, body: Option<&ReloadBody>) -> Result<ChangeReport, ChangeError> {
        self.shared.reload(body)
    }

    /// Runs `f` on the topology in force.
    pub fn with_topology<R>(&self, f: impl FnOnce(&Topology) -> R) -> R {
        f(&self.shared.snapshot().topology)
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.shared.snapshot().limits.clone()
    }

    /// The policy generation in force (1 at start, +1 per accepted change).
    pub fn generation(&self) -> u64 {
        self.shared.snapshot().generation
    }

    /// Established flows, oldest first.
    pub fn flows(&self) -> Vec<FlowInfo> {
        self.shared.res.flows.list()
    }

    /// The built-in echo backends.
    pub fn echo_servers(&self) -> Vec<EchoInfo> {
        self.shared.res.echo_servers()
    }

    /// The flow table's size now: established flows and the heap bytes that track them.
    pub fn flow_table_memory(&self) -> FlowTableMemory {
        self.shared.res.flows.memory()
    }

    /// `GET /metrics` as text.
    pub fn metrics_text(&self) -> String {
        self.shared.res.metrics.render(
            &self.shared.res.pool_gauges(),
            self.shared.res.flows.memory(),
        )
    }

    /// Stops accepting, lets in-flight requests finish within `shutdown_grace_ms`, then closes
    /// every upstream connection and echo backend.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.shared.res.close_all();
    }
}
