//! Planning and walking a flow's path: where the source is, which NSGs apply in which VNet
//! context, the routing outcome, then the one walk that turns NSG matches into a verdict —
//! shared by the verdict-only path ([`Topology::decide`]) and the explaining path
//! ([`Topology::evaluate`]).
//!
//! Every value this walk compares a flow with must also be listed in `space/boundaries.rs`
//! (the whole-space engine's seam: `reach`, `lint`, `diff`), or their answers stop being exact.

use std::net::IpAddr;

use super::path::{Device, DeviceKind, Routed};
use super::{
    AppliedTo, DecidedBy, Decision, Flow, FlowKey, FlowView, NsgEvaluation, RouteRef, RouteTaken,
    RuleInfo, RuleRef, Verdict, VerdictCode, VerdictKind, MAX_DEVICES, PATH_NSGS, PATH_ROUTES,
};
use crate::finding::Assumption;
use crate::fixture::{HostKind, NetworkMode};
use crate::nsg::{CompiledNsg, RuleMatch};
use crate::platform::Exemption;
use crate::proto::{Access, Direction, Protocol};
use crate::topology::{ReservedRole, Topology};

mod classic;
mod platform;

// === Planning ===

/// A step of the walk other than an NSG, reported to the explaining path (addresses after
/// the step).
#[derive(Clone, Copy, Debug)]
pub(super) enum Event {
    /// A route lookup and the route taken; the source address then.
    Route(RouteRef, IpAddr),
    /// A firewall's match; the source after its SNAT.
    Firewall(crate::firewall::FirewallMatch, IpAddr),
    /// An appliance (host index) forwards; the source then.
    Appliance(usize, IpAddr),
    /// A NAT gateway (index) gives the flow its public address.
    Nat(usize, IpAddr),
    /// A firewall's DNAT rule translates the flow: the source after its SNAT, the translated
    /// destination and port.
    Dnat(crate::firewall::FirewallMatch, IpAddr, IpAddr, u16),
}

/// The walk's running state: the decision so far, NSGs recorded, the first rule that
/// depended on an unknown value.
struct Walked {
    d: Decision,
    n: usize,
    /// Routes recorded in `d.routes`.
    r: usize,
    unknown: Option<RuleRef>,
}

impl Walked {
    /// Records a route taken (after the NSGs evaluated so far).
    fn route(&mut self, route: RouteRef) {
        if self.r < PATH_ROUTES {
            self.d.routes[self.r] = Some(RouteTaken {
                route,
                after_nsgs: self.n as u8,
            });
            self.r += 1;
        }
    }

    /// Records the firewall match at this point of the path.
    fn firewall(&mut self, m: crate::firewall::FirewallMatch) {
        self.d.firewall = Some(m);
        self.d.firewall_at = (self.n as u8, self.r as u8);
    }

    /// Ends the walk with a verdict not decided by an NSG rule (the NSG path so far stays).
    fn end(&mut self, verdict: VerdictKind, code: VerdictCode) -> Decision {
        self.finish(verdict, code);
        self.d
    }

    /// [`Walked::end`] without the copy, for a leg that ends the walk.
    fn finish(&mut self, verdict: VerdictKind, code: VerdictCode) {
        self.d.verdict = verdict;
        self.d.code = code;
        if verdict != VerdictKind::Indeterminate {
            self.d.decided_by = match code {
                // A deny by the platform, a route, a firewall or the service itself: no NSG
                // rule decided.
                VerdictCode::PlatformBlocked
                | VerdictCode::RouteNone
                | VerdictCode::FirewallDenied
                | VerdictCode::AsymmetricRoute
                | VerdictCode::PublicAccessDisabled
                | VerdictCode::DnsFailure => None,
                _ if verdict == VerdictKind::Unreachable => None,
                _ => self.d.decided_by,
            };
        }
    }
}

/// One leg of a walk: the path to the flow's destination, or, after a DNAT rule translated
/// it, the path from the firewall to the translated destination.
#[derive(Clone, Copy, Debug)]
struct Leg {
    /// The destination of this leg and its port.
    dst: IpAddr,
    port: Option<u16>,
    /// The source the leg starts from (what the reply returns to).
    origin: IpAddr,
    /// A firewall that saw the request before this leg (the DNAT firewall).
    seen: Option<DeviceKind>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Apply {
    pub(super) nsg: usize,
    pub(super) vnet: usize,
    pub(super) applied_to: AppliedTo,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    Subnet {
        vnet: usize,
        apim: bool,
    },
    ApimPublic,
    Internet,
    PrivateOutside,
    VnetNoSubnet(usize),
    /// The host node's virtual IP 168.63.129.16 (health probes).
    HostVip,
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

/// A flow's plan: everything that depends on its two addresses only. The walk
/// ([`Topology::walk`]) goes through it in this order: `outbound` NSGs, each of `devices`
/// (a firewall's rules; an appliance's inbound then outbound NSGs), `route` (the outcome of
/// routing and delivery), the `inbound` NSGs, then the return path.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    pub(super) source: Source,
    pub(super) outbound: [Option<Apply>; 2],
    /// Devices the routes send the packet through, in order.
    pub(super) devices: [Option<Device>; MAX_DEVICES],
    /// The route taken from the source subnet (`routes[0]`) and from each device's subnet.
    pub(super) routes: [Option<RouteRef>; MAX_DEVICES + 1],
    pub(super) route: Result<(), (VerdictCode, Why)>,
    pub(super) inbound: [Option<Apply>; 2],
    pub(super) inbound_destination: IpAddr,
    pub(super) why_allowed: Why,
    /// The NAT gateway of the subnet whose Internet route the packet took (TCP/UDP only).
    pub(super) nat: Option<usize>,
    /// Public egress of an instance with `outbound_route_all = false`: the source the
    /// destination sees (the instance's public address).
    pub(super) platform_egress: Option<IpAddr>,
    /// Devices the reply passes (checked when a firewall is on the path and the flow reaches
    /// a subnet); `None` when not checked.
    pub(super) return_devices: Option<[Option<DeviceKind>; MAX_DEVICES]>,
    /// Routes the reply takes.
    pub(super) return_routes: [Option<RouteRef>; MAX_DEVICES + 1],
    /// The firewall whose public address the destination is: its DNAT rules translate the
    /// flow, and a second leg walks from its subnet to the translated destination
    /// ([`Topology::plan_dnat`]).
    pub(super) dnat: Option<usize>,
}

/// Reasons, kept as an enum so the verdict path formats nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Why {
    NoActiveRoute,
    UserRouteNone,
    InternetPrivate,
    LeavesModel,
    TooManyDevices,
    Loop,
    NoDevice,
    NoIpForwarding,
    ApplianceNotReachable,
    ForwardedRefused,
    PlatformEgress,
    Asymmetric,
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
    ServiceEndpoint,
    PrivateEndpointUnfiltered,
    Reserved(ReservedRole),
    UnicastDhcp,
    HostPort65330,
    Broadcast,
    Multicast,
    HealthProbe,
    HostVipLocalOnly,
    PlatformAddress,
    PlatformFromVmsOnly,
    ClassicExternal,
    ClassicInternal,
    PublicAccessDisabled,
    ServicePublicEndpoint,
    Dnat,
    DnatNoMatch,
}

impl Why {
    pub(super) fn text(self) -> &'static str {
        match self {
            Why::NoActiveRoute => "no active route of the subnet covers the destination",
            Why::UserRouteNone => "a user-defined route with next hop None drops the packet (\"Traffic routed to the None next hop type is dropped\", Virtual network traffic routing)",
            Why::InternetPrivate => "a user-defined route sends the private destination to the Internet next hop, where it is unreachable",
            Why::LeavesModel => "the route's next hop is a virtual network gateway: the packet leaves for on-premises, which is not modelled",
            Why::TooManyDevices => "the path passes more devices (firewalls, appliances) than the walk's bound of 4: treated as a loop",
            Why::Loop => "the routes send the packet back to a device it already passed: a routing loop",
            Why::NoDevice => "the route's VirtualAppliance next hop address is neither an Azure Firewall nor a NIC of the topology: the packet is dropped",
            Why::NoIpForwarding => "the route's VirtualAppliance next hop is a NIC without ip_forwarding: it drops traffic not addressed to it",
            Why::ApplianceNotReachable => "the route's VirtualAppliance next hop is outside the subnet's VNet and its connected peers",
            Why::ForwardedRefused => "an appliance forwards the packet into a peered VNet whose peering does not allow forwarded traffic (allow_forwarded_traffic = false)",
            Why::PlatformEgress => "outbound_route_all = false: public egress leaves from the instance's public address, through no NSG or route of the subnet",
            Why::Asymmetric => "a stateful firewall sees only one direction of the flow: the reply's routes do not pass the same firewalls as the request's",
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
            Why::ServiceEndpoint => "the destination is a public address of an Azure service the subnet has a service endpoint for: its VirtualNetworkServiceEndpoint route takes it over the Azure backbone, past a 0.0.0.0/0 route and the NAT gateway, and the service sees the private source address (\"Virtual Network service endpoints\")",
            Why::Reserved(ReservedRole::Network) => "the destination is its subnet's network address, one of the five addresses Azure reserves in every subnet: nothing answers there",
            Why::Reserved(ReservedRole::DefaultGateway) => "the destination is its subnet's default gateway (x.x.x.1), one of the five addresses Azure reserves in every subnet: nothing answers there as a host",
            Why::Reserved(ReservedRole::AzureDns) => "the destination is one of the two addresses (x.x.x.2, x.x.x.3) Azure reserves to map Azure DNS into the subnet: nothing answers there as a host",
            Why::Reserved(ReservedRole::Broadcast) => "the destination is its subnet's broadcast address, one of the five addresses Azure reserves in every subnet (and broadcast is blocked within VNets)",
            Why::UnicastDhcp => "unicast DHCP (UDP source port 68 to destination port 67) is blocked within VNets (VNet FAQ, \"What protocols can I use within VNets?\")",
            Why::HostPort65330 => "UDP source port 65330 is reserved for the host and blocked within VNets (VNet FAQ)",
            Why::Broadcast => "broadcast is blocked within VNets (VNet FAQ)",
            Why::Multicast => "multicast is blocked within VNets (VNet FAQ)",
            Why::HealthProbe => "a health probe from the host node's virtual IP 168.63.129.16 reaches a VM without a public address; the destination's inbound NSGs decide, where the AzureLoadBalancer tag matches it (\"What is IP address 168.63.129.16?\")",
            Why::HostVipLocalOnly => "the host node's virtual IP 168.63.129.16 talks only to the VMs on its host: the destination is in no subnet",
            Why::PlatformAddress => "the platform address answers every VM on its host node; this traffic is not one of the NSG exemptions (DNS, DHCP, WireServer, IMDS, KMS), so the NSGs decide",
            Why::ClassicExternal => "a classic-tier instance injected with virtualNetworkType External is reached at its public address through its subnet's inbound NSG, which sees its private address",
            Why::ClassicInternal => "a classic-tier instance injected with virtualNetworkType Internal is reachable only at its private address",
            Why::PublicAccessDisabled => "the destination is the public address of a service whose public network access is Disabled (public_network_access = \"Disabled\"): it accepts only private endpoint connections and refuses the flow",
            Why::ServicePublicEndpoint => "the destination is the public endpoint of the service a private endpoint serves: it is reached over the internet, not through the endpoint's NIC",
            Why::Dnat => "the destination is a public address of an Azure Firewall: its DNAT rules translate the flow (\"NAT rules are applied in priority before network rules\", Azure Firewall rule processing logic)",
            Why::DnatNoMatch => "the destination is a public address of an Azure Firewall and no DNAT rule matches the flow: the firewall's default deny drops it (\"Azure Firewall denies all traffic by default, until rules are manually configured to allow traffic\", Azure Firewall rule processing logic)",
            Why::PlatformFromVmsOnly => "the platform addresses 168.63.129.16 and 169.254.169.254 are reachable only from inside a VNet (a VM's host node), not from the internet or an instance outside every VNet",
        }
    }
}

impl Topology {
    /// Where the rule of a verdict is written; `None` for default rules, which no file holds.
    pub fn rule_location(&self, r: RuleRef) -> Option<crate::source::Location> {
        self.nsg_rule_location(r.nsg, r.rule)
    }

    fn locate_source(&self, ip: IpAddr) -> (Source, [Option<Apply>; 2]) {
        if ip == crate::platform::HOST_VIP {
            return (Source::HostVip, [None, None]);
        }
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

    fn empty_plan(source: Source, outbound: [Option<Apply>; 2], dst: IpAddr) -> Plan {
        Plan {
            source,
            outbound,
            devices: [None; MAX_DEVICES],
            routes: [None; MAX_DEVICES + 1],
            route: Ok(()),
            inbound: [None, None],
            inbound_destination: dst,
            why_allowed: Why::ToInternet,
            nat: None,
            platform_egress: None,
            return_devices: None,
            return_routes: [None; MAX_DEVICES + 1],
            dnat: None,
        }
    }

    /// The second leg of a DNAT-translated flow: from the firewall's `AzureFirewallSubnet` to
    /// the translated destination `dst` — its routes and devices, the destination's inbound
    /// NSGs, and the reply's path back to the firewall's SNAT address `origin`. No allocation.
    /// A translated destination that is itself a firewall's public address is delivered there
    /// (one DNAT per flow).
    pub(super) fn plan_dnat(&self, f: usize, dst: IpAddr, origin: IpAddr) -> Plan {
        let (fv, fs) = self.firewalls[f].placement;
        let source = Source::Subnet {
            vnet: fv,
            apim: false,
        };
        let mut plan = Topology::empty_plan(source, [None, None], dst);
        plan.route = self.route_and_deliver(&mut plan, source, (fv, fs), dst);
        plan.dnat = None;
        if plan.route.is_ok() {
            if let Some((dv, ds)) = self.subnet_of(plan.inbound_destination) {
                let back = self.return_path(&mut plan, dv, ds, origin);
                plan.return_devices = Some(back);
            }
        }
        plan
    }

    /// The firewall one of whose public addresses `ip` is.
    fn firewall_with_public(&self, ip: IpAddr) -> Option<usize> {
        self.firewalls.iter().position(|f| f.is_public_address(ip))
    }

    fn plan(&self, flow: &Flow) -> Plan {
        let (source, outbound) = self.locate_source(flow.source);
        let dst = flow.destination;
        let mut plan = Topology::empty_plan(source, outbound, dst);
        // The platform addresses are answered by the host node and are not subject to routes
        // (walk/platform.rs); health probes come from it.
        let platform = match source {
            Source::VnetNoSubnet(_) | Source::PrivateOutside => None,
            Source::HostVip => Some(self.route_from_host_vip(&mut plan, dst)),
            _ => self.route_to_platform(&mut plan, dst),
        };
        plan.route = match (platform, source) {
            (Some(r), _) => r,
            (None, Source::VnetNoSubnet(_)) => Err((VerdictCode::NoRoute, Why::SourceNotInSubnet)),
            (None, Source::PrivateOutside) => {
                Err((VerdictCode::NoRoute, Why::PrivateSourceOutside))
            }
            (None, Source::Subnet { apim: true, .. }) if self.platform_egress(dst) => {
                // `[apim] outbound_route_all = false`: only RFC 1918 destinations enter the
                // subnet; the rest leaves from the platform's public address.
                plan.outbound = [None, None];
                plan.platform_egress = self.apim.as_ref().map(|a| a.public_address);
                let r = self.deliver(&mut plan, Source::ApimPublic, None, None, dst);
                if r.is_ok() && plan.why_allowed == Why::ToInternet {
                    plan.why_allowed = Why::PlatformEgress;
                }
                r
            }
            (None, Source::Subnet { .. }) => {
                let at = self.subnet_of(flow.source).expect("located in a subnet");
                self.route_and_deliver(&mut plan, source, at, dst)
            }
            (None, _) => self.deliver(&mut plan, source, None, None, dst),
        };
        let firewall_on_path = plan
            .devices
            .iter()
            .flatten()
            .any(|d| matches!(d.kind, DeviceKind::Firewall(_)));
        if plan.route.is_ok() && firewall_on_path {
            if let Some((dv, ds)) = self.subnet_of(plan.inbound_destination) {
                let back = self.return_path(&mut plan, dv, ds, flow.source);
                plan.return_devices = Some(back);
            }
        }
        plan
    }

    /// Routes a packet from subnet `(vi, si)` to `dst` (devices, NAT gateway) and delivers it:
    /// the one routing step of a flow from a subnet and of a DNAT's second leg.
    fn route_and_deliver(
        &self,
        plan: &mut Plan,
        source: Source,
        (vi, si): (usize, usize),
        dst: IpAddr,
    ) -> Result<(), (VerdictCode, Why)> {
        match self.route_path(plan, vi, si, dst) {
            Routed::Fail(code, why) => Err((code, why)),
            Routed::Deliver {
                vnet,
                forwarded,
                internet_from,
            } => {
                plan.nat = internet_from.and_then(|(v, s)| self.vnets[v].subnets[s].nat_gateway);
                let r = self.deliver(plan, source, Some(vnet), forwarded, dst);
                if r.is_ok()
                    && plan.why_allowed == Why::ToInternet
                    && self.last_route_is_service_endpoint(plan)
                {
                    plan.why_allowed = Why::ServiceEndpoint;
                }
                r
            }
        }
    }

    /// Whether the last route of the plan's forward path is a `VirtualNetworkServiceEndpoint`
    /// route.
    fn last_route_is_service_endpoint(&self, plan: &Plan) -> bool {
        plan.routes.iter().flatten().last().is_some_and(|r| {
            self.route_of(*r).next_hop == crate::route::NextHop::VirtualNetworkServiceEndpoint
        })
    }

    /// Whether an integrated instance with `outbound_route_all = false` sends a flow to `dst`
    /// past its subnet: "only RFC 1918 destinations" enter it (App Service's wording for
    /// regional VNet integration without route all).
    fn platform_egress(&self, dst: IpAddr) -> bool {
        let rfc1918 = |ip: IpAddr| match ip {
            IpAddr::V4(a) => a.is_private(),
            IpAddr::V6(_) => false,
        };
        self.apim
            .as_ref()
            .is_some_and(|a| !a.outbound_route_all && !rfc1918(dst))
    }

    /// Delivery: where `dst` is and whether it is reachable from `from` (the VNet the packet
    /// is in: the source's, or the last device's when `forwarded`), filling the plan's inbound
    /// NSGs.
    fn deliver(
        &self,
        plan: &mut Plan,
        source: Source,
        from: Option<usize>,
        forwarded: Option<usize>,
        dst: IpAddr,
    ) -> Result<(), (VerdictCode, Why)> {
        let private_dest_fail = |why_vnet: Why| match source {
            Source::ApimPublic => Err((VerdictCode::NotIntegrated, Why::NotIntegrated)),
            Source::Internet => Err((VerdictCode::NoPublicEndpoint, Why::NoPublicEndpoint)),
            _ => Err((VerdictCode::NoRoute, why_vnet)),
        };
        let apim = self.apim.as_ref();
        if let Some(r) = self.route_to_classic_gateway(plan, dst) {
            r
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
            if host.public_access_disabled {
                // ARM `Microsoft.KeyVault/vaults` `publicNetworkAccess`: "If set to 'disabled'
                // all traffic except private endpoint traffic and that that originates from
                // trusted services will be blocked" (and Storage's `publicNetworkAccess` alike);
                // the gateway is no trusted service (keyvault.rs). The service refuses what
                // arrives at its public address, whatever the path allowed.
                return Err((VerdictCode::PublicAccessDisabled, Why::PublicAccessDisabled));
            }
            if host.kind == HostKind::PrivateEndpoint {
                // A private endpoint's `public_address` is its service's public endpoint, which
                // is not behind the endpoint's NIC: no NSG of the endpoint's subnet sees it.
                plan.why_allowed = Why::ServicePublicEndpoint;
                return Ok(());
            }
            plan.inbound_destination = host.address;
            plan.why_allowed = Why::ViaPublicAddress;
            if let Some((vi, si)) = host.placement {
                plan.inbound = self.inbound_nsgs(host.address, vi, si);
            }
            Ok(())
        } else if let Some(f) = self.firewall_with_public(dst) {
            // An Azure Firewall's public address: its DNAT rules decide (the walk's DNAT step).
            plan.dnat = Some(f);
            plan.why_allowed = Why::Dnat;
            Ok(())
        } else if let Some((vi, si)) = self.subnet_of(dst) {
            let reachable = from.is_some_and(|f| self.connected(f, vi));
            let reserved = self
                .host_at(dst)
                .is_none()
                .then(|| self.vnets[vi].subnets[si].reserved_role(dst))
                .flatten();
            let refused = forwarded
                .is_some_and(|fv| fv != vi && !self.vnets[vi].forwarded_from.contains(&fv));
            if let (true, Some(role)) = (reachable, reserved) {
                Err((VerdictCode::ReservedAddress, Why::Reserved(role)))
            } else if reachable && refused {
                Err((VerdictCode::NoRoute, Why::ForwardedRefused))
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
        }
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
        self.walk(
            flow,
            &self.plan(flow),
            |_, c, dir, key| c.decide(dir, key),
            |_| {},
        )
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
        self.walk(
            flow,
            &path.plan,
            |_, c, dir, key| c.decide(dir, key),
            |_| {},
        )
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

    /// Walks a flow's path — the source side's outbound NSGs, each device the routes send it
    /// through (a firewall's rules, which may SNAT; an appliance's inbound then outbound
    /// NSGs), the routing outcome, the destination side's inbound NSGs (seeing the source
    /// after SNAT), then the return path of stateful firewalls — asking `step` for each NSG's
    /// first matching rule. The one place that turns matches into a verdict, shared by
    /// [`Topology::decide`] and [`Topology::evaluate`].
    fn walk(
        &self,
        flow: &Flow,
        plan: &Plan,
        mut step: impl FnMut(&Apply, &CompiledNsg, Direction, &FlowKey) -> RuleMatch,
        mut note: impl FnMut(Event),
    ) -> Decision {
        let mut w = Walked {
            d: Decision {
                verdict: VerdictKind::Allow,
                code: VerdictCode::Allowed,
                decided_by: None,
                path: [None; PATH_NSGS],
                firewall: None,
                egress_source: None,
                dnat: None,
                routes: [None; PATH_ROUTES],
                firewall_at: (0, 0),
            },
            n: 0,
            r: 0,
            unknown: None,
        };
        if self.platform_exemption(flow, plan).is_some() {
            return w.end(VerdictKind::Allow, VerdictCode::PlatformExempt);
        }
        if self.platform_blocked(flow).is_some() {
            return w.end(VerdictKind::Deny, VerdictCode::PlatformBlocked);
        }
        let mut src = flow.source;
        let key = FlowKey::new(
            flow.protocol,
            src,
            flow.source_port,
            flow.destination,
            flow.destination_port,
        );
        if self.nsgs_deny(&mut w, &plan.outbound, Direction::Outbound, &key, &mut step) {
            return w.d;
        }
        let first = Leg {
            dst: flow.destination,
            port: flow.destination_port,
            origin: flow.source,
            seen: None,
        };
        if self.leg(&mut w, flow, plan, first, &mut src, &mut step, &mut note) {
            return w.d;
        }
        if let Some(f) = plan.dnat {
            // The destination is a public address of firewall `f`: DNAT rules first, no match
            // is the default deny; a match translates destination, port and source, and the
            // translated flow is allowed by the firewall ("DNAT rules implicitly add a
            // corresponding network rule to allow the translated traffic").
            let fw = &self.firewalls[f];
            let k = FlowKey::new(
                flow.protocol,
                src,
                flow.source_port,
                flow.destination,
                flow.destination_port,
            );
            let m = fw.evaluate_dnat(f, &k);
            w.firewall(m);
            let translation = fw.rule(&m).and_then(|r| r.translation.as_ref());
            let (Some(rule), Some(t)) = (m.rule, translation) else {
                note(Event::Firewall(m, src));
                w.d.egress_source = None;
                return w.end(VerdictKind::Deny, VerdictCode::FirewallDenied);
            };
            let Some(to) = t.address else {
                // The translated FQDN does not resolve from the firewall's VNet.
                note(Event::Firewall(m, src));
                w.d.egress_source = None;
                return w.end(VerdictKind::Unreachable, VerdictCode::DnsFailure);
            };
            let after = fw.dnat_source(to);
            w.d.dnat = Some(crate::firewall::Dnat {
                firewall: f,
                rule,
                destination: to,
                port: t.port,
                source: after,
            });
            note(Event::Dnat(m, after, to, t.port));
            src = after;
            let second = Leg {
                dst: to,
                port: Some(t.port),
                origin: after,
                seen: Some(DeviceKind::Firewall(f)),
            };
            let sub = self.plan_dnat(f, to, after);
            if self.leg(&mut w, flow, &sub, second, &mut src, &mut step, &mut note) {
                return w.d;
            }
        }
        match w.unknown {
            Some(r) => {
                w.d.decided_by = Some(r);
                w.end(VerdictKind::Indeterminate, VerdictCode::UnknownValue)
            }
            None => w.d,
        }
    }

    /// Walks one leg of a plan from `src` (updated with each SNAT): each device the routes
    /// send the packet through, the routing outcome, platform egress and NAT gateway, the
    /// destination side's inbound NSGs, then the return path of stateful firewalls. True when
    /// the leg ended the walk (`w.d` is the decision).
    #[allow(clippy::too_many_arguments)]
    fn leg<S, N>(
        &self,
        w: &mut Walked,
        flow: &Flow,
        plan: &Plan,
        leg: Leg,
        src: &mut IpAddr,
        step: &mut S,
        note: &mut N,
    ) -> bool
    where
        S: FnMut(&Apply, &CompiledNsg, Direction, &FlowKey) -> RuleMatch,
        N: FnMut(Event),
    {
        let key = |src: IpAddr, dst: IpAddr| {
            FlowKey::new(flow.protocol, src, flow.source_port, dst, leg.port)
        };
        // Firewalls that saw the request without SNAT: their replies must come back to them.
        let mut stateful = [None; MAX_DEVICES];
        for (i, device) in plan.devices.iter().flatten().enumerate() {
            if let Some(r) = plan.routes[i] {
                w.route(r);
                note(Event::Route(r, *src));
            }
            let k = key(*src, leg.dst);
            match device.kind {
                DeviceKind::Firewall(f) => {
                    let fw = &self.firewalls[f];
                    let m = fw.evaluate(f, &k);
                    w.firewall(m);
                    if m.action == crate::fixture::FirewallAction::Deny {
                        note(Event::Firewall(m, *src));
                        w.finish(VerdictKind::Deny, VerdictCode::FirewallDenied);
                        return true;
                    }
                    let after = fw.snat(&m, *src, leg.dst);
                    note(Event::Firewall(m, after));
                    if after == *src {
                        stateful[i] = Some(device.kind);
                    }
                    *src = after;
                }
                DeviceKind::Appliance(h) => {
                    note(Event::Appliance(h, *src));
                    if self.nsgs_deny(w, &device.inbound, Direction::Inbound, &k, step)
                        || self.nsgs_deny(w, &device.outbound, Direction::Outbound, &k, step)
                    {
                        return true;
                    }
                }
            }
        }
        let n_devices = plan.devices.iter().flatten().count();
        if let Some(r) = plan.routes[n_devices] {
            w.route(r);
            note(Event::Route(r, *src));
        }
        if let Err((code, _)) = plan.route {
            w.finish(code.route_verdict(), code);
            return true;
        }
        if let Some(ip) = plan.platform_egress {
            *src = ip;
        }
        if let Some(nat) = plan.nat {
            if matches!(flow.protocol, Protocol::Tcp | Protocol::Udp) {
                *src = self.nat_gateways[nat]
                    .public_addresses
                    .first()
                    .copied()
                    .unwrap_or(*src);
                note(Event::Nat(nat, *src));
            }
        }
        w.d.egress_source = Some(*src);
        if self.nsgs_deny(
            w,
            &plan.inbound,
            Direction::Inbound,
            &key(*src, plan.inbound_destination),
            step,
        ) {
            return true;
        }
        if let Some(back) = &plan.return_devices {
            let back_fw = back
                .iter()
                .flatten()
                .filter(|k| matches!(k, DeviceKind::Firewall(_)));
            let missing = stateful.iter().flatten().any(|k| !back.contains(&Some(*k)));
            let extra = back_fw.clone().any(|k| {
                leg.seen != Some(*k) && !plan.devices.iter().flatten().any(|d| d.kind == *k)
            });
            if missing || (extra && *src == leg.origin) {
                w.finish(VerdictKind::Deny, VerdictCode::AsymmetricRoute);
                return true;
            }
        }
        false
    }

    /// Evaluates a group of NSGs in order; true when one denied (the decision is set).
    fn nsgs_deny(
        &self,
        w: &mut Walked,
        applies: &[Option<Apply>; 2],
        dir: Direction,
        key: &FlowKey,
        step: &mut impl FnMut(&Apply, &CompiledNsg, Direction, &FlowKey) -> RuleMatch,
    ) -> bool {
        for a in applies.iter().flatten() {
            let Some(c) = self.compiled(a.nsg, a.vnet) else {
                continue;
            };
            let m = step(a, c, dir, key);
            let r = Topology::rule_ref(a, m, dir);
            if w.n < PATH_NSGS {
                w.d.path[w.n] = Some(r);
                w.n += 1;
            }
            w.d.decided_by = Some(r);
            if self.depends_on_unknown(a, m, key) {
                // Explore the branch where the unknown rule does not decide: a later
                // definite Deny still decides the flow.
                w.unknown.get_or_insert(r);
            } else if m.access == Access::Deny {
                w.d.verdict = VerdictKind::Deny;
                w.d.code = VerdictCode::NsgDenied;
                return true;
            }
        }
        false
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
        let hops = std::cell::RefCell::new(Vec::new());
        // The destination after the hops so far (a DNAT rule changes it).
        let dest = std::cell::Cell::new(flow.destination);
        let d = self.walk(
            flow,
            &plan,
            |a, c, dir, key| {
                let nsg = &self.nsgs[a.nsg];
                let (rules, m) = c.explain(nsg, dir, key);
                hops.borrow_mut().push(crate::flow::Hop {
                    kind: "nsg",
                    name: nsg.name.clone(),
                    source: key.source.to_string(),
                    destination: key.destination.to_string(),
                    decided_by: Some(nsg.rules[m.rule].qualified_name()),
                });
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
            },
            |e| {
                if let Event::Dnat(_, _, to, _) = e {
                    dest.set(to);
                }
                hops.borrow_mut().push(self.hop(e, dest.get()));
            },
        );
        let hops = hops.into_inner();
        let (verdict, code) = (d.verdict, d.code);
        // After a DNAT rule, the second leg (from the firewall to the translated destination)
        // says why the flow got there or not.
        let sub = d
            .dnat
            .map(|x| self.plan_dnat(x.firewall, x.destination, x.source));
        let route_plan = sub.as_ref().unwrap_or(&plan);
        let why = match (verdict, route_plan.route) {
            _ if d.code == VerdictCode::PlatformExempt => self
                .platform_exemption(flow, &plan)
                .map_or("exempt from NSG rules by the platform", Exemption::text),
            _ if d.code == VerdictCode::PlatformBlocked => self
                .platform_blocked(flow)
                .map_or("blocked by the platform", Why::text),
            _ if d.code == VerdictCode::FirewallDenied
                && plan.dnat.is_some()
                && d.dnat.is_none()
                && plan.route.is_ok() =>
            {
                Why::DnatNoMatch.text()
            }
            _ if d.code == VerdictCode::DnsFailure && plan.dnat.is_some() => {
                "the DNAT rule's translated_fqdn does not resolve from the firewall's VNet: the firewall cannot translate the flow"
            }
            _ if d.code == VerdictCode::FirewallDenied => {
                "an Azure Firewall on the path denies the flow (first match in DNAT, network, application rule order; no match is the default deny)"
            }
            _ if d.code == VerdictCode::AsymmetricRoute => Why::Asymmetric.text(),
            (_, Err((code, why))) if code == d.code => why.text(),
            (VerdictKind::Deny, _) => "an NSG rule denies the flow; later NSGs are not evaluated",
            (VerdictKind::Indeterminate, _) => {
                "the outcome depends on a rule field only known at deployment time"
            }
            _ => route_plan.why_allowed.text(),
        };
        let mut detail = why.to_string();
        let dnat = d.dnat.map(|x| self.dnat_view(&x));
        if let Some(x) = &dnat {
            detail = format!(
                "DNAT rule {}/{}/{} of firewall {} translates {} to {}:{} (source {}); {detail}",
                x.group,
                x.collection,
                x.rule,
                x.firewall,
                flow.destination,
                x.translated_destination,
                x.translated_port,
                x.translated_source
            );
        } else if d.code == VerdictCode::DnsFailure && plan.dnat.is_some() {
            if let Some(t) = d
                .firewall
                .and_then(|m| self.firewalls[m.firewall].rule(&m))
                .and_then(|r| r.translation.as_ref())
            {
                detail = format!(
                    "{detail}: `{}`: {}",
                    t.fqdn.as_deref().unwrap_or("?"),
                    t.failure.as_deref().unwrap_or("no answer")
                );
            }
        }
        if let Some(revoked) = self.revoked_exemption(flow, &plan) {
            detail = format!("{detail}; {revoked}");
        }
        let device_decided = self.device_decided_by(&d);
        let decided_by = d.decided_by.map(|r| {
            let info = self.rule_info(r);
            if verdict == VerdictKind::Indeterminate {
                let pointers = self.nsgs[r.nsg].rules[r.rule].unknown.pointers.join(", ");
                detail = format!("{detail}: nsgs/{}/{} ({pointers})", info.nsg, info.rule);
            }
            DecidedBy {
                kind: crate::flow::DecidedKind::Nsg,
                group: None,
                collection: None,
                nsg: info.nsg.to_string(),
                rule: info.rule,
                priority: info.priority,
                access: r.access,
                direction: r.direction,
                location: self.rule_location(r),
                tags: crate::tags::TagDecision::of_rule(
                    &self.nsgs[r.nsg].rules[r.rule],
                    &self.tags,
                ),
            }
        });
        let leg_destination = d.dnat.map_or(flow.destination, |x| x.destination);
        if route_plan.inbound_destination != leg_destination && verdict != VerdictKind::Unreachable
        {
            detail = format!(
                "{detail} ({} → {})",
                leg_destination, route_plan.inbound_destination
            );
        }
        let decided_by = decided_by.or(device_decided);
        let origin = d.dnat.map_or(flow.source, |x| x.source);
        let return_hops = self.return_hops(route_plan, origin);
        if code == VerdictCode::AsymmetricRoute {
            detail = format!("{detail}: {}", self.paths_text(&hops, &return_hops));
        }
        Verdict {
            hops,
            return_hops,
            egress_source: d.egress_source.map(|a| a.to_string()),
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
            dnat,
        }
    }

    fn assumptions_for(&self, flow: &Flow, plan: &Plan, any_nsg: bool) -> Vec<Assumption> {
        let mut a = Vec::new();
        match plan.source {
            Source::Subnet { apim: true, .. } if plan.platform_egress.is_some() => {
                a.push(Assumption::PublicEgressFromPlatform);
            }
            Source::Subnet { apim: true, .. } => {
                if self.apim.as_ref().is_some_and(|x| x.outbound_route_all) {
                    a.push(Assumption::AllEgressViaSubnet);
                }
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
        a.extend(Topology::platform_assumptions(flow));
        if plan.dnat.is_some()
            || plan
                .devices
                .iter()
                .flatten()
                .any(|d| matches!(d.kind, DeviceKind::Firewall(_)))
        {
            a.push(Assumption::FirewallFqdnByAddress);
            a.push(Assumption::FirewallInstanceAddress);
            a.push(Assumption::FirewallInfrastructureRules);
        }
        if plan.why_allowed == Why::ServiceEndpoint {
            a.push(Assumption::ServiceEndpointPrefixes);
            a.push(Assumption::ServiceEndpointLocations);
            a.push(Assumption::ServiceEndpointRoutePrecedence);
        }
        if matches!(plan.route, Err((_, Why::TooManyDevices))) {
            a.push(Assumption::WalkBound);
        }
        if flow.destination.is_ipv6()
            && matches!(plan.route, Err((VerdictCode::ReservedAddress, _)))
        {
            a.push(Assumption::Ipv6ReservedAddresses);
        }
        a.sort();
        a.dedup();
        a
    }
}
