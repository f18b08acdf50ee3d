//! The Azure platform addresses in the one walk: health probes from the host node's virtual IP
//! 168.63.129.16 reach VMs and meet their inbound NSGs; flows from a VM to 168.63.129.16 and
//! 169.254.169.254 are routed on the host; the exemptions from NSG rules (DNS, DHCP,
//! WireServer, IMDS, KMS) and the Deny rules naming `AzurePlatform*` tags that take them away.
//! The facts and their sources are in `crate::platform`.

use std::net::IpAddr;

use super::{Plan, Source, Why};
use crate::finding::Assumption;
use crate::fixture::NetworkMode;
use crate::flow::{Flow, VerdictCode};
use crate::nsg::TagRef;
use crate::platform::{Exemption, PlatformTag, HOST_VIP, IMDS};
use crate::proto::{Access, Direction};
use crate::topology::Topology;

impl Topology {
    /// Routing from the host node's virtual IP: "Enables health probes from Azure Load
    /// Balancer to determine the health state of VMs" ("What is IP address 168.63.129.16?") —
    /// every subnet address is reachable (public address or not), and the destination's
    /// inbound NSGs decide; reserved addresses still answer nothing.
    pub(super) fn route_from_host_vip(
        &self,
        plan: &mut Plan,
        dst: IpAddr,
    ) -> Result<(), (VerdictCode, Why)> {
        let apim = self.apim.as_ref();
        if apim
            .is_some_and(|a| a.mode == NetworkMode::Integration && a.private_address == Some(dst))
        {
            return Err((VerdictCode::NoRoute, Why::IntegrationOutboundOnly));
        }
        let Some((vi, si)) = self.subnet_of(dst) else {
            return Err((VerdictCode::NoRoute, Why::HostVipLocalOnly));
        };
        if self.host_at(dst).is_none() {
            if let Some(role) = self.vnets[vi].subnets[si].reserved_role(dst) {
                return Err((VerdictCode::ReservedAddress, Why::Reserved(role)));
            }
        }
        plan.inbound = self.inbound_nsgs(dst, vi, si);
        plan.why_allowed = Why::HealthProbe;
        Ok(())
    }

    /// Routing to 168.63.129.16 or 169.254.169.254: answered by the VM's own host node, so
    /// reachable from any subnet ("168.63.129.16 is a virtual IP of the host node and as such
    /// it isn't subject to user defined routes"); from outside every VNet there is no route.
    /// `None` when `dst` is not a platform address.
    pub(super) fn route_to_platform(
        &self,
        plan: &mut Plan,
        dst: IpAddr,
    ) -> Option<Result<(), (VerdictCode, Why)>> {
        if dst != HOST_VIP && dst != IMDS {
            return None;
        }
        Some(match plan.source {
            Source::Subnet { .. } => {
                plan.why_allowed = Why::PlatformAddress;
                Ok(())
            }
            _ => Err((VerdictCode::NoRoute, Why::PlatformFromVmsOnly)),
        })
    }

    /// The platform exemption the flow gets on this path: the flow leaves a subnet, its 5-tuple
    /// is exempt ([`Exemption::of`]) and no outbound NSG on the path has a Deny rule naming the
    /// exemption's tag that matches it. Allow rules and literal `168.63.129.16` prefixes change
    /// nothing: only "a security rule to deny traffic by using the following service tags"
    /// overrides it (NSG overview, "Azure platform considerations").
    pub(super) fn platform_exemption(&self, flow: &Flow, plan: &Plan) -> Option<Exemption> {
        let ex = Exemption::of(flow)?;
        if !matches!(plan.source, Source::Subnet { .. }) {
            return None;
        }
        // DHCP may be broadcast, which has no route but is answered by the host node.
        if plan.route.is_err() && ex != Exemption::Dhcp {
            return None;
        }
        match ex.tag() {
            Some(tag) if self.tag_denies(tag, flow, plan) => None,
            _ => Some(ex),
        }
    }

    /// For a flow whose exemption a Deny rule took away: a sentence saying so.
    pub(super) fn revoked_exemption(&self, flow: &Flow, plan: &Plan) -> Option<String> {
        let ex = Exemption::of(flow)?;
        let tag = ex.tag()?;
        (matches!(plan.source, Source::Subnet { .. }) && self.tag_denies(tag, flow, plan)).then(
            || {
                format!(
                    "a Deny rule naming {} takes away the platform exemption, so the NSGs decide",
                    tag.as_str()
                )
            },
        )
    }

    /// Whether an outbound NSG on the path has a Deny rule whose destination names `tag` and
    /// that matches the flow.
    fn tag_denies(&self, tag: PlatformTag, flow: &Flow, plan: &Plan) -> bool {
        let key = crate::flow::FlowKey::new(
            flow.protocol,
            flow.source,
            flow.source_port,
            flow.destination,
            flow.destination_port,
        );
        let named = TagRef::Platform(tag);
        plan.outbound.iter().flatten().any(|a| {
            let Some(c) = self.compiled(a.nsg, a.vnet) else {
                return false;
            };
            let rules = &self.nsgs[a.nsg].rules;
            c.any_match(Direction::Outbound, &key, |i| {
                rules[i].access == Access::Deny && rules[i].destination.tags.contains(&named)
            })
        })
    }

    /// The assumptions a flow to or from a platform address relies on.
    pub(super) fn platform_assumptions(flow: &Flow) -> impl Iterator<Item = Assumption> {
        let vip = (flow.source == HOST_VIP || flow.destination == HOST_VIP)
            .then_some(Assumption::HostVipTags);
        let tag = Exemption::of(flow)
            .and_then(Exemption::tag)
            .map(|t| match t {
                PlatformTag::Dns => Assumption::PlatformDnsTag,
                PlatformTag::Imds => Assumption::PlatformImdsTag,
                PlatformTag::Lkm => Assumption::PlatformLkmTag,
            });
        vip.into_iter().chain(tag)
    }
}
