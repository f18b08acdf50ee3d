//! `diff`: the flow classes whose outcome differs between two topologies. Both are partitioned
//! together — the union of their boundaries, each cell walked in both — so a class is a set of
//! flows whose outcome is constant in each topology.

use super::atoms::partition;
use super::{classes_of, sort_classes, FlowClass, SpaceQuery};
use crate::flow::Decision;
use crate::topology::Topology;

/// What counts as a change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DiffKey {
    /// Verdict and code.
    #[default]
    Verdict,
    /// Verdict, code and the deciding rule (NSG and rule name).
    ByRule,
}

/// Flows whose outcome changed: `class` (its decision is the one before) and the one after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffClass {
    /// The flows, with the outcome before ([`FlowClass::decision`]).
    pub class: FlowClass,
    /// The outcome after.
    pub after: Decision,
}

/// The deciding rule of a decision by name (indices differ between two topologies).
fn deciding_rule(t: &Topology, d: &Decision) -> Option<(String, String)> {
    d.decided_by.map(|r| {
        let i = t.rule_info(r);
        (i.nsg.to_ascii_lowercase(), i.rule.to_ascii_lowercase())
    })
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
                let changed = (b.verdict, b.code) != (a.verdict, a.code)
                    || (key == DiffKey::ByRule
                        && deciding_rule(self, b) != deciding_rule(after, &a));
                changed.then_some(DiffClass { class, after: a })
            })
            .collect();
        sort_classes(&mut out, |d| &d.class);
        out
    }
}
