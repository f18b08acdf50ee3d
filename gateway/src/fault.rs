//! Faults on the backend leg, applied: the fault rules in force ([`Faults`]), which one applies
//! to a request or a new connection (`sim` decides, from the seed, the rule and that rule's
//! counter: [`sim::fault_fires`]), and the means to play each kind for real on loopback:
//!
//! | kind | where | how |
//! |---|---|---|
//! | `reset` | new connection | dialled to a loopback *reset sink* that accepts and closes with `SO_LINGER 0` (a TCP RST) → `BACKEND_RESET` |
//! | `refuse` | new connection | dialled to a loopback port bound but not listening (the kernel refuses) → `BACKEND_REFUSED` |
//! | `timeout` | new connection | the real backend's connection (TLS done) whose reads never complete → the response timeout → `BACKEND_TIMEOUT` |
//! | `tls_untrusted` | new connection | a TLS sink presenting a certificate from a CA the gateway does not trust → `BACKEND_TLS` |
//! | `tls_wrong_name` | new connection | a TLS sink presenting a local-CA certificate for another name → `BACKEND_TLS` |
//! | `latency` | request | the request waits before going upstream (inside the response timeout) |
//! | `status` | request | the flow is opened (admission as usual) and the backend's answer is that status |
//! | `slow_body`, `bandwidth`, `close_mid_body` | request | the backend's real body, paced or cut ([`crate::body`]) |
//!
//! With no rule in force the request path pays one relaxed atomic load ([`Faults::pick`]).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use sim::{Fault, FaultAction, FaultRule, FaultSet};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::lock;
use crate::tls::{self, LocalCa, TlsError};

/// The name the `tls_wrong_name` certificate is issued for (`.invalid` never resolves, RFC 6761).
pub const WRONG_NAME: &str = "wrong-name.vnetsim.invalid";

/// The faults in force, as `GET /admin/faults` and [`crate::GatewayHandle::faults`] show them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultsInfo {
    /// The seed of every decision.
    pub seed: u64,
    /// The rules, in the order they are tried.
    pub rules: Vec<FaultRule>,
}

/// A fault rule that was refused: every problem, each with its finding code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("fault rule `{name}`: {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct FaultError {
    /// The rule's name.
    pub name: String,
    /// What is wrong.
    pub problems: Vec<sim::FaultProblem>,
}

/// One rule in force and its counter.
struct Rule {
    fault: Fault,
    name: Arc<str>,
    /// Requests (or new connections) this rule was asked about so far.
    counter: AtomicU64,
    /// Added live (admin API, harness) rather than by the fixture's `[faults]`.
    live: bool,
}

struct Active {
    seed: u64,
    rules: Vec<Arc<Rule>>,
}

/// The fault a request (or new connection) gets.
#[derive(Clone, Debug)]
pub(crate) struct Picked {
    pub(crate) name: Arc<str>,
    pub(crate) action: FaultAction,
    /// `latency`: the delay drawn for this request.
    pub(crate) delay: Duration,
}

/// The fault rules in force and the sinks that play connection faults.
pub(crate) struct Faults {
    /// Whether any rule is in force: the one check the request path makes without faults.
    any: AtomicBool,
    active: RwLock<Arc<Active>>,
    sinks: Mutex<Sinks>,
}

#[derive(Default)]
struct Sinks {
    reset: Option<Sink>,
    untrusted: Option<Sink>,
    wrong_name: Option<Sink>,
    /// A socket bound and never listening: connecting to it is refused.
    refused: Option<(socket2::Socket, SocketAddr)>,
}

/// A loopback listener task; dropping it stops it.
struct Sink {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// === impl Faults ===

impl Faults {
    pub(crate) fn new(set: &FaultSet) -> Faults {
        let f = Faults {
            any: AtomicBool::new(false),
            active: RwLock::new(Arc::new(Active {
                seed: 0,
                rules: Vec::new(),
            })),
            sinks: Mutex::new(Sinks::default()),
        };
        f.replace(set);
        f
    }

    fn read(&self) -> Arc<Active> {
        self.active
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn store(&self, a: Active) {
        self.any.store(!a.rules.is_empty(), Ordering::Release);
        *self
            .active
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(a);
    }

    /// Replaces every rule with a topology's `[faults]` (start and reload); counters restart.
    /// The fixture's rules come from `set`; rules added live stay (after them, counters
    /// kept) when `topology` still has their target, and are dropped with a warning otherwise.
    pub(crate) fn replace_from(&self, topology: &sim::Topology) {
        let set = topology.faults();
        let old = self.read();
        let mut rules: Vec<Arc<Rule>> = set
            .rules
            .iter()
            .cloned()
            .map(|f| new_rule(f, false))
            .collect();
        for r in old.rules.iter().filter(|r| r.live) {
            if rules.iter().any(|x| x.name.eq_ignore_ascii_case(&r.name)) {
                continue; // the fixture now declares a rule of that name
            }
            match topology.check_fault(&r.fault.rule) {
                Ok(f) if f == r.fault => rules.push(r.clone()),
                Ok(f) => rules.push(Arc::new(Rule {
                    fault: f,
                    name: r.name.clone(),
                    counter: AtomicU64::new(r.counter.load(Ordering::Relaxed)),
                    live: true,
                })),
                Err(problems) => {
                    let why: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    tracing::warn!(fault = %r.name, cause = %why.join("; "), "fault rule dropped by the new topology");
                }
            }
        }
        self.store(Active {
            seed: set.seed,
            rules,
        });
    }

    /// Replaces every rule with `set` (start).
    pub(crate) fn replace(&self, set: &FaultSet) {
        self.store(Active {
            seed: set.seed,
            rules: set
                .rules
                .iter()
                .cloned()
                .map(|f| new_rule(f, false))
                .collect(),
        });
    }

    pub(crate) fn info(&self) -> FaultsInfo {
        let a = self.read();
        FaultsInfo {
            seed: a.seed,
            rules: a.rules.iter().map(|r| r.fault.rule.clone()).collect(),
        }
    }

    /// Adds a checked rule, or replaces the rule of the same name (its counter restarts).
    /// Returns whether it replaced one.
    pub(crate) fn add(&self, fault: Fault) -> bool {
        let a = self.read();
        let mut rules = a.rules.clone();
        let pos = rules
            .iter()
            .position(|r| r.name.eq_ignore_ascii_case(fault.name()));
        let rule = new_rule(fault, true);
        let replaced = match pos {
            Some(i) => {
                rules[i] = rule;
                true
            }
            None => {
                rules.push(rule);
                false
            }
        };
        self.store(Active {
            seed: a.seed,
            rules,
        });
        replaced
    }

    /// Removes the rule named `name` (case-insensitive); whether there was one.
    pub(crate) fn remove(&self, name: &str) -> bool {
        let a = self.read();
        let rules: Vec<Arc<Rule>> = a
            .rules
            .iter()
            .filter(|r| !r.name.eq_ignore_ascii_case(name))
            .cloned()
            .collect();
        let removed = rules.len() != a.rules.len();
        self.store(Active {
            seed: a.seed,
            rules,
        });
        removed
    }

    /// Removes every rule (the seed stays).
    pub(crate) fn clear(&self) {
        let seed = self.read().seed;
        self.store(Active {
            seed,
            rules: Vec::new(),
        });
    }

    /// The fault for the next request (`connection = false`) or new connection (`true`) to
    /// `host:port`: the first rule of that level and target that fires. Each rule asked
    /// advances its counter, so the same sequence of requests gets the same decisions.
    #[inline]
    pub(crate) fn pick(&self, host: &str, port: u16, connection: bool) -> Option<Picked> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.pick_slow(host, port, connection)
    }

    #[cold]
    fn pick_slow(&self, host: &str, port: u16, connection: bool) -> Option<Picked> {
        let a = self.read();
        for r in &a.rules {
            let f = &r.fault;
            if f.port != port
                || f.kind().is_connection_level() != connection
                || !f.host.eq_ignore_ascii_case(host)
            {
                continue;
            }
            let counter = r.counter.fetch_add(1, Ordering::Relaxed);
            if !sim::fault_fires(a.seed, &r.name, counter, f.rule.probability) {
                continue;
            }
            let delay = match f.action {
                FaultAction::Latency { latency, jitter } => {
                    sim::fault_latency(a.seed, &r.name, counter, latency, jitter)
                }
                _ => Duration::ZERO,
            };
            return Some(Picked {
                name: r.name.clone(),
                action: f.action,
                delay,
            });
        }
        None
    }

    /// Where a connection fault dials instead of the backend (`None`: the kind dials the
    /// backend itself). Sinks start on first use and live until shutdown.
    pub(crate) fn sink(
        &self,
        action: FaultAction,
        rt: &Handle,
        ca: &LocalCa,
    ) -> Result<Option<SocketAddr>, SinkError> {
        let mut s = lock(&self.sinks);
        let addr = match action {
            FaultAction::Reset => {
                start_if_absent(&mut s.reset, || reset_sink(rt))?;
                s.reset.as_ref().map(|k| k.addr)
            }
            FaultAction::TlsUntrusted => {
                start_if_absent(&mut s.untrusted, || {
                    // A CA created here and trusted by nobody.
                    let stranger = LocalCa::new()?;
                    tls_sink(rt, &stranger)
                })?;
                s.untrusted.as_ref().map(|k| k.addr)
            }
            FaultAction::TlsWrongName => {
                start_if_absent(&mut s.wrong_name, || tls_sink(rt, ca))?;
                s.wrong_name.as_ref().map(|k| k.addr)
            }
            FaultAction::Refuse => {
                if s.refused.is_none() {
                    s.refused = Some(refused_port()?);
                }
                s.refused.as_ref().map(|(_, a)| *a)
            }
            _ => None,
        };
        Ok(addr)
    }

    /// Stops the sinks (shutdown).
    pub(crate) fn stop(&self) {
        *lock(&self.sinks) = Sinks::default();
    }
}

fn new_rule(fault: Fault, live: bool) -> Arc<Rule> {
    Arc::new(Rule {
        name: Arc::from(fault.name()),
        fault,
        counter: AtomicU64::new(0),
        live,
    })
}

/// Why a fault sink could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SinkError {
    #[error("starting a fault sink on loopback: {0}")]
    Io(#[from] io::Error),
    #[error("issuing the fault sink's certificate: {0}")]
    Tls(#[from] TlsError),
}

fn start_if_absent(
    slot: &mut Option<Sink>,
    start: impl FnOnce() -> Result<Sink, SinkError>,
) -> Result<(), SinkError> {
    if slot.is_none() {
        *slot = Some(start()?);
    }
    Ok(())
}

fn loopback_listener() -> io::Result<(TcpListener, SocketAddr)> {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    l.set_nonblocking(true)?;
    let addr = l.local_addr()?;
    Ok((TcpListener::from_std(l)?, addr))
}

/// Accepts and resets every connection: `SO_LINGER` 0, then close, sends a TCP RST.
fn reset_sink(rt: &Handle) -> Result<Sink, SinkError> {
    let _enter = rt.enter();
    let (l, addr) = loopback_listener()?;
    let task = rt.spawn(async move {
        loop {
            if let Ok((s, _)) = l.accept().await {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                drop(s);
            }
        }
    });
    Ok(Sink { addr, task })
}

/// Accepts TLS with a certificate from `ca` for [`WRONG_NAME`]; the gateway refuses it.
fn tls_sink(rt: &Handle, ca: &LocalCa) -> Result<Sink, SinkError> {
    let cert = ca.issue(&[WRONG_NAME.to_string()])?;
    let acceptor = TlsAcceptor::from(tls::server_config(&cert, &[b"http/1.1"])?);
    let _enter = rt.enter();
    let (l, addr) = loopback_listener()?;
    let task = rt.spawn(async move {
        loop {
            if let Ok((s, _)) = l.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // The handshake fails on the gateway's side; nothing more is served.
                    let _ = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(s)).await;
                });
            }
        }
    });
    Ok(Sink { addr, task })
}

/// A loopback port bound but not listening: the kernel answers a SYN with RST (refused).
fn refused_port() -> io::Result<(socket2::Socket, SocketAddr)> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
    let addr = s
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("the refused port has no IP address"))?;
    Ok((s, addr))
}

/// A backend connection that never answers (`timeout`): writes go through, reads never
/// complete; the gateway's response timeout ends it.
pub(crate) struct Stalled<I>(pub(crate) I);

impl<I: AsyncRead + Unpin> AsyncRead for Stalled<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Never woken: the response deadline (or a close) ends the connection.
        Poll::Pending
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Stalled<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim::fixture::{Fixture, Format};
    use sim::{FaultKind, ServiceTagTable, Topology};

    fn topology() -> Topology {
        let f = Fixture::parse(
            "[[hosts]]\nname = \"orders\"\naddress = \"203.0.113.5\"\n[[hosts.services]]\nport = 80\nserve = \"echo\"\n",
            Format::Toml,
        )
        .unwrap();
        Topology::build(&f, ServiceTagTable::builtin()).topology
    }

    #[test]
    fn no_rule_no_fault_and_levels_are_separate() {
        let t = topology();
        let f = Faults::new(&FaultSet::default());
        assert!(f.pick("orders", 80, false).is_none());
        let mut r = FaultRule::new("slow", "orders:80", FaultKind::Latency);
        r.latency_ms = Some(5);
        assert!(!f.add(t.check_fault(&r).unwrap()));
        // A request-level rule is not asked about connections, nor about other targets.
        assert!(f.pick("orders", 80, true).is_none());
        assert!(f.pick("orders", 81, false).is_none());
        let p = f.pick("ORDERS", 80, false).unwrap();
        assert_eq!(&*p.name, "slow");
        assert_eq!(p.delay, Duration::from_millis(5));
        assert!(f.add(t.check_fault(&r).unwrap()), "same name replaces");
        assert_eq!(f.info().rules.len(), 1);
        assert!(f.remove("SLOW"));
        assert!(!f.remove("slow"));
        assert!(f.pick("orders", 80, false).is_none());
    }

    #[test]
    fn same_seed_same_decisions() {
        let t = topology();
        let mut r = FaultRule::new("flaky", "orders:80", FaultKind::Status);
        r.status = Some(503);
        r.probability = 0.5;
        let run = || {
            let f = Faults::new(&FaultSet {
                seed: 9,
                rules: vec![t.check_fault(&r).unwrap()],
            });
            (0..40)
                .map(|_| f.pick("orders", 80, false).is_some())
                .collect::<Vec<bool>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(a.iter().any(|x| *x) && a.iter().any(|x| !*x));
    }
}
