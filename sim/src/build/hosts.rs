//! Build stage: hosts (VM NICs, private endpoints, hosts outside every VNet). Each host's
//! address is placed in its subnet, its DNS names are claimed once, and its services are checked;
//! the ASG membership table comes out of this stage too.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use super::{did_you_mean, unknown_address_message, Builder, Entry};
use crate::cidr::Cidr;
use crate::finding::FindingCode;
use crate::fixture::{HostFile, HostKind};
use crate::nsg::{parse_unknown_marker, Nsg};
use crate::topology::{find_ci, normalize_dns, valid_dns_name, Host, Service, Vnet};

fn prefix_list(prefixes: &[Cidr]) -> String {
    let list: Vec<String> = prefixes.iter().map(Cidr::to_string).collect();
    list.join(", ")
}

/// The hosts stage's output: hosts in fixture order (invalid ones left out) and their indices.
pub(super) struct Placed {
    pub(super) hosts: Vec<Host>,
    pub(super) host_by_addr: BTreeMap<IpAddr, usize>,
    pub(super) host_by_public: BTreeMap<IpAddr, usize>,
    pub(super) asg_members: BTreeMap<String, Vec<IpAddr>>,
}

impl Builder<'_> {
    /// Every host with a valid address, placed in its subnet, and the members of each ASG.
    pub(super) fn hosts(
        &mut self,
        vnets: &[Vnet],
        nsgs: &[Nsg],
        known_asgs: &BTreeSet<String>,
    ) -> Placed {
        let fx = self.fx;
        self.dup_names("hosts", fx.hosts.iter().map(|h| h.name.as_str()));
        let mut hosts = Vec::new();
        let mut host_by_addr: BTreeMap<IpAddr, usize> = BTreeMap::new();
        let mut host_by_public: BTreeMap<IpAddr, usize> = BTreeMap::new();
        let mut dns_owner: BTreeMap<String, String> = BTreeMap::new();
        for (index, h) in fx.hosts.iter().enumerate() {
            let hpath = Entry::new(format!("hosts/{}", h.name), format!("/hosts/{index}"));
            if let Some(ptr) = parse_unknown_marker(&h.address) {
                self.push(
                    FindingCode::UnknownAddress,
                    &hpath,
                    unknown_address_message("the host address", ptr),
                );
                continue;
            }
            let Ok(address) = h.address.trim().parse::<IpAddr>() else {
                self.push(
                    FindingCode::HostAddressInvalid,
                    &hpath,
                    format!("address `{}` is not an IPv4 or IPv6 address", h.address),
                );
                continue;
            };
            let public_address = self.host_public_address(h, &hpath);
            let placement = self.placement(vnets, address, h.subnet.as_deref(), &hpath);
            if h.kind == HostKind::PrivateEndpoint {
                if let Some((vi, si)) = placement {
                    let subnet = &vnets[vi].subnets[si];
                    let nsgs_present = h.nsg.is_some() || subnet.nsg.is_some();
                    if nsgs_present && !subnet.private_endpoint_network_policies.nsg_applies() {
                        self.push(FindingCode::PrivateEndpointNsgInert, &hpath, format!(
                            "inbound NSG rules do not filter traffic to this private endpoint: subnet `{}` has private_endpoint_network_policies = {} (set Enabled or NetworkSecurityGroupEnabled to apply them)",
                            subnet.name, subnet.private_endpoint_network_policies
                        ));
                    }
                }
            }
            if let Some(prev) = host_by_addr.get(&address) {
                let prev_name: &String = &fx.hosts[*prev].name;
                self.push(
                    FindingCode::HostAddressDuplicate,
                    &hpath,
                    format!("{address} is already used by host `{prev_name}`"),
                );
            }
            let nsg = self.nsg_ref(nsgs, &h.nsg, &hpath);
            let dns = self.host_dns(h, &hpath, &mut dns_owner);
            let services = self.services(h, &hpath);
            let idx = hosts.len();
            host_by_addr.entry(address).or_insert(idx);
            if let Some(p) = public_address {
                host_by_public.entry(p).or_insert(idx);
            }
            hosts.push(Host {
                name: h.name.clone(),
                address,
                public_address,
                nsg,
                asgs: h
                    .application_security_groups
                    .iter()
                    .map(|a| a.to_ascii_lowercase())
                    .collect(),
                dns,
                kind: h.kind,
                services,
                placement,
                index,
                ip_forwarding: h.ip_forwarding,
                private_link_fqdn: h.private_link_fqdn.as_deref().map(normalize_dns),
                public_access_disabled: h.public_network_access
                    == Some(crate::fixture::PublicNetworkAccess::Disabled),
            });
        }
        let mut asg_members: BTreeMap<String, Vec<IpAddr>> =
            known_asgs.iter().map(|a| (a.clone(), Vec::new())).collect();
        for h in &hosts {
            for a in &h.asgs {
                asg_members.entry(a.clone()).or_default().push(h.address);
            }
        }
        Placed {
            hosts,
            host_by_addr,
            host_by_public,
            asg_members,
        }
    }

    /// A host's public address, when given and public.
    fn host_public_address(&mut self, h: &HostFile, hpath: &Entry) -> Option<IpAddr> {
        match &h.public_address {
            None => None,
            Some(p) => match p.trim().parse::<IpAddr>() {
                Ok(ip) if crate::cidr::is_public(ip) => Some(ip),
                Ok(ip) => {
                    self.push(
                        FindingCode::HostAddressInvalid,
                        hpath,
                        format!("public_address {ip} is not a public address"),
                    );
                    None
                }
                Err(_) => {
                    self.push(
                        FindingCode::HostAddressInvalid,
                        hpath,
                        format!("public_address `{p}` is not an IP address"),
                    );
                    None
                }
            },
        }
    }

    /// `(vnet, subnet)` of the host: the declared `subnet` ("vnet/subnet"), which must hold
    /// the address, or else the one subnet whose prefixes hold it. VNets that are not peered may
    /// legally overlap ("You can link a virtual network to other virtual networks … as long as
    /// the CIDR blocks don't overlap", VNet FAQ), so an address may lie in several subnets: then
    /// the host is not placed silently but `HOST_PLACEMENT_AMBIGUOUS` asks for `subnet`.
    fn placement(
        &mut self,
        vnets: &[Vnet],
        address: IpAddr,
        declared: Option<&str>,
        hpath: &Entry,
    ) -> Option<(usize, usize)> {
        let holding: Vec<(usize, usize)> = vnets
            .iter()
            .enumerate()
            .flat_map(|(vi, v)| {
                v.subnets
                    .iter()
                    .enumerate()
                    .filter(move |(_, s)| s.prefixes.iter().any(|p| p.contains(address)))
                    .map(move |(si, _)| (vi, si))
            })
            .collect();
        let chosen = if let Some(d) = declared {
            let (vi, si) = self.declared_subnet(vnets, d, hpath)?;
            if !holding.contains(&(vi, si)) {
                if vnets[vi].subnets[si].prefixes.is_empty() {
                    // Its prefix was rejected: that finding is the root cause.
                    return None;
                }
                self.push(
                    FindingCode::HostNotInSubnet,
                    hpath,
                    format!(
                        "{address} is not in its declared subnet `{d}` ({})",
                        prefix_list(&vnets[vi].subnets[si].prefixes)
                    ),
                );
                return None;
            }
            (vi, si)
        } else {
            match holding.as_slice() {
                [] => {
                    // A VNet whose subnet prefix was rejected: that finding is the root cause,
                    // the host being "in no subnet" only its consequence.
                    if let Some((_, v)) = vnets
                        .iter()
                        .enumerate()
                        .filter(|(vi, _)| !self.broken_subnets.contains(vi))
                        .find(|(_, v)| v.address_space.iter().any(|p| p.contains(address)))
                    {
                        self.push(
                            FindingCode::HostNotInSubnet,
                            hpath,
                            format!(
                                "{address} is in the address space of `{}` but in none of its subnets",
                                v.name
                            ),
                        );
                    }
                    return None;
                }
                [one] => *one,
                several => {
                    let names: Vec<String> = several
                        .iter()
                        .map(|&(vi, si)| {
                            format!("`{}/{}`", vnets[vi].name, vnets[vi].subnets[si].name)
                        })
                        .collect();
                    self.push(
                        FindingCode::HostPlacementAmbiguous,
                        hpath,
                        format!("{address} lies in several subnets ({}) of VNets that overlap; say which with subnet = \"vnet/subnet\"", names.join(", ")),
                    );
                    return None;
                }
            }
        };
        let (vi, si) = chosen;
        let subnet = &vnets[vi].subnets[si];
        if subnet.reserved_role(address).is_some() {
            let prefix = subnet
                .prefix_of(address)
                .expect("the subnet holds the address");
            self.push(FindingCode::HostAddressReserved, hpath, format!("{address} is one of the five addresses Azure reserves in {prefix} (the first four and the last)"));
        }
        Some(chosen)
    }

    /// The subnet a host's `subnet = "vnet/subnet"` names.
    fn declared_subnet(
        &mut self,
        vnets: &[Vnet],
        declared: &str,
        hpath: &Entry,
    ) -> Option<(usize, usize)> {
        let Some((vn, sn)) = declared.split_once('/') else {
            self.push(
                FindingCode::ReferenceUnknown,
                hpath,
                format!("subnet `{declared}` is not of the form vnet/subnet"),
            );
            return None;
        };
        let Some((vi, v)) = find_ci(vnets, vn.trim(), |v| &v.name) else {
            self.push(
                FindingCode::ReferenceUnknown,
                hpath,
                format!(
                    "subnet `{declared}`: no VNet `{vn}`{}",
                    did_you_mean(vn, vnets.iter().map(|v| v.name.as_str()))
                ),
            );
            return None;
        };
        let Some((si, _)) = find_ci(&v.subnets, sn.trim(), |s| &s.name) else {
            self.push(
                FindingCode::ReferenceUnknown,
                hpath,
                format!(
                    "subnet `{declared}`: VNet `{}` has no subnet `{sn}`{}",
                    v.name,
                    did_you_mean(sn, v.subnets.iter().map(|s| s.name.as_str()))
                ),
            );
            return None;
        };
        Some((vi, si))
    }

    /// A host's valid DNS names (normalised), each claimed in `dns_owner` by at most one host.
    fn host_dns(
        &mut self,
        h: &HostFile,
        hpath: &Entry,
        dns_owner: &mut BTreeMap<String, String>,
    ) -> Vec<String> {
        let mut dns = Vec::new();
        for d in &h.dns {
            let n = normalize_dns(d);
            if !valid_dns_name(&n) {
                self.push(
                    FindingCode::DnsNameInvalid,
                    hpath,
                    format!("`{d}` is not a valid DNS name"),
                );
                continue;
            }
            if let Some(owner) = dns_owner.get(&n) {
                self.push(
                    FindingCode::DnsNameInvalid,
                    hpath,
                    format!("DNS name `{d}` already belongs to host `{owner}`"),
                );
                continue;
            }
            dns_owner.insert(n.clone(), h.name.clone());
            dns.push(n);
        }
        dns
    }

    /// A host's valid services: one per port, served by a built-in backend or a loopback upstream.
    fn services(&mut self, h: &HostFile, hpath: &Entry) -> Vec<Service> {
        let fx = self.fx;
        let mut services = Vec::new();
        let mut ports = BTreeSet::new();
        for (k, s) in h.services.iter().enumerate() {
            let spath = hpath.child(
                format_args!("services/{}", s.port),
                format_args!("services/{k}"),
            );
            if !ports.insert(s.port) {
                self.push(
                    FindingCode::ServicePortDuplicate,
                    &spath,
                    format!("port {} is declared twice", s.port),
                );
                continue;
            }
            // `http://127.0.0.1:N` is a server that speaks plain HTTP whatever `tls` says (a
            // test double such as wiremock); `https://` or a bare socket follows `tls`.
            let (upstream_plain, upstream_text) = match s.upstream.as_deref().map(str::trim) {
                Some(u)
                    if u.get(..7)
                        .is_some_and(|p| p.eq_ignore_ascii_case("http://")) =>
                {
                    (true, Some(u[7..].trim_end_matches('/')))
                }
                Some(u)
                    if u.get(..8)
                        .is_some_and(|p| p.eq_ignore_ascii_case("https://")) =>
                {
                    (false, Some(u[8..].trim_end_matches('/')))
                }
                other => (false, other),
            };
            let upstream = match (&s.serve, upstream_text) {
                (Some(_), None) => None,
                (None, Some(u)) => match u.parse::<SocketAddr>() {
                    Ok(sa)
                        if sa.ip().is_loopback()
                            || fx
                                .gateway
                                .as_ref()
                                .is_some_and(|g| g.allow_non_loopback_upstreams) =>
                    {
                        Some(sa)
                    }
                    Ok(sa) => {
                        self.push(FindingCode::ServiceUpstreamNotLoopback, &spath, format!("upstream {sa} is not a loopback socket; the gateway only dials loopback unless [gateway] allow_non_loopback_upstreams = true"));
                        continue;
                    }
                    Err(_) => {
                        self.push(
                            FindingCode::ServiceInvalid,
                            &spath,
                            format!("upstream `{u}` is not a socket address like 127.0.0.1:9443 (or http://127.0.0.1:9080 for a plain-HTTP server)"),
                        );
                        continue;
                    }
                },
                (None, None) => {
                    self.push(FindingCode::ServiceInvalid, &spath, "give `serve = \"echo\"` or `upstream = \"127.0.0.1:PORT\"` (a harness can also bind it at start)");
                    None
                }
                (Some(_), Some(_)) => {
                    self.push(
                        FindingCode::ServiceInvalid,
                        &spath,
                        "give either `serve` or `upstream`, not both",
                    );
                    continue;
                }
            };
            services.push(Service {
                port: s.port,
                tls: s.tls,
                serve: s.serve,
                upstream,
                upstream_plain: upstream_plain && upstream.is_some(),
            });
        }
        services
    }
}
