//! The policy snapshot in force and per-flow admission: the gateway asks `sim` and applies.
//!
//! [`PolicyState`] is an immutable snapshot: the `sim` [`Topology`], the [`Limits`], and per API
//! everything the request path needs precomputed (the upstream `Host` value, the TLS server
//! name, the pool, the metrics). Requests clone the current `Arc<PolicyState>` (a short read
//! lock, never held across an await); changes build a whole new snapshot and swap it in
//! ([`crate::state`]).
//!
//! For each **new** backend connection, [`PolicyState::admit`] takes the API's flow as `sim`
//! answers it when the snapshot is built ([`Topology::api_endpoints`]: the instance's source
//! address and the backend name resolved by the instance's DNS — the same answer `check` and
//! `validate` give), asks `sim` for the verdict of the flow from a synthetic source port (the
//! non-allocating [`Topology::decide_on`]), and on Allow names the loopback socket that plays
//! that host:port (an upstream override, else the service's `upstream`, else its built-in echo
//! backend). When `sim` says an Azure Firewall's DNAT rule translated the flow
//! ([`Decision::dnat`]: the backend URL names the firewall's public address), the socket is the
//! one that plays the *translated* host:port — the gateway applies the translation, it does not
//! compute it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::HeaderValue;
use rustls_pki_types::ServerName;
use sim::BackendUrl;
use sim::{Decision, Flow, FlowPath, VerdictCode, VerdictKind};
use sim::{Document, ServeKind, Topology};
use tokio_rustls::TlsAcceptor;

use crate::config::Limits;
use crate::error::{ErrorCode, PolicyOutcome, ProxyError};
use crate::flows::FlowHop;
use crate::lock;
use crate::metrics::{ApiMetrics, FlowLabels, Metrics, NO_API_LABEL};
use crate::resources::Resources;
use crate::state::ChangeError;
use crate::tls;
use crate::upstream::Pool;

/// One API, precomputed for the request path.
pub(crate) struct Route {
    pub(crate) name: String,
    /// `name`, shared by the journal's records.
    pub(crate) api: Arc<str>,
    pub(crate) backend: BackendUrl,
    /// `backend.authority`, shared by the flows of this route.
    pub(crate) authority: Arc<str>,
    /// The upstream `Host` header: the backend URL's authority.
    pub(crate) host_header: HeaderValue,
    /// TLS SNI and the name the backend certificate must carry.
    pub(crate) server_name: ServerName<'static>,
    /// Whether the gateway speaks TLS to the backend: an `https://` backend, unless a
    /// plain-HTTP server plays it (`bind_plain`, `upstream = "http://..."`).
    pub(crate) upstream_tls: bool,
    pub(crate) pool: Arc<Pool>,
    pub(crate) metrics: Arc<ApiMetrics>,
    /// The flow's source (the instance's outbound address) and destination (the backend name
    /// as the instance's DNS answers it), or why there is none.
    pub(crate) endpoints: Result<(IpAddr, IpAddr), ProxyError>,
    /// The loopback socket that plays the destination (after the DNAT translation `sim` gives
    /// the route's flow, see `dnat`) and the `[[hosts]]` name, or why none.
    pub(crate) target: Result<(SocketAddr, Arc<str>), ProxyError>,
    /// The translated destination and port `target` plays, when `sim` answered the route's flow
    /// with a DNAT translation (a flow whose decision names another one is resolved on admit).
    pub(crate) dnat: Option<(IpAddr, u16)>,
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
    /// The document the topology was built from (what live rule changes edit).
    pub(crate) document: Document,
    pub(crate) limits: Limits,
    pub(crate) routes: Vec<Route>,
    pub(crate) no_api: Arc<ApiMetrics>,
    /// The front door's TLS, when `[gateway] tls = true`.
    pub(crate) front_tls: Option<TlsAcceptor>,
    pub(crate) generation: u64,
    /// Interned per distinct decision (see [`PolicyState::admit`]).
    seen: Mutex<Vec<(Decision, Arc<Seen>)>>,
    /// The loopback socket of each host's services (`[host][service]`), for a DNAT translation
    /// met on admit.
    targets: Vec<Vec<Option<SocketAddr>>>,
    /// The hops of a flow admitted without a verdict (bench only).
    no_hops: Arc<[FlowHop]>,
}

// === impl PolicyState ===

impl PolicyState {
    pub(crate) fn build(
        res: &Resources,
        topology: Topology,
        document: Document,
        generation: u64,
    ) -> Result<PolicyState, ChangeError> {
        let limits = Limits::resolve(topology.gateway(), &res.options.limits);
        let mut targets = Vec::with_capacity(topology.hosts().len());
        // Which services are played by a plain-HTTP server whatever their `tls` (bind_plain,
        // `upstream = "http://..."`).
        let mut plain = Vec::with_capacity(topology.hosts().len());
        for (hi, h) in topology.hosts().iter().enumerate() {
            let mut row = Vec::with_capacity(h.services.len());
            let mut plain_row = Vec::with_capacity(h.services.len());
            for s in &h.services {
                let bound = res.override_for(&topology, hi, s.port);
                plain_row.push(match bound {
                    Some((_, p)) => p,
                    None => s.upstream.is_some() && s.upstream_plain,
                });
                let target = match (bound.map(|(a, _)| a), s.upstream) {
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
            plain.push(plain_row);
        }
        let mut routes = Vec::with_capacity(topology.apis().len());
        for (ai, api) in topology.apis().iter().enumerate() {
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
            let endpoints = endpoints(&topology, ai, b);
            // sim's answer for the route's flow: a DNAT rule may send it to another host:port.
            let dnat = endpoints.as_ref().ok().and_then(|&(src, dst)| {
                let probe = Flow::tcp(src, DNAT_PROBE_PORT, dst, b.port);
                topology
                    .decide(&probe)
                    .dnat
                    .map(|x| (x.destination, x.port))
            });
            let dest = endpoints
                .as_ref()
                .ok()
                .map(|&(_, d)| dnat.unwrap_or((d, b.port)));
            let target = match (&endpoints, dest) {
                (Err(e), _) => Err(e.clone()),
                (Ok((_, d)), dest) => {
                    let (d, port) = dest.unwrap_or((*d, b.port));
                    target(&topology, &targets, &limits, &b.authority, d, port)
                }
            };
            let plain_upstream = dest
                .and_then(|(d, port)| topology.service_at(d, port))
                .is_some_and(|(h, s)| plain[h][s]);
            routes.push(Route {
                upstream_tls: b.https && !plain_upstream,
                name: api.name.clone(),
                api: Arc::from(api.name.as_str()),
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
                dnat,
            });
        }
        let g = topology.gateway();
        let front_tls = if g.tls {
            let base = res.options.base_dir.clone();
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
            document,
            limits,
            routes,
            no_api: res.metrics.api(NO_API_LABEL),
            front_tls,
            generation,
            seen: Mutex::new(Vec::new()),
            no_hops: Arc::from([]),
            targets,
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
            if let Some(x) = d.dnat {
                if route.dnat != Some((x.destination, x.port)) {
                    // A translation the snapshot did not resolve (sim decided another one for
                    // this source port): the socket of that host:port.
                    let (target, host) = target(
                        &self.topology,
                        &self.targets,
                        &self.limits,
                        &route.backend.authority,
                        x.destination,
                        x.port,
                    )?;
                    return Ok(Admitted {
                        hops: seen.hops.clone(),
                        flow,
                        target,
                        host,
                    });
                }
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
        let code = ErrorCode::from(d.code);
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
        let explained = topo.evaluate(flow);
        let (firewall, rule) = match &explained.decided_by {
            // A firewall or a route decided: `sim` names it, the gateway repeats it.
            Some(by) if by.kind == sim::DecidedKind::Firewall => {
                let path = [
                    by.group.as_deref(),
                    by.collection.as_deref(),
                    Some(&by.rule),
                ];
                let path: Vec<&str> = path.into_iter().flatten().collect();
                (Some(by.nsg.clone()), Some(path.join("/")))
            }
            Some(by) if by.kind == sim::DecidedKind::Route => (None, Some(by.rule.clone())),
            _ => (None, rule),
        };
        let reason = explained.detail;
        PolicyOutcome {
            verdict,
            code,
            nsg,
            rule,
            priority,
            firewall,
            flow: flow.to_string(),
            reason,
        }
    }
}

/// The flow's source and destination for API `api`: `sim`'s answer
/// ([`Topology::api_endpoints`]), the same one `check` and `validate` give. A name that does
/// not resolve is the policy outcome `Unreachable` / `DNS_FAILURE`.
fn endpoints(topo: &Topology, api: usize, b: &BackendUrl) -> Result<(IpAddr, IpAddr), ProxyError> {
    let refusal = |code: VerdictCode, flow: String, reason: String| ProxyError::Policy {
        backend: b.authority.clone(),
        outcome: Box::new(PolicyOutcome {
            verdict: VerdictKind::Unreachable.as_str(),
            code: ErrorCode::from(code),
            nsg: None,
            rule: None,
            priority: None,
            firewall: None,
            flow,
            reason,
        }),
    };
    let Some(e) = topo.api_endpoints(api) else {
        return Err(refusal(
            VerdictCode::NoRoute,
            format!("Tcp ? -> {}:{}", b.host, b.port),
            format!("no API at index {api}"),
        ));
    };
    let Some(source) = e.source else {
        return Err(refusal(
            VerdictCode::NoRoute,
            format!("Tcp ? -> {}:{}", b.host, b.port),
            "the topology has no [apim] instance to send from".into(),
        ));
    };
    match e.resolved.address {
        Some(destination) => Ok((source, destination)),
        None => Err(refusal(
            VerdictCode::DnsFailure,
            format!("Tcp {source} -> {}:{}", e.resolved.name, b.port),
            e.resolved.failure.unwrap_or_default(),
        )),
    }
}

/// The source port of the flow a snapshot asks `sim` about to learn a route's DNAT
/// translation (DNAT rules match no source port; a flow decided otherwise is resolved on admit).
const DNAT_PROBE_PORT: u16 = 49152;

/// The loopback socket that plays `destination`:`port`, and the `[[hosts]]` name.
fn target(
    topo: &Topology,
    targets: &[Vec<Option<SocketAddr>>],
    limits: &Limits,
    authority: &str,
    destination: IpAddr,
    port: u16,
) -> Result<(SocketAddr, Arc<str>), ProxyError> {
    let Some((h, s)) = topo.service_at(destination, port) else {
        return Err(ProxyError::Refused {
            backend: authority.to_string(),
            reason: format!("no [[hosts.services]] listens on {destination} port {port}"),
        });
    };
    let host = &topo.hosts()[h];
    let Some(target) = targets.get(h).and_then(|r| r.get(s)).copied().flatten() else {
        return Err(ProxyError::Refused {
            backend: authority.to_string(),
            reason: format!(
                "nothing plays host `{}` port {port} on loopback (set serve = \"echo\" or upstream = \"127.0.0.1:PORT\", or pass an upstream override)",
                host.name
            ),
        });
    };
    if !target.ip().is_loopback() && !limits.allow_non_loopback_upstreams {
        return Err(ProxyError::NotLoopback {
            backend: authority.to_string(),
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

/// The NSG hops of a decision, in path order, then the last firewall that allowed it (`nsg`
/// is then the firewall's name and `rule` its `group/collection/rule`).
fn hops(topology: &Topology, d: &Decision) -> Vec<FlowHop> {
    let mut out: Vec<FlowHop> = d
        .nsgs()
        .map(|r| {
            let info = topology.rule_info(*r);
            FlowHop {
                kind: "nsg",
                nsg: info.nsg.to_string(),
                rule: info.rule,
                priority: info.priority,
                direction: format!("{:?}", r.direction),
            }
        })
        .collect();
    if let Some(m) = d.firewall {
        let fw = &topology.firewalls()[m.firewall];
        let (g, c, r) = fw.names(&m);
        let rule: Vec<&str> = [g, c, Some(r)].into_iter().flatten().collect();
        out.push(FlowHop {
            kind: "firewall",
            nsg: fw.name.clone(),
            rule: rule.join("/"),
            priority: 0,
            direction: "Outbound".into(),
        });
    }
    out
}
