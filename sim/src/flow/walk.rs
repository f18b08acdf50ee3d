//! Planning and walking a flow's path: where the source is, which NSGs apply in which VNet
//! context, the routing outcome, then the one walk that turns NSG matches into a verdict —
//! shared by the verdict-only path ([`Topology::decide`]) and the explaining path
//! ([`Topology::evaluate`]).
//!
//! Every value this walk compares a flow with must also be listed in `space/boundaries.rs`
//! (the whole-space engine's seam: `reach`, `lint`, `diff`), or their answers stop being exact.

use std::net::IpAddr;

use super::{
    AppliedTo, DecidedBy, Decision, Flow, FlowKey, FlowView, NsgEvaluation, RuleInfo, RuleRef,
    Verdict, VerdictCode, VerdictKind,
};
use crate::finding::Assumption;
use crate::fixture::{HostKind, NetworkMode};
use crate::nsg::{CompiledNsg, RuleMatch};
use crate::proto::{Access, Direction, Protocol};
use crate::topology::{ReservedRole, Topology};

// === Planning ===

#[derive(Clone, Copy, Debug)]
struct Apply {
    nsg: usize,
    vnet: usize,
    applied_to: AppliedTo,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Subnet { vnet: usize, apim: bool },
    ApimPublic,
    Internet,
    PrivateOutside,
    VnetNoSubnet(usize),
}

/// The path between two addresses in one topology ([`Topology::path`]).
#[derive(Clone, Copy, Debug)]
pub struct FlowPath {
    source: IpAddr,
    destination: IpAddr,
    plan: Plan,
}

impl FlowPath {
    /// Why no route joins the two addresses (`NO_ROUTE`, `NOT_INTEGRATED`, ...), whatever
    /// the NSGs say; `None` when one does.
    pub fn unroutable(&self) -> Option<VerdictCode> {
        self.plan.route.err().map(|(code, _)| code)
    }
}

#[derive(Clone, Copy, Debug)]
struct Plan {
    source: Source,
    outbound: [Option<Apply>; 2],
    route: Result<(), (VerdictCode, Why)>,
    inbound: [Option<Apply>; 2],
    inbound_destination: IpAddr,
    why_allowed: Why,
}

/// Reasons, kept as an enum so the verdict path formats nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    SourceNotInSubnet,
    PrivateSourceOutside,
    NotPeered,
    DestNotInSubnet,
    NotIntegrated,
    NoPublicEndpoint,
    InjectionNoPublicEndpoint,
    IntegrationOutboundOnly,
    PrivateOutside,
    GatewayPublic,
    ViaPublicAddress,
    InVnet,
    ToInternet,
    PrivateEndpointUnfiltered,
    Reserved(ReservedRole),
    UnicastDhcp,
    HostPort65330,
    Broadcast,
    Multicast,
}

impl Why {
    fn text(self) -> &'static str {
        match self {
            Why::SourceNotInSubnet => "the source address is inside a VNet's address space but in none of its subnets",
            Why::PrivateSourceOutside => "the source address is outside every VNet and not a public address (private, reserved or documentation range): it has no route into Azure",
            Why::NotPeered => "the destination VNet is neither the source VNet nor connected to it by a two-sided peering (peering is not transitive)",
            Why::DestNotInSubnet => "the destination is inside a VNet's address space but in none of its subnets",
            Why::NotIntegrated => "the API Management instance is not integrated with a VNet, so it cannot reach private addresses",
            Why::NoPublicEndpoint => "the destination is a private address with no public address, unreachable from the internet",
            Why::InjectionNoPublicEndpoint => "with VNet injection the gateway is reachable only at its private address",
            Why::IntegrationOutboundOnly => "VNet integration is outbound-only: nothing accepts traffic on the instance's integration subnet address",
            Why::PrivateOutside => "the destination is outside every VNet the source can reach and not a public address (private, reserved or documentation range)",
            Why::PrivateEndpointUnfiltered => "the destination is a private endpoint whose subnet has private_endpoint_network_policies Disabled (or RouteTableEnabled): inbound NSG rules do not apply to it",
            Why::GatewayPublic => "the gateway endpoint is public; with integration (or none) no NSG of the integration subnet applies to inbound traffic",
            Why::ViaPublicAddress => "arrives through the host's public address; inbound NSGs see its private address",
            Why::InVnet => "the destination is in the source VNet or a connected peer",
            Why::ToInternet => "the destination is a public address on the internet",
            Why::Reserved(ReservedRole::Network) => "the destination is its subnet's network address, one of the five addresses Azure reserves in every subnet: nothing answers there",
            Why::Reserved(ReservedRole::DefaultGateway) => "the destination is its subnet's default gateway (x.x.x.1), one of the five addresses Azure reserves in every subnet: nothing answers there as a host",
            Why::Reserved(ReservedRole::AzureDns) => "the destination is one of the two addresses (x.x.x.2, x.x.x.3) Azure reserves to map Azure DNS into the subnet: nothing answers there as a host",
            Why::Reserved(ReservedRole::Broadcast) => "the destination is its subnet's broadcast address, one of the five addresses Azure reserves in every subnet (and broadcast is blocked within VNets)",
            Why::UnicastDhcp => "unicast DHCP (UDP source port 68 to destination port 67) is blocked within VNets (VNet FAQ, \"What protocols can I use within VNets?\")",
            Why::HostPort65330 => "UDP source port 65330 is reserved for the host and blocked within VNets (VNet FAQ)",
            Why::Broadcast => "broadcast is blocked within VNets (VNet FAQ)",
            Why::Multicast => "multicast is blocked within VNets (VNet FAQ)",
        }
    }
}

impl Topology {
    /// Where the rule of a verdict is written; `None` for default rules, which no file holds.
    pub fn rule_location(&self, r: RuleRef) -> Option<crate::source::Location> {
        self.nsg_rule_location(r.nsg, r.rule)
    }

    fn locate_source(&self, ip: IpAddr) -> (Source, [Option<Apply>; 2]) {
        if let Some(a) = &self.apim {
            if ip == a.public_address && a.mode == NetworkMode::None {
                return (Source::ApimPublic, [None, None]);
            }
        }
        if let Some((vi, si)) = self.subnet_of(ip) {
            let is_apim = self.apim_in_subnet().is_some_and(|(_, _, _, a)| a == ip);
            let nic = self.host_at(ip).and_then(|h| {
                let host = &self.hosts[h];
                host.nsg.map(|n| Apply {
                    nsg: n,
                    vnet: vi,
                    applied_to: AppliedTo::Host(h),
                })
            });
            let subnet = self.vnets[vi].subnets[si].nsg.map(|n| Apply {
                nsg: n,
                vnet: vi,
                applied_to: AppliedTo::Subnet(vi, si),
            });
            return (
                Source::Subnet {
                    vnet: vi,
                    apim: is_apim,
                },
                [nic, subnet],
            );
        }
        if let Some(v) = self.vnet_of(ip) {
            return (Source::VnetNoSubnet(v), [None, None]);
        }
        if crate::cidr::is_public(ip) {
            (Source::Internet, [None, None])
        } else {
            (Source::PrivateOutside, [None, None])
        }
    }

    fn pe_unfiltered(&self, dst: IpAddr, vi: usize, si: usize) -> bool {
        let subnet = &self.vnets[vi].subnets[si];
        self.host_at(dst).is_some_and(|h| {
            self.hosts[h].kind == HostKind::PrivateEndpoint
                && !subnet.private_endpoint_network_policies.nsg_applies()
        })
    }

    fn inbound_nsgs(&self, dst: IpAddr, vi: usize, si: usize) -> [Option<Apply>; 2] {
        let subnet = &self.vnets[vi].subnets[si];
        let host = self.host_at(dst);
        if self.pe_unfiltered(dst, vi, si) {
            return [None, None];
        }
        let sub = subnet.nsg.map(|n| Apply {
            nsg: n,
            vnet: vi,
            applied_to: AppliedTo::Subnet(vi, si),
        });
        let nic = host.and_then(|h| {
            self.hosts[h].nsg.map(|n| Apply {
                nsg: n,
                vnet: vi,
                applied_to: AppliedTo::Host(h),
            })
        });
        [sub, nic]
    }

    fn plan(&self, flow: &Flow) -> Plan {
        let (source, outbound) = self.locate_source(flow.source);
        let dst = flow.destination;
        let mut plan = Plan {
            source,
            outbound,
            route: Ok(()),
            inbound: [None, None],
            inbound_destination: dst,
            why_allowed: Why::ToInternet,
        };
        let src_fail = match source {
            Source::VnetNoSubnet(_) => Some((VerdictCode::NoRoute, Why::SourceNotInSubnet)),
            Source::PrivateOutside => Some((VerdictCode::NoRoute, Why::PrivateSourceOutside)),
            _ => None,
        };
        let private_dest_fail = |why_vnet: Why| match source {
            Source::ApimPublic => Err((VerdictCode::NotIntegrated, Why::NotIntegrated)),
            Source::Internet => Err((VerdictCode::NoPublicEndpoint, Why::NoPublicEndpoint)),
            _ => Err((VerdictCode::NoRoute, why_vnet)),
        };
        let apim = self.apim.as_ref();
        let route = if let Some((code, why)) = src_fail {
            Err((code, why))
        } else if apim.is_some_and(|a| dst == a.public_address) {
            if apim.is_some_and(|a| a.mode == NetworkMode::Injection) {
                Err((
                    VerdictCode::NoPublicEndpoint,
                    Why::InjectionNoPublicEndpoint,
                ))
            } else {
                plan.why_allowed = Why::GatewayPublic;
                Ok(())
            }
        } else if apim
            .is_some_and(|a| a.mode == NetworkMode::Integration && a.private_address == Some(dst))
        {
            Err((VerdictCode::NoRoute, Why::IntegrationOutboundOnly))
        } else if let Some(h) = self.host_with_public(dst) {
            let host = &self.hosts[h];
            plan.inbound_destination = host.address;
            plan.why_allowed = Why::ViaPublicAddress;
            if let Some((vi, si)) = host.placement {
                plan.inbound = self.inbound_nsgs(host.address, vi, si);
            }
            Ok(())
        } else if let Some((vi, si)) = self.subnet_of(dst) {
            let reachable =
                matches!(source, Source::Subnet { vnet, .. } if self.connected(vnet, vi));
            let reserved = self
                .host_at(dst)
                .is_none()
                .then(|| self.vnets[vi].subnets[si].reserved_role(dst))
                .flatten();
            if let (true, Some(role)) = (reachable, reserved) {
                Err((VerdictCode::ReservedAddress, Why::Reserved(role)))
            } else if reachable {
                plan.inbound = self.inbound_nsgs(dst, vi, si);
                plan.why_allowed = if self.pe_unfiltered(dst, vi, si) {
                    Why::PrivateEndpointUnfiltered
                } else {
                    Why::InVnet
                };
                Ok(())
            } else {
                private_dest_fail(Why::NotPeered)
            }
        } else if self.vnet_of(dst).is_some() {
            private_dest_fail(Why::DestNotInSubnet)
        } else if crate::cidr::is_public(dst) {
            Ok(())
        } else {
            private_dest_fail(Why::PrivateOutside)
        };
        plan.route = route;
        plan
    }

    fn rule_ref(a: &Apply, m: RuleMatch, direction: Direction) -> RuleRef {
        RuleRef {
            nsg: a.nsg,
            rule: m.rule,
            vnet: a.vnet,
            applied_to: a.applied_to,
            direction,
            access: m.access,
        }
    }

    /// The verdict-only path: no strings, no allocation.
    pub fn decide(&self, flow: &Flow) -> Decision {
        self.walk(flow, &self.plan(flow), |_, c, dir, key| c.decide(dir, key))
    }

    /// The path between two addresses (which NSGs apply, in which VNet context, and the routing
    /// outcome), for [`Topology::decide_on`]. A path depends on the addresses only, so a caller
    /// that decides many flows between the same two addresses (a gateway opening connections
    /// to one backend from synthetic source ports) computes it once.
    pub fn path(&self, source: IpAddr, destination: IpAddr) -> FlowPath {
        let probe = Flow {
            protocol: Protocol::Tcp,
            source,
            source_port: None,
            destination,
            destination_port: None,
        };
        FlowPath {
            source,
            destination,
            plan: self.plan(&probe),
        }
    }

    /// [`Topology::decide`] on a path computed before. Equal to `decide(flow)`; when `flow`'s
    /// addresses are not the path's, its own path is computed.
    pub fn decide_on(&self, path: &FlowPath, flow: &Flow) -> Decision {
        if path.source != flow.source || path.destination != flow.destination {
            return self.decide(flow);
        }
        self.walk(flow, &path.plan, |_, c, dir, key| c.decide(dir, key))
    }

    /// Traffic the platform blocks inside a VNet, whatever the NSGs say: "Unicast is supported
    /// within VNets, with the exception of DHCP via Unicast (source port UDP/68 / destination
    /// port UDP/67) and UDP source port 65330 which is reserved for the host. Multicast,
    /// broadcast, IP-in-IP encapsulated packets, and GRE packets are blocked within VNets"
    /// (VNet FAQ, "What protocols can I use within VNets?"). Only flows from a subnet.
    fn platform_blocked(&self, flow: &Flow) -> Option<Why> {
        let from_subnet = || self.subnet_of(flow.source).is_some();
        let dst = flow.destination;
        let multicast = match dst {
            IpAddr::V4(a) => a.is_multicast(),
            IpAddr::V6(a) => a.is_multicast(),
        };
        let broadcast = matches!(dst, IpAddr::V4(a) if a.is_broadcast());
        if multicast && from_subnet() {
            return Some(Why::Multicast);
        }
        if broadcast && from_subnet() {
            return Some(Why::Broadcast);
        }
        if flow.protocol != Protocol::Udp {
            return None;
        }
        if flow.source_port == Some(65330) && from_subnet() {
            return Some(Why::HostPort65330);
        }
        let dhcp = flow.source_port == Some(68) && flow.destination_port == Some(67);
        (dhcp && from_subnet() && self.vnet_of(dst).is_some()).then_some(Why::UnicastDhcp)
    }

    /// Walks a flow's path — the source side's outbound NSGs, routing, the destination side's
    /// inbound NSGs — asking `step` for each NSG's first matching rule. The one place that turns
    /// matches into a verdict, shared by [`Topology::decide`] and [`Topology::evaluate`].
    fn walk(
        &self,
        flow: &Flow,
        plan: &Plan,
        mut step: impl FnMut(&Apply, &CompiledNsg, Direction, &FlowKey) -> RuleMatch,
    ) -> Decision {
        let mut path = [None; 4];
        if self.platform_blocked(flow).is_some() {
            return Decision {
                verdict: VerdictKind::Deny,
                code: VerdictCode::PlatformBlocked,
                decided_by: None,
                path,
            };
        }
        let mut n = 0;
        let mut last = None;
        let mut unknown: Option<RuleRef> = None;
        let phases = [
            (Direction::Outbound, plan.outbound, flow.destination),
            (Direction::Inbound, plan.inbound, plan.inbound_destination),
        ];
        for (i, (dir, applies, dst)) in phases.iter().enumerate() {
            if i == 1 {
                if let Err((code, _)) = plan.route {
                    return Decision {
                        verdict: VerdictKind::Unreachable,
                        code,
                        decided_by: None,
                        path,
                    };
                }
            }
            let key = flow.key(*dst);
            for a in applies.iter().flatten() {
                let Some(c) = self.compiled(a.nsg, a.vnet) else {
                    continue;
                };
                let m = step(a, c, *dir, &key);
                let r = Topology::rule_ref(a, m, *dir);
                path[n] = Some(r);
                n += 1;
                last = Some(r);
                if self.depends_on_unknown(a, m, &key) {
                    // Explore the branch where the unknown rule does not decide: a later
                    // definite Deny still decides the flow.
                    unknown.get_or_insert(r);
                } else if m.access == Access::Deny {
                    return Decision {
                        verdict: VerdictKind::Deny,
                        code: VerdictCode::NsgDenied,
                        decided_by: Some(r),
                        path,
                    };
                }
            }
        }
        match unknown {
            Some(r) => Decision {
                verdict: VerdictKind::Indeterminate,
                code: VerdictCode::UnknownValue,
                decided_by: Some(r),
                path,
            },
            None => Decision {
                verdict: VerdictKind::Allow,
                code: VerdictCode::Allowed,
                decided_by: last,
                path,
            },
        }
    }

    /// Whether the matched rule decided only because a field only known at deployment time was
    /// taken as a wildcard (so the flow's outcome depends on that value).
    fn depends_on_unknown(&self, a: &Apply, m: RuleMatch, key: &FlowKey) -> bool {
        let rule = &self.nsgs[a.nsg].rules[m.rule];
        !rule.unknown.is_empty() && !rule.definitely_matches(&self.context(a.vnet), key)
    }

    /// Names of a rule reference.
    pub fn rule_info(&self, r: RuleRef) -> RuleInfo<'_> {
        let nsg = &self.nsgs[r.nsg];
        let rule = &nsg.rules[r.rule];
        RuleInfo {
            nsg: &nsg.name,
            rule: rule.qualified_name(),
            priority: rule.priority,
        }
    }

    /// Resource path of what an NSG is applied to.
    pub fn applied_to_path(&self, a: AppliedTo) -> String {
        match a {
            AppliedTo::Subnet(v, s) => self.subnet_path(v, s),
            AppliedTo::Host(h) => format!("hosts/{}", self.hosts[h].name),
        }
    }

    /// The explaining path: the full verdict with every rule examined.
    pub fn evaluate(&self, flow: &Flow) -> Verdict {
        let plan = self.plan(flow);
        let mut evaluated = Vec::new();
        let d = self.walk(flow, &plan, |a, c, dir, key| {
            let nsg = &self.nsgs[a.nsg];
            let (rules, m) = c.explain(nsg, dir, key);
            evaluated.push(NsgEvaluation {
                nsg: nsg.name.clone(),
                applied_to: self.applied_to_path(a.applied_to),
                direction: dir,
                matched_rule: nsg.rules[m.rule].qualified_name(),
                access: m.access,
                rules,
                location: self.nsg_rule_location(a.nsg, m.rule),
            });
            m
        });
        let (verdict, code) = (d.verdict, d.code);
        let why = match (verdict, plan.route) {
            _ if d.code == VerdictCode::PlatformBlocked => self
                .platform_blocked(flow)
                .map_or("blocked by the platform", Why::text),
            (VerdictKind::Unreachable, Err((_, why))) => why.text(),
            (VerdictKind::Deny, _) => "an NSG rule denies the flow; later NSGs are not evaluated",
            (VerdictKind::Indeterminate, _) => {
                "the outcome depends on a rule field only known at deployment time"
            }
            _ => plan.why_allowed.text(),
        };
        let mut detail = why.to_string();
        let decided_by = d.decided_by.map(|r| {
            let info = self.rule_info(r);
            if verdict == VerdictKind::Indeterminate {
                let pointers = self.nsgs[r.nsg].rules[r.rule].unknown.pointers.join(", ");
                detail = format!("{detail}: nsgs/{}/{} ({pointers})", info.nsg, info.rule);
            }
            DecidedBy {
                nsg: info.nsg.to_string(),
                rule: info.rule,
                priority: info.priority,
                access: r.access,
                direction: r.direction,
                location: self.rule_location(r),
            }
        });
        if plan.inbound_destination != flow.destination && verdict != VerdictKind::Unreachable {
            detail = format!(
                "{detail} ({} → {})",
                flow.destination, plan.inbound_destination
            );
        }
        Verdict {
            verdict,
            code,
            flow: FlowView {
                protocol: flow.protocol,
                source: flow.source.to_string(),
                source_port: if flow.protocol.has_ports() {
                    flow.source_port
                } else {
                    None
                },
                destination: Some(flow.destination.to_string()),
                destination_port: if flow.protocol.has_ports() {
                    flow.destination_port
                } else {
                    None
                },
            },
            assumptions: self.assumptions_for(flow, &plan, !evaluated.is_empty()),
            evaluated,
            decided_by,
            detail,
            service_tags: self.tags.info().clone(),
            resolved: None,
        }
    }

    fn assumptions_for(&self, flow: &Flow, plan: &Plan, any_nsg: bool) -> Vec<Assumption> {
        let mut a = Vec::new();
        match plan.source {
            Source::Subnet { apim: true, .. } => {
                a.push(Assumption::AllEgressViaSubnet);
                a.push(Assumption::ApimSourceAddress);
            }
            Source::ApimPublic => a.push(Assumption::ApimPublicAddress),
            _ => {}
        }
        if !flow.protocol.has_ports() {
            a.push(Assumption::PortlessProtocols);
        }
        if matches!(flow.protocol, Protocol::Esp | Protocol::Ah) && any_nsg {
            a.push(Assumption::AnyProtocolIncludesEspAh);
        }
        if any_nsg {
            a.push(Assumption::VirtualNetworkTagScope);
            a.push(Assumption::InternetTagScope);
        }
        if flow.destination.is_ipv6()
            && matches!(plan.route, Err((VerdictCode::ReservedAddress, _)))
        {
            a.push(Assumption::Ipv6ReservedAddresses);
        }
        a.sort();
        a
    }
}
