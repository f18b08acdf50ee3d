//! Routing as Azure computes it ("Virtual network traffic routing",
//! <https://learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview>): each
//! subnet's effective routes — system routes, peering routes, private-endpoint routes, BGP
//! routes and user-defined routes — and the route a destination takes.
//!
//! Inputs the walk decides on, all built once per subnet ([`SubnetRoutes`]):
//! - **system routes**: each VNet address space prefix → `VnetLocal`; `0.0.0.0/0` (and `::/0`
//!   when the VNet has IPv6 space) → `Internet`; `10.0.0.0/8`, `172.16.0.0/12`,
//!   `192.168.0.0/16`, `100.64.0.0/10` → `None` unless the address space covers them ("If
//!   one of those reserved ranges is added to the VNet address space…");
//! - **peering routes**: each connected peer's address space → `VNetPeering` (same region) or
//!   `VNetGlobalPeering` (another region);
//! - **private-endpoint routes**: each private endpoint in the VNet or a connected peer → a /32
//!   (/128) `InterfaceEndpoint` route ("Manage network policies for private endpoints",
//!   <https://learn.microsoft.com/azure/private-link/disable-private-endpoint-network-policy>);
//!   invalidated only when the endpoint's subnet has route-table policies on
//!   (`RouteTableEnabled` or `Enabled`) and this subnet's table has a UDR covering the endpoint
//!   whose prefix length is equal to or larger than that of the endpoint's VNet address space
//!   prefix: "user-defined routes must have a prefix size that is equal to or smaller than the
//!   virtual network address space where the private endpoint is provisioned. For example, a
//!   user-defined route default route (0.0.0.0/0) doesn't invalidate private endpoint routes";
//! - **service endpoint routes**: each of the subnet's service endpoints → the service's
//!   prefixes with next hop `VirtualNetworkServiceEndpoint`, on that subnet only (module
//!   `service_endpoint`);
//! - **BGP routes**: the VNet's `bgp_routes` → `VirtualNetworkGateway`, unless the subnet's
//!   route table has `disable_bgp_route_propagation`;
//! - **user-defined routes** of the subnet's route table (a service tag prefix stands for each
//!   of the tag's prefixes).
//!
//! Selection: "Azure selects a route based on the destination IP address, using the longest
//! prefix match algorithm"; on an equal prefix "1. User-defined route 2. BGP route 3. System
//! route" (an explicit prefix beats a service tag), except that "System routes for traffic
//! related to virtual network, virtual network peerings, or virtual network service endpoints,
//! are preferred routes, even if BGP routes are more specific" (such BGP routes are `Invalid`).
//! A service endpoint route is a system route like the others here: a longer prefix wins over
//! it (a UDR for one service address), and on an equal prefix a user-defined route wins — the
//! routing page's order; the service endpoints page says "Service endpoint routes override any
//! BGP or UDR routes for the address prefix match of an Azure service", which the longest
//! prefix match gives against a `0.0.0.0/0` UDR (`ASSUMPTION_SERVICE_ENDPOINT_ROUTE_PRECEDENCE`
//! for the equal prefix).
//! Overridden routes stay listed `Invalid`; a user route for `0.0.0.0/0` removes the
//! reserved-range `None` routes (the page's routing example lists none). Traffic to
//! `168.63.129.16` is not subject to user-defined routes (Azure's virtual public IP page:
//! "this public IP address isn't subject to user-defined routes").

use std::net::IpAddr;

use serde::Serialize;

use crate::cidr::Cidr;

mod compiled;
mod service_endpoint;
mod watcher;

pub(crate) use compiled::RouteLookup;
pub use service_endpoint::{known_services, paired_region, ResolvedEndpoint};
pub(crate) use service_endpoint::{resolve as resolve_service_endpoint, EndpointError};
pub use watcher::{EffectiveRouteTable, EffectiveRouteView, NextHopResult};

/// Azure's virtual public address (DNS, health probes): not subject to user-defined routes.
pub const AZURE_PLATFORM_ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(168, 63, 129, 16));

/// The reserved ranges Azure routes to `None` unless the address space covers them.
pub const NONE_RANGES: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
];

/// A next hop, with Azure's names (`az network nic show-effective-route-table`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Within the VNet.
    VnetLocal,
    /// A peer in the same region (the peer VNet's index).
    VNetPeering(usize),
    /// A peer in another region (the peer VNet's index).
    VNetGlobalPeering(usize),
    /// A private endpoint's /32 route (the host's index).
    InterfaceEndpoint(usize),
    /// The internet.
    Internet,
    /// Dropped.
    None,
    /// A network virtual appliance or Azure Firewall at this address.
    VirtualAppliance(IpAddr),
    /// A virtual network gateway (VPN / ExpressRoute): leaves the model.
    VirtualNetworkGateway,
    /// A service endpoint's route: straight to the service's public address over the Azure
    /// backbone, from the source's private address.
    VirtualNetworkServiceEndpoint,
}

impl NextHop {
    /// Azure's name of the next hop type.
    pub fn as_str(self) -> &'static str {
        match self {
            NextHop::VnetLocal => "VnetLocal",
            NextHop::VNetPeering(_) => "VNetPeering",
            NextHop::VNetGlobalPeering(_) => "VNetGlobalPeering",
            NextHop::InterfaceEndpoint(_) => "InterfaceEndpoint",
            NextHop::Internet => "Internet",
            NextHop::None => "None",
            NextHop::VirtualAppliance(_) => "VirtualAppliance",
            NextHop::VirtualNetworkGateway => "VirtualNetworkGateway",
            NextHop::VirtualNetworkServiceEndpoint => "VirtualNetworkServiceEndpoint",
        }
    }
    /// The next hop's address (`VirtualAppliance` only).
    pub fn address(self) -> Option<IpAddr> {
        match self {
            NextHop::VirtualAppliance(ip) => Some(ip),
            _ => None,
        }
    }
}

/// Where an effective route comes from (`source` in Azure's output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum RouteSource {
    /// A user-defined route.
    User,
    /// Learned through BGP from a virtual network gateway.
    VirtualNetworkGateway,
    /// A system route.
    Default,
}

/// Whether an effective route is in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RouteState {
    /// Used for lookups.
    Active,
    /// Overridden (listed, never chosen).
    Invalid,
}

/// One effective route of a subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveRoute {
    /// Origin.
    pub source: RouteSource,
    /// Active or Invalid.
    pub state: RouteState,
    /// The prefix.
    pub prefix: Cidr,
    /// The next hop.
    pub next_hop: NextHop,
    /// A user route's name.
    pub name: Option<String>,
    /// A user route's table (index into the topology's route tables) and route index in it.
    pub user: Option<(usize, usize)>,
    /// A user route whose prefix came from a service tag (loses an equal-prefix tie to an
    /// explicit prefix).
    pub from_tag: bool,
}

impl EffectiveRoute {
    fn system(prefix: Cidr, next_hop: NextHop) -> EffectiveRoute {
        EffectiveRoute {
            source: RouteSource::Default,
            state: RouteState::Active,
            prefix,
            next_hop,
            name: None,
            user: None,
            from_tag: false,
        }
    }

    /// Rank on an equal prefix: lower wins (user explicit, user tag, BGP, system).
    fn rank(&self) -> u8 {
        match (self.source, self.from_tag) {
            (RouteSource::User, false) => 0,
            (RouteSource::User, true) => 1,
            (RouteSource::VirtualNetworkGateway, _) => 2,
            (RouteSource::Default, _) => 3,
        }
    }

    /// Whether this is a VNet, peering or service-endpoint system route (preferred over more
    /// specific BGP routes).
    fn beats_bgp(&self) -> bool {
        self.source == RouteSource::Default
            && matches!(
                self.next_hop,
                NextHop::VnetLocal
                    | NextHop::VNetPeering(_)
                    | NextHop::VNetGlobalPeering(_)
                    | NextHop::VirtualNetworkServiceEndpoint
            )
    }
}

/// A subnet's effective routes and their compiled lookup.
#[derive(Clone, Debug, Default)]
pub struct SubnetRoutes {
    /// Every route, Active and Invalid, in a stable order (system, service endpoint, private
    /// endpoint, BGP, user).
    pub routes: Vec<EffectiveRoute>,
    lookup: RouteLookup,
    /// The system `0.0.0.0/0` → Internet route (what `168.63.129.16` always takes).
    platform: Option<usize>,
}

/// The raw inputs of one subnet's routes, before precedence is applied.
pub(crate) struct RouteInputs {
    pub(crate) system: Vec<EffectiveRoute>,
    /// The prefixes of the subnet's service endpoints (sorted, distinct).
    pub(crate) service_endpoints: Vec<Cidr>,
    pub(crate) endpoints: Vec<(EffectiveRoute, Option<u8>)>,
    pub(crate) bgp: Vec<Cidr>,
    pub(crate) user: Vec<EffectiveRoute>,
}

impl SubnetRoutes {
    /// Applies Azure's precedence to a subnet's raw routes (see the module doc). Each entry of
    /// `endpoints` carries, when the endpoint's subnet has route-table policies on, the prefix
    /// length of the endpoint's VNet address space prefix: a UDR covering the endpoint with a
    /// prefix length at least that invalidates the /32.
    pub(crate) fn build(inputs: RouteInputs) -> SubnetRoutes {
        let RouteInputs {
            mut system,
            service_endpoints,
            endpoints,
            bgp,
            user,
        } = inputs;
        // A user route for 0.0.0.0/0 removes the reserved-range None routes.
        let default_udr = user.iter().any(|u| u.prefix.prefix_len() == 0);
        if default_udr {
            system.retain(|r| r.next_hop != NextHop::None);
        }
        let mut routes = system;
        routes.extend(
            service_endpoints
                .into_iter()
                .map(|p| EffectiveRoute::system(p, NextHop::VirtualNetworkServiceEndpoint)),
        );
        for (mut r, space_len) in endpoints {
            if let Some(len) = space_len {
                if user
                    .iter()
                    .any(|u| u.prefix.covers(&r.prefix) && u.prefix.prefix_len() >= len)
                {
                    r.state = RouteState::Invalid;
                }
            }
            routes.push(r);
        }
        for p in bgp {
            let mut r = EffectiveRoute::system(p, NextHop::VirtualNetworkGateway);
            r.source = RouteSource::VirtualNetworkGateway;
            if routes.iter().any(|s| s.beats_bgp() && s.prefix.covers(&p)) {
                r.state = RouteState::Invalid;
            }
            routes.push(r);
        }
        routes.extend(user);
        // Equal prefixes: the best rank stays Active, the others are Invalid (first written
        // wins among equals).
        for i in 0..routes.len() {
            if routes[i].state == RouteState::Invalid {
                continue;
            }
            let beaten = routes.iter().enumerate().any(|(j, o)| {
                j != i
                    && o.state == RouteState::Active
                    && o.prefix == routes[i].prefix
                    && (o.rank(), j) < (routes[i].rank(), i)
            });
            if beaten {
                routes[i].state = RouteState::Invalid;
            }
        }
        let platform = routes.iter().position(|r| {
            r.source == RouteSource::Default
                && r.next_hop == NextHop::Internet
                && r.prefix.is_ipv4()
                && r.prefix.prefix_len() == 0
        });
        let lookup = RouteLookup::new(&routes);
        SubnetRoutes {
            routes,
            lookup,
            platform,
        }
    }

    /// The route `destination` takes (index into [`SubnetRoutes::routes`]); `None` when no
    /// active route covers it. No allocation.
    pub fn lookup(&self, destination: IpAddr) -> Option<usize> {
        if destination == AZURE_PLATFORM_ADDRESS {
            return self.platform;
        }
        self.lookup.find(destination)
    }

    /// The reference: a scan of every active route for the longest prefix containing
    /// `destination` (for tests of the compiled lookup).
    pub fn lookup_reference(&self, destination: IpAddr) -> Option<usize> {
        if destination == AZURE_PLATFORM_ADDRESS {
            return self.platform;
        }
        self.routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state == RouteState::Active && r.prefix.contains(destination))
            .max_by_key(|(i, r)| (r.prefix.prefix_len(), std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
    }

    /// A set of routes with Azure's precedence applied, from raw `(source, prefix, next hop,
    /// from a service tag)` rows (for property tests and benchmarks).
    pub fn from_rows(rows: &[(RouteSource, Cidr, NextHop, bool)]) -> SubnetRoutes {
        let mut inputs = RouteInputs {
            system: Vec::new(),
            service_endpoints: Vec::new(),
            endpoints: Vec::new(),
            bgp: Vec::new(),
            user: Vec::new(),
        };
        for (k, &(source, prefix, next_hop, from_tag)) in rows.iter().enumerate() {
            match source {
                RouteSource::Default => {
                    inputs.system.push(EffectiveRoute::system(prefix, next_hop))
                }
                RouteSource::VirtualNetworkGateway => inputs.bgp.push(prefix),
                RouteSource::User => inputs.user.push(EffectiveRoute {
                    source,
                    state: RouteState::Active,
                    prefix,
                    next_hop,
                    name: Some(format!("r{k}")),
                    user: None,
                    from_tag,
                }),
            }
        }
        SubnetRoutes::build(inputs)
    }
}

/// The system routes of a VNet with `space` and connected peers `peers` (`(index, same
/// region, address space)`).
pub(crate) fn system_routes(
    space: &[Cidr],
    peers: &[(usize, bool, &[Cidr])],
) -> Vec<EffectiveRoute> {
    let mut out: Vec<EffectiveRoute> = space
        .iter()
        .map(|p| EffectiveRoute::system(*p, NextHop::VnetLocal))
        .collect();
    for &(pi, same_region, peer_space) in peers {
        for p in peer_space {
            let hop = if same_region {
                NextHop::VNetPeering(pi)
            } else {
                NextHop::VNetGlobalPeering(pi)
            };
            out.push(EffectiveRoute::system(*p, hop));
        }
    }
    out.push(EffectiveRoute::system(
        "0.0.0.0/0".parse().expect("constant prefix"),
        NextHop::Internet,
    ));
    if space.iter().any(|p| !p.is_ipv4()) {
        out.push(EffectiveRoute::system(
            "::/0".parse().expect("constant prefix"),
            NextHop::Internet,
        ));
    }
    for r in NONE_RANGES {
        let c: Cidr = r.parse().expect("constant prefix");
        if !space.iter().any(|s| s.covers(&c)) {
            out.push(EffectiveRoute::system(c, NextHop::None));
        }
    }
    out
}

impl EffectiveRoute {
    /// A private endpoint's /32 (/128) route.
    pub(crate) fn endpoint(address: IpAddr, host: usize) -> EffectiveRoute {
        EffectiveRoute::system(Cidr::host(address), NextHop::InterfaceEndpoint(host))
    }

    /// A user-defined route.
    pub(crate) fn user_route(
        prefix: Cidr,
        next_hop: NextHop,
        name: &str,
        at: (usize, usize),
        from_tag: bool,
    ) -> EffectiveRoute {
        EffectiveRoute {
            source: RouteSource::User,
            state: RouteState::Active,
            prefix,
            next_hop,
            name: Some(name.to_string()),
            user: Some(at),
            from_tag,
        }
    }
}
