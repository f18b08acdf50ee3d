//! A first-match packet classifier by bit-vector intersection (the family of Lakshman–Stiliadis
//! "bit vector" search and nftables' `pipapo`), used by [`crate::nsg::CompiledNsg`] for long
//! rule lists.
//!
//! Each field (source/destination address per family, source/destination port, protocol) is cut
//! into *elementary intervals* at every rule boundary; each interval carries the bit set of rules
//! that match it. A lookup is one binary search per field, then an AND of five bit sets and the
//! first set bit — rules are stored in priority order, so the lowest set bit is the first match.
//! Cost is `O(fields × log boundaries + rules / 64)` with no allocation; memory is
//! `classes × rules / 8` bytes per field, built by one sweep over sorted boundary events.

use std::net::IpAddr;

use crate::cidr::AddrSet;
use crate::nsg::FlowKey;
use crate::proto::{PortSet, Protocol, NO_PORT};

/// One field: class `i` covers `[bounds[i], bounds[i + 1])`; its rule bits are
/// `bits[i * width .. (i + 1) * width]`.
#[derive(Clone, Debug, Default)]
struct Field<T> {
    bounds: Vec<T>,
    bits: Vec<u64>,
}

trait Point: Copy + Ord + Default {
    fn next(self) -> Option<Self>;
}
impl Point for u32 {
    fn next(self) -> Option<u32> {
        self.checked_add(1)
    }
}
impl Point for u128 {
    fn next(self) -> Option<u128> {
        self.checked_add(1)
    }
}

impl<T: Point> Field<T> {
    /// Builds the field from each rule's sorted, disjoint intervals.
    fn build(rules: &[&[(T, T)]], width: usize) -> Field<T> {
        // Events: (position, is_add, rule). Removals sort before additions at one position.
        let mut events: Vec<(T, bool, u32)> = Vec::new();
        for (r, ivs) in rules.iter().enumerate() {
            for &(lo, hi) in ivs.iter() {
                events.push((lo, true, r as u32));
                if let Some(end) = hi.next() {
                    events.push((end, false, r as u32));
                }
            }
        }
        events.sort_unstable();
        let mut bounds: Vec<T> = Vec::new();
        let mut bits: Vec<u64> = Vec::new();
        let mut cur = vec![0u64; width];
        let mut i = 0;
        // Class 0 always starts at the domain's minimum.
        let mut pos = T::default();
        loop {
            while i < events.len() && events[i].0 == pos {
                let (_, add, r) = events[i];
                let (w, b) = (r as usize / 64, r % 64);
                if add {
                    cur[w] |= 1 << b;
                } else {
                    cur[w] &= !(1 << b);
                }
                i += 1;
            }
            // Merge with the previous class when the rule set did not change.
            let same = !bounds.is_empty() && bits[bits.len() - width..] == cur[..];
            if !same {
                bounds.push(pos);
                bits.extend_from_slice(&cur);
            }
            match events.get(i) {
                Some(e) => pos = e.0,
                None => break,
            }
        }
        bounds.shrink_to_fit();
        bits.shrink_to_fit();
        Field { bounds, bits }
    }

    #[inline]
    fn class(&self, x: T, width: usize) -> &[u64] {
        let i = self.bounds.partition_point(|b| *b <= x).saturating_sub(1);
        &self.bits[i * width..(i + 1) * width]
    }

    fn heap_bytes(&self) -> usize {
        self.bounds.capacity() * std::mem::size_of::<T>() + self.bits.capacity() * 8
    }
}

/// The compiled classifier of one NSG direction. Rule `i` is the `i`-th rule in priority order.
#[derive(Clone, Debug)]
pub(crate) struct Classifier {
    width: usize,
    proto: Vec<u64>,
    src4: Field<u32>,
    src6: Field<u128>,
    dst4: Field<u32>,
    dst6: Field<u128>,
    sport: Field<u32>,
    dport: Field<u32>,
}

/// What the classifier needs of a rule.
pub(crate) struct RuleFields<'a> {
    pub proto_mask: u8,
    pub src: &'a AddrSet,
    pub dst: &'a AddrSet,
    pub sport: &'a PortSet,
    pub dport: &'a PortSet,
}

impl Classifier {
    /// Builds the classifier for rules in priority order.
    pub(crate) fn build(rules: &[RuleFields<'_>]) -> Classifier {
        let width = rules.len().div_ceil(64).max(1);
        let mut proto = vec![0u64; Protocol::ALL.len() * width];
        for (r, rule) in rules.iter().enumerate() {
            for p in Protocol::ALL {
                if rule.proto_mask & p.bit() != 0 {
                    proto[(*p as usize) * width + r / 64] |= 1 << (r % 64);
                }
            }
        }
        let src4: Vec<&[(u32, u32)]> = rules.iter().map(|r| r.src.v4_intervals()).collect();
        let src6: Vec<&[(u128, u128)]> = rules.iter().map(|r| r.src.v6_intervals()).collect();
        let dst4: Vec<&[(u32, u32)]> = rules.iter().map(|r| r.dst.v4_intervals()).collect();
        let dst6: Vec<&[(u128, u128)]> = rules.iter().map(|r| r.dst.v6_intervals()).collect();
        let sport: Vec<&[(u32, u32)]> = rules.iter().map(|r| r.sport.ranges()).collect();
        let dport: Vec<&[(u32, u32)]> = rules.iter().map(|r| r.dport.ranges()).collect();
        Classifier {
            width,
            proto,
            src4: Field::build(&src4, width),
            src6: Field::build(&src6, width),
            dst4: Field::build(&dst4, width),
            dst6: Field::build(&dst6, width),
            sport: Field::build(&sport, width),
            dport: Field::build(&dport, width),
        }
    }

    /// Position (in priority order) of the first rule matching `f`, if any. Allocates nothing.
    #[inline]
    pub(crate) fn first_match(&self, f: &FlowKey) -> Option<usize> {
        let w = self.width;
        let p = &self.proto[(f.protocol as usize) * w..(f.protocol as usize + 1) * w];
        let s = match f.source {
            IpAddr::V4(a) => self.src4.class(u32::from(a), w),
            IpAddr::V6(a) => self.src6.class(u128::from(a), w),
        };
        let d = match f.destination {
            IpAddr::V4(a) => self.dst4.class(u32::from(a), w),
            IpAddr::V6(a) => self.dst6.class(u128::from(a), w),
        };
        let sp = self.sport.class(f.source_port.min(NO_PORT), w);
        let dp = self.dport.class(f.destination_port.min(NO_PORT), w);
        for i in 0..w {
            let x = p[i] & s[i] & d[i] & sp[i] & dp[i];
            if x != 0 {
                return Some(i * 64 + x.trailing_zeros() as usize);
            }
        }
        None
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.proto.capacity() * 8
            + self.src4.heap_bytes()
            + self.src6.heap_bytes()
            + self.dst4.heap_bytes()
            + self.dst6.heap_bytes()
            + self.sport.heap_bytes()
            + self.dport.heap_bytes()
    }
}
