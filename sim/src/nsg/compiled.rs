//! The compiled evaluator: each NSG compiled once per context into rules sorted by priority,
//! every address field an interval set and the protocol a bit mask. [`CompiledNsg::decide`]
//! allocates nothing; long rule lists are decided by the bit-vector classifier.

use super::{Context, FlowKey, Nsg, RuleEvaluation, RuleMatch};
use crate::cidr::AddrSet;
use crate::classifier::{Classifier, RuleFields};
use crate::proto::{Access, Direction, PortSet};

// === impl Nsg ===

impl Nsg {
    /// Compiles the NSG for one context (the verdict and explaining paths).
    pub fn compile(&self, ctx: &Context<'_>) -> CompiledNsg {
        let build = |dir| {
            self.order(dir)
                .into_iter()
                .map(|i| {
                    let r = &self.rules[i];
                    CompiledRule {
                        proto: r.protocol.mask(),
                        src: ctx.resolve(&r.source),
                        dst: ctx.resolve(&r.destination),
                        sport: r.source_ports.clone(),
                        dport: r.destination_ports.clone(),
                        access: r.access,
                        index: i as u32,
                    }
                })
                .collect()
        };
        let inbound: Vec<CompiledRule> = build(Direction::Inbound);
        let outbound: Vec<CompiledRule> = build(Direction::Outbound);
        CompiledNsg {
            inbound_classifier: classifier_for(&inbound),
            outbound_classifier: classifier_for(&outbound),
            inbound,
            outbound,
        }
    }
}

#[derive(Clone, Debug)]
struct CompiledRule {
    proto: u8,
    src: AddrSet,
    dst: AddrSet,
    sport: PortSet,
    dport: PortSet,
    access: Access,
    index: u32,
}

impl CompiledRule {
    #[inline]
    fn matches(&self, f: &FlowKey) -> bool {
        self.proto & f.protocol.bit() != 0
            && self.dport.contains(f.destination_port)
            && self.sport.contains(f.source_port)
            && self.dst.contains(f.destination)
            && self.src.contains(f.source)
    }
}

/// One compiled rule's fields as sets (see [`CompiledNsg::rule_sets`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RuleSets<'a> {
    /// Protocol bit mask ([`crate::proto::Protocol::bit`]).
    pub proto: u8,
    /// Source addresses.
    pub src: &'a AddrSet,
    /// Destination addresses.
    pub dst: &'a AddrSet,
    /// Source ports.
    pub sport: &'a PortSet,
    /// Destination ports.
    pub dport: &'a PortSet,
    /// Access.
    pub access: Access,
    /// Index in [`Nsg::rules`].
    pub index: usize,
}

/// Rule lists up to this length are scanned linearly (a short list is already a short scan);
/// longer ones use the bit-vector classifier (module `classifier`).
pub const LINEAR_SCAN_MAX: usize = 24;

/// A classifier and, per rule position, the verdict it stands for: a compact copy of the rule
/// list's access and index, so the hot path reads 4 bytes, not a whole [`CompiledRule`].
#[derive(Clone, Debug)]
struct FastPath {
    classifier: Classifier,
    /// The rule's index in [`Nsg::rules`], with [`FastPath::DENY`] set for a Deny rule.
    matches: Vec<u32>,
}

impl FastPath {
    const DENY: u32 = 1 << 31;

    /// The verdict of the rule at position `i` of the list.
    #[inline]
    fn verdict(&self, i: usize) -> Option<RuleMatch> {
        let m = *self.matches.get(i)?;
        Some(RuleMatch {
            access: if m & Self::DENY != 0 {
                Access::Deny
            } else {
                Access::Allow
            },
            rule: (m & !Self::DENY) as usize,
        })
    }

    fn heap_bytes(&self) -> usize {
        self.classifier.heap_bytes() + self.matches.capacity() * std::mem::size_of::<u32>()
    }
}

fn classifier_for(rules: &[CompiledRule]) -> Option<FastPath> {
    // (A list too long for `FastPath`'s packed indices keeps the linear scan.)
    if rules.len() <= LINEAR_SCAN_MAX || rules.iter().any(|r| r.index >= FastPath::DENY) {
        return None;
    }
    {
        let fields: Vec<RuleFields<'_>> = rules
            .iter()
            .map(|r| RuleFields {
                proto_mask: r.proto,
                src: &r.src,
                dst: &r.dst,
                sport: &r.sport,
                dport: &r.dport,
            })
            .collect();
        Some(FastPath {
            classifier: Classifier::build(&fields)?,
            matches: rules
                .iter()
                .map(|r| match r.access {
                    Access::Allow => r.index,
                    Access::Deny => r.index | FastPath::DENY,
                })
                .collect(),
        })
    }
}

/// One NSG compiled for one context. The default rules guarantee a match in each direction.
#[derive(Clone, Debug)]
pub struct CompiledNsg {
    inbound: Vec<CompiledRule>,
    outbound: Vec<CompiledRule>,
    inbound_classifier: Option<FastPath>,
    outbound_classifier: Option<FastPath>,
}

// === impl CompiledNsg ===

impl CompiledNsg {
    fn list(&self, d: Direction) -> &[CompiledRule] {
        match d {
            Direction::Inbound => &self.inbound,
            Direction::Outbound => &self.outbound,
        }
    }

    /// The verdict-only path: the first matching rule. Allocates nothing.
    #[inline]
    pub fn decide(&self, direction: Direction, flow: &FlowKey) -> RuleMatch {
        let list = self.list(direction);
        if let Some(fast) = self.classifier(direction) {
            if let Some(m) = fast
                .classifier
                .first_match(flow)
                .and_then(|i| fast.verdict(i))
            {
                return m;
            }
        }
        for r in list {
            if r.matches(flow) {
                return RuleMatch {
                    access: r.access,
                    rule: r.index as usize,
                };
            }
        }
        // Unreachable for NSGs built by `Nsg::new` (the Deny-all default matches everything);
        // answer with the deny-all rule rather than panic.
        let last = list.last().map_or(0, |r| r.index as usize);
        RuleMatch {
            access: Access::Deny,
            rule: last,
        }
    }

    /// Whether a rule of `direction` chosen by `pick` (given its index in [`Nsg::rules`])
    /// matches the flow, whatever rules before it say. Allocates nothing. Used to find a Deny
    /// rule naming a platform tag, which takes a platform exemption away.
    pub fn any_match(
        &self,
        direction: Direction,
        flow: &FlowKey,
        pick: impl Fn(usize) -> bool,
    ) -> bool {
        self.list(direction)
            .iter()
            .any(|r| pick(r.index as usize) && r.matches(flow))
    }

    /// The explaining path: every rule examined up to and including the match, with per-field flags.
    pub fn explain(
        &self,
        nsg: &Nsg,
        direction: Direction,
        flow: &FlowKey,
    ) -> (Vec<RuleEvaluation>, RuleMatch) {
        let mut out = Vec::new();
        for r in self.list(direction) {
            let rule = &nsg.rules[r.index as usize];
            let ev = RuleEvaluation {
                name: rule.qualified_name(),
                priority: rule.priority,
                access: rule.access,
                source_matched: r.src.contains(flow.source),
                source_port_matched: r.sport.contains(flow.source_port),
                destination_matched: r.dst.contains(flow.destination),
                destination_port_matched: r.dport.contains(flow.destination_port),
                protocol_matched: r.proto & flow.protocol.bit() != 0,
            };
            let hit = ev.matched();
            out.push(ev);
            if hit {
                return (
                    out,
                    RuleMatch {
                        access: r.access,
                        rule: r.index as usize,
                    },
                );
            }
        }
        let m = self.decide(direction, flow);
        (out, m)
    }

    /// The rules of one direction in evaluation (priority) order, as sets: what the
    /// whole-space engine (`space`) reads to partition the flow space and lint rule lists.
    pub(crate) fn rule_sets(&self, direction: Direction) -> impl Iterator<Item = RuleSets<'_>> {
        self.list(direction).iter().map(|r| RuleSets {
            proto: r.proto,
            src: &r.src,
            dst: &r.dst,
            sport: &r.sport,
            dport: &r.dport,
            access: r.access,
            index: r.index as usize,
        })
    }

    /// Approximate heap bytes of the compiled form (reported by benchmarks).
    pub fn heap_bytes(&self) -> usize {
        let per = |v: &Vec<CompiledRule>| {
            v.capacity() * std::mem::size_of::<CompiledRule>()
                + v.iter()
                    .map(|r| {
                        r.src.heap_bytes()
                            + r.dst.heap_bytes()
                            + (r.sport.ranges().len() + r.dport.ranges().len()) * 8
                    })
                    .sum::<usize>()
        };
        per(&self.inbound)
            + per(&self.outbound)
            + self
                .inbound_classifier
                .as_ref()
                .map_or(0, FastPath::heap_bytes)
            + self
                .outbound_classifier
                .as_ref()
                .map_or(0, FastPath::heap_bytes)
    }

    /// The bit-vector classifier's answer alone, without the linear-scan fallback of
    /// [`CompiledNsg::decide`]: `None` when `direction` has no classifier or it found no rule.
    /// For tests that check the classifier itself against the reference.
    pub fn classifier_decide(&self, direction: Direction, flow: &FlowKey) -> Option<RuleMatch> {
        let fast = self.classifier(direction)?;
        fast.classifier
            .first_match(flow)
            .and_then(|i| fast.verdict(i))
    }

    /// Whether `direction` is decided by the bit-vector classifier (else a linear scan).
    pub fn uses_classifier(&self, direction: Direction) -> bool {
        self.classifier(direction).is_some()
    }

    fn classifier(&self, direction: Direction) -> Option<&FastPath> {
        match direction {
            Direction::Inbound => self.inbound_classifier.as_ref(),
            Direction::Outbound => self.outbound_classifier.as_ref(),
        }
    }

    /// A one-line description of `direction`'s classifier (intervals and distinct rule bit sets
    /// per field), or `None` when that direction is a linear scan. For benchmarks and debugging.
    pub fn classifier_summary(&self, direction: Direction) -> Option<String> {
        self.classifier(direction).map(|f| f.classifier.describe())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::proto::Protocol;
    use crate::tags::ServiceTagTable;

    #[test]
    fn ipfv_quickstart_scenario_c() {
        // Spec §1.10: VM 10.0.0.4 in a 10.0.0.0/16 VNet with only default rules.
        let nsg = Nsg::new("myVmNSG", false, vec![]);
        let vnet = ["10.0.0.0/16".parse().unwrap()];
        let tags = ServiceTagTable::builtin();
        let members = BTreeMap::new();
        let ctx = Context {
            virtual_network: &vnet,
            vnet_space: &vnet,
            tags: &tags,
            asg_members: &members,
        };
        let c = nsg.compile(&ctx);
        let ip = |s: &str| s.parse().unwrap();
        let out = |dst: &str| {
            FlowKey::new(
                Protocol::Tcp,
                ip("10.0.0.4"),
                Some(60000),
                ip(dst),
                Some(80),
            )
        };
        let m = c.decide(Direction::Outbound, &out("13.107.21.200"));
        assert_eq!(
            (m.access, nsg.rules[m.rule].name.as_str()),
            (Access::Allow, "AllowInternetOutBound")
        );
        let m = c.decide(Direction::Outbound, &out("172.31.0.100"));
        assert_eq!(
            (m.access, nsg.rules[m.rule].name.as_str()),
            (Access::Deny, "DenyAllOutBound")
        );
        let inbound = FlowKey::new(
            Protocol::Tcp,
            ip("172.31.0.100"),
            Some(60000),
            ip("10.0.0.4"),
            Some(80),
        );
        let (trace, m) = c.explain(&nsg, Direction::Inbound, &inbound);
        assert_eq!(nsg.rules[m.rule].name, "DenyAllInBound");
        assert_eq!(
            trace.len(),
            3,
            "AllowVnetInBound, AllowAzureLoadBalancerInBound, DenyAllInBound examined"
        );
        assert!(!trace[0].source_matched && trace[0].destination_matched);
        let r = nsg.reference(&ctx);
        assert_eq!(r.decide(Direction::Inbound, &inbound), Some(m));
    }
}
