//! Build stage: private DNS zones and their VNet links, and the gateway's APIs, whose backends
//! are named by DNS name or address (`build::apis` checks them against the hosts).

use super::apis;
use super::{Builder, Entry};
use crate::api::Api;
use crate::finding::FindingCode;
use crate::fixture::DnsZoneFile;
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
        for l in &z.links {
            match find_ci(vnets, l, |v| &v.name) {
                Some((i, _)) => links.push(i),
                None => self.push(
                    FindingCode::ReferenceUnknown,
                    &zpath,
                    format!(
                        "link to `{l}`: no such VNet{}",
                        super::did_you_mean(l, vnets.iter().map(|v| v.name.as_str()))
                    ),
                ),
            }
        }
        DnsZone {
            name: normalize_dns(&z.name),
            links,
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
