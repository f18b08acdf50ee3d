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
use crate::nsg::RuleEvaluation;
use crate::proto::NO_PORT;
use crate::proto::{Access, Direction, Protocol};
use crate::source::Location;
use crate::tags::{ServiceTagsInfo, TagDecision};

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
}

/// The 5-tuple an NSG sees. Ports are `u32` so that port-less protocols can use [`NO_PORT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Protocol.
    pub protocol: Protocol,
    /// Source address.
    pub source: IpAddr,
    /// Source port, or [`NO_PORT`].
    pub source_port: u32,
    /// Destination address.
    pub destination: IpAddr,
    /// Destination port, or [`NO_PORT`].
    pub destination_port: u32,
}

impl FlowKey {
    /// A key from optional ports (absent or port-less protocol → [`NO_PORT`]).
    pub fn new(
        protocol: Protocol,
        source: IpAddr,
        source_port: Option<u16>,
        destination: IpAddr,
        destination_port: Option<u16>,
    ) -> FlowKey {
        let p = |x: Option<u16>| {
            if protocol.has_ports() {
                x.map_or(NO_PORT, u32::from)
            } else {
                NO_PORT
            }
        };
        FlowKey {
            protocol,
            source,
            source_port: p(source_port),
            destination,
            destination_port: p(destination_port),
        }
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
    /// The destination is one of the five addresses Azure reserves in its subnet.
    ReservedAddress,
    /// Traffic the platform blocks inside a VNet (unicast DHCP between VMs, UDP source port
    /// 65330, broadcast, multicast).
    PlatformBlocked,
    /// Allowed without NSG evaluation: platform traffic Azure exempts from NSG rules (DNS to
    /// 168.63.129.16, DHCP, WireServer, IMDS, KMS), no Deny rule naming its tag applying.
    PlatformExempt,
    /// A route with next hop `None` (system or user) decided: the packet is dropped.
    RouteNone,
    /// An Azure Firewall rule (or its default deny) denies the flow.
    FirewallDenied,
    /// A stateful firewall saw one direction of the flow but not the other.
    AsymmetricRoute,
    /// A `VirtualAppliance` next hop is not a firewall or an IP-forwarding NIC the route's
    /// subnet can reach.
    NextHopUnreachable,
    /// The path loops between devices (or passes more devices than the walk's bound).
    RoutingLoop,
    /// The next hop is a virtual network gateway: on-premises is not modelled.
    LeavesModel,
    /// The flow arrives at a service's public address and the service's public network access
    /// is Disabled (`public_network_access = "Disabled"`): the service refuses it.
    PublicAccessDisabled,
}

impl VerdictCode {
    /// The code as printed: `ALLOWED`, `NSG_DENIED`, `NO_ROUTE`, `NOT_INTEGRATED`,
    /// `NO_PUBLIC_ENDPOINT`, `UNKNOWN_VALUE`, `DNS_FAILURE`, `RESERVED_ADDRESS`,
    /// `PLATFORM_BLOCKED`, `PLATFORM_EXEMPT`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictCode::Allowed => "ALLOWED",
            VerdictCode::NsgDenied => "NSG_DENIED",
            VerdictCode::NoRoute => "NO_ROUTE",
            VerdictCode::NotIntegrated => "NOT_INTEGRATED",
            VerdictCode::NoPublicEndpoint => "NO_PUBLIC_ENDPOINT",
            VerdictCode::UnknownValue => "UNKNOWN_VALUE",
            VerdictCode::DnsFailure => "DNS_FAILURE",
            VerdictCode::ReservedAddress => "RESERVED_ADDRESS",
            VerdictCode::PlatformBlocked => "PLATFORM_BLOCKED",
            VerdictCode::PlatformExempt => "PLATFORM_EXEMPT",
            VerdictCode::RouteNone => "ROUTE_NONE",
            VerdictCode::FirewallDenied => "FIREWALL_DENIED",
            VerdictCode::AsymmetricRoute => "ASYMMETRIC_ROUTE",
            VerdictCode::NextHopUnreachable => "NEXT_HOP_UNREACHABLE",
            VerdictCode::RoutingLoop => "ROUTING_LOOP",
            VerdictCode::LeavesModel => "LEAVES_MODEL",
            VerdictCode::PublicAccessDisabled => "PUBLIC_ACCESS_DISABLED",
        }
    }

    /// The verdict a routing outcome with this code gives: `ROUTE_NONE` and `ASYMMETRIC_ROUTE`
    /// drop the packet on purpose (Deny), the others find no way (Unreachable).
    pub fn route_verdict(self) -> VerdictKind {
        match self {
            VerdictCode::RouteNone
            | VerdictCode::AsymmetricRoute
            | VerdictCode::FirewallDenied
            | VerdictCode::PublicAccessDisabled => VerdictKind::Deny,
            _ => VerdictKind::Unreachable,
        }
    }

    /// Every code, in declaration order.
    pub const ALL: [VerdictCode; 17] = [
        VerdictCode::Allowed,
        VerdictCode::NsgDenied,
        VerdictCode::NoRoute,
        VerdictCode::NotIntegrated,
        VerdictCode::NoPublicEndpoint,
        VerdictCode::UnknownValue,
        VerdictCode::DnsFailure,
        VerdictCode::ReservedAddress,
        VerdictCode::PlatformBlocked,
        VerdictCode::PlatformExempt,
        VerdictCode::RouteNone,
        VerdictCode::FirewallDenied,
        VerdictCode::AsymmetricRoute,
        VerdictCode::NextHopUnreachable,
        VerdictCode::RoutingLoop,
        VerdictCode::LeavesModel,
        VerdictCode::PublicAccessDisabled,
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

/// Names of a [`RouteRef`]: how every command names a route — `check`'s hops, `reach`'s and
/// `diff`'s route hops ([`Topology::route_info`](crate::topology::Topology::route_info)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo<'a> {
    /// A user route's route table.
    pub table: Option<&'a str>,
    /// A user route's name.
    pub route: Option<&'a str>,
    /// The route's prefix.
    pub prefix: crate::cidr::Cidr,
    /// Its next hop.
    pub next_hop: crate::route::NextHop,
}

impl RouteInfo<'_> {
    /// `TABLE/ROUTE` for a user route (`rt-apim/default-to-firewall`), `System Route` for a
    /// system (or BGP) route, as Network Watcher's `routeTableId` says.
    pub fn name(&self) -> String {
        match (self.table, self.route) {
            (Some(t), Some(r)) => format!("{t}/{r}"),
            (None, Some(r)) => r.to_string(),
            _ => "System Route".to_string(),
        }
    }

    /// `PREFIX NEXT_HOP_TYPE [ADDRESS]`.
    pub fn text(&self) -> String {
        match self.next_hop.address() {
            Some(ip) => format!("{} {} {ip}", self.prefix, self.next_hop.as_str()),
            None => format!("{} {}", self.prefix, self.next_hop.as_str()),
        }
    }

    /// For a table cell: [`RouteInfo::name`] for a user route, `System Route (NEXT_HOP_TYPE)`
    /// for a system one (`System Route (VirtualNetworkServiceEndpoint)`).
    pub fn label(&self) -> String {
        if self.route.is_some() {
            self.name()
        } else {
            format!("System Route ({})", self.next_hop.as_str())
        }
    }
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
    /// Every NSG evaluated and its matched rule, in order (the source's two, two in and two
    /// out per network virtual appliance, the destination's two).
    pub path: [Option<RuleRef>; PATH_NSGS],
    /// The firewall match that denied the flow, or the last firewall that allowed it.
    pub firewall: Option<crate::firewall::FirewallMatch>,
    /// The source address the destination sees (after any SNAT or NAT gateway); `None` when
    /// the flow did not get there.
    pub egress_source: Option<IpAddr>,
    /// The translation when the flow was addressed to an Azure Firewall's public address and a
    /// DNAT rule translated it (the destination the flow then reaches, and its port).
    pub dnat: Option<crate::firewall::Dnat>,
    /// Every route the walk took, in order: from the source subnet, then from each device's
    /// subnet (and, after a DNAT rule, from the firewall's subnet on), up to where the flow was
    /// decided — the routes `check`'s `hops` list.
    pub routes: [Option<RouteTaken>; PATH_ROUTES],
    /// Where [`Decision::firewall`] is on the path: `(NSGs, routes)` of [`Decision::path`] and
    /// [`Decision::routes`] before it.
    pub firewall_at: (u8, u8),
}

/// A route of a subnet's effective routes: `(vnet, subnet, index into that subnet's effective
/// routes)` ([`Topology::route_info`](crate::topology::Topology::route_info) names it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteRef {
    /// VNet index.
    pub vnet: u32,
    /// Subnet index in the VNet.
    pub subnet: u32,
    /// Index into the subnet's effective routes.
    pub route: u32,
}

impl RouteRef {
    pub(crate) fn new(vnet: usize, subnet: usize, route: usize) -> RouteRef {
        // Indices of a built topology's VNets, subnets and routes (each bounded far below
        // u32::MAX by Azure's limits and the fixture's).
        RouteRef {
            vnet: vnet as u32,
            subnet: subnet as u32,
            route: route as u32,
        }
    }
}

/// A route a flow took and where on its path: after `after_nsgs` NSG evaluations of
/// [`Decision::path`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteTaken {
    /// The route.
    pub route: RouteRef,
    /// NSG evaluations before it.
    pub after_nsgs: u8,
}

/// One step of a decided path, in path order ([`Decision::steps`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// An NSG and its matched rule.
    Nsg(RuleRef),
    /// A route taken.
    Route(RouteRef),
    /// The firewall match of [`Decision::firewall`].
    Firewall(crate::firewall::FirewallMatch),
}

/// Devices (firewalls, appliances) a path may pass before the walk ends as `ROUTING_LOOP`.
pub const MAX_DEVICES: usize = 4;
/// NSG evaluations a path may hold: the source's two, four per device, the destination's two.
pub const PATH_NSGS: usize = 4 + 4 * MAX_DEVICES;
/// Routes a path may take: one from the source subnet and one from each device's subnet, on
/// each of the two legs of a DNAT-translated flow.
pub const PATH_ROUTES: usize = 2 * (MAX_DEVICES + 1);

impl Decision {
    /// Whether the flow is allowed.
    pub fn allowed(&self) -> bool {
        self.verdict == VerdictKind::Allow
    }
    /// The NSG matches on the path, in order.
    pub fn nsgs(&self) -> impl Iterator<Item = &RuleRef> {
        self.path.iter().flatten()
    }

    /// The routes taken, in order.
    pub fn routes(&self) -> impl Iterator<Item = RouteRef> + '_ {
        self.routes.iter().flatten().map(|r| r.route)
    }

    /// The path's NSGs, routes and firewall in the order the walk passed them: NSG out →
    /// route → firewall → … → NSG in (the last firewall only, as [`Decision::firewall`]).
    pub fn steps(&self) -> Vec<Step> {
        let nsgs: Vec<RuleRef> = self.nsgs().copied().collect();
        let routes: Vec<RouteTaken> = self.routes.iter().flatten().copied().collect();
        let mut firewall = self.firewall;
        let (fw_nsgs, fw_routes) = (
            usize::from(self.firewall_at.0),
            usize::from(self.firewall_at.1),
        );
        let mut out = Vec::with_capacity(nsgs.len() + routes.len() + 1);
        let (mut i, mut j) = (0, 0);
        loop {
            if let Some(m) = firewall.filter(|_| fw_nsgs <= i && fw_routes <= j) {
                out.push(Step::Firewall(m));
                firewall = None;
            } else if j < routes.len() && usize::from(routes[j].after_nsgs) <= i {
                out.push(Step::Route(routes[j].route));
                j += 1;
            } else if i < nsgs.len() {
                out.push(Step::Nsg(nsgs[i]));
                i += 1;
            } else if j < routes.len() {
                out.push(Step::Route(routes[j].route));
                j += 1;
            } else {
                break;
            }
        }
        if let Some(m) = firewall {
            out.push(Step::Firewall(m));
        }
        out
    }

    /// The decision as a `reach --into` class holds it (its sources vary): `egress_source` is
    /// kept only when the walk translated the source (SNAT, NAT gateway, platform egress), and
    /// is `None` when the destination sees the flow's own `source`.
    pub fn as_class_into(mut self, source: IpAddr) -> Decision {
        if self.egress_source == Some(source) {
            self.egress_source = None;
        }
        self
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

/// What decided a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DecidedKind {
    /// An NSG rule.
    Nsg,
    /// An Azure Firewall rule or its default deny.
    Firewall,
    /// A route (next hop `None`).
    Route,
}

/// The deciding rule of an explained verdict. In JSON: for an NSG rule `{"nsg", "rule",
/// "priority", "access", "direction", "location"}` (no `kind`, the shape it always had); for a firewall `{"kind":
/// "firewall", "firewall", "group", "collection", "rule"}` (`"rule": "default"` for the
/// default deny, `group`/`collection` null); for a route `{"kind": "route", "route",
/// "route_table", "address_prefix", "next_hop_type"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecidedBy {
    /// What decided.
    pub kind: DecidedKind,
    /// NSG name (NSG rules), firewall name (firewalls) or route table name (routes).
    pub nsg: String,
    /// Firewall: rule collection group; route: address prefix.
    pub group: Option<String>,
    /// Firewall: rule collection; route: next hop type.
    pub collection: Option<String>,
    /// Qualified rule name (NSG), firewall rule name or `default`, or the route's name.
    pub rule: String,
    /// Priority.
    pub priority: u32,
    /// Access.
    pub access: Access,
    /// Direction.
    pub direction: Direction,
    /// Where the rule is written (file, line, column, pointer); `null` for a default rule.
    pub location: Option<Location>,
    /// The table service tags the rule names and the table (and changeNumber) that defined
    /// them; absent from JSON when the rule names none.
    pub tags: Vec<TagDecision>,
}

impl Serialize for DecidedBy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        // An NSG rule keeps the shape it always had; a firewall or route names its kind.
        if self.kind != DecidedKind::Nsg {
            m.serialize_entry("kind", &self.kind)?;
        }
        match self.kind {
            DecidedKind::Nsg => {
                m.serialize_entry("nsg", &self.nsg)?;
                m.serialize_entry("rule", &self.rule)?;
                m.serialize_entry("priority", &self.priority)?;
                m.serialize_entry("access", &self.access)?;
                m.serialize_entry("direction", &self.direction)?;
                m.serialize_entry("location", &self.location)?;
                if !self.tags.is_empty() {
                    m.serialize_entry("tags", &self.tags)?;
                }
            }
            DecidedKind::Firewall => {
                m.serialize_entry("firewall", &self.nsg)?;
                m.serialize_entry("group", &self.group)?;
                m.serialize_entry("collection", &self.collection)?;
                m.serialize_entry("rule", &self.rule)?;
            }
            DecidedKind::Route => {
                m.serialize_entry("route", &self.rule)?;
                m.serialize_entry("route_table", &self.nsg)?;
                m.serialize_entry("address_prefix", &self.group)?;
                m.serialize_entry("next_hop_type", &self.collection)?;
            }
        }
        m.end()
    }
}

/// One hop of an explained path (`check`'s `hops` and `return_hops`): addresses are those
/// after the hop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// `nsg`, `route`, `firewall`, `appliance` or `nat`.
    pub kind: &'static str,
    /// The NSG, route (`TABLE/ROUTE` for a user route, `System Route` for a system one:
    /// [`RouteInfo::name`]), firewall, appliance host or NAT gateway.
    pub name: String,
    /// Source address after the hop.
    pub source: String,
    /// Destination address after the hop.
    pub destination: String,
    /// What the hop decided: the matched NSG rule, `PREFIX NEXT_HOP_TYPE [ADDRESS]` for a
    /// route, `group/collection/rule` (or `default`) for a firewall.
    pub decided_by: Option<String>,
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
    /// The path's hops in order (NSGs, routes, devices, NAT), up to where the verdict was
    /// decided.
    pub hops: Vec<Hop>,
    /// The reply's routes and devices, when a stateful firewall is on the path.
    pub return_hops: Vec<Hop>,
    /// The source address the destination sees (after any SNAT or NAT gateway); `null` when
    /// the flow does not get there.
    pub egress_source: Option<String>,
    /// How the destination name was resolved, when a name was asked
    /// ([`Topology::ask`](crate::topology::Topology::ask)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<Resolved>,
    /// The DNAT translation, when an Azure Firewall's DNAT rule translated the flow (absent
    /// from JSON otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnat: Option<DnatView>,
}

/// A DNAT translation as `check` prints it: the rule (as `decided_by` names firewall rules)
/// and where the flow goes after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DnatView {
    /// The firewall.
    pub firewall: String,
    /// Its rule collection group.
    pub group: String,
    /// Its rule collection.
    pub collection: String,
    /// The DNAT rule.
    pub rule: String,
    /// The translated destination address.
    pub translated_destination: String,
    /// The translated destination port.
    pub translated_port: u16,
    /// The rule's `translated_fqdn`, when it names one (resolved from the firewall's VNet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub translated_fqdn: Option<String>,
    /// The source the translated destination sees (the firewall's SNAT).
    pub translated_source: String,
}

mod display;
mod explain;
mod path;
mod walk;

pub use walk::FlowPath;
