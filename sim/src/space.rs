//! Whole-space answers: every flow from one source at once, exactly, as sets — no sampling.
//!
//! * [`Topology::reach`] — the flow space of one source (destination addresses × destination
//!   ports × protocols, and source ports where the walk compares them), or into one
//!   destination (source addresses × the same), partitioned into [`FlowClass`]es that share one
//!   outcome (verdict, code, the rule matched in each NSG on the path, the firewall match and
//!   the routes taken: the whole [`Decision`]);
//! * [`Topology::diff`] — the classes whose outcome (verdict, code, routes taken) differs between
//!   two topologies;
//! * [`Topology::lint`] — per NSG and VNet context, rules as sets: shadowed, redundant,
//!   conflicting, never matching the topology, and probable port typos ([`LintFinding`]).
//!
//! The engine never decides a flow itself (ONE ANSWER): `space/boundaries.rs` collects the
//! boundaries of every input the walk decides on — **the seam to extend when the walk learns a
//! new input** — `space/atoms.rs` cuts the space into cells inside which none of them changes,
//! asks [`Topology::decide_on`] (the walk `check` uses) for one representative flow per cell,
//! and merges neighbouring cells with equal outcomes. `space/lint.rs` is set algebra over one
//! rule list; `space/ranges.rs` is the interval arithmetic.

use std::net::IpAddr;

use crate::cidr::{AddrSet, Cidr};
use crate::flow::{Decision, Flow};
use crate::proto::{PortSet, Protocol};
use crate::topology::Topology;

mod atoms;
mod boundaries;
mod diff;
mod lint;
mod ranges;

pub use diff::{DiffClass, DiffKey};
pub use lint::{LintCode, LintFinding, LintSeverity};

use atoms::{partition, Partition, RawClass, Scope};

/// The fixed end of a whole-space question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Anchor {
    /// Every flow from this source to every destination (`reach --from`).
    From(IpAddr),
    /// Every flow from every source into this destination (`reach --into`).
    Into(IpAddr),
}

impl Anchor {
    /// The fixed address.
    pub fn address(self) -> IpAddr {
        match self {
            Anchor::From(a) | Anchor::Into(a) => a,
        }
    }

    /// `(source, destination)` of a flow whose other end is `other`.
    pub(crate) fn ends(self, other: IpAddr) -> (IpAddr, IpAddr) {
        match self {
            Anchor::From(s) => (s, other),
            Anchor::Into(d) => (other, d),
        }
    }
}

/// A whole-space question: every flow from a source (or into a destination), optionally
/// restricted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpaceQuery {
    /// The fixed end (`--from` or `--into`).
    pub anchor: Anchor,
    /// The other end's addresses (`--to` for `--from`); `None` is every address of the
    /// anchor's family.
    pub addresses: Option<AddrSet>,
    /// Protocols, in output order.
    pub protocols: Vec<Protocol>,
    /// Destination ports of Tcp/Udp flows (`--ports`); `None` is every port.
    pub ports: Option<PortSet>,
}

impl SpaceQuery {
    /// Every flow from `source`: all destinations, protocols and ports.
    pub fn from(source: IpAddr) -> SpaceQuery {
        SpaceQuery {
            anchor: Anchor::From(source),
            addresses: None,
            protocols: Protocol::ALL.to_vec(),
            ports: None,
        }
    }

    /// Every flow into `destination`: all sources, protocols and ports.
    pub fn into(destination: IpAddr) -> SpaceQuery {
        SpaceQuery {
            anchor: Anchor::Into(destination),
            ..SpaceQuery::from(destination)
        }
    }

    fn scope(&self) -> Scope<'_> {
        let v6 = self.anchor.address().is_ipv6();
        let addresses = match &self.addresses {
            Some(d) => d.family_intervals(v6),
            None => vec![(0, ranges::family_max(v6))],
        };
        let ports = match &self.ports {
            Some(p) => p
                .ranges()
                .iter()
                .filter(|r| r.0 <= 65_535)
                .map(|&(lo, hi)| (lo, hi.min(65_535)))
                .collect(),
            None => vec![(0, 65_535)],
        };
        Scope {
            anchor: self.anchor,
            addresses,
            protocols: &self.protocols,
            ports,
        }
    }
}

/// A set of flows that share one outcome: the product of its sources, destinations,
/// protocols, destination ports and source ports. One end is the query's anchor (a single
/// address); the other is the class's share of the space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowClass {
    /// The outcome every flow of the class gets from [`Topology::decide`] (for
    /// [`Anchor::Into`], as [`Decision::as_class_into`] of the flow's source: the sources
    /// vary, so an untranslated egress source is left out).
    pub decision: Decision,
    /// Source prefixes (the anchor's `/32` or `/128` for [`Anchor::From`]; else the fewest
    /// covering exactly the class's sources).
    pub sources: Vec<Cidr>,
    /// Destination prefixes (the fewest covering exactly the class's destinations; the
    /// anchor's `/32` or `/128` for [`Anchor::Into`]).
    pub destinations: Vec<Cidr>,
    /// Protocols.
    pub protocols: Vec<Protocol>,
    /// Destination ports (closed ranges); empty for port-less protocols.
    pub ports: Vec<(u16, u16)>,
    /// Source ports (closed ranges); empty for port-less protocols.
    pub source_ports: Vec<(u16, u16)>,
    /// Number of addresses of the varying end (saturating).
    pub addresses: u128,
    /// One flow of the class.
    pub example: Flow,
    anchor: Anchor,
    v6: bool,
    intervals: Vec<(u128, u128)>,
}

impl FlowClass {
    fn new(c: &RawClass, decision: Decision, anchor: Anchor, v6: bool) -> FlowClass {
        let protocols: Vec<Protocol> = Protocol::ALL
            .iter()
            .copied()
            .filter(|p| c.mask & p.bit() != 0)
            .collect();
        let p16 = |v: &[(u32, u32)]| v.iter().map(|&(a, b)| (a as u16, b as u16)).collect();
        let ports: Vec<(u16, u16)> = p16(&c.dports);
        let source_ports: Vec<(u16, u16)> = p16(&c.sports);
        let protocol = protocols[0];
        let (source, destination) = anchor.ends(ranges::ip_of(v6, c.intervals[0].0));
        let example = Flow {
            protocol,
            source,
            source_port: source_ports.first().map(|&(lo, hi)| {
                if source_ports.iter().any(|&(a, b)| a <= 60000 && 60000 <= b) {
                    60000
                } else {
                    lo.min(hi)
                }
            }),
            destination,
            destination_port: ports.first().map(|p| p.0),
        };
        let varying: Vec<Cidr> = c
            .intervals
            .iter()
            .flat_map(|&(lo, hi)| ranges::cidrs_of(v6, lo, hi))
            .collect();
        let fixed = vec![Cidr::host(anchor.address())];
        let (sources, destinations) = match anchor {
            Anchor::From(_) => (fixed, varying),
            Anchor::Into(_) => (varying, fixed),
        };
        FlowClass {
            decision,
            sources,
            destinations,
            protocols,
            ports,
            source_ports,
            addresses: ranges::count(&c.intervals),
            example,
            anchor,
            v6,
            intervals: c.intervals.clone(),
        }
    }

    /// Whether `flow` is in the class.
    pub fn contains(&self, flow: &Flow) -> bool {
        let (fixed, other) = match self.anchor {
            Anchor::From(s) => (flow.source == s, flow.destination),
            Anchor::Into(d) => (flow.destination == d, flow.source),
        };
        let in_ports = |v: &[(u16, u16)], p: Option<u16>| match p {
            Some(p) => v.iter().any(|&(a, b)| a <= p && p <= b),
            None => v.is_empty(),
        };
        let ports = flow.protocol.has_ports();
        fixed
            && other.is_ipv6() == self.v6
            && self.protocols.contains(&flow.protocol)
            && ranges::contains(&self.intervals, crate::cidr::addr_to_u128(other))
            && in_ports(&self.ports, flow.destination_port.filter(|_| ports))
            && in_ports(&self.source_ports, flow.source_port.filter(|_| ports))
    }

    /// Whether the class's source ports are every port (so output can leave them out).
    pub fn any_source_port(&self) -> bool {
        self.source_ports.is_empty() || self.source_ports == [(0, 65_535)]
    }
}

/// The answer to [`Topology::reach`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reach {
    /// The classes: disjoint, covering the query; largest first (by address count), then by
    /// first address, protocols and ports.
    pub classes: Vec<FlowClass>,
    /// Cells evaluated (one walk each).
    pub cells: usize,
}

pub(crate) fn sort_classes<T>(v: &mut [T], key: impl Fn(&T) -> &FlowClass) {
    v.sort_by(|a, b| {
        let (a, b) = (key(a), key(b));
        b.addresses
            .cmp(&a.addresses)
            .then(a.intervals.cmp(&b.intervals))
            .then(
                a.protocols
                    .iter()
                    .map(|p| p.bit())
                    .cmp(b.protocols.iter().map(|p| p.bit())),
            )
            .then(a.ports.cmp(&b.ports))
            .then(a.source_ports.cmp(&b.source_ports))
    });
}

impl Topology {
    /// Partitions every flow of `q` (from its source, or into its destination) into classes that share one outcome of
    /// [`Topology::decide`] (the walk `check` uses). Classes are disjoint and cover the query;
    /// neighbouring cells with equal outcomes are merged greedily, so one outcome may span
    /// several classes.
    ///
    /// ```
    /// use sim::{fixture::{Fixture, Format}, ServiceTagTable, SpaceQuery, Topology};
    /// let fx = Fixture::parse(include_str!("../../fixtures/default.toml"), Format::Toml).unwrap();
    /// let t = Topology::build(&fx, ServiceTagTable::builtin()).topology;
    /// let reach = t.reach(&SpaceQuery::from(t.apim_source().unwrap()));
    /// // Every class's example gets the class's outcome from the one walk.
    /// for c in &reach.classes {
    ///     assert_eq!(t.decide(&c.example), c.decision);
    /// }
    /// ```
    pub fn reach(&self, q: &SpaceQuery) -> Reach {
        let scope = q.scope();
        let p = partition(&[self], &scope);
        let mut classes: Vec<FlowClass> = p
            .classes
            .iter()
            .map(|c| FlowClass::new(c, p.decisions[0][c.ids[0] as usize], q.anchor, p.v6))
            .collect();
        sort_classes(&mut classes, |c| c);
        Reach {
            classes,
            cells: p.cells,
        }
    }
}

pub(crate) fn classes_of(p: &Partition, topology: usize, anchor: Anchor) -> Vec<FlowClass> {
    p.classes
        .iter()
        .map(|c| {
            FlowClass::new(
                c,
                p.decisions[topology][c.ids[topology] as usize],
                anchor,
                p.v6,
            )
        })
        .collect()
}
