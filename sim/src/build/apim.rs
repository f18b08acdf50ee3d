//! Build stage: the API Management instance. Its `vnet/subnet` reference is resolved and its
//! private and public addresses are checked; whether the instance meets the integration and
//! injection requirements is the preflight's question ([`crate::apim::preflight`]), asked once
//! the whole model is built.

use std::net::IpAddr;

use super::hosts::Placed;
use super::{Builder, Entry};
use crate::finding::FindingCode;
use crate::fixture::{ApimFile, ClassicVnetType, NetworkMode};
use crate::topology::{find_ci, Apim, Vnet, DEFAULT_APIM_PUBLIC_ADDRESS, RESERVED_AT_START};

impl Builder<'_> {
    /// The instance, when the fixture has one.
    pub(super) fn apim(
        &mut self,
        vnets: &[Vnet],
        placed: &Placed,
        subscription_id: &str,
    ) -> Option<Apim> {
        let a = self.fx.apim.as_ref()?;
        let subscription = a
            .subscription
            .clone()
            .unwrap_or_else(|| subscription_id.to_string());
        let subnet = self.apim_subnet(a, vnets);
        let private_address = self.apim_private_address(a, vnets, subnet);
        if let Some(ip) = private_address {
            if let Some(&h) = placed.host_by_addr.get(&ip) {
                let host = &placed.hosts[h];
                self.push(
                    FindingCode::HostAddressDuplicate,
                    &Entry::new(
                        format!("hosts/{}", host.name),
                        format!("/hosts/{}", host.index),
                    ),
                    format!("{ip} is the APIM instance's address in its subnet"),
                );
            }
        }
        let public_address = self.apim_public_address(a);
        Some(Apim {
            name: a.name.clone(),
            sku: a.sku,
            capacity: a.capacity,
            region: a.region.clone(),
            subscription,
            mode: a.virtual_network,
            subnet,
            previous_mode: a.previous_virtual_network,
            private_address,
            public_address,
            classic_vnet_type: self.classic_type(a),
            outbound_route_all: a.outbound_route_all.unwrap_or(true),
            named_values: a
                .named_values
                .iter()
                .map(|n| (n.name.clone(), n.key_vault_secret.trim().to_string()))
                .collect(),
        })
    }

    /// A classic-tier instance injected into a VNet (`virtual_network = "classic"`, from an
    /// imported Developer or Premium instance with virtualNetworkType External/Internal): its
    /// type, and the `CLASSIC_TIER_VNET` warning that the v2 preflight does not apply.
    fn classic_type(&mut self, a: &ApimFile) -> Option<ClassicVnetType> {
        if a.virtual_network != NetworkMode::Classic {
            return None;
        }
        let at = Entry::new("apim", "/apim");
        match a.classic_vnet_type {
            Some(kind) => {
                self.push(
                    FindingCode::ClassicTierVnet,
                    &at,
                    format!("`{}` is a classic {} instance injected into its subnet ({kind}): classic VNet injection, not v2 integration or injection, so the v2 preflight does not apply; its outbound traffic leaves from the subnet through the subnet's NSG, and its gateway is reached {} through that NSG", a.name, a.sku, if kind == ClassicVnetType::External { "at its public address (and its private one)" } else { "only at its private address" }),
                );
                Some(kind)
            }
            None => {
                self.push(
                    FindingCode::ApimSubnetRequired,
                    &at,
                    "virtual_network = \"classic\" needs classic_vnet_type = \"External\" or \"Internal\"",
                );
                None
            }
        }
    }

    /// `(vnet, subnet)` of the instance's `subnet = "vnet/subnet"`, when it resolves.
    fn apim_subnet(&mut self, a: &ApimFile, vnets: &[Vnet]) -> Option<(usize, usize)> {
        let mut subnet = None;
        if let Some(sref) = &a.subnet {
            match sref.split_once('/') {
                Some((vn, sn)) => match find_ci(vnets, vn, |v| &v.name) {
                    Some((vi, v)) => match find_ci(&v.subnets, sn, |s| &s.name) {
                        Some((si, _)) => subnet = Some((vi, si)),
                        None => self.push(
                            FindingCode::ReferenceUnknown,
                            &Entry::new("apim", "/apim"),
                            format!(
                                "subnet `{sref}`: VNet `{vn}` has no subnet `{sn}`{}",
                                super::did_you_mean(sn, v.subnets.iter().map(|s| s.name.as_str()))
                            ),
                        ),
                    },
                    None => self.push(
                        FindingCode::ReferenceUnknown,
                        &Entry::new("apim", "/apim"),
                        format!(
                            "subnet `{sref}`: no VNet named `{vn}`{}",
                            super::did_you_mean(vn, vnets.iter().map(|v| v.name.as_str()))
                        ),
                    ),
                },
                None => self.push(
                    FindingCode::ReferenceUnknown,
                    &Entry::new("apim", "/apim"),
                    format!("subnet `{sref}` must be written `vnet/subnet`"),
                ),
            }
        } else if a.virtual_network != NetworkMode::None {
            self.push(
                FindingCode::ApimSubnetRequired,
                &Entry::new("apim", "/apim"),
                format!(
                    "virtual_network = \"{}\" needs `subnet = \"vnet/subnet\"`",
                    a.virtual_network
                ),
            );
        }
        subnet
    }

    /// The instance's address in its subnet: `address` when usable, else the first usable one.
    fn apim_private_address(
        &mut self,
        a: &ApimFile,
        vnets: &[Vnet],
        subnet: Option<(usize, usize)>,
    ) -> Option<IpAddr> {
        let mut private_address = None;
        if a.virtual_network != NetworkMode::None {
            if let Some((vi, si)) = subnet {
                let s = &vnets[vi].subnets[si];
                match &a.address {
                    Some(text) => match text.trim().parse::<IpAddr>() {
                        Ok(ip) => match s.prefix_of(ip) {
                            Some(p)
                                if crate::cidr::addr_to_u128(ip)
                                    - crate::cidr::addr_to_u128(p.first())
                                    >= RESERVED_AT_START
                                    && ip != p.last() =>
                            {
                                private_address = Some(ip)
                            }
                            _ => self.push(
                                FindingCode::ApimAddressInvalid,
                                &Entry::new("apim", "/apim"),
                                format!(
                                    "address {ip} is not a usable address of subnet `{}`",
                                    s.name
                                ),
                            ),
                        },
                        Err(_) => self.push(
                            FindingCode::ApimAddressInvalid,
                            &Entry::new("apim", "/apim"),
                            format!("address `{text}` is not an IP address"),
                        ),
                    },
                    None => {
                        private_address = s.prefixes.first().and_then(|p| p.nth(RESERVED_AT_START))
                    }
                }
            }
        }
        private_address
    }

    /// The instance's public address: `public_address` when public, else the default.
    fn apim_public_address(&mut self, a: &ApimFile) -> IpAddr {
        match &a.public_address {
            Some(p) => match p.trim().parse::<IpAddr>() {
                Ok(ip) if crate::cidr::is_public(ip) => ip,
                _ => {
                    self.push(
                        FindingCode::ApimAddressInvalid,
                        &Entry::new("apim", "/apim"),
                        format!("public_address `{p}` is not a public IP address"),
                    );
                    DEFAULT_APIM_PUBLIC_ADDRESS
                        .parse()
                        .expect("constant address")
                }
            },
            None => DEFAULT_APIM_PUBLIC_ADDRESS
                .parse()
                .expect("constant address"),
        }
    }
}
