//! Build stage: route tables, NAT gateways and Azure Firewalls, their associations with
//! subnets, and each subnet's effective routes ([`crate::route`]). Runs after the hosts stage:
//! private endpoints add /32 routes, and application rules match the addresses of hosts whose
//! DNS names match their FQDNs.

use std::net::IpAddr;

use super::{unknown_address_message, Builder, Entry};
use crate::cidr::{AddrSet, Cidr};
use crate::finding::FindingCode;
use crate::firewall::{self, Firewall, FirewallCollection, FirewallGroup, FirewallRule};
use crate::fixture::{
    CollectionKind, FirewallFile, FirewallRuleFile, HostKind, NextHopType, PrivateEndpointPolicies,
};
use crate::nsg::{parse_unknown_marker, Nsg};
use crate::proto::{PortSet, Protocol};
use crate::route::{
    known_services, resolve_service_endpoint, system_routes, EffectiveRoute, EndpointError,
    NextHop, RouteInputs, SubnetRoutes,
};
use crate::topology::{find_ci, Host, NatGateway, RouteTable, Vnet};

/// Service tags Azure refuses as a route's address prefix (service tags overview: "not
/// supported in user-defined routes").
const TAGS_NOT_IN_UDRS: &[&str] = &[
    "VirtualNetwork",
    "AzureLoadBalancer",
    "Internet",
    "AzurePlatformDNS",
    "AzurePlatformIMDS",
    "AzurePlatformLKM",
];

/// The routing stage's output.
pub(super) struct Routing {
    pub(super) route_tables: Vec<RouteTable>,
    pub(super) nat_gateways: Vec<NatGateway>,
    pub(super) firewalls: Vec<Firewall>,
    pub(super) routes: Vec<Vec<SubnetRoutes>>,
}

/// A user route ready to be placed: prefixes, next hop, name, (table, route), from a tag.
type UserRoute = (Vec<Cidr>, NextHop, String, (usize, usize), bool);

impl Builder<'_> {
    /// Route tables, NAT gateways and firewalls, associated with their subnets, and every
    /// subnet's effective routes.
    pub(super) fn routing(&mut self, vnets: &mut [Vnet], hosts: &[Host], _nsgs: &[Nsg]) -> Routing {
        let fx = self.fx;
        self.dup_names(
            "route_tables",
            fx.route_tables.iter().map(|t| t.name.as_str()),
        );
        self.dup_names(
            "nat_gateways",
            fx.nat_gateways.iter().map(|n| n.name.as_str()),
        );
        self.dup_names("firewalls", fx.firewalls.iter().map(|f| f.name.as_str()));
        let route_tables: Vec<RouteTable> = fx
            .route_tables
            .iter()
            .map(|t| RouteTable {
                name: t.name.clone(),
                disable_bgp_route_propagation: t.disable_bgp_route_propagation,
            })
            .collect();
        let user: Vec<Vec<UserRoute>> = (0..fx.route_tables.len())
            .map(|t| self.user_routes(t))
            .collect();
        let nat_gateways = self.nat_gateways();
        self.associate(vnets, &route_tables, &nat_gateways);
        let firewalls: Vec<Firewall> = fx
            .firewalls
            .iter()
            .enumerate()
            .filter_map(|(i, f)| self.firewall(i, f, vnets, hosts))
            .collect();
        let routes = vnets
            .iter()
            .enumerate()
            .map(|(vi, v)| {
                (0..v.subnets.len())
                    .map(|si| subnet_routes(vnets, hosts, &route_tables, &user, vi, si))
                    .collect()
            })
            .collect();
        Routing {
            route_tables,
            nat_gateways,
            firewalls,
            routes,
        }
    }

    /// The valid public addresses of a NAT gateway or firewall; an imported address Azure
    /// allocates at deployment is `UNKNOWN_ADDRESS`, a malformed one `HOST_ADDRESS_INVALID`.
    fn public_addresses(&mut self, list: &[String], at: &Entry) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for a in list {
            if let Some(ptr) = parse_unknown_marker(a) {
                self.push(
                    FindingCode::UnknownAddress,
                    at,
                    unknown_address_message("a public address", ptr),
                );
                continue;
            }
            match a.trim().parse::<IpAddr>() {
                Ok(ip) => out.push(ip),
                Err(_) => self.push(
                    FindingCode::HostAddressInvalid,
                    at,
                    format!("public address `{a}` is not an IPv4 or IPv6 address"),
                ),
            }
        }
        out
    }

    /// The valid routes of route table `t`.
    fn user_routes(&mut self, t: usize) -> Vec<UserRoute> {
        let table = &self.fx.route_tables[t];
        let mut out = Vec::new();
        for (k, r) in table.routes.iter().enumerate() {
            let at = Entry::new(
                format!("route_tables/{}/routes/{}", table.name, r.name),
                format!("/route_tables/{t}/routes/{k}"),
            );
            let next_hop = match (r.next_hop_type, &r.next_hop_ip_address) {
                (NextHopType::VirtualAppliance, None) => {
                    // ARM: MissingNextHopIpAddress.
                    self.push(FindingCode::RouteNextHopAddressMissing, &at, "next_hop_type VirtualAppliance needs next_hop_ip_address (ARM refuses the route: MissingNextHopIpAddress)");
                    continue;
                }
                (NextHopType::VirtualAppliance, Some(a)) => match a.trim().parse::<IpAddr>() {
                    Ok(ip) => NextHop::VirtualAppliance(ip),
                    Err(_) => {
                        self.push(
                            FindingCode::RouteInvalid,
                            &at,
                            format!("next_hop_ip_address `{a}` is not an IPv4 or IPv6 address"),
                        );
                        continue;
                    }
                },
                (other, Some(a)) => {
                    self.push(FindingCode::RouteInvalid, &at, format!("next_hop_ip_address `{a}` is given for next_hop_type {other}: \"Next hop values are only allowed in routes where the next hop type is VirtualAppliance\""));
                    continue;
                }
                (NextHopType::VirtualNetworkGateway, None) => NextHop::VirtualNetworkGateway,
                (NextHopType::VnetLocal, None) => NextHop::VnetLocal,
                (NextHopType::Internet, None) => NextHop::Internet,
                (NextHopType::None, None) => NextHop::None,
            };
            let p = r.address_prefix.trim();
            let (prefixes, from_tag) = match p.parse::<Cidr>() {
                Ok(c) => (vec![c], false),
                Err(e) => {
                    if TAGS_NOT_IN_UDRS.iter().any(|x| x.eq_ignore_ascii_case(p)) {
                        self.push(FindingCode::RouteInvalid, &at, format!("service tag `{p}` cannot be a route's address prefix (not supported in user-defined routes)"));
                        continue;
                    }
                    match self.tags.get(p) {
                        Some(tag) => (tag.prefixes.clone(), true),
                        None => {
                            self.push(FindingCode::RouteInvalid, &at, format!("address_prefix `{p}` is neither a prefix ({e}) nor a service tag of the table in use"));
                            continue;
                        }
                    }
                }
            };
            out.push((prefixes, next_hop, r.name.clone(), (t, k), from_tag));
        }
        out
    }

    fn nat_gateways(&mut self) -> Vec<NatGateway> {
        let fx = self.fx;
        let mut out = Vec::new();
        for (i, n) in fx.nat_gateways.iter().enumerate() {
            let at = Entry::new(
                format!("nat_gateways/{}", n.name),
                format!("/nat_gateways/{i}"),
            );
            let public_addresses = self.public_addresses(&n.public_addresses, &at);
            out.push(NatGateway {
                name: n.name.clone(),
                public_addresses,
            });
        }
        out
    }

    /// Each subnet's `route_table`, `nat_gateway` and `service_endpoints`.
    fn associate(&mut self, vnets: &mut [Vnet], tables: &[RouteTable], nats: &[NatGateway]) {
        let fx = self.fx;
        for (vi, v) in vnets.iter_mut().enumerate() {
            for s in &mut v.subnets {
                let file = &fx.vnets[vi].subnets[s.index];
                let at = Entry::new(
                    format!("vnets/{}/subnets/{}", v.name, s.name),
                    format!("/vnets/{vi}/subnets/{}", s.index),
                );
                if let Some(t) = &file.route_table {
                    s.route_table = find_ci(tables, t, |x| &x.name).map(|(i, _)| i);
                    if s.route_table.is_none() {
                        self.push(
                            FindingCode::ReferenceUnknown,
                            &at,
                            format!("route table `{t}` is not defined in [[route_tables]]"),
                        );
                    }
                }
                if let Some(n) = &file.nat_gateway {
                    s.nat_gateway = find_ci(nats, n, |x| &x.name).map(|(i, _)| i);
                    if s.nat_gateway.is_none() {
                        self.push(
                            FindingCode::ReferenceUnknown,
                            &at,
                            format!("NAT gateway `{n}` is not defined in [[nat_gateways]]"),
                        );
                    }
                }
                for (k, e) in file.service_endpoints.iter().enumerate() {
                    let eat = at.child(
                        format_args!("serviceEndpoints/{}", e.service),
                        format_args!("service_endpoints/{k}"),
                    );
                    let (resolved, err) = resolve_service_endpoint(
                        &self.tags,
                        &e.service,
                        e.locations.as_deref(),
                        &v.region,
                    );
                    match err {
                        None => {}
                        Some(EndpointError::UnknownService) => self.push(
                            FindingCode::ServiceEndpointServiceUnknown,
                            &eat,
                            format!(
                                "`{}` is not a service with virtual network service endpoints (known: {})",
                                e.service,
                                known_services().collect::<Vec<_>>().join(", ")
                            ),
                        ),
                        Some(EndpointError::UnknownLocations(locs)) => self.push(
                            FindingCode::ServiceEndpointLocationUnknown,
                            &eat,
                            format!(
                                "location(s) {} of `{}`: neither `*` nor a region where the service tag table in use has prefixes of the service",
                                locs.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", "),
                                e.service
                            ),
                        ),
                    }
                    if let Some(r) = resolved {
                        s.service_endpoints.push(r);
                    }
                }
            }
        }
    }

    /// A firewall, or `None` (with findings) when it cannot be placed.
    fn firewall(
        &mut self,
        i: usize,
        f: &FirewallFile,
        vnets: &[Vnet],
        hosts: &[Host],
    ) -> Option<Firewall> {
        let at = Entry::new(format!("firewalls/{}", f.name), format!("/firewalls/{i}"));
        let Some((vn, sn)) = f.subnet.split_once('/') else {
            self.push(
                FindingCode::ReferenceUnknown,
                &at,
                format!(
                    "subnet `{}` must be written `vnet/AzureFirewallSubnet`",
                    f.subnet
                ),
            );
            return None;
        };
        let Some((vi, si)) = find_ci(vnets, vn, |v| &v.name)
            .and_then(|(vi, v)| find_ci(&v.subnets, sn, |s| &s.name).map(|(si, _)| (vi, si)))
        else {
            self.push(
                FindingCode::ReferenceUnknown,
                &at,
                format!("subnet `{}` is not a subnet of the topology", f.subnet),
            );
            return None;
        };
        let subnet = &vnets[vi].subnets[si];
        // Azure Firewall FAQ: the firewall lives in a subnet named AzureFirewallSubnet, at least /26.
        if subnet.name != "AzureFirewallSubnet" {
            self.push(FindingCode::FirewallSubnetInvalid, &at, format!("an Azure Firewall is deployed in a subnet named exactly `AzureFirewallSubnet`, not `{}`", subnet.name));
        }
        if let Some(p) = subnet
            .prefixes
            .iter()
            .find(|p| p.is_ipv4() && p.prefix_len() > 26)
        {
            self.push(FindingCode::FirewallSubnetTooSmall, &at, format!("AzureFirewallSubnet {p} is smaller than /26 (Azure Firewall FAQ: \"Why does Azure Firewall need a /26 subnet size?\")"));
        }
        if subnet.nsg.is_some() {
            self.push(FindingCode::FirewallSubnetNsg, &at, format!("subnet `{}` has an NSG: NSGs are not applied on AzureFirewallSubnet (Azure Firewall FAQ), its rules do not filter the firewall's traffic", f.subnet));
        }
        let Ok(private_address) = f.private_address.trim().parse::<IpAddr>() else {
            self.push(
                FindingCode::HostAddressInvalid,
                &at,
                format!(
                    "private_address `{}` is not an IPv4 or IPv6 address",
                    f.private_address
                ),
            );
            return None;
        };
        let Some(prefix) = subnet.prefix_of(private_address) else {
            self.push(
                FindingCode::FirewallSubnetInvalid,
                &at,
                format!(
                    "private_address {private_address} is not in subnet `{}`",
                    f.subnet
                ),
            );
            return None;
        };
        let public_addresses = self.public_addresses(&f.public_addresses, &at);
        let mut ranges = Vec::new();
        for r in f
            .private_ranges
            .clone()
            .unwrap_or_else(|| vec!["IANAPrivateRanges".into()])
        {
            if r.trim().eq_ignore_ascii_case("IANAPrivateRanges") {
                ranges.extend(firewall::iana_private_ranges());
            } else {
                match Cidr::parse_address_or_prefix(&r) {
                    Ok(c) => ranges.push(c),
                    Err(e) => self.push(
                        FindingCode::FirewallRuleInvalid,
                        &at,
                        format!("private_ranges: {e}"),
                    ),
                }
            }
        }
        let mut groups = Vec::new();
        for (gi, g) in f.rule_collection_groups.iter().enumerate() {
            let gat = at.child(
                format_args!("ruleCollectionGroups/{}", g.name),
                format_args!("rule_collection_groups/{gi}"),
            );
            if !(100..=65_000).contains(&g.priority) {
                self.push(
                    FindingCode::FirewallRuleInvalid,
                    &gat,
                    format!("priority {} is outside 100–65000", g.priority),
                );
            }
            let mut collections = Vec::new();
            for (ci, c) in g.rule_collections.iter().enumerate() {
                let cat = gat.child(
                    format_args!("ruleCollections/{}", c.name),
                    format_args!("rule_collections/{ci}"),
                );
                if !(100..=65_000).contains(&c.priority) {
                    self.push(
                        FindingCode::FirewallRuleInvalid,
                        &cat,
                        format!("priority {} is outside 100–65000", c.priority),
                    );
                }
                let mut rules = Vec::new();
                for (ri, r) in c.rules.iter().enumerate() {
                    let rat =
                        cat.child(format_args!("rules/{}", r.name), format_args!("rules/{ri}"));
                    if let Some(mut rule) = self.firewall_rule(c.kind, r, &rat, hosts) {
                        if c.kind == CollectionKind::Dnat {
                            rule.translation = self.dnat_rule(r, &public_addresses, &rat);
                            if rule.translation.is_none() {
                                continue;
                            }
                        }
                        rules.push(rule);
                    }
                }
                collections.push(FirewallCollection {
                    name: c.name.clone(),
                    priority: c.priority,
                    kind: c.kind,
                    action: c.action,
                    rules,
                });
            }
            groups.push(FirewallGroup {
                name: g.name.clone(),
                priority: g.priority,
                collections,
            });
        }
        let mut fw = Firewall {
            name: f.name.clone(),
            placement: (vi, si),
            private_address,
            public_addresses,
            instance_address: firewall::next_usable(prefix, private_address)
                .unwrap_or(private_address),
            private_ranges: AddrSet::from_cidrs(ranges),
            groups,
            order: Vec::new(),
            dnat_order: Vec::new(),
            index: None,
        };
        fw.order_rules();
        Some(fw)
    }

    /// A DNAT rule's translation, checked: TCP/UDP only, one of `translated_address` and
    /// `translated_fqdn`, a `translated_port` ("New-AzFirewallPolicyNatRule": `-TranslatedPort`
    /// is mandatory). Destinations that are not a public address of the firewall are DNAT on a
    /// private address, not modelled: `FIREWALL_DNAT_NOT_MODELLED` (the rule still translates
    /// flows to the firewall's public addresses it lists). `None` when invalid (reported).
    fn dnat_rule(
        &mut self,
        r: &FirewallRuleFile,
        public: &[IpAddr],
        at: &Entry,
    ) -> Option<firewall::Translation> {
        let mut ok = true;
        for p in &r.protocols {
            if !["tcp", "udp"].contains(&p.trim().to_ascii_lowercase().as_str()) {
                self.push(FindingCode::FirewallRuleInvalid, at, format!("DNAT rule protocol `{p}`: a DNAT rule takes TCP or UDP (\"Filter inbound Internet or intranet traffic with Azure Firewall DNAT\")"));
                ok = false;
            }
        }
        let port = match r.translated_port.as_deref().map(str::trim) {
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    self.push(
                        FindingCode::FirewallRuleInvalid,
                        at,
                        format!("translated_port `{p}` is not a port (1–65535)"),
                    );
                    None
                }
            },
            None => {
                self.push(
                    FindingCode::FirewallRuleInvalid,
                    at,
                    "a DNAT rule needs translated_port",
                );
                None
            }
        };
        let address = match (&r.translated_address, &r.translated_fqdn) {
            (Some(a), None) => match a.trim().parse::<IpAddr>() {
                Ok(ip) => Some(Some(ip)),
                Err(_) => {
                    self.push(
                        FindingCode::FirewallRuleInvalid,
                        at,
                        format!("translated_address `{a}` is not an IPv4 or IPv6 address"),
                    );
                    None
                }
            },
            (None, Some(_)) => Some(None),
            _ => {
                self.push(
                    FindingCode::FirewallRuleInvalid,
                    at,
                    "a DNAT rule needs exactly one of translated_address and translated_fqdn",
                );
                None
            }
        };
        let elsewhere: Vec<&str> = r
            .destination_addresses
            .iter()
            .map(|d| d.trim())
            .filter(|d| *d != "*" && !d.parse::<IpAddr>().is_ok_and(|ip| public.contains(&ip)))
            .collect();
        if !elsewhere.is_empty() {
            self.push(FindingCode::FirewallDnatNotModelled, at, format!("DNAT on {} is not modelled: only a firewall's public addresses ({}) are translated; flows to the other destinations never match this rule", elsewhere.join(", "), if public.is_empty() { "none".to_string() } else { public.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ") }));
        }
        let (address, port) = (address?, port?);
        ok.then(|| firewall::Translation {
            address,
            fqdn: r.translated_fqdn.as_ref().map(|f| f.trim().to_string()),
            failure: None,
            port,
        })
    }

    fn firewall_rule(
        &mut self,
        kind: CollectionKind,
        r: &FirewallRuleFile,
        at: &Entry,
        hosts: &[Host],
    ) -> Option<FirewallRule> {
        let mut ok = true;
        let mut bad = |b: &mut Self, msg: String| {
            b.push(FindingCode::FirewallRuleInvalid, at, msg);
            ok = false;
        };
        let addresses = |b: &mut Self,
                         bad: &mut dyn FnMut(&mut Self, String),
                         items: &[String],
                         tags: bool|
         -> Option<AddrSet> {
            if items.is_empty() || items.iter().any(|x| x.trim() == "*") {
                return None;
            }
            let mut cidrs = Vec::new();
            for x in items {
                match Cidr::parse_address_or_prefix(x) {
                    Ok(c) => cidrs.push(c),
                    Err(e) => match b.tags.get(x.trim()).filter(|_| tags) {
                        Some(t) => cidrs.extend(t.prefixes.iter().copied()),
                        None => bad(
                            b,
                            format!(
                                "`{x}` is not an address, a prefix{}: {e}",
                                if tags { " or a service tag" } else { "" }
                            ),
                        ),
                    },
                }
            }
            Some(AddrSet::from_cidrs(cidrs))
        };
        let sources = addresses(self, &mut bad, &r.source_addresses, false);
        let (protocols, destinations, ports) = match kind {
            CollectionKind::Application => {
                let mut ports = Vec::new();
                for p in &r.protocols {
                    match firewall::application_protocol_port(p) {
                        Some(port) => ports.push(port.to_string()),
                        None => bad(self, format!("application rule protocol `{p}`: expected `Http:PORT`, `Https:PORT` or `Mssql:PORT`")),
                    }
                }
                if r.target_fqdns.is_empty() {
                    bad(self, "an application rule needs target_fqdns".to_string());
                }
                let destinations = if r.target_fqdns.iter().any(|f| f.trim() == "*") {
                    None
                } else {
                    let mut cidrs = Vec::new();
                    for h in hosts {
                        let named = r.target_fqdns.iter().any(|f| {
                            firewall::fqdn_matches(f, &h.name)
                                || h.dns.iter().any(|d| firewall::fqdn_matches(f, d))
                        });
                        if named {
                            cidrs.push(Cidr::host(h.address));
                            cidrs.extend(h.public_address.map(Cidr::host));
                        }
                    }
                    Some(AddrSet::from_cidrs(cidrs))
                };
                let ports = PortSet::parse_list(&ports).unwrap_or_else(|_| {
                    bad(
                        self,
                        "an application rule needs protocols (`Https:443`)".to_string(),
                    );
                    PortSet::any()
                });
                (Protocol::Tcp.bit(), destinations, ports)
            }
            CollectionKind::Network | CollectionKind::Dnat => {
                let mut mask = 0;
                for p in &r.protocols {
                    match firewall::network_protocol_mask(p) {
                        Some(m) => mask |= m,
                        None => bad(
                            self,
                            format!("network rule protocol `{p}`: expected TCP, UDP, ICMP or Any"),
                        ),
                    }
                }
                if r.protocols.is_empty() {
                    bad(self, "a network rule needs protocols".to_string());
                }
                let destinations = addresses(self, &mut bad, &r.destination_addresses, true);
                let ports = if r.destination_ports.is_empty() {
                    PortSet::any()
                } else {
                    PortSet::parse_list(&r.destination_ports).unwrap_or_else(|e| {
                        bad(self, format!("destination_ports: {e}"));
                        PortSet::any()
                    })
                };
                (mask, destinations, ports)
            }
        };
        ok.then(|| FirewallRule {
            name: r.name.clone(),
            fqdns: match kind {
                CollectionKind::Application => r.target_fqdns.clone(),
                _ => Vec::new(),
            },
            protocols,
            sources,
            destinations,
            ports,
            translation: None,
        })
    }
}

/// The effective routes of subnet `(vi, si)` (see [`crate::route`] for the inputs).
fn subnet_routes(
    vnets: &[Vnet],
    hosts: &[Host],
    tables: &[RouteTable],
    user: &[Vec<UserRoute>],
    vi: usize,
    si: usize,
) -> SubnetRoutes {
    let v = &vnets[vi];
    let peers: Vec<(usize, bool, &[Cidr])> = v
        .connected
        .iter()
        .map(|&pi| {
            let p = &vnets[pi];
            (
                pi,
                p.region.eq_ignore_ascii_case(&v.region),
                p.address_space.as_slice(),
            )
        })
        .collect();
    let system = system_routes(&v.address_space, &peers);
    let mut service_endpoints: Vec<Cidr> = v.subnets[si]
        .service_endpoints
        .iter()
        .flat_map(|e| e.prefixes.iter().copied())
        .collect();
    service_endpoints.sort_unstable();
    service_endpoints.dedup();
    let endpoints = hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| h.kind == HostKind::PrivateEndpoint)
        .filter_map(|(hi, h)| {
            let (pv, ps) = h.placement?;
            if pv != vi && !v.connected.contains(&pv) {
                return None;
            }
            let policies = vnets[pv].subnets[ps].private_endpoint_network_policies;
            let route_policies = matches!(
                policies,
                PrivateEndpointPolicies::Enabled | PrivateEndpointPolicies::RouteTableEnabled
            );
            let space_len = vnets[pv]
                .address_space
                .iter()
                .find(|p| p.contains(h.address))
                .map(Cidr::prefix_len);
            Some((
                EffectiveRoute::endpoint(h.address, hi),
                space_len.filter(|_| route_policies),
            ))
        })
        .collect();
    let table = v.subnets[si].route_table;
    let bgp = match table {
        Some(t) if tables[t].disable_bgp_route_propagation => Vec::new(),
        _ => v.bgp_routes.clone(),
    };
    let user = table.map_or_else(Vec::new, |t| {
        user[t]
            .iter()
            .flat_map(|(prefixes, hop, name, at, tag)| {
                prefixes
                    .iter()
                    .map(|p| EffectiveRoute::user_route(*p, *hop, name, *at, *tag))
            })
            .collect()
    });
    SubnetRoutes::build(RouteInputs {
        system,
        service_endpoints,
        endpoints,
        bgp,
        user,
    })
}

/// Widens each VNet's `VirtualNetwork` tag as Azure defines it (service tags overview): "The
/// virtual network address space (all IP address ranges defined for the virtual network), all
/// connected on-premises address spaces, peered virtual networks, virtual networks connected to
/// a virtual network gateway, the virtual IP address of the host, and address prefixes used on
/// user-defined routes. This tag might also contain default routes."
/// (<https://learn.microsoft.com/azure/virtual-network/service-tags-overview#available-service-tags>).
/// The VNet and its connected peers are already in the tag (network stage); this adds the
/// VNet's BGP prefixes (its connected on-premises address spaces) and the prefix of every
/// user-defined route on its subnets — a `0.0.0.0/0` route included, so the default
/// `AllowVnetInBound` / `AllowVnetOutBound` rules then match every address, as in Azure
/// (`ASSUMPTION_VIRTUAL_NETWORK_TAG_SCOPE`). The host's virtual IP stays out
/// (`ASSUMPTION_HOST_VIP_TAGS`), and the `Internet` tag keeps excluding only the VNet and its
/// peers (`Vnet::connected_space`).
pub(super) fn widen_virtual_network_tags(vnets: &mut [Vnet], routes: &[Vec<SubnetRoutes>]) {
    for (v, subnets) in vnets.iter_mut().zip(routes) {
        let mut extra: Vec<Cidr> = v.bgp_routes.clone();
        for r in subnets.iter().flat_map(|s| &s.routes) {
            if r.source == crate::route::RouteSource::User {
                extra.push(r.prefix);
            }
        }
        extra.sort_unstable();
        extra.dedup();
        extra.retain(|c| !v.virtual_network_tag.contains(c));
        v.virtual_network_tag.extend(extra);
    }
}

/// Resolves each DNAT rule's `translated_fqdn` from its firewall's VNet, with the one resolver
/// (`Topology::lookup`): Azure Firewall resolves the FQDN with the DNS its VNet uses ("Azure
/// Firewall DNS settings": "By default, Azure Firewall uses Azure DNS"). Runs once the topology
/// (its zones and hosts) is built; a name that does not resolve keeps `address: None` and its
/// reason, and a flow the rule translates is `DNS_FAILURE`.
pub(super) fn resolve_dnat_fqdns(t: &mut crate::topology::Topology) {
    let mut answers = Vec::new();
    for (fi, fw) in t.firewalls.iter().enumerate() {
        let from = crate::dns::ResolveFrom::Vnet(fw.placement.0);
        for (gi, g) in fw.groups.iter().enumerate() {
            for (ci, c) in g.collections.iter().enumerate() {
                for (ri, r) in c.rules.iter().enumerate() {
                    let Some(name) = r.translation.as_ref().and_then(|x| x.fqdn.as_ref()) else {
                        continue;
                    };
                    let resolved = t.lookup(name, from);
                    answers.push(((fi, gi, ci, ri), resolved.address, resolved.failure));
                }
            }
        }
    }
    for ((fi, gi, ci, ri), address, failure) in answers {
        let rule = &mut t.firewalls[fi].groups[gi].collections[ci].rules[ri];
        if let Some(x) = rule.translation.as_mut() {
            x.address = address;
            x.failure = if address.is_none() {
                Some(failure.unwrap_or_else(|| "the name does not resolve".into()))
            } else {
                None
            };
        }
    }
}
