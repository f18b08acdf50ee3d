//! The partition: split one source's flow space into cells inside which nothing the walk reads
//! changes ([`super::boundaries`]), ask the one walk ([`Topology::decide_on`]) for each cell's
//! outcome on a representative flow, and merge cells with equal outcomes greedily into classes
//! (destination ports first, then source ports, protocols, and address ranges last).
//!
//! Hierarchical, not a cross product:
//! * the address axis is swept once, keeping the sets (rules' destinations and the seam's
//!   address sets) that hold the current elementary range; ranges held by exactly the same sets
//!   have the same *signature*, and the walk treats them alike (the seam's contract), so each
//!   signature is evaluated once, on its first range, and its classes reused for the others;
//! * within a signature, only the active rules' port sets — up to each list's first rule that
//!   matches every port of the protocol — and the platform's cut the port axes, and port pieces
//!   held by the same port sets are again one cell.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::boundaries::{collect, Boundaries};
use super::ranges::{contains, family_max, ip_of, merge, FxMap};
use crate::flow::{Decision, Flow};
use crate::proto::{Protocol, NO_PORT};
use crate::topology::Topology;

use super::Anchor;

/// A query restricted to one anchor and one address family.
pub(crate) struct Scope<'q> {
    /// The fixed end.
    pub anchor: Anchor,
    /// Ranges of the other end, of the anchor's family.
    pub addresses: Vec<(u128, u128)>,
    pub protocols: &'q [Protocol],
    /// Destination ports (Tcp/Udp), sorted ranges within 0..=65535.
    pub ports: Vec<(u32, u32)>,
}

/// One decision id per topology (at most two: `diff`); unused slots are `u32::MAX`.
pub(crate) type Ids = [u32; 2];

/// A class before naming: a product of address ranges, protocols, destination ports and source
/// ports whose every flow has outcome `ids`.
#[derive(Clone, Debug)]
pub(crate) struct RawClass {
    pub ids: Ids,
    pub intervals: Vec<(u128, u128)>,
    pub mask: u8,
    /// Destination ports; empty for port-less protocols.
    pub dports: Vec<(u32, u32)>,
    /// Source ports; empty for port-less protocols.
    pub sports: Vec<(u32, u32)>,
}

/// The partition of a scope, evaluated in one or two topologies.
pub(crate) struct Partition {
    pub v6: bool,
    /// Per topology, the decisions by id.
    pub decisions: Vec<Vec<Decision>>,
    pub classes: Vec<RawClass>,
    /// Cells evaluated (each cell is one walk per topology).
    pub cells: usize,
}

type ItemKey = (Ids, Vec<(u32, u32)>, Vec<(u32, u32)>);

/// Interns decisions per topology; neighbouring cells often repeat the last one.
struct Interner {
    ids: FxMap<Decision, u32>,
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

/// Groups values by key, keeping the keys in first-seen order.
fn group<K: std::hash::Hash + Eq + Clone, V>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Vec<(K, Vec<V>)> {
    let mut index: FxMap<K, usize> = FxMap::default();
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

/// A member of the sweep's active set: a rule `(topology, list, position)` or an address set
/// `(topology, u32::MAX, index)`.
type Member = (u32, u32, u32);
/// An active set and the classes its ranges belong to.
type Signature = (Vec<Member>, Vec<usize>);
/// Sorted, disjoint port ranges.
type Ports<'b> = &'b [(u32, u32)];
const SET: u32 = u32::MAX;

/// A member's share of the active set's hash (SplitMix64 of its packed fields).
fn member_hash(m: Member) -> u64 {
    let mut z = (u64::from(m.0) << 48 ^ u64::from(m.1) << 24 ^ u64::from(m.2))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Partitions `scope` and evaluates every cell in each of `topologies` (one or two).
pub(crate) fn partition(topologies: &[&Topology], scope: &Scope<'_>) -> Partition {
    assert!(
        (1..=2).contains(&topologies.len()),
        "one topology (reach) or two (diff)"
    );
    let v6 = scope.anchor.address().is_ipv6();
    let max = family_max(v6);
    let bounds: Vec<Boundaries<'_>> = topologies
        .iter()
        .map(|t| collect(t, scope.anchor, v6))
        .collect();
    // Every set enters at its ranges' starts and leaves after their ends.
    let mut events: Vec<(u128, bool, Member)> = Vec::new();
    let mut cuts: Vec<u128> = vec![0];
    let add = |events: &mut Vec<(u128, bool, Member)>, m: Member, lo: u128, hi: u128| {
        events.push((lo, true, m));
        if hi < max {
            events.push((hi + 1, false, m));
        }
    };
    for (bi, b) in bounds.iter().enumerate() {
        for (si, set) in b.addresses.iter().enumerate() {
            for &(lo, hi) in set {
                add(&mut events, (bi as u32, SET, si as u32), lo, hi);
            }
        }
        for (li, list) in b.lists.iter().enumerate() {
            for (ri, r) in list.rules.iter().enumerate() {
                let set = match scope.anchor {
                    Anchor::From(_) => r.sets.dst,
                    Anchor::Into(_) => r.sets.src,
                };
                for (lo, hi) in set.family_intervals(v6) {
                    add(&mut events, (bi as u32, li as u32, ri as u32), lo, hi);
                }
            }
        }
    }
    for &(lo, hi) in &scope.addresses {
        cuts.push(lo);
        if hi < max {
            cuts.push(hi + 1);
        }
    }
    cuts.extend(events.iter().map(|e| e.0));
    cuts.sort_unstable();
    cuts.dedup();
    events.sort_unstable_by_key(|e| e.0);

    let mut interners: Vec<Interner> = topologies
        .iter()
        .map(|_| Interner {
            ids: FxMap::default(),
            list: Vec::new(),
            last: None,
        })
        .collect();
    let mut active: BTreeSet<Member> = BTreeSet::new();
    // The active set's hash, kept as members enter and leave (a bucket key; signatures are
    // compared in full).
    let mut hash: u64 = 0;
    let mut next_event = 0;
    let mut global: FxMap<(ItemKey, u8), usize> = FxMap::default();
    let mut by_signature: FxMap<u64, Vec<Signature>> = FxMap::default();
    let mut classes: Vec<RawClass> = Vec::new();
    let mut cells = 0usize;
    for (k, &lo) in cuts.iter().enumerate() {
        let hi = cuts.get(k + 1).map_or(max, |n| n - 1);
        while next_event < events.len() && events[next_event].0 <= lo {
            let (_, enter, m) = events[next_event];
            if enter {
                active.insert(m);
            } else {
                active.remove(&m);
            }
            hash ^= member_hash(m);
            next_event += 1;
        }
        if !contains(&scope.addresses, lo) {
            continue;
        }
        // Ranges held by the same sets share a signature and so their classes. (A single
        // address whose inbound side sees another address — a host's public address — is a set
        // of its own in the seam, so its signature is its own too.)
        let known = by_signature.get(&hash).and_then(|bucket| {
            bucket
                .iter()
                .find(|(sig, _)| sig.len() == active.len() && sig.iter().eq(active.iter()))
                .map(|(_, ids)| ids.clone())
        });
        let class_ids = match known {
            Some(ids) => ids,
            None => {
                let items = evaluate(
                    topologies,
                    &bounds,
                    &active,
                    scope,
                    ip_of(v6, lo),
                    bounds
                        .iter()
                        .any(|b| b.aliased_anchor || b.aliased.contains(&lo)),
                    &mut interners,
                    &mut cells,
                );
                let ids: Vec<usize> = items
                    .into_iter()
                    .map(|item| {
                        *global.entry(item.clone()).or_insert_with(|| {
                            let ((ids, dports, sports), mask) = item;
                            classes.push(RawClass {
                                ids,
                                intervals: Vec::new(),
                                mask,
                                dports,
                                sports,
                            });
                            classes.len() - 1
                        })
                    })
                    .collect();
                by_signature
                    .entry(hash)
                    .or_default()
                    .push((active.iter().copied().collect(), ids.clone()));
                ids
            }
        };
        for c in class_ids {
            let ivs = &mut classes[c].intervals;
            match ivs.last_mut() {
                Some(last) if last.1.checked_add(1) == Some(lo) => last.1 = hi,
                _ => ivs.push((lo, hi)),
            }
        }
    }
    // A class's example is its first range's first address; order classes by it.
    classes.retain(|c| !c.intervals.is_empty());
    Partition {
        v6,
        decisions: interners.into_iter().map(|i| i.list).collect(),
        classes,
        cells,
    }
}

/// The classes of one signature's flows to `rep`: per protocol, port cells evaluated once each,
/// merged into (outcome, destination ports, source ports) items, then protocols with equal items.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    topologies: &[&Topology],
    bounds: &[Boundaries<'_>],
    active: &BTreeSet<Member>,
    scope: &Scope<'_>,
    rep: IpAddr,
    aliased: bool,
    interners: &mut [Interner],
    cells: &mut usize,
) -> Vec<(ItemKey, u8)> {
    let (source, destination) = scope.anchor.ends(rep);
    let paths: Vec<_> = topologies
        .iter()
        .map(|t| t.path(source, destination))
        .collect();
    let mut keys: Vec<(ItemKey, u8)> = Vec::new();
    for &p in scope.protocols {
        let (dclasses, sclasses) = if p.has_ports() {
            let (d, s) = port_sets(bounds, active, aliased, p);
            (
                port_classes(&d, &scope.ports),
                port_classes(&s, &[(0, 65_535)]),
            )
        } else {
            (
                vec![vec![(NO_PORT, NO_PORT)]],
                vec![vec![(NO_PORT, NO_PORT)]],
            )
        };
        let mut cells_p: Vec<(Ids, usize, usize)> = Vec::new();
        for (si, sc) in sclasses.iter().enumerate() {
            let sport =
                p.has_ports()
                    .then(|| match sc.iter().find(|r| r.0 <= 60000 && 60000 <= r.1) {
                        Some(_) => 60000,
                        None => sc[0].0 as u16,
                    });
            for (di, dc) in dclasses.iter().enumerate() {
                let flow = Flow {
                    protocol: p,
                    source,
                    source_port: sport,
                    destination,
                    destination_port: p.has_ports().then_some(dc[0].0 as u16),
                };
                let mut ids = [u32::MAX; 2];
                for (k, t) in topologies.iter().enumerate() {
                    let d = t.decide_on(&paths[k], &flow);
                    let d = match scope.anchor {
                        Anchor::From(_) => d,
                        Anchor::Into(_) => d.as_class_into(source),
                    };
                    ids[k] = interners[k].id(d);
                }
                *cells += 1;
                cells_p.push((ids, di, si));
            }
        }
        if !p.has_ports() {
            keys.extend(
                cells_p
                    .into_iter()
                    .map(|(ids, _, _)| ((ids, vec![], vec![]), p.bit())),
            );
            continue;
        }
        // Destination ports per (outcome, source ports), then source ports per (outcome,
        // destination ports).
        let by_sport = group(cells_p.into_iter().map(|(ids, di, si)| ((ids, si), di)));
        let by_dports = group(by_sport.into_iter().map(|((ids, si), dis)| {
            let d = merge(
                dis.iter()
                    .flat_map(|&di| dclasses[di].iter().copied())
                    .collect(),
            );
            ((ids, d), si)
        }));
        keys.extend(by_dports.into_iter().map(|((ids, d), sis)| {
            let s = merge(
                sis.iter()
                    .flat_map(|&si| sclasses[si].iter().copied())
                    .collect(),
            );
            ((ids, d, s), p.bit())
        }));
    }
    group(keys)
        .into_iter()
        .map(|(k, bits)| (k, bits.into_iter().fold(0u8, |m, b| m | b)))
        .collect()
}

/// The destination and source port sets protocol `p`'s flows are tested against here: the
/// active rules' of every list up to the list's first rule matching every port of `p` (every
/// rule's for an aliased address: the inbound side sees another address there), and the
/// platform's.
fn port_sets<'b>(
    bounds: &'b [Boundaries<'_>],
    active: &BTreeSet<Member>,
    aliased: bool,
    p: Protocol,
) -> (Vec<Ports<'b>>, Vec<Ports<'b>>) {
    let (mut d, mut s): (Vec<Ports<'b>>, Vec<Ports<'b>>) = (Vec::new(), Vec::new());
    let mut add = |r: &'b super::boundaries::Rule<'_>| {
        if r.sets.proto & p.bit() != 0 {
            if !r.sets.dport.is_any() {
                d.push(r.sets.dport.ranges());
            }
            if !r.sets.sport.is_any() {
                s.push(r.sets.sport.ranges());
            }
        }
    };
    if aliased {
        for b in bounds {
            for l in &b.lists {
                for r in &l.rules {
                    add(r);
                }
            }
        }
    } else {
        let mut done: Option<(u32, u32)> = None;
        for &(b, l, r) in active.range((0, 0, 0)..) {
            if l == SET || done == Some((b, l)) {
                continue;
            }
            let rule = &bounds[b as usize].lists[l as usize].rules[r as usize];
            add(rule);
            if rule.catch_all(p) {
                done = Some((b, l));
            }
        }
    }
    for b in bounds {
        let pp = &b.platform[p as usize];
        d.extend(pp.destination.iter().map(Vec::as_slice));
        s.extend(pp.source.iter().map(Vec::as_slice));
    }
    (d, s)
}

/// The ports of `within` grouped by which of `sets` hold them: each group is one cell of the
/// port axis (the walk tests ports only against these sets).
fn port_classes(sets: &[&[(u32, u32)]], within: &[(u32, u32)]) -> Vec<Vec<(u32, u32)>> {
    let mut cuts: Vec<u32> = vec![0];
    for set in sets.iter().copied().chain([within]) {
        for &(lo, hi) in set {
            if lo <= 65_535 {
                cuts.push(lo);
            }
            if hi < 65_535 {
                cuts.push(hi + 1);
            }
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let words = sets.len().div_ceil(64);
    let mut sigs: Vec<Vec<u64>> = vec![vec![0u64; words]; cuts.len()];
    for (k, set) in sets.iter().enumerate() {
        for &(lo, hi) in set.iter() {
            // Pieces start at cuts, and every range starts and ends at one.
            let first = cuts.partition_point(|&c| c < lo);
            for (i, &c) in cuts.iter().enumerate().skip(first) {
                if c > hi {
                    break;
                }
                sigs[i][k / 64] |= 1 << (k % 64);
            }
        }
    }
    let mut pieces: Vec<(Vec<u64>, (u32, u32))> = Vec::with_capacity(cuts.len());
    for (i, (&c, sig)) in cuts.iter().zip(sigs).enumerate() {
        let end = cuts.get(i + 1).map_or(65_535, |n| n - 1);
        if contains(within, c) {
            pieces.push((sig, (c, end)));
        }
    }
    group(pieces)
        .into_iter()
        .map(|(_, ranges)| merge(ranges))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_classes_group_by_membership() {
        let a: &[(u32, u32)] = &[(80, 80), (443, 443)];
        let b: &[(u32, u32)] = &[(443, 443), (8000, 9000)];
        let got = port_classes(&[a, b], &[(0, 65_535)]);
        assert_eq!(
            got,
            [
                vec![(0, 79), (81, 442), (444, 7999), (9001, 65_535)],
                vec![(80, 80)],
                vec![(443, 443)],
                vec![(8000, 9000)],
            ]
        );
        // Restricted to the queried ports.
        assert_eq!(
            port_classes(&[a], &[(70, 90)]),
            [vec![(70, 79), (81, 90)], vec![(80, 80)]]
        );
    }
}
