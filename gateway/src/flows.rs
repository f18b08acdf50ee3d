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
//!
//! An operator can also end every established flow at once (`POST /admin/flows/flush`): each
//! is marked *flushed*, idle ones close at once and busy ones once their response ends, so the
//! next request opens a new flow that the rules in force decide afresh. What those rules would
//! decide for each established flow as a new one is listed beside it ([`FlowNow`], asked of
//! `sim`).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::task::AbortHandle;

use serde::Serialize;
use sim::{Flow, Topology, VerdictCode, VerdictKind};

use crate::lock;

/// First synthetic source port (the IANA dynamic range, 49152–65535).
const EPHEMERAL_FIRST: u32 = 49152;
/// Number of synthetic source ports.
const EPHEMERAL_COUNT: u32 = 65536 - EPHEMERAL_FIRST;

/// One NSG on a flow's path and the rule of it that matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowHop {
    /// `nsg`, or `firewall` for an Azure Firewall on the path.
    pub kind: &'static str,
    /// NSG name (the firewall's name for a firewall).
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
    /// Its slot in the [`FlowTable`].
    slot: usize,
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
    /// Set by a flush: the connection is never lent again and closes once idle.
    flushed: AtomicBool,
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

    /// Marks the flow flushed (its connection is not reused; the pool closes it once idle).
    /// Returns whether this call flushed it: `false` when it was already flushed or cut.
    pub(crate) fn flush(&self) -> bool {
        !self.is_cut() && !self.flushed.swap(true, Ordering::AcqRel)
    }

    /// Whether the connection may carry another request: not cut, not flushed.
    pub(crate) fn reusable(&self) -> bool {
        !self.is_cut() && !self.flushed.load(Ordering::Acquire)
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
        self.flow.to_string()
    }

    fn info(&self, now: Instant, topology: &Topology) -> FlowInfo {
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
            flushed: self.flushed.load(Ordering::Acquire),
            now: FlowNow::of(topology, &self.flow),
        }
    }
}

/// What the rules in force would decide for an established flow if it were new: `sim`'s
/// [`Topology::decide`] on its 5-tuple, with the deciding rule's names
/// ([`Topology::rule_info`]). The gateway only copies the answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowNow {
    /// `Allow`, `Deny`, `Unreachable` or `Indeterminate`.
    pub verdict: VerdictKind,
    /// `ALLOWED`, `NSG_DENIED`, `NO_ROUTE`, ...
    pub code: VerdictCode,
    /// The deciding rule's NSG (`None` when no NSG decided, e.g. no route).
    pub nsg: Option<String>,
    /// The deciding rule: `securityRules/<name>` or `defaultSecurityRules/<name>`.
    pub rule: Option<String>,
}

impl FlowNow {
    /// Asks `topology` about `flow` as a new flow.
    pub(crate) fn of(topology: &Topology, flow: &Flow) -> FlowNow {
        let d = topology.decide(flow);
        let info = d.decided_by.map(|r| topology.rule_info(r));
        FlowNow {
            verdict: d.verdict,
            code: d.code,
            nsg: info.as_ref().map(|i| i.nsg.to_string()),
            rule: info.map(|i| i.rule),
        }
    }
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
    /// Set by `POST /admin/flows/flush`: the connection carries no new request and closes
    /// once its response ends.
    pub flushed: bool,
    /// What the rules in force would decide for this flow if it were new (it continues
    /// whatever they say, unless flushed or cut).
    pub now: FlowNow,
}

/// Every established flow of one gateway: a slab of slots (a flow knows its slot, so removal
/// is O(1) and no map node is allocated per flow) and a free list of vacant slots.
#[derive(Debug, Default)]
pub(crate) struct FlowTable {
    entries: Mutex<Slab>,
    next_id: AtomicU64,
    next_port: AtomicU32,
}

#[derive(Debug, Default)]
struct Slab {
    slots: Vec<Option<Arc<FlowEntry>>>,
    free: Vec<usize>,
    len: usize,
}

/// Memory of the flow table ([`crate::GatewayHandle::flow_table_memory`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FlowTableMemory {
    /// Established flows tracked.
    pub flows: usize,
    /// Heap bytes of the table: every flow's entry (its `Arc` allocation and any cut reason)
    /// plus the slot and free-list arrays at their capacity. The names a flow shares with other
    /// flows of the same route and verdict (backend, host, NSG hops) are interned per policy
    /// snapshot and not counted per flow.
    pub bytes: usize,
}

impl FlowTableMemory {
    /// `bytes / flows` (`None` without flows).
    pub fn bytes_per_flow(&self) -> Option<f64> {
        (self.flows > 0).then(|| self.bytes as f64 / self.flows as f64)
    }
}

/// Heap bytes of one entry: the `Arc` allocation (two counters and the entry) and the cut
/// reason's text.
fn entry_bytes(e: &FlowEntry) -> usize {
    2 * std::mem::size_of::<usize>()
        + std::mem::size_of::<FlowEntry>()
        + e.cut_by.get().map_or(0, String::capacity)
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
        let mut slab = lock(&self.entries);
        let slot = slab.free.pop().unwrap_or(slab.slots.len());
        let entry = Arc::new(FlowEntry {
            id,
            slot,
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
            flushed: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            task: OnceLock::new(),
        });
        if slot == slab.slots.len() {
            slab.slots.push(Some(entry.clone()));
        } else {
            slab.slots[slot] = Some(entry.clone());
        }
        slab.len += 1;
        entry
    }

    /// Forgets a flow whose connection ended.
    pub(crate) fn remove(&self, e: &FlowEntry) {
        let mut slab = lock(&self.entries);
        let ours = slab
            .slots
            .get(e.slot)
            .and_then(Option::as_ref)
            .is_some_and(|x| x.id == e.id);
        if ours {
            slab.slots[e.slot] = None;
            slab.free.push(e.slot);
            slab.len -= 1;
        }
    }

    /// The table's memory now (see [`FlowTableMemory`]).
    pub(crate) fn memory(&self) -> FlowTableMemory {
        let slab = lock(&self.entries);
        let entries: usize = slab.slots.iter().flatten().map(|e| entry_bytes(e)).sum();
        FlowTableMemory {
            flows: slab.len,
            bytes: entries
                + slab.slots.capacity() * std::mem::size_of::<Option<Arc<FlowEntry>>>()
                + slab.free.capacity() * std::mem::size_of::<usize>(),
        }
    }

    /// Established flows, oldest first, each with what `topology` would decide for it now.
    pub(crate) fn list(&self, topology: &Topology) -> Vec<FlowInfo> {
        let now = Instant::now();
        self.snapshot()
            .iter()
            .map(|e| e.info(now, topology))
            .collect()
    }

    /// Closes every flow (shutdown).
    pub(crate) fn close_all(&self) {
        for e in self.snapshot() {
            e.close();
        }
    }

    /// Every established flow (for re-evaluation), oldest first.
    pub(crate) fn snapshot(&self) -> Vec<Arc<FlowEntry>> {
        let mut v: Vec<Arc<FlowEntry>> = lock(&self.entries)
            .slots
            .iter()
            .flatten()
            .cloned()
            .collect();
        v.sort_by_key(|e| e.id);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One VNet: 10.0.1.0/24 behind `nsg-a`, which denies TCP to 10.0.2.4:443.
    fn topology() -> Topology {
        let text = r#"
[[vnets]]
name = "v"
region = "westeurope"
address_space = ["10.0.0.0/16"]
  [[vnets.subnets]]
  name = "a"
  address_prefix = "10.0.1.0/24"
  nsg = "nsg-a"
  [[vnets.subnets]]
  name = "b"
  address_prefix = "10.0.2.0/24"
[[nsgs]]
name = "nsg-a"
  [[nsgs.security_rules]]
  name = "deny-orders"
  priority = 100
  direction = "Outbound"
  access = "Deny"
  protocol = "Tcp"
  source_address_prefix = "*"
  source_port_range = "*"
  destination_address_prefix = "10.0.2.4"
  destination_port_range = "443"
"#;
        let f = sim::fixture::Fixture::parse(text, sim::fixture::Format::Toml).unwrap();
        sim::Topology::build(&f, sim::ServiceTagTable::builtin()).topology
    }

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
        assert_eq!(f.to_string(), "Tcp 10.0.1.4:49152 -> [fd00::4]:443");
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
        let topo = topology();
        let l = t.list(&topo);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].requests, 2);
        assert_eq!(l[0].source_port, 49152);
        // As a new flow, the rules in force would deny it, and `now` names the rule.
        assert_eq!(
            l[0].now,
            FlowNow {
                verdict: VerdictKind::Deny,
                code: VerdictCode::NsgDenied,
                nsg: Some("nsg-a".into()),
                rule: Some("securityRules/deny-orders".into()),
            }
        );
        e.cut("x".into());
        assert!(e.is_cut());
        assert_eq!(t.list(&topo)[0].cut.as_deref(), Some("x"));
        t.remove(&e);
        assert_eq!(t.memory().flows, 0);
        assert!(t.list(&topo).is_empty());
    }

    #[test]
    fn a_flush_marks_once_and_never_overrides_a_cut() {
        let t = FlowTable::default();
        let (b, h): (Arc<str>, Arc<str>) = (Arc::from("orders"), Arc::from("orders"));
        let hops: Arc<[FlowHop]> = Arc::from([]);
        let a = t.insert(new_flow(1, &b, &h, &hops));
        let c = t.insert(new_flow(2, &b, &h, &hops));
        assert!(a.reusable() && c.reusable());
        // The first flush counts; a second finds nothing new to flush.
        assert!(a.flush());
        assert!(!a.flush());
        assert!(!a.reusable());
        // A cut flow is already ending: a flush does not count it.
        c.cut("cut".into());
        assert!(!c.flush());
        let l = t.list(&topology());
        assert_eq!(
            l.iter().map(|f| f.flushed).collect::<Vec<_>>(),
            [true, false]
        );
    }

    fn new_flow(port: u16, backend: &Arc<str>, host: &Arc<str>, hops: &Arc<[FlowHop]>) -> NewFlow {
        NewFlow {
            flow: Flow::tcp(
                "10.0.1.4".parse().unwrap(),
                port,
                "10.0.2.4".parse().unwrap(),
                443,
            ),
            backend: backend.clone(),
            host: host.clone(),
            upstream: "127.0.0.1:1".parse().unwrap(),
            tls: false,
            hops: hops.clone(),
        }
    }

    /// `memory()` is what the table really holds: the bytes this thread allocated (and did not
    /// free) while 1,000 flows were inserted, some removed and some slots reused, equal the
    /// reported bytes exactly. Slots are reused and the list stays oldest first.
    #[test]
    fn memory_is_what_the_allocator_handed_out() {
        let backend: Arc<str> = Arc::from("orders.internal.contoso.com");
        let host: Arc<str> = Arc::from("orders");
        let hops: Arc<[FlowHop]> = Arc::from(vec![FlowHop {
            kind: "nsg",
            nsg: "nsg-apim".into(),
            rule: "securityRules/allow".into(),
            priority: 100,
            direction: "Outbound".into(),
        }]);
        let t = FlowTable::default();
        let before = counting::live();
        let mut held = Vec::new();
        for i in 0..1000u16 {
            held.push(t.insert(new_flow(49152 + i, &backend, &host, &hops)));
        }
        for e in held.iter().step_by(3) {
            t.remove(e);
        }
        held[1].cut("cut by a test".into());
        let again = t.insert(new_flow(1, &backend, &host, &hops));
        // Only table memory stays allocated: drop our handles on removed flows first.
        let removed: Vec<_> = held.iter().step_by(3).map(|e| e.id).collect();
        held.retain(|e| !removed.contains(&e.id));
        let n_removed = removed.len();
        drop(removed);
        let live = counting::live() - before;
        // What we hold outside the table: the `held` vector itself.
        let ours = held.capacity() * std::mem::size_of::<Arc<FlowEntry>>();
        let m = t.memory();
        assert_eq!(m.flows, 1000 - n_removed + 1);
        assert_eq!(m.bytes as isize, live - ours as isize, "{m:?}");
        let per = m.bytes_per_flow().unwrap();
        assert!((150.0..400.0).contains(&per), "{per} bytes per flow");
        // A freed slot was reused (the table did not grow past 1,000 slots).
        assert!(again.slot < 1000);
        let ids: Vec<u64> = t.list(&topology()).iter().map(|f| f.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}

/// A global allocator for this crate's unit tests that counts, per thread, the bytes allocated
/// and not yet freed (parallel tests do not disturb each other's counts).
#[cfg(test)]
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
    }

    struct Counting;

    // SAFETY: defers to `System`; the counter is a plain thread-local cell.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let _ = LIVE.try_with(|c| c.set(c.get() + l.size() as isize));
            // SAFETY: same contract as the caller's.
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            let _ = LIVE.try_with(|c| c.set(c.get() - l.size() as isize));
            // SAFETY: same contract as the caller's.
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            let _ = LIVE.try_with(|c| c.set(c.get() + new as isize - l.size() as isize));
            // SAFETY: same contract as the caller's.
            unsafe { System.realloc(p, l, new) }
        }
    }

    #[global_allocator]
    static A: Counting = Counting;

    /// Bytes allocated and not freed by this thread so far.
    pub(super) fn live() -> isize {
        LIVE.with(Cell::get)
    }
}
