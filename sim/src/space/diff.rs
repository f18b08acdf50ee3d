//! `diff`: the flow classes whose outcome differs between two topologies. Both are partitioned
//! together — the union of their boundaries, each cell walked in both — so a class is a set of
//! flows whose outcome (verdict, code, rules and routes taken) is constant in each topology.

use super::atoms::partition;
use super::{classes_of, sort_classes, FlowClass, SpaceQuery};
use crate::cidr::Cidr;
use crate::flow::Decision;
use crate::route::NextHop;
use crate::topology::Topology;

/// What counts as a change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DiffKey {
    /// Verdict, code and the routes taken (each route's prefix and next hop, in path order): a
    /// flow that now leaves through another route with the same verdict changed.
    #[default]
    Verdict,
    /// Verdict, code, routes, the deciding rule (NSG and rule name) and the routes' names.
    ByRule,
}

/// Flows whose outcome changed: `class` (its decision is the one before) and the one after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffClass {
    /// The flows, with the outcome before ([`FlowClass::decision`]).
    pub class: FlowClass,
    /// The outcome after.
    pub after: Decision,
    /// Whether the routes taken changed (prefix or next hop of a route on the path; with
    /// [`DiffKey::ByRule`], also a route's name).
    pub rerouted: bool,
}

/// The deciding rule of a decision by name (indices differ between two topologies).
fn deciding_rule(t: &Topology, d: &Decision) -> Option<(String, String)> {
    d.decided_by.map(|r| {
        let i = t.rule_info(r);
        (i.nsg.to_ascii_lowercase(), i.rule.to_ascii_lowercase())
    })
}

/// The routes a decision took, as compared across topologies (indices differ): prefix and
/// next hop, with the route's name for [`DiffKey::ByRule`].
fn routes_taken(t: &Topology, d: &Decision, key: DiffKey) -> Vec<(Cidr, NextHop, String)> {
    d.routes()
        .map(|r| {
            let i = t.route_info(r);
            let name = match key {
                DiffKey::ByRule => i.name().to_ascii_lowercase(),
                DiffKey::Verdict => String::new(),
            };
            (i.prefix, i.next_hop, name)
        })
        .collect()
}

impl Topology {
    /// The flows of `q` whose outcome (per `key`) differs between `self` (before) and `after`,
    /// as classes (disjoint; each with one outcome before and one after).
    pub fn diff(&self, after: &Topology, q: &SpaceQuery, key: DiffKey) -> Vec<DiffClass> {
        let p = partition(&[self, after], &q.scope());
        let before = classes_of(&p, 0, q.anchor);
        let mut out: Vec<DiffClass> = before
            .into_iter()
            .zip(&p.classes)
            .filter_map(|(class, raw)| {
                let a = p.decisions[1][raw.ids[1] as usize];
                let b = &class.decision;
                let rerouted = routes_taken(self, b, key) != routes_taken(after, &a, key);
                let changed = (b.verdict, b.code) != (a.verdict, a.code)
                    || rerouted
                    || (key == DiffKey::ByRule
                        && deciding_rule(self, b) != deciding_rule(after, &a));
                changed.then_some(DiffClass {
                    class,
                    after: a,
                    rerouted,
                })
            })
            .collect();
        sort_classes(&mut out, |d| &d.class);
        out
    }
}
