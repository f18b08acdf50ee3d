//! A classic-tier instance (Developer, Premium) injected into a VNet, as an imported template
//! keeps it (`virtual_network = "classic"`): its outbound traffic leaves from its subnet address
//! (the planner's `apim_in_subnet` source), and its gateway is reached through the subnet's
//! inbound NSG — with `External` also at its public address, with `Internal` only at the
//! private one. "API Management … can be deployed (injected) inside an Azure virtual network …
//! External: The API Management gateway and developer portal are accessible from the public
//! internet via an external load balancer … Internal: … accessible only from within the virtual
//! network via an internal load balancer" (<https://learn.microsoft.com/azure/api-management/virtual-network-concepts>);
//! "For inbound traffic, network security groups process traffic after Azure translates public
//! IP addresses to private IP addresses" (NSG overview).

use std::net::IpAddr;

use super::{Plan, Why};
use crate::fixture::{ClassicVnetType, NetworkMode};
use crate::flow::VerdictCode;
use crate::topology::Topology;

impl Topology {
    /// Routing to a classic instance's public address; `None` when `dst` is not that.
    pub(super) fn route_to_classic_gateway(
        &self,
        plan: &mut Plan,
        dst: IpAddr,
    ) -> Option<Result<(), (VerdictCode, Why)>> {
        let a = self.apim.as_ref()?;
        if a.mode != NetworkMode::Classic || dst != a.public_address {
            return None;
        }
        let internal = Err((VerdictCode::NoPublicEndpoint, Why::ClassicInternal));
        Some(match (a.classic_vnet_type, a.subnet, a.private_address) {
            (Some(ClassicVnetType::External), Some((vi, si)), Some(private)) => {
                plan.inbound_destination = private;
                plan.inbound = self.inbound_nsgs(private, vi, si);
                plan.why_allowed = Why::ClassicExternal;
                Ok(())
            }
            _ => internal,
        })
    }
}
