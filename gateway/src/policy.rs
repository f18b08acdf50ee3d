//! What is in force, and the only caller of `sim`.
//!
//! [`PolicyState`] is an immutable snapshot: the `sim` [`Topology`], the [`Limits`], and per API
//! everything the request path needs precomputed (the upstream `Host` value, the TLS server
//! name, the pool, the metrics). Requests clone the current `Arc<PolicyState>` (a short read
//! lock, never held across an await); changes build a whole new snapshot and swap it in.
//!
//! For each **new** backend connection, [`PolicyState::admit`] resolves the backend name with
//! `sim`'s DNS as the APIM instance sees it, asks `sim` for the verdict of the flow (the
//! instance's source address → the resolved address and port, TCP; the non-allocating
//! [`Topology::decide`]), and on Allow names the loopback socket that plays that host:port
//! (an upstream override, else the service's `upstream`, else its built-in echo backend).
//!
//! A change ([`Shared::apply`]) is refused when the new topology has structural error findings;
//! otherwise the snapshot is swapped and established flows are re-evaluated for
//! `flush_connection` (see [`crate::flows`]).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use http::HeaderValue;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde::Serialize;
use sim::api::BackendUrl;
use sim::fixture::{Fixture, Format, LoadError, RawRule, ServeKind};
use sim::flow::{Decision, Flow, FlowPath, VerdictKind};
use sim::{Built, Finding, ServiceTagTable, Topology};
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::config::{LimitOverrides, Limits};
use crate::echo::EchoServer;
use crate::error::{ErrorCode, PolicyOutcome, ProxyError};
use crate::flows::{FlowEntry, FlowHop, FlowTable};
use crate::lock;
use crate::metrics::{ApiMetrics, FlowLabels, Metrics, PoolGauge, NO_API_LABEL};
use crate::tls::{self, LocalCa, TlsError};
use crate::upstream::Pool;

/// Why a fixture file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// The text does not follow the fixture schema.
    #[error("{path}:{error}")]
    Parse {
        /// The file.
        path: String,
        /// Line, column and message.
        error: LoadError,
    },
    /// The `[service_tags] file` could not be used.
    #[error("service tags {path}: {reason}")]
    Tags {
        /// The tags file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Loads a fixture file (TOML, JSON or YAML by extension) and builds its topology, with the
/// `[service_tags] file` resolved relative to the fixture.
///
/// # Errors
/// [`FixtureError`] when a file cannot be read or parsed. Findings are not errors here: they
/// are in the returned [`Built`].
pub fn load_fixture(path: &Path) -> Result<Built, FixtureError> {
    let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let format = Format::from_file_name(&path.to_string_lossy());
    parse_fixture(&text, format, path.parent(), &path.display().to_string())
}

/// Parses fixture text and builds its topology; `base` resolves a relative
/// `[service_tags] file`, `name` labels errors.
///
/// # Errors
/// [`FixtureError`] when the text or the tags file cannot be used.
pub fn parse_fixture(
    text: &str,
    format: Format,
    base: Option<&Path>,
    name: &str,
) -> Result<Built, FixtureError> {
    let fixture = Fixture::parse(text, format).map_err(|error| FixtureError::Parse {
        path: name.to_string(),
        error,
    })?;
    let tags = match fixture.service_tags.as_ref().and_then(|s| s.file.as_ref()) {
        None => ServiceTagTable::builtin(),
        Some(file) => {
            let p = base.map_or_else(|| PathBuf::from(file), |b| b.join(file));
            let json = std::fs::read_to_string(&p).map_err(|e| FixtureError::Tags {
                path: p.display().to_string(),
                reason: e.to_string(),
            })?;
            ServiceTagTable::from_json(&json).map_err(|e| FixtureError::Tags {
                path: p.display().to_string(),
                reason: e.to_string(),
            })?
        }
    };
    Ok(Topology::build(&fixture, tags))
}

/// Why a change (a reload or a rule replacement) was refused; the running state is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The new topology has error findings.
    #[error("the change has {} error finding(s); nothing was applied", .findings.iter().filter(|f| f.is_error()).count())]
    Invalid {
        /// Every finding of the refused topology (errors first).
        findings: Vec<Finding>,
    },
    /// No NSG has that name.
    #[error("no NSG named `{0}`")]
    UnknownNsg(String),
    /// A rule does not have the fixture shape (a missing direction, two address forms, ...).
    #[error("{0}")]
    InvalidRules(String),
    /// The fixture could not be loaded.
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    /// `POST /admin/reload` without a body, and no fixture path was given at start.
    #[error("no fixture file was given at start; send the new fixture in the request body")]
    NoFixturePath,
    /// A socket that plays a backend is not loopback.
    #[error("host `{host}` port {port} maps to {target}, which is not a loopback address (set `allow_non_loopback_upstreams = true` to allow it)")]
    NotLoopback {
        /// The `[[hosts]]` name.
        host: String,
        /// The service port.
        port: u16,
        /// The socket.
        target: SocketAddr,
    },
    /// A built-in echo backend could not start.
    #[error("starting the echo backend for `{host}` port {port}: {source}")]
    Echo {
        /// The `[[hosts]]` name.
        host: String,
        /// The service port.
        port: u16,
        /// The cause.
        source: io::Error,
    },
    /// A certificate could not be issued or loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An API's backend cannot be used as a `Host` header or TLS name.
    #[error("API `{api}`: {reason}")]
    Backend {
        /// The API.
        api: String,
        /// What is wrong.
        reason: String,
    },
}

impl ChangeError {
    /// The findings of a refused topology (empty for other refusals).
    pub fn findings(&self) -> &[Finding] {
        match self {
            ChangeError::Invalid { findings } => findings,
            _ => &[],
        }
    }
}

/// What an accepted change did.
#[derive(Clone, Debug, Serialize)]
pub struct ChangeReport {
    /// The new policy generation (1 at start, +1 per change).
    pub generation: u64,
    /// Every finding of the new topology (warnings, and APIM preflight errors, do not block).
    pub findings: Vec<Finding>,
    /// Established flows re-evaluated.
    pub flows_checked: usize,
    /// Established flows cut by `flush_connection`.
    pub flows_cut: usize,
}

/// Options fixed at start that shape every snapshot.
#[derive(Clone, Debug, Default)]
pub(crate) struct PolicyOptions {
    /// `(host or DNS name, port) → socket`, matched case-insensitively.
    pub(crate) upstreams: Vec<(String, u16, SocketAddr)>,
    pub(crate) limits: LimitOverrides,
    pub(crate) start_echo: bool,
    pub(crate) fixture_path: Option<PathBuf>,
    /// Bench-only switches (see [`crate::BenchKnobs`]).
    pub(crate) bench: crate::BenchKnobs,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct EchoKey {
    host: String,
    port: u16,
    tls: bool,
    names: Vec<String>,
}

/// Long-lived resources that outlive snapshots (pools, echo backends, counters, flows).
pub(crate) struct Resources {
    pub(crate) metrics: Metrics,
    pub(crate) flows: Arc<FlowTable>,
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    echo: Mutex<BTreeMap<EchoKey, EchoServer>>,
    pub(crate) ca: Arc<LocalCa>,
    pub(crate) upstream_tls: Arc<ClientConfig>,
    pub(crate) options: PolicyOptions,
    rt: Handle,
}

/// An echo backend as [`crate::GatewayHandle::echo_servers`] lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EchoInfo {
    /// The `[[hosts]]` name it plays.
    pub host: String,
    /// The port it plays.
    pub port: u16,
    /// Its loopback socket.
    pub addr: SocketAddr,
    /// Whether it speaks TLS.
    pub tls: bool,
    /// Requests it received.
    pub requests: u64,
}

// === impl Resources ===

impl Resources {
    pub(crate) fn new(
        ca: Arc<LocalCa>,
        upstream_tls: Arc<ClientConfig>,
        options: PolicyOptions,
        rt: Handle,
    ) -> Resources {
        Resources {
            metrics: Metrics::default(),
            flows: Arc::new(FlowTable::default()),
            pools: Mutex::new(HashMap::new()),
            echo: Mutex::new(BTreeMap::new()),
            ca,
            upstream_tls,
            options,
            rt,
        }
    }

    fn pool(&self, label: &str) -> Arc<Pool> {
        lock(&self.pools)
            .entry(label.to_string())
            .or_insert_with(|| Arc::new(Pool::new(label.to_string())))
            .clone()
    }

    pub(crate) fn pool_gauges(&self) -> Vec<PoolGauge> {
        let mut g: Vec<PoolGauge> = lock(&self.pools).values().map(|p| p.gauge()).collect();
        g.sort_by(|a, b| a.backend.cmp(&b.backend));
        g
    }

    pub(crate) fn echo_servers(&self) -> Vec<EchoInfo> {
        lock(&self.echo)
            .values()
            .map(|e| EchoInfo {
                host: e.host().to_string(),
                port: e.port(),
                addr: e.addr(),
                tls: e.is_tls(),
                requests: e.requests(),
            })
            .collect()
    }

    /// Closes every upstream connection and stops the echo backends (shutdown).
    pub(crate) fn close_all(&self) {
        for p in lock(&self.pools).values() {
            p.clear();
        }
        self.flows.close_all();
        lock(&self.echo).clear();
    }

    fn ensure_echo(
        &self,
        host: &sim::topology::Host,
        port: u16,
        tls: bool,
    ) -> Result<SocketAddr, ChangeError> {
        let mut names: Vec<String> = host.dns.clone();
        names.push(host.address.to_string());
        if let Some(p) = host.public_address {
            names.push(p.to_string());
        }
        let key = EchoKey {
            host: host.name.clone(),
            port,
            tls,
            names: names.clone(),
        };
        let mut echo = lock(&self.echo);
        if let Some(e) = echo.get(&key) {
            return Ok(e.addr());
        }
        let cfg = if tls {
            let cert = self.ca.issue(&names)?;
            Some(tls::server_config(&cert, tls::ALPN_H2_H1)?)
        } else {
            None
        };
        let server = EchoServer::start(&self.rt, &host.name, port, cfg).map_err(|source| {
            ChangeError::Echo {
                host: host.name.clone(),
                port,
                source,
            }
        })?;
        let addr = server.addr();
        echo.insert(key, server);
        Ok(addr)
    }

    fn override_for(&self, host: &sim::topology::Host, port: u16) -> Option<SocketAddr> {
        self.options
            .upstreams
            .iter()
            .find(|(name, p, _)| {
                *p == port
                    && (name.eq_ignore_ascii_case(&host.name)
                        || host.dns.iter().any(|d| d.eq_ignore_ascii_case(name)))
            })
            .map(|(_, _, a)| *a)
    }
}

/// One API, precomputed for the request path.
pub(crate) struct Route {
    pub(crate) name: String,
    pub(crate) backend: BackendUrl,
    /// `backend.authority`, shared by the flows of this route.
    pub(crate) authority: Arc<str>,
    /// The upstream `Host` header: the backend URL's authority.
    pub(crate) host_header: HeaderValue,
    /// TLS SNI and the name the backend certificate must carry.
    pub(crate) server_name: ServerName<'static>,
    pub(crate) pool: Arc<Pool>,
    pub(crate) metrics: Arc<ApiMetrics>,
    /// The flow's source (the instance's outbound address) and destination (the backend name
    /// as the instance's DNS answers it), or why there is none.
    pub(crate) endpoints: Result<(IpAddr, IpAddr), ProxyError>,
    /// The loopback socket that plays the destination and the `[[hosts]]` name, or why none.
    pub(crate) target: Result<(SocketAddr, Arc<str>), ProxyError>,
    /// The NSG path between the endpoints (it does not depend on ports).
    pub(crate) path: Option<FlowPath>,
}

/// A new flow `sim` allowed, and where to dial it.
pub(crate) struct Admitted {
    pub(crate) flow: Flow,
    pub(crate) hops: Arc<[FlowHop]>,
    pub(crate) target: SocketAddr,
    pub(crate) host: Arc<str>,
}

/// What a snapshot remembers of one distinct [`Decision`]: the hops an allowed flow records
/// and the metrics counter of its labels.
pub(crate) struct Seen {
    hops: Arc<[FlowHop]>,
    counter: Arc<AtomicU64>,
}

/// The policy in force (immutable; replaced whole on change).
pub(crate) struct PolicyState {
    pub(crate) topology: Topology,
    pub(crate) limits: Limits,
    pub(crate) routes: Vec<Route>,
    pub(crate) no_api: Arc<ApiMetrics>,
    /// The front door's TLS, when `[gateway] tls = true`.
    pub(crate) front_tls: Option<TlsAcceptor>,
    pub(crate) generation: u64,
    /// Interned per distinct decision (see [`PolicyState::admit`]).
    seen: Mutex<Vec<(Decision, Arc<Seen>)>>,
    /// The hops of a flow admitted without a verdict (bench only).
    no_hops: Arc<[FlowHop]>,
}

// === impl PolicyState ===

impl PolicyState {
    fn build(
        res: &Resources,
        topology: Topology,
        generation: u64,
    ) -> Result<PolicyState, ChangeError> {
        let limits = Limits::resolve(topology.gateway(), &res.options.limits);
        let mut targets = Vec::with_capacity(topology.hosts().len());
        for h in topology.hosts() {
            let mut row = Vec::with_capacity(h.services.len());
            for s in &h.services {
                let target = match (res.override_for(h, s.port), s.upstream) {
                    (Some(a), _) | (None, Some(a)) => Some(a),
                    (None, None) if s.serve == Some(ServeKind::Echo) && res.options.start_echo => {
                        Some(res.ensure_echo(h, s.port, s.tls)?)
                    }
                    (None, None) => None,
                };
                if let Some(t) = target {
                    if !t.ip().is_loopback() && !limits.allow_non_loopback_upstreams {
                        return Err(ChangeError::NotLoopback {
                            host: h.name.clone(),
                            port: s.port,
                            target: t,
                        });
                    }
                }
                row.push(target);
            }
            targets.push(row);
        }
        let mut routes = Vec::with_capacity(topology.apis().len());
        for api in topology.apis() {
            let b = &api.backend;
            let bad = |reason: String| ChangeError::Backend {
                api: api.name.clone(),
                reason,
            };
            let host_header = HeaderValue::from_str(&b.authority)
                .map_err(|e| bad(format!("authority `{}`: {e}", b.authority)))?;
            let server_name = ServerName::try_from(b.host.clone())
                .map_err(|e| bad(format!("TLS name `{}`: {e}", b.host)))?;
            let label = format!(
                "{}://{}:{}",
                if b.https { "https" } else { "http" },
                b.host,
                b.port
            );
            let endpoints = endpoints(&topology, b);
            let target = match &endpoints {
                Ok((_, destination)) => target(&topology, &targets, &limits, b, *destination),
                Err(e) => Err(e.clone()),
            };
            routes.push(Route {
                name: api.name.clone(),
                backend: b.clone(),
                authority: Arc::from(b.authority.as_str()),
                host_header,
                server_name,
                pool: res.pool(&label),
                metrics: res.metrics.api(&api.name),
                path: endpoints
                    .as_ref()
                    .ok()
                    .map(|&(src, dst)| topology.path(src, dst)),
                endpoints,
                target,
            });
        }
        let g = topology.gateway();
        let front_tls = if g.tls {
            let base = res
                .options
                .fixture_path
                .as_deref()
                .and_then(Path::parent)
                .map(Path::to_path_buf);
            let rel = |p: &str| {
                base.as_ref()
                    .map_or_else(|| PathBuf::from(p), |b| b.join(p))
            };
            let cert = match (&g.tls_cert, &g.tls_key) {
                (Some(c), Some(k)) => tls::load_pem(&rel(c), &rel(k))?,
                _ => res.ca.issue(&[
                    g.hostname.clone(),
                    "localhost".to_string(),
                    "127.0.0.1".to_string(),
                    "::1".to_string(),
                ])?,
            };
            Some(TlsAcceptor::from(tls::server_config(
                &cert,
                tls::ALPN_H2_H1,
            )?))
        } else {
            None
        };
        Ok(PolicyState {
            topology,
            limits,
            routes,
            no_api: res.metrics.api(NO_API_LABEL),
            front_tls,
            generation,
            seen: Mutex::new(Vec::new()),
            no_hops: Arc::from([]),
        })
    }

    /// Admits a new flow for `route` from the synthetic `source_port`, or says why not.
    /// `check = false` (bench only, [`crate::BenchKnobs::unchecked_listen`]) skips the verdict.
    ///
    /// Everything but the verdict (the DNS answer, the source address, the loopback socket) is
    /// a function of the snapshot and was resolved when it was built ([`Route::endpoints`],
    /// [`Route::target`]); the verdict is decided for every new flow (the synthetic source port
    /// differs, and rules may name source ports). Its names and its metrics counter are
    /// interned per distinct decision, so an admitted flow allocates nothing here.
    pub(crate) fn admit(
        &self,
        route: &Route,
        source_port: u16,
        metrics: &Metrics,
        check: bool,
    ) -> Result<Admitted, ProxyError> {
        let (source, destination) = route.endpoints.clone()?;
        let flow = Flow::tcp(source, source_port, destination, route.backend.port);
        let hops = if check {
            let d = match &route.path {
                Some(path) => self.topology.decide_on(path, &flow),
                None => self.topology.decide(&flow),
            };
            let seen = self.seen(&d, metrics);
            seen.counter.fetch_add(1, Ordering::Relaxed);
            if !d.allowed() {
                return Err(ProxyError::Policy {
                    backend: route.backend.authority.clone(),
                    outcome: Box::new(self.outcome(&flow, &d)),
                });
            }
            seen.hops.clone()
        } else {
            self.no_hops.clone()
        };
        let (target, host) = route.target.clone()?;
        Ok(Admitted {
            hops,
            flow,
            target,
            host,
        })
    }

    /// The interned names and counter of decision `d` (computed on first sight). A snapshot
    /// sees a handful of distinct decisions, so a short list scanned by equality beats hashing.
    fn seen(&self, d: &Decision, metrics: &Metrics) -> Arc<Seen> {
        if let Some((_, s)) = lock(&self.seen).iter().find(|(k, _)| k == d) {
            return s.clone();
        }
        let topo = &self.topology;
        let s = Arc::new(Seen {
            hops: hops(topo, d).into(),
            counter: metrics.flow_counter(flow_labels(topo, d)),
        });
        let mut seen = lock(&self.seen);
        if let Some((_, s)) = seen.iter().find(|(k, _)| k == d) {
            return s.clone();
        }
        seen.push((*d, s.clone()));
        s
    }

    fn outcome(&self, flow: &Flow, d: &Decision) -> PolicyOutcome {
        let topo = &self.topology;
        let verdict = d.verdict.as_str();
        let code = ErrorCode::from_verdict_code(d.code.as_str()).unwrap_or(match d.verdict {
            VerdictKind::Deny => ErrorCode::NsgDenied,
            _ => ErrorCode::NoRoute,
        });
        let (nsg, rule, priority) = match d.decided_by {
            Some(r) => {
                let info = topo.rule_info(r);
                (
                    Some(info.nsg.to_string()),
                    Some(info.rule),
                    Some(info.priority),
                )
            }
            None => (None, None, None),
        };
        // The explained verdict allocates; it runs only on the (rare) refusal path.
        let reason = topo.evaluate(flow).detail;
        PolicyOutcome {
            verdict,
            code,
            nsg,
            rule,
            priority,
            flow: crate::flows::describe(flow),
            reason,
        }
    }
}

/// The flow's source and destination for backend `b`: the instance's outbound address and the
/// backend name as the instance's DNS answers it.
fn endpoints(topo: &Topology, b: &BackendUrl) -> Result<(IpAddr, IpAddr), ProxyError> {
    let destination = topo
        .resolve_from_apim(&b.host)
        .map_err(|e| ProxyError::Dns {
            backend: b.authority.clone(),
            reason: e.to_string(),
        })?;
    let Some(source) = topo.apim_source() else {
        return Err(ProxyError::Policy {
            backend: b.authority.clone(),
            outcome: Box::new(PolicyOutcome {
                verdict: "Unreachable",
                code: ErrorCode::NoRoute,
                nsg: None,
                rule: None,
                priority: None,
                flow: format!("Tcp ? -> {destination}:{}", b.port),
                reason: "the topology has no [apim] instance to send from".into(),
            }),
        });
    };
    Ok((source, destination))
}

/// The loopback socket that plays `destination`:`b.port`, and the `[[hosts]]` name.
fn target(
    topo: &Topology,
    targets: &[Vec<Option<SocketAddr>>],
    limits: &Limits,
    b: &BackendUrl,
    destination: IpAddr,
) -> Result<(SocketAddr, Arc<str>), ProxyError> {
    let Some((h, s)) = topo.service_at(destination, b.port) else {
        return Err(ProxyError::Refused {
            backend: b.authority.clone(),
            reason: format!(
                "no [[hosts.services]] listens on {destination} port {}",
                b.port
            ),
        });
    };
    let host = &topo.hosts()[h];
    let Some(target) = targets.get(h).and_then(|r| r.get(s)).copied().flatten() else {
        return Err(ProxyError::Refused {
            backend: b.authority.clone(),
            reason: format!(
                "nothing plays host `{}` port {} on loopback (set serve = \"echo\" or upstream = \"127.0.0.1:PORT\", or pass an upstream override)",
                host.name, b.port
            ),
        });
    };
    if !target.ip().is_loopback() && !limits.allow_non_loopback_upstreams {
        return Err(ProxyError::NotLoopback {
            backend: b.authority.clone(),
            target,
        });
    }
    Ok((target, Arc::from(host.name.as_str())))
}

fn flow_labels(topo: &Topology, d: &Decision) -> FlowLabels {
    let (nsg, rule) = match d.decided_by {
        Some(r) => {
            let info = topo.rule_info(r);
            (info.nsg.to_string(), info.rule)
        }
        None => (String::new(), String::new()),
    };
    FlowLabels {
        verdict: d.verdict.as_str(),
        code: d.code.as_str().to_string(),
        nsg,
        rule,
    }
}

/// The NSG hops of a decision, in path order.
fn hops(topology: &Topology, d: &Decision) -> Vec<FlowHop> {
    d.nsgs()
        .map(|r| {
            let info = topology.rule_info(*r);
            FlowHop {
                nsg: info.nsg.to_string(),
                rule: info.rule,
                priority: info.priority,
                direction: format!("{:?}", r.direction),
            }
        })
        .collect()
}

/// Re-decides every established flow against `topology` and cuts those now denied by an NSG
/// with `flush_connection = true`, and every flow whose source is no longer the instance's
/// outbound address. Returns (checked, cut).
fn reevaluate(flows: &[Arc<FlowEntry>], topology: &Topology) -> (usize, usize) {
    let mut cut = 0;
    let source = topology.apim_source();
    for f in flows {
        if f.is_cut() {
            continue;
        }
        // The instance's outbound address changed (integration turned off or on, another
        // subnet or address): the 5-tuple of this flow no longer exists, whatever the rules say.
        if source != Some(f.flow.source) {
            let now = source.map_or_else(|| "no outbound address".to_string(), |s| s.to_string());
            f.cut(format!(
                "flow {} was cut: the instance's outbound address changed to {now} ({})",
                f.describe(),
                sim::Assumption::NetworkChangeResetsFlows.code()
            ));
            tracing::info!(flow = %f.describe(), "established flow cut: the instance's network configuration changed");
            cut += 1;
            continue;
        }
        let d = topology.decide(&f.flow);
        if d.allowed() {
            continue;
        }
        // Only a denying NSG that flushes breaks an established flow; unreachable verdicts
        // and non-flushing NSGs leave it alone (rules apply to new flows only).
        let Some(rule) = d.decided_by else { continue };
        if !topology.nsg_flush_connection(rule.nsg) {
            continue;
        }
        let info = topology.rule_info(rule);
        f.cut(format!(
            "flow {} was cut: nsgs/{}/{} (priority {}) now denies it and the NSG has flush_connection = true",
            f.describe(),
            info.nsg,
            info.rule,
            info.priority
        ));
        tracing::info!(flow = %f.describe(), nsg = info.nsg, rule = %info.rule, "established flow cut by flush_connection");
        cut += 1;
    }
    (flows.len(), cut)
}

struct ChangeState {
    generation: u64,
    conn_limit: usize,
}

/// Gateway-wide state: the current snapshot, the resources, the connection cap.
pub(crate) struct Shared {
    pub(crate) res: Resources,
    state: RwLock<Arc<PolicyState>>,
    /// Serializes changes (each builds on the snapshot it replaces).
    change: Mutex<ChangeState>,
    /// Client connection permits (`max_connections`).
    pub(crate) conn_limit: Arc<Semaphore>,
    /// Permits to retire when they come back (a lowered `max_connections`).
    permit_debt: AtomicUsize,
}

// === impl Shared ===

impl Shared {
    /// Builds the first snapshot.
    pub(crate) fn new(res: Resources, built: Built) -> Result<Shared, ChangeError> {
        let errors = has_structural_errors(&built);
        if errors {
            return Err(ChangeError::Invalid {
                findings: built.findings,
            });
        }
        let state = PolicyState::build(&res, built.topology, 1)?;
        let conn_limit = state.limits.max_connections;
        Ok(Shared {
            res,
            state: RwLock::new(Arc::new(state)),
            change: Mutex::new(ChangeState {
                generation: 1,
                conn_limit,
            }),
            conn_limit: Arc::new(Semaphore::new(conn_limit)),
            permit_debt: AtomicUsize::new(0),
        })
    }

    /// The snapshot in force.
    pub(crate) fn snapshot(&self) -> Arc<PolicyState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Applies a new topology (see the module docs).
    pub(crate) fn apply(&self, built: Built) -> Result<ChangeReport, ChangeError> {
        self.change_with(|_| Ok(built))
    }

    /// Replaces one NSG's custom rules.
    pub(crate) fn set_nsg_rules(
        &self,
        nsg: &str,
        rules: &[RawRule],
    ) -> Result<ChangeReport, ChangeError> {
        self.change_with(|current| {
            if current.topology.nsg_index(nsg).is_none() {
                return Err(ChangeError::UnknownNsg(nsg.to_string()));
            }
            current
                .topology
                .with_nsg_rules(nsg, rules)
                .map_err(ChangeError::InvalidRules)
        })
    }

    /// Re-reads the fixture file given at start.
    pub(crate) fn reload_from_file(&self) -> Result<ChangeReport, ChangeError> {
        let path = self
            .res
            .options
            .fixture_path
            .clone()
            .ok_or(ChangeError::NoFixturePath)?;
        self.change_with(|_| Ok(load_fixture(&path)?))
    }

    fn change_with(
        &self,
        make: impl FnOnce(&PolicyState) -> Result<Built, ChangeError>,
    ) -> Result<ChangeReport, ChangeError> {
        let mut cs = lock(&self.change);
        let result = self.change_locked(&mut cs, make);
        match &result {
            Ok(r) => {
                self.res
                    .metrics
                    .changes_applied
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    generation = r.generation,
                    flows_cut = r.flows_cut,
                    "policy change applied"
                );
            }
            Err(e) => {
                self.res
                    .metrics
                    .changes_refused
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(cause = %e, "policy change refused");
            }
        }
        result
    }

    fn change_locked(
        &self,
        cs: &mut ChangeState,
        make: impl FnOnce(&PolicyState) -> Result<Built, ChangeError>,
    ) -> Result<ChangeReport, ChangeError> {
        let current = self.snapshot();
        let built = make(&current)?;
        if has_structural_errors(&built) {
            return Err(ChangeError::Invalid {
                findings: built.findings,
            });
        }
        let findings = built.findings;
        let next = Arc::new(PolicyState::build(
            &self.res,
            built.topology,
            cs.generation + 1,
        )?);
        cs.generation += 1;
        *self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next.clone();
        self.resize_conn_limit(cs, next.limits.max_connections);
        let (checked, cut) = reevaluate(&self.res.flows.snapshot(), &next.topology);
        self.res
            .metrics
            .flows_cut
            .fetch_add(cut as u64, Ordering::Relaxed);
        Ok(ChangeReport {
            generation: cs.generation,
            findings,
            flows_checked: checked,
            flows_cut: cut,
        })
    }

    fn resize_conn_limit(&self, cs: &mut ChangeState, new: usize) {
        if new > cs.conn_limit {
            let mut grow = new - cs.conn_limit;
            // Cancel pending retirements first.
            while grow > 0 {
                let debt = self.permit_debt.load(Ordering::Acquire);
                if debt == 0 {
                    break;
                }
                let pay = debt.min(grow);
                if self
                    .permit_debt
                    .compare_exchange(debt, debt - pay, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    grow -= pay;
                }
            }
            self.conn_limit.add_permits(grow);
        } else if new < cs.conn_limit {
            let shrink = cs.conn_limit - new;
            let forgotten = self.conn_limit.forget_permits(shrink);
            self.permit_debt
                .fetch_add(shrink - forgotten, Ordering::AcqRel);
        }
        cs.conn_limit = new;
    }

    /// Returns a client connection's permit, retiring it if `max_connections` was lowered.
    pub(crate) fn release_permit(&self, permit: OwnedSemaphorePermit) {
        let mut debt = self.permit_debt.load(Ordering::Acquire);
        while debt > 0 {
            match self.permit_debt.compare_exchange(
                debt,
                debt - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    permit.forget();
                    return;
                }
                Err(d) => debt = d,
            }
        }
        drop(permit);
    }
}

fn has_structural_errors(built: &Built) -> bool {
    !built.structural_errors().is_empty()
}
