//! Build stage: private DNS zones and their VNet links, and the gateway's APIs, whose backends
//! are named by DNS name or address (`build::apis` checks them against the hosts).

use super::apis;
use super::{Builder, Entry};
use crate::api::Api;
use crate::finding::FindingCode;
use crate::fixture::{DnsZoneFile, ResolutionPolicy};
use crate::topology::{find_ci, normalize_dns, valid_dns_name, DnsZone, Host, Vnet};

impl Builder<'_> {
    /// Every private DNS zone, linked to the VNets that exist.
    pub(super) fn zones(&mut self, vnets: &[Vnet]) -> Vec<DnsZone> {
        let fx = self.fx;
        self.dup_names(
            "private_dns_zones",
            fx.private_dns_zones.iter().map(|z| z.name.as_str()),
        );
        fx.private_dns_zones
            .iter()
            .enumerate()
            .map(|(i, z)| self.zone(i, z, vnets))
            .collect()
    }

    fn zone(&mut self, index: usize, z: &DnsZoneFile, vnets: &[Vnet]) -> DnsZone {
        let zpath = Entry::new(
            format!("private_dns_zones/{}", z.name),
            format!("/private_dns_zones/{index}"),
        );
        if !valid_dns_name(&z.name) {
            self.push(
                FindingCode::DnsNameInvalid,
                &zpath,
                format!("`{}` is not a valid zone name", z.name),
            );
        }
        let mut links = Vec::new();
        let mut nx_redirect = Vec::new();
        let private_link = crate::dns::is_private_link_zone(&normalize_dns(&z.name));
        for l in &z.links {
            match find_ci(vnets, &l.vnet, |v| &v.name) {
                Some((i, _)) => {
                    links.push(i);
                    if l.resolution_policy == ResolutionPolicy::NxDomainRedirect {
                        if private_link {
                            nx_redirect.push(i);
                        } else {
                            // "Only applicable for virtual network links to privatelink zones"
                            // (ARM `virtualNetworkLinks` `resolutionPolicy`).
                            self.push(
                                FindingCode::DnsResolutionPolicyIgnored,
                                &zpath,
                                format!(
                                    "link to `{}`: resolution_policy NxDomainRedirect applies only to Private Link zones (privatelink.*); `{}` answers NXDOMAIN from `{}` without falling back to public DNS",
                                    l.vnet, z.name, l.vnet
                                ),
                            );
                        }
                    }
                }
                None => self.push(
                    FindingCode::ReferenceUnknown,
                    &zpath,
                    format!(
                        "link to `{}`: no such VNet{}",
                        l.vnet,
                        super::did_you_mean(&l.vnet, vnets.iter().map(|v| v.name.as_str()))
                    ),
                ),
            }
        }
        DnsZone {
            name: normalize_dns(&z.name),
            links,
            nx_redirect,
        }
    }

    /// The gateway's APIs, with their backends resolved to hosts.
    pub(super) fn apis(&mut self, hosts: &[Host], published: &[std::net::IpAddr]) -> Vec<Api> {
        let source = &self.source;
        // Hosts the fixture declares but the model left out (their own finding is the root
        // cause): a backend on one of them is not reported again as an unknown host.
        let left_out: Vec<&crate::fixture::HostFile> = self
            .fx
            .hosts
            .iter()
            .enumerate()
            .filter(|(i, _)| !hosts.iter().any(|m| m.index == *i))
            .map(|(_, h)| h)
            .collect();
        let (apis, mut api_findings) =
            apis::build_apis(&self.fx.apis, hosts, &left_out, published, |i| {
                source.locate(&format!("/apis/{i}"))
            });
        self.f.append(&mut api_findings);
        apis
    }
}
