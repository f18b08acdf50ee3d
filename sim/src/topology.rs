//! The validated model: [`Topology`] is built from a [`Fixture`] once, reporting every finding at
//! once ([`Built`]). Invalid pieces are left out of the model (a rule that does not parse cannot
//! decide a flow), which is why callers that evaluate flows refuse a topology with structural
//! error findings ([`Built::structural_errors`]).
//!
//! This module holds the model types and their queries; building them is the build stage's job
//! (`crate::build`, entered through [`Topology::build`]). Building also compiles each NSG once
//! per VNet it is applied in, so that flow evaluation ([`crate::flow`]) does no parsing, no tag
//! resolution and no allocation on its verdict path.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::api::{self, Api};
use crate::cidr::Cidr;
use crate::finding::Finding;
use crate::fixture::{
    ClassicVnetType, Fixture, HostKind, NetworkMode, PrivateEndpointPolicies, ServeKind, Sku,
};
use crate::nsg::{CompiledNsg, Context, Nsg, ReferenceNsg};
use crate::settings::GatewaySettings;
use crate::source::{Location, SourceMap};
use crate::tags::ServiceTagTable;

pub use crate::dns_name::{normalize_dns, valid_dns_name};

/// Default public address of a non-integrated instance (*assumption* `ASSUMPTION_APIM_PUBLIC_ADDRESS`).
pub const DEFAULT_APIM_PUBLIC_ADDRESS: &str = "20.105.0.10";

/// Ranges a VNet address space may not use. Source: VNet FAQ ("Are there any restrictions on
/// using IP addresses within these subnets?").
pub const FORBIDDEN_ADDRESS_SPACE: &[&str] = &[
    "224.0.0.0/4",
    "255.255.255.255/32",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "168.63.129.16/32",
];

/// Addresses Azure reserves at the start of every subnet (network, gateway, two DNS), plus the last.
pub const RESERVED_AT_START: u128 = 4;

/// A topology and every finding about it.
#[derive(Clone, Debug)]
#[must_use]
pub struct Built {
    /// The model (invalid pieces left out).
    pub topology: Topology,
    /// Every finding, sorted (errors first).
    pub findings: Vec<Finding>,
    /// The fixture it was built from, kept beside the model (not in it): the document live
    /// changes edit ([`Built::apply_change`]).
    pub document: Document,
}

/// The fixture a topology was built from. The model ([`Topology`]) holds only validated values;
/// a live change edits this document and builds the model again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Document {
    pub(crate) fixture: Fixture,
}

impl Document {
    /// The fixture.
    pub fn fixture(&self) -> &Fixture {
        &self.fixture
    }

    /// Every NSG as `(name, flush_connection, custom rules in the fixture's shape)`, in order.
    pub fn nsgs(&self) -> Vec<(String, bool, Vec<crate::fixture::RawRule>)> {
        self.fixture
            .nsgs
            .iter()
            .map(|n| {
                let rules = n
                    .security_rules
                    .iter()
                    .map(crate::fixture::RawRule::from)
                    .collect();
                (n.name.clone(), n.flush_connection, rules)
            })
            .collect()
    }
}

impl Built {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(Finding::is_error)
    }

    /// Error findings that make flow evaluation untrustworthy: everything except the APIM
    /// preflight (a failing preflight is what `check` and the gateway demonstrate).
    pub fn structural_errors(&self) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.is_error() && !f.code.is_preflight())
            .collect()
    }
}

/// A VNet.
#[derive(Clone, Debug)]
pub struct Vnet {
    /// Name as written.
    pub name: String,
    /// Region (as written).
    pub region: String,
    /// Subscription id.
    pub subscription: String,
    /// Address space (valid prefixes).
    pub address_space: Vec<Cidr>,
    /// Indices of VNets connected by a two-sided peering.
    pub connected: Vec<usize>,
    /// Peers whose forwarded traffic this VNet accepts (its peering to them has
    /// `allow_forwarded_traffic`).
    pub forwarded_from: Vec<usize>,
    /// Prefixes learned through BGP from a virtual network gateway.
    pub bgp_routes: Vec<Cidr>,
    /// Subnets.
    pub subnets: Vec<Subnet>,
    /// Prefixes of the `VirtualNetwork` tag here: own space plus connected peers'.
    pub virtual_network_tag: Vec<Cidr>,
    /// The address spaces of the VNet and its connected peers (what `Internet` excludes).
    pub connected_space: Vec<Cidr>,
}

/// A subnet.
#[derive(Clone, Debug)]
pub struct Subnet {
    /// Name as written.
    pub name: String,
    /// Valid prefixes.
    pub prefixes: Vec<Cidr>,
    /// Delegation service names as written.
    pub delegations: Vec<String>,
    /// Associated NSG.
    pub nsg: Option<usize>,
    /// Other resources deployed in it.
    pub resources: Vec<String>,
    /// Private endpoint network policies.
    pub private_endpoint_network_policies: PrivateEndpointPolicies,
    /// Associated route table (index into [`Topology::route_tables`]).
    pub route_table: Option<usize>,
    /// Associated NAT gateway (index into [`Topology::nat_gateways`]).
    pub nat_gateway: Option<usize>,
    /// Service endpoints, resolved to the prefixes of their `VirtualNetworkServiceEndpoint`
    /// routes (the valid ones).
    pub service_endpoints: Vec<crate::route::ResolvedEndpoint>,
    /// Position in its VNet's `subnets` in the fixture (duplicates are left out of the model,
    /// so it may differ from the position here); locates the subnet in the source.
    pub index: usize,
}

impl Subnet {
    /// Whether the subnet is delegated to `service` (case-insensitive).
    pub fn delegated_to(&self, service: &str) -> bool {
        self.delegations
            .iter()
            .any(|d| d.eq_ignore_ascii_case(service))
    }
    /// The prefix containing `addr`.
    pub fn prefix_of(&self, addr: IpAddr) -> Option<Cidr> {
        self.prefixes.iter().copied().find(|p| p.contains(addr))
    }
    /// The reserved role of `addr` in this subnet, if it is one of the five addresses Azure
    /// reserves in each prefix: "the first four and the last IP address … x.x.x.0: Network
    /// address; x.x.x.1: default gateway; x.x.x.2, x.x.x.3: Azure DNS IPs mapped to the VNet
    /// space; x.x.x.255: network broadcast address" (VNet FAQ, "Are there any restrictions on
    /// using IP addresses within these subnets?"). IPv6 prefixes get the same offsets
    /// (`ASSUMPTION_IPV6_RESERVED_ADDRESSES`: the FAQ lists IPv4 only).
    pub fn reserved_role(&self, addr: IpAddr) -> Option<ReservedRole> {
        let p = self.prefix_of(addr)?;
        if addr == p.last() {
            return Some(ReservedRole::Broadcast);
        }
        match crate::cidr::addr_to_u128(addr) - crate::cidr::addr_to_u128(p.first()) {
            0 => Some(ReservedRole::Network),
            1 => Some(ReservedRole::DefaultGateway),
            2 | 3 => Some(ReservedRole::AzureDns),
            _ => None,
        }
    }
}

/// Why Azure reserves an address of a subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReservedRole {
    /// The first address: the network address.
    Network,
    /// The second: the default gateway.
    DefaultGateway,
    /// The third and fourth: Azure DNS mapped into the VNet space.
    AzureDns,
    /// The last: the broadcast address.
    Broadcast,
}

impl ReservedRole {
    /// The role as a phrase.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservedRole::Network => "the subnet's network address",
            ReservedRole::DefaultGateway => "the subnet's default gateway",
            ReservedRole::AzureDns => "an address Azure reserves to map Azure DNS into the subnet",
            ReservedRole::Broadcast => "the subnet's broadcast address",
        }
    }
}

/// A backend service on a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Port on the simulated host.
    pub port: u16,
    /// Speaks HTTPS.
    pub tls: bool,
    /// Built-in backend to start.
    pub serve: Option<ServeKind>,
    /// Existing loopback server that plays this host:port.
    pub upstream: Option<SocketAddr>,
    /// The upstream speaks plain HTTP even when `tls` is set (`upstream = "http://..."`): the
    /// gateway dials it without TLS (a test double); the model's flows are unchanged.
    pub upstream_plain: bool,
}

/// A VM NIC, private endpoint or external host.
#[derive(Clone, Debug)]
pub struct Host {
    /// Name as written.
    pub name: String,
    /// Private address (or, outside every VNet, its own address).
    pub address: IpAddr,
    /// Public address through which the internet reaches it.
    pub public_address: Option<IpAddr>,
    /// NIC NSG.
    pub nsg: Option<usize>,
    /// ASG memberships (lower-cased).
    pub asgs: Vec<String>,
    /// DNS names (lower-cased, no trailing dot).
    pub dns: Vec<String>,
    /// NIC or private endpoint.
    pub kind: HostKind,
    /// Services.
    pub services: Vec<Service>,
    /// `(vnet, subnet)` when the address lies in a subnet.
    pub placement: Option<(usize, usize)>,
    /// Position in the fixture's `hosts` (invalid hosts are left out of the model).
    pub index: usize,
    /// IP forwarding on the NIC: a network virtual appliance.
    pub ip_forwarding: bool,
    /// On a private endpoint: the public name it serves (lower-cased, no trailing dot).
    pub private_link_fqdn: Option<String>,
    /// Whether the service refuses its public address (`public_network_access = "Disabled"`).
    pub public_access_disabled: bool,
}

/// The API Management instance.
#[derive(Clone, Debug)]
pub struct Apim {
    /// Name.
    pub name: String,
    /// Tier.
    pub sku: Sku,
    /// Scale units.
    pub capacity: u32,
    /// Region.
    pub region: String,
    /// Subscription id.
    pub subscription: String,
    /// Network mode.
    pub mode: NetworkMode,
    /// `(vnet, subnet)` for integration/injection, when the reference resolved.
    pub subnet: Option<(usize, usize)>,
    /// The mode before this change.
    pub previous_mode: Option<NetworkMode>,
    /// Address in the subnet (integration: outbound source; injection: the gateway's private VIP).
    pub private_address: Option<IpAddr>,
    /// Public address (inbound endpoint; outbound source when not integrated).
    pub public_address: IpAddr,
    /// Classic VNet injection's type (External or Internal), with mode `Classic`.
    pub classic_vnet_type: Option<ClassicVnetType>,
    /// `[apim] outbound_route_all` (default true, `ASSUMPTION_ALL_EGRESS_VIA_SUBNET`): all
    /// egress enters the subnet; false: only RFC 1918 destinations do.
    pub outbound_route_all: bool,
    /// Named values backed by Key Vault: `(name, secret identifier URL)`.
    pub named_values: Vec<(String, String)>,
}

/// A route table.
#[derive(Clone, Debug)]
pub struct RouteTable {
    /// Name.
    pub name: String,
    /// Drops BGP routes on its subnets.
    pub disable_bgp_route_propagation: bool,
}

/// A NAT gateway.
#[derive(Clone, Debug)]
pub struct NatGateway {
    /// Name.
    pub name: String,
    /// Public addresses (flows leave from the first).
    pub public_addresses: Vec<IpAddr>,
}

/// A private DNS zone.
#[derive(Clone, Debug)]
pub struct DnsZone {
    /// Zone name, lower-cased.
    pub name: String,
    /// Linked VNets.
    pub links: Vec<usize>,
    /// The linked VNets whose link has `resolutionPolicy: NxDomainRedirect` (Private Link
    /// zones only: a NXDOMAIN falls back to public resolution).
    pub nx_redirect: Vec<usize>,
}

/// The validated model.
#[derive(Clone, Debug)]
pub struct Topology {
    pub(crate) tags: ServiceTagTable,
    pub(crate) subscription_id: String,
    pub(crate) registered_providers: Vec<String>,
    pub(crate) principal_actions: Vec<String>,
    pub(crate) vnets: Vec<Vnet>,
    pub(crate) nsgs: Vec<Nsg>,
    pub(crate) hosts: Vec<Host>,
    pub(crate) apim: Option<Apim>,
    pub(crate) zones: Vec<DnsZone>,
    pub(crate) apis: Vec<Api>,
    pub(crate) gateway: GatewaySettings,
    pub(crate) asg_members: BTreeMap<String, Vec<IpAddr>>,
    /// `compiled[nsg * vnets.len() + vnet]`, present where the NSG is applied in that VNet.
    pub(crate) compiled: Vec<Option<CompiledNsg>>,
    pub(crate) host_by_addr: BTreeMap<IpAddr, usize>,
    pub(crate) host_by_public: BTreeMap<IpAddr, usize>,
    /// Where each fixture entry is written, for findings and verdicts.
    pub(crate) source: SourceMap,
    /// `[faults]`, checked.
    pub(crate) faults: crate::fault::FaultSet,
    /// Route tables.
    pub(crate) route_tables: Vec<RouteTable>,
    /// NAT gateways.
    pub(crate) nat_gateways: Vec<NatGateway>,
    /// Azure Firewalls.
    pub(crate) firewalls: Vec<crate::firewall::Firewall>,
    /// Effective routes, `routes[vnet][subnet]`.
    pub(crate) routes: Vec<Vec<crate::route::SubnetRoutes>>,
}

pub(crate) fn find_ci<'a, T>(
    items: &'a [T],
    name: &str,
    key: impl Fn(&T) -> &str,
) -> Option<(usize, &'a T)> {
    items
        .iter()
        .enumerate()
        .find(|(_, t)| key(t).eq_ignore_ascii_case(name.trim()))
}

// === impl Topology ===

impl Topology {
    /// The service tag table in use.
    pub fn service_tags(&self) -> &ServiceTagTable {
        &self.tags
    }
    /// Where the fixture's entries are written (see [`crate::source`]).
    pub fn source(&self) -> &SourceMap {
        &self.source
    }
    /// Where the fixture entry at `pointer` (e.g. `/nsgs/1/security_rules/2`) is written.
    pub fn locate(&self, pointer: &str) -> Option<Location> {
        self.source.locate(pointer)
    }
    /// Where rule `rule` (an index into [`Nsg::rules`]) of NSG `nsg` is written.
    pub(crate) fn nsg_rule_location(&self, nsg: usize, rule: usize) -> Option<Location> {
        let i = self.nsgs.get(nsg)?.rules.get(rule)?.index?;
        self.locate(&format!("/nsgs/{nsg}/security_rules/{i}"))
    }
    /// VNets.
    pub fn vnets(&self) -> &[Vnet] {
        &self.vnets
    }
    /// NSGs.
    pub fn nsgs(&self) -> &[Nsg] {
        &self.nsgs
    }
    /// Hosts.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }
    /// The APIM instance.
    pub fn apim(&self) -> Option<&Apim> {
        self.apim.as_ref()
    }
    /// Private DNS zones.
    pub fn dns_zones(&self) -> &[DnsZone] {
        &self.zones
    }
    /// APIs.
    pub fn apis(&self) -> &[Api] {
        &self.apis
    }
    /// The gateway settings (defaults when the fixture has no `[gateway]`).
    pub fn gateway(&self) -> &GatewaySettings {
        &self.gateway
    }
    /// Subscription id of `[subscription]`.
    pub fn subscription_id(&self) -> &str {
        &self.subscription_id
    }
    /// NSG index by name (case-insensitive).
    pub fn nsg_index(&self, name: &str) -> Option<usize> {
        find_ci(&self.nsgs, name, |n| &n.name).map(|(i, _)| i)
    }
    /// Whether an NSG re-evaluates established flows on rule changes.
    pub fn nsg_flush_connection(&self, nsg: usize) -> bool {
        self.nsgs.get(nsg).is_some_and(|n| n.flush_connection)
    }
    /// Host index by name (case-insensitive).
    pub fn host_index(&self, name: &str) -> Option<usize> {
        find_ci(&self.hosts, name, |h| &h.name).map(|(i, _)| i)
    }
    /// The host whose private address is `addr`.
    pub fn host_at(&self, addr: IpAddr) -> Option<usize> {
        self.host_by_addr.get(&addr).copied()
    }
    /// The host whose public address is `addr`.
    pub fn host_with_public(&self, addr: IpAddr) -> Option<usize> {
        self.host_by_public.get(&addr).copied()
    }

    /// The service that answers at `addr:port`: a host's service, by its private or public address.
    pub fn service_at(&self, addr: IpAddr, port: u16) -> Option<(usize, usize)> {
        let h = self.host_at(addr).or_else(|| self.host_with_public(addr))?;
        let s = self.hosts[h].services.iter().position(|s| s.port == port)?;
        Some((h, s))
    }

    /// The subnet containing `addr`, as `(vnet, subnet)`.
    pub fn subnet_of(&self, addr: IpAddr) -> Option<(usize, usize)> {
        // A host's own placement (its declared `subnet` where VNets overlap) wins.
        if let Some(p) = self.host_at(addr).and_then(|h| self.hosts[h].placement) {
            return Some(p);
        }
        for (vi, v) in self.vnets.iter().enumerate() {
            for (si, s) in v.subnets.iter().enumerate() {
                if s.prefixes.iter().any(|p| p.contains(addr)) {
                    return Some((vi, si));
                }
            }
        }
        None
    }

    /// The VNet whose address space contains `addr`.
    pub fn vnet_of(&self, addr: IpAddr) -> Option<usize> {
        self.vnets
            .iter()
            .position(|v| v.address_space.iter().any(|p| p.contains(addr)))
    }

    /// Whether VNets `a` and `b` are the same or connected by a two-sided peering.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        a == b || self.vnets.get(a).is_some_and(|v| v.connected.contains(&b))
    }

    /// The compiled NSG for `(nsg, vnet)`, when the NSG is applied in that VNet.
    pub fn compiled(&self, nsg: usize, vnet: usize) -> Option<&CompiledNsg> {
        self.compiled
            .get(nsg * self.vnets.len() + vnet)
            .and_then(Option::as_ref)
    }

    /// The evaluation context of an NSG applied in `vnet`.
    pub fn context(&self, vnet: usize) -> Context<'_> {
        Context {
            virtual_network: self
                .vnets
                .get(vnet)
                .map_or(&[][..], |v| v.virtual_network_tag.as_slice()),
            vnet_space: self
                .vnets
                .get(vnet)
                .map_or(&[][..], |v| v.connected_space.as_slice()),
            tags: &self.tags,
            asg_members: &self.asg_members,
        }
    }

    /// The reference evaluator of an NSG in `vnet`'s context (for tests and benchmarks).
    pub fn reference(&self, nsg: usize, vnet: usize) -> Option<ReferenceNsg> {
        self.nsgs.get(nsg).map(|n| n.reference(&self.context(vnet)))
    }

    /// Resource path of a subnet: `vnets/<v>/subnets/<s>`.
    pub fn subnet_path(&self, vnet: usize, subnet: usize) -> String {
        format!(
            "vnets/{}/subnets/{}",
            self.vnets[vnet].name, self.vnets[vnet].subnets[subnet].name
        )
    }

    /// Route tables.
    pub fn route_tables(&self) -> &[RouteTable] {
        &self.route_tables
    }
    /// NAT gateways.
    pub fn nat_gateways(&self) -> &[NatGateway] {
        &self.nat_gateways
    }
    /// Azure Firewalls.
    pub fn firewalls(&self) -> &[crate::firewall::Firewall] {
        &self.firewalls
    }
    /// The effective routes of subnet `(vnet, subnet)`.
    pub fn subnet_routes(&self, vnet: usize, subnet: usize) -> Option<&crate::route::SubnetRoutes> {
        self.routes.get(vnet)?.get(subnet)
    }

    /// The route for an API path: `(api index, rest of path)`.
    pub fn route<'p>(&self, path: &'p str) -> Option<(usize, &'p str)> {
        api::route(&self.apis, path)
    }
}

// === APIM queries ===

impl Topology {
    /// Whether the instance's mode attaches it to a subnet.
    pub(crate) fn apim_in_subnet(&self) -> Option<(&Apim, usize, usize, IpAddr)> {
        let a = self.apim.as_ref()?;
        if a.mode == NetworkMode::None {
            return None;
        }
        let (vi, si) = a.subnet?;
        Some((a, vi, si, a.private_address?))
    }

    /// Address that the instance's outbound flows leave from: the subnet address when
    /// integrated or injected, else its public address.
    pub fn apim_source(&self) -> Option<IpAddr> {
        match self.apim_in_subnet() {
            Some((_, _, _, ip)) => Some(ip),
            None => self.apim.as_ref().map(|a| a.public_address),
        }
    }

    /// Address of the instance's gateway endpoint: public, except with injection (the private VIP).
    pub fn apim_endpoint(&self) -> Option<IpAddr> {
        let a = self.apim.as_ref()?;
        match (a.mode, a.private_address) {
            (NetworkMode::Injection, Some(ip)) => Some(ip),
            (NetworkMode::Classic, Some(ip))
                if a.classic_vnet_type == Some(ClassicVnetType::Internal) =>
            {
                Some(ip)
            }
            _ => Some(a.public_address),
        }
    }
}

#[cfg(test)]
mod tests;
