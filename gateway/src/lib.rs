//! `gateway` — the data plane that plays an API Management gateway attached to a simulated
//! VNet. It receives real HTTP requests on a loopback listener, routes them to API backends,
//! and opens each new backend connection only after `sim` allowed that flow from the APIM
//! instance's source address. Backends are real servers on loopback; their simulated addresses
//! are never dialled.
//!
//! # Map of the modules
//! - [`server`] — the front door: accept loop, TLS with ALPN, HTTP/1.1 + HTTP/2, connection
//!   cap, graceful shutdown.
//! - `io` — the slow-client guard (header-read timeout with a 408 answer) and the
//!   problem document for heads the HTTP/1 parser refuses itself (431).
//! - `proxy` — one request: open-proxy and edge refusals (TRACE, Host, transfer codings),
//!   routing, in-place rewriting, hop-by-hop stripping.
//! - `path` — dot-segment removal before routing (RFC 3986 §5.2.4).
//! - `policy` — the immutable policy snapshot and per-flow admission: it asks `sim` (the API's
//!   flow, the verdict) and applies the answer.
//! - `state` — the snapshot in force and changes to it (refused whole on error findings);
//!   `sim` says which established flows a change cuts.
//! - `resources` — what outlives snapshots: pools, echo backends, the CA, start options, and
//!   flushing the established flows.
//! - [`reload`] — the hook through which the owner's loader gives the gateway new topologies
//!   (the gateway reads no topology files).
//! - `upstream` — per-backend keep-alive pools of HTTP/1.1 client connections, TLS to HTTPS
//!   backends, failure → code mapping.
//! - [`flows`] — the flow table (established upstream connections).
//! - `body` — request-body limit and read deadline, and the response body that returns
//!   connections to the pool.
//! - [`error`] — [`error::ProxyError`]: codes, the code → status table, problem documents.
//! - [`config`] — limits and their documented defaults.
//! - [`tls`] — the local CA and rustls configurations.
//! - [`file`] — bounded reads of regular files (PEM files here; every file the root crate reads).
//! - [`echo`] — the built-in `echo` backend.
//! - `admin` — the admin listener: reload, rule changes (a list, or one rule), NSGs, flows and
//!   flushing them, faults, the journal, metrics.
//! - `fault` — faults on the backend leg: the rules in force (`sim` decides which applies) and
//!   the loopback sinks and stalled connections that play them.
//! - `journal` — every request, in a bounded ring buffer ([`JournalPage`]).
//! - `metrics` — counters in the Prometheus text format.
//!
//! # Runtime and what can change
//! [`start`] spawns its tasks on the calling Tokio runtime. `../shared/PERF-NOTES.md` found a
//! `current_thread` runtime per free core fastest on small machines; the gateway needs nothing
//! from a multi-thread runtime. Every topology and limit may change at runtime
//! ([`GatewayHandle::reload`], [`GatewayHandle::set_nsg_rules`],
//! [`GatewayHandle::put_security_rule`], the admin API) except the
//! listen addresses and the admin token, which are fixed at start; a changed
//! `max_header_bytes` or `header_read_timeout_ms` applies to new client connections.
//!
//! # Example
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // The owner loads topologies (the `vnetsim` crate's loader); here, one built in memory.
//! # let built: sim::Built = unimplemented!();
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
mod fault;
mod io;
mod journal;
mod metrics;
mod options;
mod path;
mod policy;
mod proxy;
mod resources;
mod state;
mod upstream;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sim::{Built, ListenAddr, RawRule, Topology};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Locks `m`, also after a panic elsewhere poisoned it: every mutex of the gateway guards
/// state that stays consistent between statements (a list, a counter, a cached value).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub use body::{BodyFailure, GatewayBody};
pub use config::{LimitOverrides, Limits};
pub use fault::{FaultError, FaultsInfo, WRONG_NAME};
pub use flows::{FlowHop, FlowInfo, FlowNow, FlowTableMemory};
pub use journal::{JournalEntry, JournalPage, DEFAULT_JOURNAL_SIZE};
pub use reload::{Reload, ReloadBody, ReloadError, ReloadHook};
pub use resources::{EchoInfo, FlushReport};
pub use state::{ChangeError, ChangeReport, NsgInfo, RulePut};
pub use tls::LocalCa;

#[cfg(feature = "bench")]
pub use options::BenchKnobs;
pub use options::{StartError, StartOptions, UpstreamOverride};

fn listen_addr(
    what: &'static str,
    given: Option<SocketAddr>,
    fixture: Option<ListenAddr>,
) -> Result<SocketAddr, StartError> {
    // The fixture's listeners were parsed (and checked loopback) by `sim`'s build.
    let addr = given
        .or(fixture.map(|l| l.0))
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
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
    let listen = listen_addr("listen", opts.listen, g.listen)?;
    let admin_listen = listen_addr("admin_listen", opts.admin_listen, g.admin_listen)?;
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
            .map(|o| (o.host.clone(), o.port, o.addr, o.plain))
            .collect(),
        limits: opts.limits.clone(),
        start_echo: opts.start_echo,
        base_dir: opts.base_dir.clone(),
        reload: opts.reload.clone(),
        accept_preflight_errors: opts.accept_preflight_errors,
        bench: opts.bench_knobs(),
    };
    let res = resources::Resources::new(ca.clone(), upstream_tls, options, rt.clone());
    let shared = Arc::new(state::Shared::new(res, built)?);

    let (front, addr) = bind("listen", listen).await?;
    let (admin, admin_addr) = bind("admin_listen", admin_listen).await?;
    let unchecked = match opts.bench_knobs().unchecked_listen {
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

/// The fault rules of a gateway, as a cloneable handle ([`GatewayHandle::fault_control`]).
/// After the gateway stopped, changes through it have no effect on anything.
#[derive(Clone)]
pub struct FaultControl(Arc<state::Shared>);

impl std::fmt::Debug for FaultControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultControl").finish_non_exhaustive()
    }
}

impl FaultControl {
    /// As [`GatewayHandle::add_fault`].
    ///
    /// # Errors
    /// [`FaultError`] with every problem of the rule; nothing changes.
    pub fn add(&self, rule: &sim::FaultRule) -> Result<bool, FaultError> {
        self.0.add_fault(rule)
    }
    /// As [`GatewayHandle::remove_fault`].
    pub fn remove(&self, name: &str) -> bool {
        self.0.res.faults.remove(name)
    }
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
    #[cfg_attr(not(feature = "bench"), allow(dead_code))]
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
    /// (`BenchKnobs::unchecked_listen`), when one was asked for. Only with the `bench` feature.
    #[cfg(feature = "bench")]
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

    /// Replaces one NSG's custom rules (as `PUT /admin/nsgs/{name}/security_rules`): rules
    /// not in `rules` are removed (the report's `rules.removed` names them).
    ///
    /// # Errors
    /// [`ChangeError`] when the NSG is unknown, a rule is malformed or the result has error
    /// findings; the running state is then unchanged.
    pub fn set_nsg_rules(&self, nsg: &str, rules: &[RawRule]) -> Result<ChangeReport, ChangeError> {
        self.shared.set_nsg_rules(nsg, rules)
    }

    /// Adds one custom rule to an NSG, or replaces the rule of the same name in place (as
    /// `PUT /admin/nsgs/{nsg}/security_rules/{rule}`); the NSG's other rules stay.
    ///
    /// # Errors
    /// [`ChangeError`] when the NSG is unknown, the rule is malformed or names a default rule,
    /// or the result has error findings (a priority already taken, ...); the running state is
    /// then unchanged.
    pub fn put_security_rule(
        &self,
        nsg: &str,
        rule: RawRule,
    ) -> Result<(ChangeReport, RulePut), ChangeError> {
        self.shared.put_nsg_rule(nsg, rule)
    }

    /// Removes one custom rule from an NSG (as `DELETE /admin/nsgs/{nsg}/security_rules/{rule}`).
    ///
    /// # Errors
    /// [`ChangeError::UnknownRule`] when the NSG has no custom rule of that name,
    /// [`ChangeError::DefaultRule`] for a default rule's name, [`ChangeError::UnknownNsg`], or
    /// error findings of the result; the running state is then unchanged.
    pub fn delete_security_rule(&self, nsg: &str, rule: &str) -> Result<ChangeReport, ChangeError> {
        self.shared.delete_nsg_rule(nsg, rule)
    }

    /// Every NSG in force with its custom rules (as `GET /admin/nsgs`).
    pub fn nsgs(&self) -> Vec<NsgInfo> {
        NsgInfo::all(&self.shared.snapshot().document)
    }

    /// One NSG in force (as `GET /admin/nsgs/{nsg}`); `None` when no NSG has that name.
    pub fn nsg(&self, name: &str) -> Option<NsgInfo> {
        NsgInfo::named(&self.shared.snapshot().document, name)
    }

    /// Ends the established flows (as `POST /admin/flows/flush`): idle pooled connections
    /// close now, busy ones when their response ends, so the next request is a new flow that
    /// the rules in force decide.
    pub fn flush_flows(&self) -> FlushReport {
        self.shared.res.flush_flows()
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

    /// Runs `f` on the topology in force and the document it was built from (the fixture a
    /// live change edits).
    pub fn with_document<R>(&self, f: impl FnOnce(&Topology, &sim::Document) -> R) -> R {
        let s = self.shared.snapshot();
        f(&s.topology, &s.document)
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.shared.snapshot().limits.clone()
    }

    /// The policy generation in force (1 at start, +1 per accepted change).
    pub fn generation(&self) -> u64 {
        self.shared.snapshot().generation
    }

    /// Established flows, oldest first, each with what the rules in force would decide for it
    /// as a new flow ([`FlowInfo::now`]).
    pub fn flows(&self) -> Vec<FlowInfo> {
        self.shared.res.flows.list(&self.shared.snapshot().topology)
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

    // === faults and the journal ===

    /// The fault rules in force and their seed.
    pub fn faults(&self) -> FaultsInfo {
        self.shared.res.faults.info()
    }

    /// Adds a fault rule (checked against the topology in force, like the fixture's
    /// `[faults]`), or replaces the rule of the same name. Returns whether it replaced one.
    ///
    /// # Errors
    /// [`FaultError`] with every problem of the rule; nothing changes.
    pub fn add_fault(&self, rule: sim::FaultRule) -> Result<bool, FaultError> {
        self.shared.add_fault(&rule)
    }

    /// Removes the fault rule `name` (case-insensitive); whether there was one.
    pub fn remove_fault(&self, name: &str) -> bool {
        self.shared.res.faults.remove(name)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.shared.res.faults.clear();
    }

    /// A handle to the fault rules that outlives borrows of this one (a test's fault guard
    /// keeps one).
    pub fn fault_control(&self) -> FaultControl {
        FaultControl(self.shared.clone())
    }

    /// Every request through the gateway, oldest first (a ring buffer of `[gateway]
    /// journal_size` entries), and how many were dropped from it.
    pub fn journal(&self) -> JournalPage {
        self.shared.res.journal.page()
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

// === impl GatewayHandle (backend addresses) ===

impl GatewayHandle {
    /// The loopback socket that plays `host:port` of the topology in force (`host` a `[[hosts]]`
    /// name or one of its DNS names): a start option's override, the service's `upstream`, or
    /// the built-in echo; `None` when nothing plays it.
    pub fn backend_addr(&self, host: &str, port: u16) -> Option<SocketAddr> {
        let snapshot = self.shared.snapshot();
        let t = &snapshot.topology;
        let res = &self.shared.res;
        let h = t.host_by_name_or_dns(host)?;
        let svc = t.hosts()[h].services.iter().find(|s| s.port == port)?;
        if let Some((addr, _)) = res.override_for(t, h, port) {
            return Some(addr);
        }
        if let Some(addr) = svc.upstream {
            return Some(addr);
        }
        // The echo started for this service (the same key the policy build asked for, so this
        // returns the running one).
        (svc.serve == Some(sim::fixture::ServeKind::Echo) && res.options.start_echo)
            .then(|| res.ensure_echo(&t.hosts()[h], port, svc.tls).ok())
            .flatten()
    }

    /// The loopback socket that plays API `api`'s backend (by API name, case-insensitive), as
    /// the gateway dials it; `None` for an unknown API or one whose backend nothing plays.
    pub fn api_backend_addr(&self, api: &str) -> Option<SocketAddr> {
        let snapshot = self.shared.snapshot();
        let route = snapshot
            .routes
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(api))?;
        route.target.as_ref().ok().map(|(addr, _)| *addr)
    }
}
