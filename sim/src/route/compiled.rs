//! The compiled route lookup: each family's active routes flattened into sorted, disjoint
//! intervals, each carrying the longest prefix that covers it. A lookup is one binary search
//! and allocates nothing; [`super::SubnetRoutes::lookup_reference`] is the scan it is checked
//! against (property test in `sim/tests/routing.rs`).

use std::net::IpAddr;

use super::{EffectiveRoute, RouteState};
use crate::cidr::addr_to_u128;

const NONE: u32 = u32::MAX;

/// Interval starts and the route each interval takes (`NONE`: no route).
#[derive(Clone, Debug, Default)]
struct Segments {
    starts: Vec<u128>,
    route: Vec<u32>,
}

impl Segments {
    fn push(&mut self, start: u128, route: u32) {
        if self.starts.last() == Some(&start) {
            *self.route.last_mut().expect("same length") = route;
        } else {
            self.starts.push(start);
            self.route.push(route);
        }
    }

    /// Builds the segments of a laminar family of prefixes (any two nested or disjoint, no
    /// two equal): a sweep keeping the open prefixes on a stack.
    fn build(mut items: Vec<(u128, u128, u32)>) -> Segments {
        // Wider first at the same start, so the stack holds the nesting order.
        items.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut s = Segments::default();
        s.push(0, NONE);
        let mut stack: Vec<(u128, u32)> = Vec::new();
        let close = |stack: &mut Vec<(u128, u32)>, s: &mut Segments, until: Option<u128>| {
            while let Some(&(last, _)) = stack.last() {
                if until.is_some_and(|u| last >= u) {
                    break;
                }
                stack.pop();
                if let Some(next) = last.checked_add(1) {
                    s.push(next, stack.last().map_or(NONE, |t| t.1));
                }
            }
        };
        for (first, last, r) in items {
            close(&mut stack, &mut s, Some(first));
            stack.push((last, r));
            s.push(first, r);
        }
        close(&mut stack, &mut s, None);
        s
    }

    fn find(&self, x: u128) -> Option<usize> {
        let i = self.starts.partition_point(|&s| s <= x);
        let r = self.route[i.checked_sub(1)?];
        (r != NONE).then_some(r as usize)
    }
}

/// Longest-prefix lookup over a subnet's active routes.
#[derive(Clone, Debug, Default)]
pub(crate) struct RouteLookup {
    v4: Segments,
    v6: Segments,
}

impl RouteLookup {
    pub(crate) fn new(routes: &[EffectiveRoute]) -> RouteLookup {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (i, r) in routes.iter().enumerate() {
            if r.state != RouteState::Active {
                continue;
            }
            let (a, b) = r.prefix.interval();
            let item = (a, b, u32::try_from(i).expect("fewer than 2^32 routes"));
            if r.prefix.is_ipv4() {
                v4.push(item);
            } else {
                v6.push(item);
            }
        }
        RouteLookup {
            v4: Segments::build(v4),
            v6: Segments::build(v6),
        }
    }

    pub(crate) fn find(&self, addr: IpAddr) -> Option<usize> {
        match addr {
            IpAddr::V4(_) => self.v4.find(addr_to_u128(addr)),
            IpAddr::V6(_) => self.v6.find(addr_to_u128(addr)),
        }
    }
}
