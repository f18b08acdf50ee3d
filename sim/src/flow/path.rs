//! The routed part of a flow's plan: from the source subnet, route lookups and the devices
//! they send the packet through (Azure Firewall, network virtual appliances), up to where the
//! packet is delivered, dropped or leaves the model; and the return path a stateful firewall
//! needs to see.
//!
//! Inputs the walk decides on here, all precomputed at build time:
//! - each subnet's effective routes ([`crate::route::SubnetRoutes`]: system, peering,
//!   private-endpoint, BGP and user-defined routes with Azure's precedence) — one lookup per
//!   hop;
//! - the devices at `VirtualAppliance` next hops: a firewall whose `private_address` is the
//!   next hop (its rules, [`crate::firewall`]), else a NIC with `ip_forwarding` (its NSGs);
//! - peerings' `allow_forwarded_traffic` ([`crate::topology::Vnet::forwarded_from`]);
//! - each subnet's NAT gateway (internet egress; not for `VirtualNetworkServiceEndpoint`
//!   routes, whose traffic keeps its private source).
//!
//! Nothing here depends on ports or protocol: a plan is computed per address pair.

use std::net::IpAddr;

use super::walk::{Apply, Plan, Why};
use super::{AppliedTo, RouteRef, VerdictCode, MAX_DEVICES};
use crate::route::{NextHop, RouteSource};
use crate::topology::Topology;

/// A device on the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DeviceKind {
    /// An Azure Firewall (index).
    Firewall(usize),
    /// A NIC with IP forwarding (host index).
    Appliance(usize),
}

/// A device and the NSGs that apply to it (appliances only; NSGs are not applied on
/// `AzureFirewallSubnet`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Device {
    pub(super) kind: DeviceKind,
    /// Inbound: its subnet's NSG, then its NIC's.
    pub(super) inbound: [Option<Apply>; 2],
    /// Outbound: its NIC's NSG, then its subnet's.
    pub(super) outbound: [Option<Apply>; 2],
}

/// Where the routed part of a path ends.
pub(super) enum Routed {
    /// Delivered from `vnet` (the source's or the last device's), `forwarded` when a device
    /// forwarded it (its VNet); `internet_from` is the subnet whose Internet route took it.
    Deliver {
        vnet: usize,
        forwarded: Option<usize>,
        internet_from: Option<(usize, usize)>,
    },
    /// Dropped or lost.
    Fail(VerdictCode, Why),
}

impl Topology {
    /// Follows routes from subnet `(vi, si)` towards `dst`, filling `plan.devices` and
    /// `plan.routes`.
    pub(super) fn route_path(&self, plan: &mut Plan, vi: usize, si: usize, dst: IpAddr) -> Routed {
        let (mut vi, mut si) = (vi, si);
        let mut forwarded: Option<usize> = None;
        for n in 0..=MAX_DEVICES {
            let Some(routes) = self.subnet_routes(vi, si) else {
                return Routed::Fail(VerdictCode::NoRoute, Why::NoActiveRoute);
            };
            let Some(ri) = routes.lookup(dst) else {
                return Routed::Fail(VerdictCode::NoRoute, Why::NoActiveRoute);
            };
            plan.routes[n] = Some(RouteRef::new(vi, si, ri));
            let r = &routes.routes[ri];
            let deliver = Routed::Deliver {
                vnet: vi,
                forwarded,
                internet_from: None,
            };
            let ip = match r.next_hop {
                NextHop::VnetLocal
                | NextHop::VNetPeering(_)
                | NextHop::VNetGlobalPeering(_)
                | NextHop::InterfaceEndpoint(_) => return deliver,
                // A system None route: the destination is outside every VNet the subnet
                // reaches; the delivery step names why (NO_ROUTE keeps its meaning).
                NextHop::None if r.source == RouteSource::Default => return deliver,
                NextHop::None => return Routed::Fail(VerdictCode::RouteNone, Why::UserRouteNone),
                NextHop::Internet => {
                    if r.source == RouteSource::User && !crate::cidr::is_public(dst) {
                        return Routed::Fail(VerdictCode::NoRoute, Why::InternetPrivate);
                    }
                    return Routed::Deliver {
                        vnet: vi,
                        forwarded,
                        internet_from: Some((vi, si)),
                    };
                }
                NextHop::VirtualNetworkGateway => {
                    return Routed::Fail(VerdictCode::LeavesModel, Why::LeavesModel)
                }
                // "Endpoints always take service traffic directly from your virtual network to
                // the service on the Microsoft Azure backbone network", and "service traffic
                // switches to use virtual network private addresses as the source IP addresses"
                // ("Virtual Network service endpoints",
                // https://learn.microsoft.com/azure/virtual-network/virtual-network-service-endpoints-overview):
                // delivered to the public address with no device and no NAT gateway (the NAT
                // gateway "replaces the default Internet destination of a subnet"; this is not
                // that route).
                NextHop::VirtualNetworkServiceEndpoint => return deliver,
                NextHop::VirtualAppliance(ip) => ip,
            };
            if n == MAX_DEVICES {
                return Routed::Fail(VerdictCode::RoutingLoop, Why::TooManyDevices);
            }
            let (device, dv, ds) = match self.device_at(ip) {
                Ok(d) => d,
                Err(why) => return Routed::Fail(VerdictCode::NextHopUnreachable, why),
            };
            if !self.connected(vi, dv) {
                return Routed::Fail(VerdictCode::NextHopUnreachable, Why::ApplianceNotReachable);
            }
            if let Some(fv) = forwarded {
                if fv != dv && !self.vnets[dv].forwarded_from.contains(&fv) {
                    return Routed::Fail(VerdictCode::NoRoute, Why::ForwardedRefused);
                }
            }
            if plan.devices[..n]
                .iter()
                .flatten()
                .any(|d| d.kind == device.kind)
            {
                return Routed::Fail(VerdictCode::RoutingLoop, Why::Loop);
            }
            plan.devices[n] = Some(device);
            (vi, si) = (dv, ds);
            forwarded = Some(dv);
        }
        Routed::Fail(VerdictCode::RoutingLoop, Why::TooManyDevices)
    }

    /// The device at a `VirtualAppliance` next hop, with its subnet.
    fn device_at(&self, ip: IpAddr) -> Result<(Device, usize, usize), Why> {
        if let Some(f) = self.firewalls.iter().position(|f| f.private_address == ip) {
            let (v, s) = self.firewalls[f].placement;
            let device = Device {
                kind: DeviceKind::Firewall(f),
                inbound: [None, None],
                outbound: [None, None],
            };
            return Ok((device, v, s));
        }
        let Some(h) = self.host_at(ip) else {
            return Err(Why::NoDevice);
        };
        let host = &self.hosts[h];
        let Some((v, s)) = host.placement else {
            return Err(Why::NoDevice);
        };
        if !host.ip_forwarding {
            return Err(Why::NoIpForwarding);
        }
        let subnet = self.vnets[v].subnets[s].nsg.map(|n| Apply {
            nsg: n,
            vnet: v,
            applied_to: AppliedTo::Subnet(v, s),
        });
        let nic = host.nsg.map(|n| Apply {
            nsg: n,
            vnet: v,
            applied_to: AppliedTo::Host(h),
        });
        let device = Device {
            kind: DeviceKind::Appliance(h),
            inbound: [subnet, nic],
            outbound: [nic, subnet],
        };
        Ok((device, v, s))
    }

    /// The devices the reply from subnet `(vi, si)` to `src` passes, in order (route lookups
    /// from each device's subnet; bounded like the forward walk).
    pub(super) fn return_path(
        &self,
        plan: &mut Plan,
        vi: usize,
        si: usize,
        src: IpAddr,
    ) -> [Option<DeviceKind>; MAX_DEVICES] {
        let mut out = [None; MAX_DEVICES];
        let (mut vi, mut si) = (vi, si);
        for n in 0..=MAX_DEVICES {
            let Some(ri) = self.subnet_routes(vi, si).and_then(|r| r.lookup(src)) else {
                break;
            };
            plan.return_routes[n] = Some(RouteRef::new(vi, si, ri));
            let NextHop::VirtualAppliance(ip) = self.routes[vi][si].routes[ri].next_hop else {
                break;
            };
            let Ok((device, dv, ds)) = self.device_at(ip) else {
                break;
            };
            if n == MAX_DEVICES || out[..n].contains(&Some(device.kind)) {
                break;
            }
            out[n] = Some(device.kind);
            (vi, si) = (dv, ds);
        }
        out
    }
}
