//! Network Watcher's shapes of the routes: what `az network watcher show-next-hop` and `az
//! network nic show-effective-route-table` print, from the same effective routes the walk uses.
//!
//! Next hop ("Diagnose a virtual machine network routing problem",
//! <https://learn.microsoft.com/azure/network-watcher/diagnose-vm-network-routing-problem-cli>):
//! `{"nextHopIpAddress", "nextHopType", "routeTableId"}`; `routeTableId` is "System Route" when
//! "the route being returned does not correspond to any user created routes", else the route
//! table's resource id — for a fixture, synthesised from the subscription and the resource
//! group `vnetsim-rg` (`ASSUMPTION_DEPLOYMENT_SCOPE_DEFAULTS`).
//!
//! Effective routes: `{"value": [{"disableBgpRoutePropagation", "name", "source", "state",
//! "addressPrefix": [...], "nextHopIpAddress": [...], "nextHopType"}]}`.

use std::net::IpAddr;

use serde::Serialize;

use super::{EffectiveRoute, RouteSource, RouteState};
use crate::topology::Topology;

/// Network Watcher's next hop result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NextHopResult {
    /// The next hop's address (`VirtualAppliance` only), else `null`.
    pub next_hop_ip_address: Option<String>,
    /// The next hop type.
    pub next_hop_type: &'static str,
    /// `System Route`, or the user route's table id.
    pub route_table_id: String,
}

/// One effective route as `show-effective-route-table` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveRouteView {
    /// The route table's `disableBgpRoutePropagation` (false without a table).
    pub disable_bgp_route_propagation: bool,
    /// The user route's name, else `null`.
    pub name: Option<String>,
    /// `Default`, `User` or `VirtualNetworkGateway`.
    pub source: RouteSource,
    /// `Active` or `Invalid`.
    pub state: RouteState,
    /// The prefix (one per route here).
    pub address_prefix: Vec<String>,
    /// The next hop's address, when any.
    pub next_hop_ip_address: Vec<String>,
    /// The next hop type.
    pub next_hop_type: &'static str,
}

/// `{"value": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EffectiveRouteTable {
    /// The routes.
    pub value: Vec<EffectiveRouteView>,
}

impl Topology {
    /// The resource id of route table `t`.
    fn route_table_id(&self, t: usize) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/vnetsim-rg/providers/Microsoft.Network/routeTables/{}",
            self.subscription_id, self.route_tables[t].name
        )
    }

    fn route_table_of(&self, route: &EffectiveRoute) -> Option<usize> {
        route.user.map(|(t, _)| t)
    }

    /// Network Watcher's next hop from `source` (an address in a subnet) to `destination`;
    /// `None` when the source is in no subnet.
    pub fn next_hop(&self, source: IpAddr, destination: IpAddr) -> Option<NextHopResult> {
        let (v, s) = self.subnet_of(source)?;
        let routes = self.subnet_routes(v, s)?;
        Some(match routes.lookup(destination) {
            Some(i) => {
                let r = &routes.routes[i];
                NextHopResult {
                    next_hop_ip_address: r.next_hop.address().map(|a| a.to_string()),
                    next_hop_type: r.next_hop.as_str(),
                    route_table_id: self
                        .route_table_of(r)
                        .map_or_else(|| "System Route".to_string(), |t| self.route_table_id(t)),
                }
            }
            None => NextHopResult {
                next_hop_ip_address: None,
                next_hop_type: "None",
                route_table_id: "System Route".to_string(),
            },
        })
    }

    /// The effective routes of subnet `(vnet, subnet)` in Network Watcher's shape.
    pub fn effective_route_table(&self, vnet: usize, subnet: usize) -> Option<EffectiveRouteTable> {
        let routes = self.subnet_routes(vnet, subnet)?;
        let disable = self.vnets[vnet].subnets[subnet]
            .route_table
            .is_some_and(|t| self.route_tables[t].disable_bgp_route_propagation);
        Some(EffectiveRouteTable {
            value: routes
                .routes
                .iter()
                .map(|r| EffectiveRouteView {
                    disable_bgp_route_propagation: disable,
                    name: r.name.clone(),
                    source: r.source,
                    state: r.state,
                    address_prefix: vec![r.prefix.to_string()],
                    next_hop_ip_address: r
                        .next_hop
                        .address()
                        .map(|a| a.to_string())
                        .into_iter()
                        .collect(),
                    next_hop_type: r.next_hop.as_str(),
                })
                .collect(),
        })
    }
}
