//! The partition: cut one source's flow space into cells inside which nothing the walk reads
//! changes ([`super::boundaries`]), ask the one walk ([`Topology::decide_on`]) for each cell's
//! outcome on a representative flow, and merge neighbouring cells with equal outcomes greedily
//! into classes (ports first, then source ports, protocols, and address ranges last).
//!
//! Hierarchical, not a cross product: address ranges are swept once, keeping the set of rules
//! whose destination covers the current range; within a range only those rules' ports (up to
//! the first rule of each list that matches every port of a protocol) cut the port axes.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::boundaries::{collect, Boundaries};
use super::ranges::{contains, family_max, ip_of, merge};
use crate::flow::{Decision, Flow};
use crate::proto::{Protocol, NO_PORT};
use crate::topology::Topology;

/// A query restricted to one source and one address family.
pub(crate) struct Scope<'q> {
    pub source: IpAddr,
    /// Destination ranges of the source's family.
    pub destinations: Vec<(u128, u128)>,
    pub protocols: &'q [Protocol],
    /// Destination ports (Tcp/Udp), sorted ranges within 0..=65535.
    pub ports: Vec<(u32, u32)>,
}

/// A class before naming: a product of address ranges, protocols, destination ports and source
/// ports whose every flow has outcome `ids` (one decision id per topology).
#[derive(Clone, Debug)]
pub(crate) struct RawClass {
    pub ids: Vec<u32>,
    pub intervals: Vec<(u128, u128)>,
    pub mask: u8,
    /// Destination ports; empty for port-less protocols.
    pub dports: Vec<(u32, u32)>,
    /// Source ports; empty for port-less protocols.
    pub sports: Vec<(u32, u32)>,
}

/// The partition of a scope, evaluated in one or more topologies.
pub(crate) struct Partition {
    pub v6: bool,
    /// Per topology, the decisions by id.
    pub decisions: Vec<Vec<Decision>>,
    pub classes: Vec<RawClass>,
    /// Cells evaluated (each cell is one walk per topology).
    pub cells: usize,
}

type ItemKey = (Vec<u32>, Vec<(u32, u32)>, Vec<(u32, u32)>);

/// Interns decisions per topology; neighbouring cells usually repeat the last one.
struct Interner {
    ids: HashMap<Decision, u32>,
    list: Vec<Decision>,
    last: Option<(Decision, u32)>,
}

impl Interner {
    fn id(&mut self, d: Decision) -> u32 {
        if let Some((l, id)) = self.last {
            if l == d {
                return id;
            }
        }
        let n = self.list.len() as u32;
        let id = *self.ids.entry(d).or_insert(n);
        if id == n {
            self.list.push(d);
        }
        self.last = Some((d, id));
        id
    }
}

/// Cut points of ranges within `0..=max`: each range starts a piece and ends one.
fn cuts_into(out: &mut Vec<u32>, ranges: &[(u32, u32)], max: u32) {
    for &(lo, hi) in ranges {
        if lo <= max {
            out.push(lo);
        }
        if hi < max {
            out.push(hi + 1);
        }
    }
}

/// Pieces `0..=max` cut at `cuts` (sorted, deduplicated by this function).
fn pieces(mut cuts: Vec<u32>, max: u32) -> Vec<(u32, u32)> {
    cuts.push(0);
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::with_capacity(cuts.len());
    for (i, &c) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).map_or(max, |n| n - 1);
        out.push((c, end));
    }
    out
}

/// Partitions `scope` and evaluates every cell in each of `topologies` (all the same source).
pub(crate) fn partition(topologies: &[&Topology], scope: &Scope<'_>) -> Partition {
    let v6 = scope.source.is_ipv6();
    let max = family_max(v6);
    let bounds: Vec<Boundaries<'_>> = topologies
        .iter()
        .map(|t| collect(t, scope.source, v6))
        .collect();
    // Address cut points and rule events (rule enters at lo, leaves after hi).
    let mut cuts: Vec<u128> = vec![0];
    let add = |cuts: &mut Vec<u128>, lo: u128, hi: u128| {
        cuts.push(lo);
        if hi < max {
            cuts.push(hi + 1);
        }
    };
    for &(lo, hi) in &scope.destinations {
        add(&mut cuts, lo, hi);
    }
    let mut events: Vec<(u128, bool, u32, u32, u32)> = Vec::new();
    for (bi, b) in bounds.iter().enumerate() {
        for &(lo, hi) in &b.addresses {
            add(&mut cuts, lo, hi);
        }
        for (li, list) in b.lists.iter().enumerate() {
            for (ri, r) in list.rules.iter().enumerate() {
                for (lo, hi) in r.sets.dst.family_intervals(v6) {
                    events.push((lo, true, bi as u32, li as u32, ri as u32));
                    if hi < max {
                        events.push((hi + 1, false, bi as u32, li as u32, ri as u32));
                    }
                }
            }
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    events.sort_unstable_by_key(|e| e.0);

    let mut interners: Vec<Interner> = topologies
        .iter()
        .map(|_| Interner {
            ids: HashMap::new(),
            list: Vec::new(),
            last: None,
        })
        .collect();
    let mut active: BTreeSet<(u32, u32, u32)> = BTreeSet::new();
    let mut next_event = 0;
    let mut global: HashMap<(ItemKey, u8), usize> = HashMap::new();
    let mut classes: Vec<RawClass> = Vec::new();
    let mut cells = 0usize;
    for (k, &lo) in cuts.iter().enumerate() {
        let hi = cuts.get(k + 1).map_or(max, |n| n - 1);
        while next_event < events.len() && events[next_event].0 <= lo {
            let (_, enter, b, l, r) = events[next_event];
            if enter {
                active.insert((b, l, r));
            } else {
                active.remove(&(b, l, r));
            }
            next_event += 1;
        }
        if !contains(&scope.destinations, lo) {
            continue;
        }
        let rep = ip_of(v6, lo);
        let paths: Vec<_> = topologies
            .iter()
            .map(|t| t.path(scope.source, rep))
            .collect();
        let mut keys: Vec<(ItemKey, u8)> = Vec::new();
        for &p in scope.protocols {
            let mut cells_p: Vec<(Vec<u32>, (u32, u32), (u32, u32))> = Vec::new();
            let (dpieces, spieces) = if p.has_ports() {
                port_pieces(&bounds, &active, lo == hi, p, &scope.ports)
            } else {
                (vec![(NO_PORT, NO_PORT)], vec![(NO_PORT, NO_PORT)])
            };
            for &sp in &spieces {
                let sport = if p.has_ports() {
                    Some(if sp.0 <= 60000 && 60000 <= sp.1 {
                        60000
                    } else {
                        sp.0 as u16
                    })
                } else {
                    None
                };
                for &dp in &dpieces {
                    let flow = Flow {
                        protocol: p,
                        source: scope.source,
                        source_port: sport,
                        destination: rep,
                        destination_port: p.has_ports().then_some(dp.0 as u16),
                    };
                    let ids: Vec<u32> = topologies
                        .iter()
                        .zip(&paths)
                        .zip(interners.iter_mut())
                        .map(|((t, path), i)| i.id(t.decide_on(path, &flow)))
                        .collect();
                    cells += 1;
                    cells_p.push((ids, dp, sp));
                }
            }
            keys.extend(
                reduce_ports(cells_p, p.has_ports())
                    .into_iter()
                    .map(|k| (k, p.bit())),
            );
        }
        let items = group(keys)
            .into_iter()
            .map(|(k, bits)| (k, bits.into_iter().fold(0u8, |m, b| m | b)));
        for item in items {
            match global.get(&item) {
                Some(&c) => {
                    let ivs = &mut classes[c].intervals;
                    match ivs.last_mut() {
                        Some(last) if last.1.checked_add(1) == Some(lo) => last.1 = hi,
                        _ => ivs.push((lo, hi)),
                    }
                }
                None => {
                    let ((ids, dports, sports), mask) = item.clone();
                    global.insert(item, classes.len());
                    classes.push(RawClass {
                        ids,
                        intervals: vec![(lo, hi)],
                        mask,
                        dports,
                        sports,
                    });
                }
            }
        }
    }
    Partition {
        v6,
        decisions: interners.into_iter().map(|i| i.list).collect(),
        classes,
        cells,
    }
}

/// Destination-port and source-port pieces of protocol `p` for the current address range: cut
/// by the active rules of every list up to the list's first rule matching every port of `p`
/// (all rules, uncut, for a single address: the inbound side may see another address there),
/// by the platform's ports, and restricted to the queried destination ports.
fn port_pieces(
    bounds: &[Boundaries<'_>],
    active: &BTreeSet<(u32, u32, u32)>,
    point: bool,
    p: Protocol,
    ports: &[(u32, u32)],
) -> (Vec<(u32, u32)>, Vec<(u32, u32)>) {
    let (mut dc, mut sc) = (Vec::new(), Vec::new());
    let mut add = |sets: &crate::nsg::RuleSets<'_>| {
        if sets.proto & p.bit() != 0 {
            cuts_into(&mut dc, sets.dport.ranges(), 65_535);
            cuts_into(&mut sc, sets.sport.ranges(), 65_535);
        }
    };
    if point {
        for b in bounds {
            for l in &b.lists {
                for r in &l.rules {
                    add(&r.sets);
                }
            }
        }
    } else {
        let mut done: Option<(u32, u32)> = None;
        for &(b, l, r) in active {
            if done == Some((b, l)) {
                continue;
            }
            let rule = &bounds[b as usize].lists[l as usize].rules[r as usize];
            add(&rule.sets);
            if rule.catch_all(p) {
                done = Some((b, l));
            }
        }
    }
    for b in bounds {
        let pp = &b.platform[p as usize];
        cuts_into(&mut dc, &pp.destination, 65_535);
        cuts_into(&mut sc, &pp.source, 65_535);
    }
    cuts_into(&mut dc, ports, 65_535);
    let d = pieces(dc, 65_535)
        .into_iter()
        .filter(|x| contains(ports, x.0))
        .collect();
    (d, pieces(sc, 65_535))
}

/// Groups values by key, keeping the keys in first-seen order.
fn group<K: std::hash::Hash + Eq + Clone, V>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Vec<(K, Vec<V>)> {
    let mut index: HashMap<K, usize> = HashMap::new();
    let mut out: Vec<(K, Vec<V>)> = Vec::new();
    for (k, v) in pairs {
        match index.get(&k) {
            Some(&i) => out[i].1.push(v),
            None => {
                index.insert(k.clone(), out.len());
                out.push((k, vec![v]));
            }
        }
    }
    out
}

/// Merges one range's cells of one protocol: destination ports per (outcome, source ports),
/// then source ports per (outcome, destination ports).
fn reduce_ports(cells: Vec<(Vec<u32>, (u32, u32), (u32, u32))>, ports: bool) -> Vec<ItemKey> {
    if !ports {
        return cells
            .into_iter()
            .map(|(ids, _, _)| (ids, vec![], vec![]))
            .collect();
    }
    let by_sport = group(cells.into_iter().map(|(ids, dp, sp)| ((ids, sp), dp)));
    let by_dports = group(
        by_sport
            .into_iter()
            .map(|((ids, sp), d)| ((ids, merge(d)), sp)),
    );
    by_dports
        .into_iter()
        .map(|((ids, d), s)| (ids, d, merge(s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_axis() {
        let mut c = Vec::new();
        cuts_into(&mut c, &[(80, 80), (443, 443), (0, 65_536)], 65_535);
        assert_eq!(
            pieces(c, 65_535),
            [(0, 79), (80, 80), (81, 442), (443, 443), (444, 65_535)]
        );
    }
}
