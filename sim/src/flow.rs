//! Flow verdicts: given a [`Flow`] (protocol, source ip:port, destination ip:port), decide
//! Allow / Deny / Unreachable the way Azure would, and explain it.
//!
//! The path of a flow, in Azure's order:
//! 1. the source side's outbound NSGs — NIC NSG, then subnet NSG (a deny stops evaluation; as in
//!    Azure, a deny is reported even where no route exists);
//! 2. routing — a private destination outside the source VNet and its connected peers, or a
//!    private source outside every VNet: `NO_ROUTE`; a non-integrated APIM instance to a private
//!    destination: `NOT_INTEGRATED`; the internet to a VNet address without a public address:
//!    `NO_PUBLIC_ENDPOINT`;
//! 3. the destination side's inbound NSGs — subnet NSG, then NIC NSG — seeing the private
//!    address when the flow arrived through a public address.
//!
//! [`Topology::decide`] is the verdict-only path (no allocation); [`Topology::evaluate`] returns
//! the full [`Verdict`] with per-rule match flags.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::dns::Resolved;
use crate::finding::Assumption;
use crate::fixture::{HostKind, NetworkMode};
use crate::nsg::{CompiledNsg, FlowKey, RuleEvaluation, RuleMatch};
use crate::proto::{Access, Direction, Protocol};
use crate::source::Location;
use crate::tags::ServiceTagsInfo;
use crate::topology::Topology;

/// The question: one flow's 5-tuple. Ports are `None` for ICMP/ESP/AH.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Protocol.
    pub protocol: Protocol,
    /// Source address.
    pub source: IpAddr,
    /// Source port.
    pub source_port: Option<u16>,
    /// Destination address.
    pub destination: IpAddr,
    /// Destination port.
    pub destination_port: Option<u16>,
}

impl fmt::Display for Flow {
    /// `Tcp 10.0.1.4:60000 -> 10.0.2.4:443` (`[v6]:port` for IPv6; no ports for ICMP/ESP/AH).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ep = |ip: IpAddr, port: Option<u16>| match (ip, port) {
            (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
            (ip, Some(p)) => format!("{ip}:{p}"),
            (ip, None) => ip.to_string(),
        };
        write!(
            f,
            "{:?} {} -> {}",
            self.protocol,
            ep(self.source, self.source_port),
            ep(self.destination, self.destination_port)
        )
    }
}

impl Flow {
    /// A TCP flow.
    pub fn tcp(
        source: IpAddr,
        source_port: u16,
        destination: IpAddr,
        destination_port: u16,
    ) -> Flow {
        Flow {
            protocol: Protocol::Tcp,
            source,
            source_port: Some(source_port),
            destination,
            destination_port: Some(destination_port),
        }
    }

    fn key(&self, destination: IpAddr) -> FlowKey {
        FlowKey::new(
            self.protocol,
            self.source,
            self.source_port,
            destination,
            self.destination_port,
        )
    }
}

/// The answer's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum VerdictKind {
    /// Every NSG on the path allows it and a route exists.
    Allow,
    /// An NSG rule denies it.
    Deny,
    /// No route (or no endpoint) exists.
    Unreachable,
    /// The outcome depends on a value only known at deployment time (`UNKNOWN_VALUE`).
    Indeterminate,
}

impl VerdictKind {
    /// Every kind, in declaration order.
    pub const ALL: [VerdictKind; 4] = [
        VerdictKind::Allow,
        VerdictKind::Deny,
        VerdictKind::Unreachable,
        VerdictKind::Indeterminate,
    ];
    /// `Allow`, `Deny`, `Unreachable` or `Indeterminate`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Allow => "Allow",
            VerdictKind::Deny => "Deny",
            VerdictKind::Unreachable => "Unreachable",
            VerdictKind::Indeterminate => "Indeterminate",
        }
    }
}

/// The stable code of a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VerdictCode {
    /// Allowed.
    Allowed,
    /// Denied by an NSG rule.
    NsgDenied,
    /// No route to the destination.
    NoRoute,
    /// A non-integrated APIM instance cannot reach private destinations.
    NotIntegrated,
    /// The destination has no public endpoint for an internet source.
    NoPublicEndpoint,
    /// The outcome depends on a rule field only known at deployment time.
    UnknownValue,
    /// The destination name does not resolve from the source's side.
    DnsFailure,
}

impl VerdictCode {
    /// The code as printed: `ALLOWED`, `NSG_DENIED`, `NO_ROUTE`, `NOT_INTEGRATED`,
    /// `NO_PUBLIC_ENDPOINT`, `UNKNOWN_VALUE`, `DNS_FAILURE`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictCode::Allowed => "ALLOWED",
            VerdictCode::NsgDenied => "NSG_DENIED",
            VerdictCode::NoRoute => "NO_ROUTE",
            VerdictCode::NotIntegrated => "NOT_INTEGRATED",
            VerdictCode::NoPublicEndpoint => "NO_PUBLIC_ENDPOINT",
            VerdictCode::UnknownValue => "UNKNOWN_VALUE",
            VerdictCode::DnsFailure => "DNS_FAILURE",
        }
    }

    /// Every code, in declaration order.
    pub const ALL: [VerdictCode; 7] = [
        VerdictCode::Allowed,
        VerdictCode::NsgDenied,
        VerdictCode::NoRoute,
        VerdictCode::NotIntegrated,
        VerdictCode::NoPublicEndpoint,
        VerdictCode::UnknownValue,
        VerdictCode::DnsFailure,
    ];
}

impl fmt::Display for VerdictCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for VerdictCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What an NSG is applied to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AppliedTo {
    /// A subnet `(vnet, subnet)`.
    Subnet(usize, usize),
    /// A host's NIC.
    Host(usize),
}

/// One NSG's matched rule on a flow's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleRef {
    /// NSG index.
    pub nsg: usize,
    /// Rule index in the NSG.
    pub rule: usize,
    /// VNet context it was evaluated in.
    pub vnet: usize,
    /// Where the NSG is applied.
    pub applied_to: AppliedTo,
    /// Direction evaluated.
    pub direction: Direction,
    /// The rule's access.
    pub access: Access,
}

/// Names of a [`RuleRef`], for messages and headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleInfo<'a> {
    /// NSG name.
    pub nsg: &'a str,
    /// `securityRules/<name>` or `defaultSecurityRules/<name>`.
    pub rule: String,
    /// Priority.
    pub priority: u32,
}

/// The verdict-only answer: no strings, no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub struct Decision {
    /// Allow, Deny or Unreachable.
    pub verdict: VerdictKind,
    /// Stable code.
    pub code: VerdictCode,
    /// The denying rule; for Allow the matched rule of the last NSG evaluated; `None` when no NSG
    /// is on the path or the flow is unreachable.
    pub decided_by: Option<RuleRef>,
    /// Every NSG evaluated and its matched rule, in order.
    pub path: [Option<RuleRef>; 4],
}

impl Decision {
    /// Whether the flow is allowed.
    pub fn allowed(&self) -> bool {
        self.verdict == VerdictKind::Allow
    }
    /// The NSG matches on the path, in order.
    pub fn nsgs(&self) -> impl Iterator<Item = &RuleRef> {
        self.path.iter().flatten()
    }
}

/// One NSG's part of an explained verdict (Network Watcher's `evaluatedNetworkSecurityGroups`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NsgEvaluation {
    /// NSG name.
    pub nsg: String,
    /// `vnets/<v>/subnets/<s>` or `hosts/<h>`.
    pub applied_to: String,
    /// Direction.
    pub direction: Direction,
    /// The matched rule's qualified name.
    pub matched_rule: String,
    /// The matched rule's access.
    pub access: Access,
    /// Every rule examined up to and including the match.
    pub rules: Vec<RuleEvaluation>,
    /// Where the matched rule is written; `null` for a default rule.
    pub location: Option<Location>,
}

/// The deciding rule of an explained verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DecidedBy {
    /// NSG name.
    pub nsg: String,
    /// Qualified rule name.
    pub rule: String,
    /// Priority.
    pub priority: u32,
    /// Access.
    pub access: Access,
    /// Direction.
    pub direction: Direction,
    /// Where the rule is written (file, line, column, pointer); `null` for a default rule.
    pub location: Option<Location>,
}

/// The flow as printed in a verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowView {
    /// Protocol.
    pub protocol: Protocol,
    /// Source address.
    pub source: String,
    /// Source port.
    pub source_port: Option<u16>,
    /// Destination address (`None` when the destination name did not resolve).
    pub destination: Option<String>,
    /// Destination port.
    pub destination_port: Option<u16>,
}

/// An explained verdict (the `check` JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[must_use]
pub struct Verdict {
    /// Allow, Deny or Unreachable.
    pub verdict: VerdictKind,
    /// Stable code.
    pub code: VerdictCode,
    /// The flow.
    pub flow: FlowView,
    /// NSGs evaluated, in order.
    pub evaluated: Vec<NsgEvaluation>,
    /// The deciding rule (see [`Decision::decided_by`]).
    pub decided_by: Option<DecidedBy>,
    /// One sentence on why.
    pub detail: String,
    /// Assumptions this verdict relies on.
    pub assumptions: Vec<Assumption>,
    /// The service tag table used.
    pub service_tags: ServiceTagsInfo,
    /// How the destination name was resolved, when a name was asked
    /// ([`Topology::ask`](crate::topology::Topology::ask)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Resolved>,
}

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
        }
    }
}

impl Topology {
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
            if reachable {
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
        a.sort();
        a
    }
}

// === Display ===

/// ` at file:line` for a location with a file, else nothing.
fn at_file_line(location: &Option<Location>) -> String {
    location
        .as_ref()
        .and_then(Location::file_line)
        .map_or(String::new(), |fl| format!(" at {fl}"))
}

impl fmt::Display for Verdict {
    /// A short table, like `az network watcher test-ip-flow` plus the per-NSG chain.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ep = |addr: &str, p: Option<u16>| match p {
            Some(p) if addr.contains(':') => format!("[{addr}]:{p}"),
            Some(p) => format!("{addr}:{p}"),
            None => addr.to_string(),
        };
        let destination = match (&self.flow.destination, &self.resolved) {
            (Some(d), _) => ep(d, self.flow.destination_port),
            (None, Some(r)) => ep(&r.name, self.flow.destination_port),
            (None, None) => "?".to_string(),
        };
        writeln!(
            f,
            "Flow      {} {} -> {}",
            self.flow.protocol,
            ep(&self.flow.source, self.flow.source_port),
            destination
        )?;
        if let Some(r) = &self.resolved {
            let via = match r.via {
                crate::dns::Via::PrivateZone => "private zone",
                crate::dns::Via::Public => "public DNS",
                crate::dns::Via::VnetName => "VNet name",
                crate::dns::Via::HostName => "[[hosts]] name",
            };
            let zone = r
                .zone
                .as_ref()
                .map_or(String::new(), |z| format!(", zone {z}"));
            match r.address {
                Some(a) => writeln!(f, "Resolved  {} -> {a} ({via}{zone})", r.name)?,
                None => writeln!(f, "Resolved  {} -> no answer ({via}{zone})", r.name)?,
            }
        }
        writeln!(f, "Verdict   {:?} ({})", self.verdict, self.code)?;
        match &self.decided_by {
            Some(d) => writeln!(
                f,
                "Rule      {} / {} (priority {}, {} {}){}",
                d.nsg,
                d.rule,
                d.priority,
                d.direction,
                d.access,
                at_file_line(&d.location)
            )?,
            None => writeln!(f, "Rule      -")?,
        }
        writeln!(f, "Why       {}", self.detail)?;
        if !self.evaluated.is_empty() {
            writeln!(f)?;
            let width = |head: &str, col: &dyn Fn(&NsgEvaluation) -> usize| {
                self.evaluated
                    .iter()
                    .map(col)
                    .max()
                    .unwrap_or(0)
                    .max(head.len())
            };
            let wn = width("NSG", &|e| e.nsg.len());
            let wa = width("Applied to", &|e| e.applied_to.len());
            let wm = width("Matched rule", &|e| e.matched_rule.len());
            // A Source column (the matched rule's `file:line`) when any rule has one.
            let sources: Vec<Option<String>> = self
                .evaluated
                .iter()
                .map(|e| e.location.as_ref().and_then(Location::file_line))
                .collect();
            let any_source = sources.iter().any(Option::is_some);
            let tail = |access: &str, source: Option<&str>| {
                if any_source {
                    format!("{access:<6} {}", source.unwrap_or("-"))
                } else {
                    access.to_string()
                }
            };
            writeln!(
                f,
                "  {:<3} {:<wn$} {:<wa$} {:<9} {:<wm$} {}",
                "#",
                "NSG",
                "Applied to",
                "Direction",
                "Matched rule",
                tail("Access", Some("Source"))
            )?;
            for (i, (e, source)) in self.evaluated.iter().zip(&sources).enumerate() {
                writeln!(
                    f,
                    "  {:<3} {:<wn$} {:<wa$} {:<9} {:<wm$} {}",
                    i + 1,
                    e.nsg,
                    e.applied_to,
                    e.direction.as_str(),
                    e.matched_rule,
                    tail(e.access.as_str(), source.as_deref())
                )?;
            }
        }
        if !self.assumptions.is_empty() {
            writeln!(f)?;
            let codes: Vec<&str> = self.assumptions.iter().map(|a| a.code()).collect();
            writeln!(f, "Assumptions: {}", codes.join(", "))?;
        }
        let tags = &self.service_tags;
        write!(
            f,
            "Service tags: {}{}",
            tags.source,
            tags.change_number
                .map_or(String::new(), |c| format!(" (changeNumber {c})"))
        )
    }
}
