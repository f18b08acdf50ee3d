//! Long-lived resources that outlive policy snapshots: upstream pools, the built-in echo
//! backends, the local CA, counters and the flow table (and flushing it), and the options fixed
//! at start.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::ClientConfig;
use serde::Serialize;
use sim::Topology;
use tokio::runtime::Handle;

use crate::config::LimitOverrides;
use crate::echo::EchoServer;
use crate::fault::Faults;
use crate::flows::FlowTable;
use crate::journal::Journal;
use crate::lock;
use crate::metrics::{Metrics, PoolGauge};
use crate::state::ChangeError;
use crate::tls::{self, LocalCa};
use crate::upstream::Pool;

/// Options fixed at start that shape every snapshot.
#[derive(Clone, Debug, Default)]
pub(crate) struct PolicyOptions {
    /// `(host or DNS name, port) → socket, plain HTTP`, matched case-insensitively.
    pub(crate) upstreams: Vec<(String, u16, SocketAddr, bool)>,
    pub(crate) limits: LimitOverrides,
    pub(crate) start_echo: bool,
    /// The folder relative paths of a topology (`[gateway] tls_cert`) are read from.
    pub(crate) base_dir: Option<PathBuf>,
    /// Where a bodiless `POST /admin/reload` gets its topology, and what reads a body.
    pub(crate) reload: Option<crate::ReloadHook>,
    /// Apply topologies whose only errors are APIM preflight findings (the start allowed them).
    pub(crate) accept_preflight_errors: bool,
    /// Bench-only switches (`BenchKnobs`; all off without the `bench` feature).
    pub(crate) bench: crate::options::BenchKnobs,
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
    pub(crate) rt: Handle,
    /// The fault rules in force (`[faults]`, and rules added live).
    pub(crate) faults: Faults,
    /// Every request through the front door.
    pub(crate) journal: Arc<Journal>,
}

/// What `POST /admin/flows/flush` ([`crate::GatewayHandle::flush_flows`]) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FlushReport {
    /// Established flows flushed (flows already cut or flushed are not counted again).
    pub flushed: usize,
    /// Of those, the idle pooled connections closed at once; the others carry a request and
    /// close when its response ends.
    pub idle_closed: usize,
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
            faults: Faults::new(&sim::FaultSet::default()),
            journal: Arc::new(Journal::default()),
        }
    }

    pub(crate) fn pool(&self, label: &str) -> Arc<Pool> {
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

    /// Flushes every established flow (`POST /admin/flows/flush`): each is marked so that its
    /// connection carries no new request, idle connections close now and busy ones when their
    /// response ends. The next request opens a new flow, decided by the rules in force.
    pub(crate) fn flush_flows(&self) -> FlushReport {
        let flushed = self.flows.snapshot().iter().filter(|f| f.flush()).count();
        // Marking first, then sweeping the pools: a connection put back in between is marked
        // already, and `Pool::take` never lends a marked one.
        let pools: Vec<Arc<Pool>> = lock(&self.pools).values().cloned().collect();
        let idle_closed: usize = pools.iter().map(|p| p.close_flushed()).sum();
        self.metrics
            .flows_flushed
            .fetch_add(flushed as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(flushed, idle_closed, "established flows flushed");
        FlushReport {
            flushed,
            idle_closed,
        }
    }

    /// Closes every upstream connection and stops the echo backends (shutdown).
    pub(crate) fn close_all(&self) {
        for p in lock(&self.pools).values() {
            p.clear();
        }
        self.flows.close_all();
        lock(&self.echo).clear();
        self.faults.stop();
    }

    pub(crate) fn ensure_echo(
        &self,
        host: &sim::Host,
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

    /// The start option's socket for host `h`'s `port`, and whether it speaks plain HTTP: an
    /// override names the host by its `[[hosts]]` name or one of its DNS names
    /// ([`Topology::host_by_name_or_dns`]).
    pub(crate) fn override_for(
        &self,
        topology: &Topology,
        h: usize,
        port: u16,
    ) -> Option<(SocketAddr, bool)> {
        self.options
            .upstreams
            .iter()
            .find(|(name, p, _, _)| *p == port && topology.host_by_name_or_dns(name) == Some(h))
            .map(|(_, _, a, plain)| (*a, *plain))
    }
}
