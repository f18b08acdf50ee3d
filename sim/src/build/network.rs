//! Build stage: VNets, their address spaces and subnets, and peerings. Address checks happen
//! here: parse errors, ranges Azure forbids, overlaps within a VNet, subnet sizes and containment,
//! and overlaps between peered VNets. A prefix that fails a check is left out of the model.

use std::collections::BTreeSet;

use super::{did_you_mean, unknown_address_message, Builder, Entry};
use crate::cidr::Cidr;
use crate::finding::FindingCode;
use crate::fixture::VnetFile;
use crate::nsg::{parse_unknown_marker, Nsg};
use crate::topology::{find_ci, Subnet, Vnet, FORBIDDEN_ADDRESS_SPACE};

impl Builder<'_> {
    /// Every VNet with its valid prefixes and subnets, connected to its two-sided peers, with
    /// its `VirtualNetwork` tag filled in.
    pub(super) fn network(&mut self, nsgs: &[Nsg], subscription_id: &str) -> Vec<Vnet> {
        let fx = self.fx;
        self.dup_names("vnets", fx.vnets.iter().map(|v| v.name.as_str()));
        let forbidden: Vec<Cidr> = FORBIDDEN_ADDRESS_SPACE
            .iter()
            .map(|s| s.parse().expect("constant prefix"))
            .collect();
        let mut vnets = Vec::new();
        for (vi, v) in fx.vnets.iter().enumerate() {
            let vpath = Entry::new(format!("vnets/{}", v.name), format!("/vnets/{vi}"));
            let space = self.address_space(v, &vpath, &forbidden);
            if space.len() < v.address_space.len() {
                self.broken_space.insert(vi);
            }
            let subnets = self.subnets(vi, v, &vpath, &space, nsgs);
            vnets.push(Vnet {
                name: v.name.clone(),
                region: v.region.clone(),
                subscription: v
                    .subscription
                    .clone()
                    .unwrap_or_else(|| subscription_id.to_string()),
                address_space: space,
                connected: Vec::new(),
                forwarded_from: Vec::new(),
                bgp_routes: self.bgp_routes(v, &vpath),
                subnets,
                virtual_network_tag: Vec::new(),
                connected_space: Vec::new(),
            });
        }
        self.peerings(&mut vnets);
        for vi in 0..vnets.len() {
            vnets[vi].connected.sort_unstable();
            let mut tag = vnets[vi].address_space.clone();
            for &pi in &vnets[vi].connected.clone() {
                tag.extend_from_slice(&vnets[pi].address_space);
            }
            vnets[vi].connected_space = tag.clone();
            vnets[vi].virtual_network_tag = tag;
        }
        vnets
    }

    /// A VNet's routes learned through BGP (`bgp_routes`), valid prefixes only.
    fn bgp_routes(&mut self, v: &VnetFile, vpath: &Entry) -> Vec<Cidr> {
        let mut out = Vec::new();
        for (k, p) in v.bgp_routes.iter().enumerate() {
            match p.parse::<Cidr>() {
                Ok(c) => out.push(c),
                Err(e) => self.push(
                    FindingCode::AddressPrefixInvalid,
                    &vpath.child(
                        format_args!("bgp_routes/{p}"),
                        format_args!("bgp_routes/{k}"),
                    ),
                    format!("BGP route: {e}"),
                ),
            }
        }
        out
    }

    /// A VNet's valid address space prefixes.
    fn address_space(&mut self, v: &VnetFile, vpath: &Entry, forbidden: &[Cidr]) -> Vec<Cidr> {
        let mut space: Vec<Cidr> = Vec::new();
        if v.address_space.is_empty() {
            self.push(
                FindingCode::AddressPrefixInvalid,
                vpath,
                "the address space is empty; a VNet needs at least one prefix",
            );
        }
        for p in &v.address_space {
            if let Some(ptr) = parse_unknown_marker(p) {
                self.push(
                    FindingCode::UnknownAddress,
                    vpath,
                    unknown_address_message("an address space prefix", ptr),
                );
                continue;
            }
            match p.parse::<Cidr>() {
                Err(e) => self.push(
                    FindingCode::AddressPrefixInvalid,
                    vpath,
                    format!("address space: {e}"),
                ),
                Ok(c) => {
                    if let Some(bad) = forbidden.iter().find(|fb| fb.overlaps(&c)) {
                        self.push(FindingCode::AddressSpaceForbidden, vpath, format!("address space {c} overlaps {bad}, which Azure reserves (multicast, broadcast, loopback, link-local or the internal DNS address)"));
                        continue;
                    }
                    if let Some(o) = space.iter().find(|o| o.overlaps(&c)) {
                        self.push(
                            FindingCode::AddressSpaceOverlap,
                            vpath,
                            format!("address space prefixes {o} and {c} overlap"),
                        );
                        continue;
                    }
                    space.push(c);
                }
            }
        }
        space
    }

    /// A VNet's subnets with their valid prefixes (inside `space`, not overlapping each other).
    fn subnets(
        &mut self,
        vi: usize,
        v: &VnetFile,
        vpath: &Entry,
        space: &[Cidr],
        nsgs: &[Nsg],
    ) -> Vec<Subnet> {
        let mut seen_subnets = BTreeSet::new();
        let mut subnets: Vec<Subnet> = Vec::new();
        for (index, s) in v.subnets.iter().enumerate() {
            let spath = vpath.child(
                format_args!("subnets/{}", s.name),
                format_args!("subnets/{index}"),
            );
            if !seen_subnets.insert(s.name.to_ascii_lowercase()) {
                self.push(
                    FindingCode::NameDuplicate,
                    &spath,
                    format!("two subnets of `{}` are named `{}`", v.name, s.name),
                );
                continue;
            }
            let mut prefixes = Vec::new();
            for p in &s.address_prefixes {
                if let Some(ptr) = parse_unknown_marker(p) {
                    self.push(
                        FindingCode::UnknownAddress,
                        &spath,
                        unknown_address_message("the subnet prefix", ptr),
                    );
                    continue;
                }
                let c = match p.parse::<Cidr>() {
                    Ok(c) => c,
                    Err(e) => {
                        self.push(
                            FindingCode::AddressPrefixInvalid,
                            &spath,
                            format!("address prefix: {e}"),
                        );
                        continue;
                    }
                };
                let size_ok = if c.is_ipv4() {
                    (2..=29).contains(&c.prefix_len())
                } else {
                    c.prefix_len() == 64
                };
                if !size_ok {
                    self.push(FindingCode::SubnetSizeInvalid, &spath, format!("{c}: IPv4 subnets must be /29 (smallest) to /2 (largest), IPv6 subnets exactly /64"));
                    continue;
                }
                if !space.iter().any(|a| a.covers(&c)) {
                    self.broken_subnets.insert(vi);
                    if self.broken_space.contains(&vi) {
                        // The root cause (a rejected address space prefix) is reported already.
                        continue;
                    }
                    let list: Vec<String> = space.iter().map(Cidr::to_string).collect();
                    self.push(
                        FindingCode::SubnetOutsideAddressSpace,
                        &spath,
                        format!(
                            "{c} is outside the address space of `{}` ({})",
                            v.name,
                            list.join(", ")
                        ),
                    );
                    continue;
                }
                let mut clash = None;
                for o in &subnets {
                    if let Some(op) = o.prefixes.iter().find(|op| op.overlaps(&c)) {
                        clash = Some((o.name.clone(), *op));
                        break;
                    }
                }
                if let Some(op) = prefixes.iter().find(|op: &&Cidr| op.overlaps(&c)) {
                    clash = Some((s.name.clone(), *op));
                }
                if let Some((other, op)) = clash {
                    self.push(
                        FindingCode::SubnetOverlap,
                        &spath,
                        format!(
                            "{c} overlaps {op} of subnet `{other}`; subnet ranges can't overlap"
                        ),
                    );
                    continue;
                }
                prefixes.push(c);
            }
            if prefixes.len() < s.address_prefixes.len() {
                self.broken_subnets.insert(vi);
            }
            let nsg = self.nsg_ref(nsgs, &s.nsg, &spath);
            subnets.push(Subnet {
                route_table: None,
                nat_gateway: None,
                service_endpoints: Vec::new(),
                name: s.name.clone(),
                prefixes,
                delegations: s.delegations.clone(),
                nsg,
                resources: s.resources.clone(),
                private_endpoint_network_policies: s.private_endpoint_network_policies,
                index,
            });
        }
        subnets
    }

    /// Connects VNets whose peering both sides list and that ARM would let peer: a link between
    /// VNets whose address spaces overlap is refused when it is created, even before the other
    /// side exists (`VnetAddressSpacesOverlap`: "Cannot create or update peering … because
    /// address space of virtual network … overlaps with address space of virtual network …"),
    /// and so is a link to a VNet that overlaps a VNet already peered with this one
    /// (`VnetAddressSpaceOverlapsWithAlreadyPeeredVnet`; VNet peering overview: "The address
    /// spaces of the virtual networks must not overlap"). A refused link carries nothing, from
    /// either side; it is reported once, as its root cause (not also as one-sided).
    fn peerings(&mut self, vnets: &mut [Vnet]) {
        let fx = self.fx;
        let mut refused: BTreeSet<(usize, usize)> = BTreeSet::new();
        let mut links: Vec<(usize, usize, usize)> = Vec::new();
        for (vi, v) in fx.vnets.iter().enumerate() {
            let vpath = Entry::new(format!("vnets/{}", v.name), format!("/vnets/{vi}"));
            // The peers this VNet's links already reach, in the order they are listed.
            let mut peered: Vec<usize> = Vec::new();
            for (k, peering) in v.peerings.iter().enumerate() {
                let p = &peering.remote;
                let ppath = vpath.child(format_args!("peerings/{p}"), format_args!("peerings/{k}"));
                let at = Entry::new(vpath.path(), &ppath.pointer);
                let Some((pi, peer)) = find_ci(&fx.vnets, p, |x| &x.name) else {
                    self.push(
                        FindingCode::ReferenceUnknown,
                        &at,
                        format!(
                            "peering to `{p}`: no such VNet{}",
                            did_you_mean(p, fx.vnets.iter().map(|x| x.name.as_str()))
                        ),
                    );
                    continue;
                };
                if pi == vi {
                    self.push(
                        FindingCode::ReferenceUnknown,
                        &at,
                        "a VNet cannot peer with itself",
                    );
                    continue;
                }
                let key = (vi.min(pi), vi.max(pi));
                if let Some((a, b)) =
                    first_overlap(&vnets[vi].address_space, &vnets[pi].address_space)
                {
                    if refused.insert(key) {
                        self.push(FindingCode::PeeringAddressOverlap, &at, format!("VNets `{}` ({a}) and `{}` ({b}) overlap: Azure refuses the peering when it is created (VnetAddressSpacesOverlap), even from one side; peered VNets' address spaces must not overlap", v.name, peer.name));
                    }
                    continue;
                }
                let clash = peered.iter().find_map(|&o| {
                    first_overlap(&vnets[o].address_space, &vnets[pi].address_space)
                        .map(|(a, b)| (o, a, b))
                });
                if let Some((o, a, b)) = clash {
                    refused.insert(key);
                    self.push(FindingCode::PeeringOverlapsPeeredVnet, &at, format!("`{}` is already peered with `{}` ({a}), which overlaps `{}` ({b}): Azure refuses this peering (VnetAddressSpaceOverlapsWithAlreadyPeeredVnet)", v.name, fx.vnets[o].name, peer.name));
                    continue;
                }
                peered.push(pi);
                links.push((vi, pi, k));
            }
        }
        for (vi, pi, k) in links {
            if refused.contains(&(vi.min(pi), vi.max(pi))) {
                continue;
            }
            let (v, peer) = (&fx.vnets[vi], &fx.vnets[pi]);
            let peering = &v.peerings[k];
            let back = peer
                .peerings
                .iter()
                .find(|b| b.remote.eq_ignore_ascii_case(&v.name));
            let Some(back) = back else {
                let vpath = Entry::new(format!("vnets/{}", v.name), format!("/vnets/{vi}"));
                self.push(FindingCode::PeeringNotConnected, &vpath.child(format_args!("peerings/{}", peer.name), format_args!("peerings/{k}")), format!("`{}` lists `{}` but `{}` does not list `{}`: the peering stays Initiated and carries no traffic until both sides create it", v.name, peer.name, peer.name, v.name));
                continue;
            };
            // "Allow forwarded traffic": this VNet accepts traffic that a network virtual
            // appliance in the remote VNet forwards (Virtual network peering, "Create, change,
            // or delete a virtual network peering"). Kept per receiving side.
            if peering.allow_forwarded_traffic && !vnets[vi].forwarded_from.contains(&pi) {
                vnets[vi].forwarded_from.push(pi);
            }
            // "Allow virtual network access" off on either side blocks traffic between the two
            // VNets: they are left unconnected (no peering route, no VirtualNetwork tag).
            if !peering.allow_virtual_network_access || !back.allow_virtual_network_access {
                continue;
            }
            if !vnets[vi].connected.contains(&pi) {
                vnets[vi].connected.push(pi);
            }
        }
    }
}

fn first_overlap(a: &[Cidr], b: &[Cidr]) -> Option<(Cidr, Cidr)> {
    a.iter()
        .find_map(|x| b.iter().find(|y| x.overlaps(y)).map(|y| (*x, *y)))
}
