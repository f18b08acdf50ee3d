//! The flow table: every established upstream connection is a flow, as Azure keeps a flow
//! record per connection. A flow remembers its 5-tuple in simulated addresses (the APIM
//! instance's source address and a synthetic source port per connection → the backend's
//! simulated address and port, TCP), the NSG rules that allowed it, its age and how many
//! requests it carried.
//!
//! Rule changes apply to new flows only. The policy's re-evaluation implements the one exception,
//! `flush_connection`: after a change, each established flow is decided again, and a flow now
//! denied by an NSG that has `flush_connection = true` is cut — its connection task is told to
//! close the socket, and a request in flight on it answers 502 `BACKEND_RESET`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::task::AbortHandle;

use serde::Serialize;
use sim::flow::Flow;

/// First synthetic source port (the IANA dynamic range, 49152–65535).
const EPHEMERAL_FIRST: u32 = 49152;
/// Number of synthetic source ports.
const EPHEMERAL_COUNT: u32 = 65536 - EPHEMERAL_FIRST;

/// One NSG on a flow's path and the rule of it that matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowHop {
    /// NSG name.
    pub nsg: String,
    /// `securityRules/<name>` or `defaultSecurityRules/<name>`.
    pub rule: String,
    /// The rule's priority.
    pub priority: u32,
    /// `Outbound` (source side) or `Inbound` (destination side).
    pub direction: String,
}

/// One established flow (an open upstream connection).
#[derive(Debug)]
pub(crate) struct FlowEntry {
    pub(crate) id: u64,
    pub(crate) flow: Flow,
    /// The backend authority (`orders.internal.contoso.com`).
    pub(crate) backend: Arc<str>,
    /// The `[[hosts]]` name that plays it.
    pub(crate) host: Arc<str>,
    /// The loopback socket actually dialled.
    pub(crate) upstream: SocketAddr,
    pub(crate) tls: bool,
    /// Shared by every flow the same rules allowed (interned per policy snapshot).
    pub(crate) hops: Arc<[FlowHop]>,
    pub(crate) established: Instant,
    established_unix_ms: u64,
    pub(crate) requests: AtomicU64,
    cut: AtomicBool,
    cut_by: OnceLock<String>,
    /// Set by [`FlowEntry::close`]; checked once the connection task's handle is known.
    closing: AtomicBool,
    /// Aborting the connection task drops the connection: the socket closes.
    task: OnceLock<AbortHandle>,
}

// === impl FlowEntry ===

impl FlowEntry {
    /// Whether a flush cut this flow.
    pub(crate) fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }

    /// Why it was cut, when it was.
    pub(crate) fn cut_reason(&self) -> Option<&str> {
        self.cut_by.get().map(String::as_str)
    }

    /// Cuts the flow: marks it and closes its connection.
    pub(crate) fn cut(&self, reason: String) {
        let _ = self.cut_by.set(reason);
        self.cut.store(true, Ordering::Release);
        self.close();
    }

    /// Closes the connection without marking a cut (timeouts, shutdown, bench knobs).
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        if let Some(t) = self.task.get() {
            t.abort();
        }
    }

    /// Records the task that runs the connection (once, right after it is spawned). A close
    /// that came first (from another thread) is carried out now.
    pub(crate) fn attach(&self, task: AbortHandle) {
        if self.task.set(task).is_ok() && self.closing.load(Ordering::SeqCst) {
            if let Some(t) = self.task.get() {
                t.abort();
            }
        }
    }

    /// `Tcp 10.0.1.4:49152 -> 10.0.2.4:443`.
    pub(crate) fn describe(&self) -> String {
        describe(&self.flow)
    }

    fn info(&self, now: Instant) -> FlowInfo {
        FlowInfo {
            id: self.id,
            protocol: "Tcp",
            source: self.flow.source,
            source_port: self.flow.source_port.unwrap_or(0),
            destination: self.flow.destination,
            destination_port: self.flow.destination_port.unwrap_or(0),
            backend: self.backend.to_string(),
            host: self.host.to_string(),
            upstream: self.upstream,
            tls: self.tls,
            allowed_by: self.hops.to_vec(),
            established_unix_ms: self.established_unix_ms,
            age_ms: u64::try_from(now.saturating_duration_since(self.established).as_millis())
                .unwrap_or(u64::MAX),
            requests: self.requests.load(Ordering::Relaxed),
            cut: self.cut_reason().map(str::to_string),
        }
    }
}

/// `Tcp 10.0.1.4:49152 -> 10.0.2.4:443`.
pub(crate) fn describe(f: &Flow) -> String {
    let ep = |ip: IpAddr, port: Option<u16>| match (ip, port) {
        (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
        (ip, Some(p)) => format!("{ip}:{p}"),
        (ip, None) => ip.to_string(),
    };
    format!(
        "{:?} {} -> {}",
        f.protocol,
        ep(f.source, f.source_port),
        ep(f.destination, f.destination_port)
    )
}

/// An established flow as `GET /admin/flows` and [`crate::GatewayHandle::flows`] show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowInfo {
    /// Flow id (unique per gateway start).
    pub id: u64,
    /// Always `Tcp`.
    pub protocol: &'static str,
    /// Simulated source address (the APIM instance's outbound address).
    pub source: IpAddr,
    /// Synthetic source port of this connection.
    pub source_port: u16,
    /// Simulated backend address.
    pub destination: IpAddr,
    /// Backend port.
    pub destination_port: u16,
    /// Backend authority.
    pub backend: String,
    /// The `[[hosts]]` entry that plays the backend.
    pub host: String,
    /// The loopback socket dialled for it.
    pub upstream: SocketAddr,
    /// Whether the connection uses TLS.
    pub tls: bool,
    /// Every NSG on the path and the rule that allowed the flow, in path order.
    pub allowed_by: Vec<FlowHop>,
    /// When it was established (Unix ms).
    pub established_unix_ms: u64,
    /// Age in ms.
    pub age_ms: u64,
    /// Requests carried.
    pub requests: u64,
    /// Set when a `flush_connection` re-evaluation cut it (it is closing).
    pub cut: Option<String>,
}

/// Every established flow of one gateway.
#[derive(Debug, Default)]
pub(crate) struct FlowTable {
    entries: Mutex<BTreeMap<u64, Arc<FlowEntry>>>,
    next_id: AtomicU64,
    next_port: AtomicU32,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What is known about a flow when it is established.
pub(crate) struct NewFlow {
    pub(crate) flow: Flow,
    pub(crate) backend: Arc<str>,
    pub(crate) host: Arc<str>,
    pub(crate) upstream: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) hops: Arc<[FlowHop]>,
}

// === impl FlowTable ===

impl FlowTable {
    /// A synthetic source port for a new connection (cycling through the dynamic range).
    pub(crate) fn next_source_port(&self) -> u16 {
        let n = self.next_port.fetch_add(1, Ordering::Relaxed) % EPHEMERAL_COUNT;
        // In range by construction: 49152 + (0..16384) ≤ 65535.
        u16::try_from(EPHEMERAL_FIRST + n).unwrap_or(u16::MAX)
    }

    /// Records an established flow.
    pub(crate) fn insert(&self, f: NewFlow) -> Arc<FlowEntry> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(FlowEntry {
            id,
            flow: f.flow,
            backend: f.backend,
            host: f.host,
            upstream: f.upstream,
            tls: f.tls,
            hops: f.hops,
            established: Instant::now(),
            established_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0),
            requests: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            cut_by: OnceLock::new(),
            closing: AtomicBool::new(false),
            task: OnceLock::new(),
        });
        lock(&self.entries).insert(id, entry.clone());
        entry
    }

    /// Forgets a flow whose connection ended.
    pub(crate) fn remove(&self, id: u64) {
        lock(&self.entries).remove(&id);
    }

    /// Established flows, oldest first.
    pub(crate) fn list(&self) -> Vec<FlowInfo> {
        let now = Instant::now();
        lock(&self.entries).values().map(|e| e.info(now)).collect()
    }

    /// Number of established flows.
    pub(crate) fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// Closes every flow (shutdown).
    pub(crate) fn close_all(&self) {
        for e in lock(&self.entries).values() {
            e.close();
        }
    }

    /// Every established flow (for re-evaluation).
    pub(crate) fn snapshot(&self) -> Vec<Arc<FlowEntry>> {
        lock(&self.entries).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ports_cycle_in_the_dynamic_range() {
        let t = FlowTable::default();
        let first = t.next_source_port();
        assert_eq!(first, 49152);
        for _ in 1..EPHEMERAL_COUNT {
            let p = t.next_source_port();
            assert!(p >= 49152);
        }
        assert_eq!(t.next_source_port(), 49152);
    }

    #[test]
    fn describe_formats_v4_and_v6() {
        let f = Flow::tcp(
            "10.0.1.4".parse().unwrap(),
            49152,
            "fd00::4".parse().unwrap(),
            443,
        );
        assert_eq!(describe(&f), "Tcp 10.0.1.4:49152 -> [fd00::4]:443");
    }

    #[test]
    fn insert_list_remove() {
        let t = FlowTable::default();
        let e = t.insert(NewFlow {
            flow: Flow::tcp(
                "10.0.1.4".parse().unwrap(),
                49152,
                "10.0.2.4".parse().unwrap(),
                443,
            ),
            backend: "orders.internal.contoso.com".into(),
            host: "orders".into(),
            upstream: "127.0.0.1:1".parse().unwrap(),
            tls: true,
            hops: Arc::from([]),
        });
        e.requests.fetch_add(2, Ordering::Relaxed);
        let l = t.list();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].requests, 2);
        assert_eq!(l[0].source_port, 49152);
        e.cut("x".into());
        assert!(e.is_cut());
        assert_eq!(t.list()[0].cut.as_deref(), Some("x"));
        t.remove(e.id);
        assert_eq!(t.len(), 0);
    }
}
