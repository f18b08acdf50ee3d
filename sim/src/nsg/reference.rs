//! The reference evaluator, the oracle the compiled one is tested against: a first-match linear
//! scan over pre-parsed rules, written for obviousness (per-prefix `contains`, an `is_public`
//! predicate for `Internet`).

use std::net::IpAddr;

use super::{AddressSpec, Context, FlowKey, Nsg, RuleMatch, TagRef, AZURE_LOAD_BALANCER};
use crate::cidr::{is_public, Cidr};
use crate::proto::{Access, Direction, PortSet, RuleProtocol};
use crate::tags::VirtualTag;

// === impl Nsg ===

impl Nsg {
    /// Builds the reference evaluator for one context.
    pub fn reference(&self, ctx: &Context<'_>) -> ReferenceNsg {
        let mut rules: Vec<RefRule> = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| RefRule {
                index: i,
                priority: r.priority,
                direction: r.direction,
                access: r.access,
                protocol: r.protocol,
                src: ctx.reference_addr(&r.source),
                dst: ctx.reference_addr(&r.destination),
                sport: r.source_ports.clone(),
                dport: r.destination_ports.clone(),
            })
            .collect();
        rules.sort_by_key(|r| r.priority);
        ReferenceNsg { rules }
    }
}

/// One side of a reference rule: explicit prefixes, optionally "Internet outside these prefixes".
#[derive(Clone, Debug)]
struct RefAddr {
    any: bool,
    cidrs: Vec<Cidr>,
    internet_outside: Option<Vec<Cidr>>,
}

impl RefAddr {
    fn contains(&self, ip: IpAddr) -> bool {
        self.any
            || self.cidrs.iter().any(|c| c.contains(ip))
            || self
                .internet_outside
                .as_ref()
                .is_some_and(|vnet| is_public(ip) && !vnet.iter().any(|c| c.contains(ip)))
    }
}

#[derive(Clone, Debug)]
struct RefRule {
    index: usize,
    priority: u32,
    direction: Direction,
    access: Access,
    protocol: RuleProtocol,
    src: RefAddr,
    dst: RefAddr,
    sport: PortSet,
    dport: PortSet,
}

/// The oracle: a first-match linear scan over pre-parsed rules.
#[derive(Clone, Debug)]
pub struct ReferenceNsg {
    rules: Vec<RefRule>,
}

impl ReferenceNsg {
    /// The first rule (lowest priority number) of `direction` whose five fields all match.
    pub fn decide(&self, direction: Direction, f: &FlowKey) -> Option<RuleMatch> {
        self.rules
            .iter()
            .filter(|r| r.direction == direction)
            .find(|r| {
                r.protocol.matches(f.protocol)
                    && r.src.contains(f.source)
                    && r.dst.contains(f.destination)
                    && r.sport.contains(f.source_port)
                    && r.dport.contains(f.destination_port)
            })
            .map(|r| RuleMatch {
                access: r.access,
                rule: r.index,
            })
    }
}

impl Context<'_> {
    fn reference_addr(&self, spec: &AddressSpec) -> RefAddr {
        let mut r = RefAddr {
            any: spec.any || !spec.unknown.is_empty(),
            cidrs: spec.prefixes.clone(),
            internet_outside: None,
        };
        for t in &spec.tags {
            match t {
                TagRef::Virtual(VirtualTag::VirtualNetwork) => {
                    r.cidrs.extend_from_slice(self.virtual_network)
                }
                TagRef::Virtual(VirtualTag::AzureLoadBalancer) => {
                    r.cidrs
                        .push(AZURE_LOAD_BALANCER.parse().expect("constant prefix"));
                }
                TagRef::Virtual(VirtualTag::Internet) => {
                    r.internet_outside = Some(self.vnet_space.to_vec())
                }
                TagRef::Table(name) => r.cidrs.extend_from_slice(self.table_prefixes(name)),
                TagRef::Platform(p) => r.cidrs.extend(p.prefixes()),
            }
        }
        for a in &spec.asgs {
            if let Some(members) = self.asg_members.get(a) {
                r.cidrs.extend(members.iter().map(|ip| Cidr::host(*ip)));
            }
        }
        r
    }
}
