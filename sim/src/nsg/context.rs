//! What a rule's tags and ASGs mean where its NSG is applied: `VirtualNetwork` and `Internet`
//! depend on the VNet, table tags on the service tag table, ASGs on the hosts that are members.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{AddressSpec, TagRef, AZURE_LOAD_BALANCER};
use crate::cidr::{AddrSet, Cidr};
use crate::tags::{ServiceTagTable, VirtualTag};

/// What tags and ASGs mean where an NSG is applied.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// Prefixes of the `VirtualNetwork` tag: the VNet and its connected peers, its on-premises
    /// (BGP) prefixes and the prefixes of the user-defined routes on its subnets.
    pub virtual_network: &'a [Cidr],
    /// The address spaces of the VNet and its connected peers: what the `Internet` tag leaves
    /// out ("the IP address space that's outside the virtual network").
    pub vnet_space: &'a [Cidr],
    /// The service tag table.
    pub tags: &'a ServiceTagTable,
    /// Members of each ASG (lower-cased name → NIC addresses).
    pub asg_members: &'a BTreeMap<String, Vec<IpAddr>>,
}

impl Context<'_> {
    pub(super) fn table_prefixes(&self, name: &str) -> &[Cidr] {
        self.tags
            .get(name)
            .map(|t| t.prefixes.as_slice())
            .unwrap_or(&[])
    }

    /// The compiled address set of one side.
    pub fn resolve(&self, spec: &AddressSpec) -> AddrSet {
        if spec.any || !spec.unknown.is_empty() {
            return AddrSet::any();
        }
        let mut cidrs: Vec<Cidr> = spec.prefixes.clone();
        let mut extra = AddrSet::empty();
        for t in &spec.tags {
            match t {
                TagRef::Virtual(VirtualTag::VirtualNetwork) => {
                    cidrs.extend_from_slice(self.virtual_network)
                }
                TagRef::Virtual(VirtualTag::AzureLoadBalancer) => {
                    cidrs.push(AZURE_LOAD_BALANCER.parse().expect("constant prefix"));
                }
                TagRef::Virtual(VirtualTag::Internet) => {
                    extra = extra.union(
                        &crate::cidr::public_space()
                            .difference(&AddrSet::from_cidrs(self.vnet_space.iter().copied())),
                    );
                }
                TagRef::Table(name) => cidrs.extend_from_slice(self.table_prefixes(name)),
                TagRef::Platform(p) => cidrs.extend(p.prefixes()),
            }
        }
        for a in &spec.asgs {
            if let Some(members) = self.asg_members.get(a) {
                cidrs.extend(members.iter().map(|ip| Cidr::host(*ip)));
            }
        }
        AddrSet::from_cidrs(cidrs).union(&extra)
    }
}
