//! THE SEAM: every set of values the flow walk (`flow/walk.rs`) tests a flow against.
//!
//! The space engine never decides a flow itself: it splits the flow space into cells inside
//! which no such test can change, and asks the walk for one representative flow per cell. That
//! is exact only if every address, port and source-port set the walk compares a flow with is
//! listed here — the contract: **the walk's outcome depends on a destination only through its
//! membership in these address sets, and on ports only through these port sets**.
//!
//! **If the walk decides on a new input, add its sets here** — an address set (route table
//! prefixes, firewall rule prefixes, platform addresses) in [`Boundaries::addresses`], a port or
//! source-port set ([`PlatformPorts`]), a rule list ([`RuleList`]), an address the walk
//! translates ([`Boundaries::aliased`]) — as one more concern in [`collect`]. A missing set is
//! caught by the property tests in `sim/tests/space.rs` (a random flow whose `check` outcome
//! differs from its class's).
//!
//! Concerns, one function each:
//! * topology — VNet address spaces, subnet prefixes and each of their reserved addresses,
//!   hosts' private and public addresses (public ones are aliased), the APIM instance's
//!   addresses;
//! * internet — private, special-purpose, multicast and broadcast ranges (`cidr::is_public`);
//! * nsg — every NSG rule (of every NSG, in every VNet context it is compiled for, both
//!   directions) that can see the source, with the known part of destinations only known at
//!   deployment time;
//! * platform — the ports the platform blocks within VNets (UDP source ports 65330 and 68,
//!   destination port 67), and the platform addresses and ports the walk exempts or routes
//!   apart (168.63.129.16, 169.254.169.254, the KMS hosts; DNS 53, WireServer 80/32526,
//!   IMDS 80, KMS 1688);
//! * routing — every prefix of every subnet's effective routes (system, peering, private
//!   endpoint `/32`s, service endpoint prefixes, BGP, user-defined; the walk looks routes up
//!   towards the destination and, for the return path, towards the source) and their next-hop
//!   addresses; each Azure
//!   Firewall's addresses, its rules' source and destination sets (application rules' FQDNs
//!   resolved to addresses, `ASSUMPTION_FIREWALL_FQDN_BY_ADDRESS`), destination ports and the
//!   ranges it does not SNAT; NAT gateways' addresses; the RFC 1918 ranges that
//!   `outbound_route_all = false` keeps in the subnet. Where a flow's source can be translated
//!   (a firewall's SNAT, a NAT gateway, platform egress), the NSGs after the translation see
//!   another source than the anchor: every rule then cuts the space (as for an aliased
//!   destination);
//! * dnat — each firewall's public addresses are destinations the walk translates (aliased:
//!   the translated destination's NSGs see another address and port), and each DNAT rule's
//!   translated address is an address set of its own; the rules' sources, destinations and
//!   ports are listed with the firewall's other rules (routing).

use std::net::IpAddr;

use crate::cidr::{private_ranges, special_ranges, AddrSet, Cidr};
use crate::nsg::RuleSets;
use crate::proto::{Direction, Protocol};
use crate::topology::Topology;

use super::Anchor;

/// One NSG rule list (one compiled NSG, one direction) in evaluation order, reduced to the rules
/// that can see the anchor (see [`collect`]).
pub(crate) struct RuleList<'t> {
    /// The rules, in evaluation order.
    pub rules: Vec<Rule<'t>>,
}

/// One rule of a [`RuleList`].
pub(crate) struct Rule<'t> {
    /// The compiled sets.
    pub sets: RuleSets<'t>,
    /// The rule has a field only known at deployment time: the walk may look past it.
    pub unknown: bool,
}

impl Rule<'_> {
    /// Whether the rule matches every flow of `p` to the addresses it covers (so rules after it
    /// in its list cannot decide such flows).
    pub fn catch_all(&self, p: Protocol) -> bool {
        !self.unknown
            && self.sets.proto & p.bit() != 0
            && self.sets.sport.is_any()
            && self.sets.dport.is_any()
    }
}

/// Port sets the platform tests flows of one protocol against, whatever the rules say.
#[derive(Clone, Debug, Default)]
pub(crate) struct PlatformPorts {
    /// Destination port sets.
    pub destination: Vec<Vec<(u32, u32)>>,
    /// Source port sets.
    pub source: Vec<Vec<(u32, u32)>>,
}

/// The boundaries of one source's flow space in one topology.
///
/// Each entry of `addresses` is one set the walk tests destinations against (sorted, disjoint
/// ranges of one family, IPv4 in the low 32 bits); the rule lists carry the rules' destination
/// sets. The engine relies on this contract: **the walk's outcome depends on a destination
/// address only through its membership in these sets** (and likewise on ports through the
/// rules' and [`PlatformPorts`]' port sets).
pub(crate) struct Boundaries<'t> {
    /// Destination address sets.
    pub addresses: Vec<Vec<(u128, u128)>>,
    /// The rule lists that can decide the source's flows.
    pub lists: Vec<RuleList<'t>>,
    /// Per-protocol port boundaries from outside the rules (index: `Protocol as usize`).
    pub platform: [PlatformPorts; 5],
    /// Destination addresses the walk translates before the inbound NSGs see them (a host's
    /// public address → its private address): each must also be an address set of its own.
    /// Their flows are cut by every rule's ports, not only the active rules'.
    pub aliased: Vec<u128>,
    /// The anchor is a destination the walk translates, or the topology translates sources
    /// (SNAT, NAT gateway, platform egress): every flow is cut by every rule's ports (the rule
    /// lists then hold every rule, whatever its addresses).
    pub aliased_anchor: bool,
}

/// Collects the sets of `anchor`'s flows (from a source to every destination, or from every
/// source into a destination) of family `v6` in `t`; the address sets are of the other end.
pub(crate) fn collect(t: &Topology, anchor: Anchor, v6: bool) -> Boundaries<'_> {
    let mut b = Boundaries {
        addresses: Vec::new(),
        lists: Vec::new(),
        platform: Default::default(),
        aliased: Vec::new(),
        aliased_anchor: false,
    };
    topology(t, anchor, v6, &mut b);
    internet(v6, &mut b);
    nsg(t, anchor, v6, &mut b);
    platform(v6, &mut b);
    routing(t, v6, &mut b);
    dnat(t, anchor, v6, &mut b);
    b
}

/// DNAT (`firewall::Firewall::evaluate_dnat`, the walk's DNAT step): a flow to a firewall's
/// public address is translated to another destination and port, so its public addresses are
/// aliased (flows from a source) or the anchor is (flows into one); the translated addresses
/// are cut out as their own sets.
fn dnat(t: &Topology, anchor: Anchor, v6: bool, b: &mut Boundaries<'_>) {
    for fw in &t.firewalls {
        for &a in &fw.public_addresses {
            push_addr(b, v6, a);
            if a.is_ipv6() == v6 && matches!(anchor, Anchor::From(_)) {
                b.aliased.push(crate::cidr::addr_to_u128(a));
            }
        }
        for g in &fw.groups {
            for c in &g.collections {
                for r in &c.rules {
                    if let Some(ip) = r.translation.as_ref().and_then(|x| x.address) {
                        push_addr(b, v6, ip);
                    }
                }
            }
        }
    }
}

fn push_cidr(b: &mut Boundaries<'_>, v6: bool, c: &Cidr) {
    if c.is_ipv4() != v6 {
        b.addresses.push(vec![c.interval()]);
    }
}

fn push_addr(b: &mut Boundaries<'_>, v6: bool, a: IpAddr) {
    push_cidr(b, v6, &Cidr::host(a));
}

fn push_set(b: &mut Boundaries<'_>, v6: bool, s: &AddrSet) {
    let ivs = s.family_intervals(v6);
    if !ivs.is_empty() {
        b.addresses.push(ivs);
    }
}

/// Where the walk plans a path: which VNet, subnet, host or instance address a destination is.
fn topology(t: &Topology, anchor: Anchor, v6: bool, b: &mut Boundaries<'_>) {
    for v in &t.vnets {
        for c in &v.address_space {
            push_cidr(b, v6, c);
        }
        for s in &v.subnets {
            for p in &s.prefixes {
                push_cidr(b, v6, p);
                // The five reserved addresses, each its own point (their roles differ).
                for off in 0..5u128 {
                    if let Some(a) = p.nth(off) {
                        push_addr(b, v6, a);
                    }
                }
                push_addr(b, v6, p.last());
            }
        }
    }
    for h in &t.hosts {
        push_addr(b, v6, h.address);
        if let Some(p) = h.public_address {
            push_addr(b, v6, p);
            if p.is_ipv6() == v6 && matches!(anchor, Anchor::From(_)) {
                b.aliased.push(crate::cidr::addr_to_u128(p));
            }
        }
    }
    if let Some(a) = &t.apim {
        push_addr(b, v6, a.public_address);
        if let Some(p) = a.private_address {
            push_addr(b, v6, p);
        }
    }
}

/// Public versus private and special-purpose space, multicast and the limited broadcast.
fn internet(v6: bool, b: &mut Boundaries<'_>) {
    for c in private_ranges().iter().chain(special_ranges()) {
        push_cidr(b, v6, c);
    }
    for s in ["224.0.0.0/4", "255.255.255.255/32", "ff00::/8"] {
        push_cidr(b, v6, &s.parse().expect("constant prefix"));
    }
}

/// Every NSG rule that can see the anchor, in every context and direction: for flows from a
/// source, rules whose source set holds it; for flows into a destination, rules whose
/// destination set holds it (every rule when the walk translates the destination: the inbound
/// side sees another address).
fn nsg<'t>(t: &'t Topology, anchor: Anchor, v6: bool, b: &mut Boundaries<'t>) {
    let aliased_into = match anchor {
        Anchor::Into(d) => {
            t.host_with_public(d).is_some() || t.firewalls.iter().any(|f| f.is_public_address(d))
        }
        Anchor::From(_) => false,
    } || translates_sources(t);
    b.aliased_anchor = aliased_into;
    for (n, nsg) in t.nsgs.iter().enumerate() {
        for v in 0..t.vnets.len() {
            let Some(c) = t.compiled(n, v) else { continue };
            let ctx = t.context(v);
            for dir in [Direction::Outbound, Direction::Inbound] {
                let mut rules = Vec::new();
                for sets in c.rule_sets(dir) {
                    let sees = match anchor {
                        Anchor::From(s) => aliased_into || sets.src.contains(s),
                        Anchor::Into(d) => aliased_into || sets.dst.contains(d),
                    };
                    if !sees {
                        continue;
                    }
                    let rule = &nsg.rules[sets.index];
                    let unknown = !rule.unknown.is_empty();
                    // `definitely_matches` compares the known part of a side only known at
                    // deployment time.
                    let (varying, spec) = match anchor {
                        Anchor::From(_) => (rule.unknown.destination, &rule.destination),
                        Anchor::Into(_) => (rule.unknown.source, &rule.source),
                    };
                    if unknown && varying {
                        let known = crate::nsg::AddressSpec {
                            unknown: Vec::new(),
                            ..spec.clone()
                        };
                        push_set(b, v6, &ctx.resolve(&known));
                    }
                    rules.push(Rule { sets, unknown });
                }
                b.lists.push(RuleList { rules });
            }
        }
    }
}

/// The platform's blocks within VNets (`Topology::platform_blocked`): UDP source port 65330,
/// unicast DHCP (UDP source port 68 to destination port 67); the platform addresses
/// (`route_to_platform`, `route_from_host_vip`) and the exemptions' ports (`Exemption::of`).
fn platform(v6: bool, b: &mut Boundaries<'_>) {
    use crate::platform::{
        DNS_PORT, HOST_VIP, IMDS, IMDS_PORT, KMS_HOSTS, KMS_PORT, WIRESERVER_PORTS,
    };
    let port = |p: u16| vec![(u32::from(p), u32::from(p))];
    b.platform[Protocol::Udp as usize] = PlatformPorts {
        destination: vec![port(67), port(DNS_PORT)],
        source: vec![port(68), port(65330)],
    };
    let mut tcp = vec![port(DNS_PORT), port(IMDS_PORT), port(KMS_PORT)];
    tcp.extend(WIRESERVER_PORTS.iter().map(|&p| port(p)));
    b.platform[Protocol::Tcp as usize] = PlatformPorts {
        destination: tcp,
        source: Vec::new(),
    };
    for a in [HOST_VIP, IMDS].into_iter().chain(KMS_HOSTS) {
        push_addr(b, v6, a);
    }
}

/// Whether the walk can give a flow another source before the destination's NSGs: a firewall
/// (SNAT), a NAT gateway on a subnet, or an instance whose public egress leaves from the
/// platform's address (`outbound_route_all = false`).
fn translates_sources(t: &Topology) -> bool {
    !t.firewalls.is_empty()
        || t.vnets
            .iter()
            .any(|v| v.subnets.iter().any(|s| s.nat_gateway.is_some()))
        || t.apim.as_ref().is_some_and(|a| !a.outbound_route_all)
}

/// Routes, next hops, firewalls and NAT gateways (`flow/path.rs`, `firewall.rs`): every
/// subnet's routes (any subnet can be on a path: the source's, a device's, the destination's
/// for the return path) — each prefix its own set, service endpoint routes included: nested
/// user-defined routes can take back part of an endpoint prefix, so a union would not be exact — each firewall's addresses, rule sets, ports and non-SNAT ranges, the
/// NAT gateways' addresses, and RFC 1918 (`platform_egress`).
fn routing(t: &Topology, v6: bool, b: &mut Boundaries<'_>) {
    for (v, vnet) in t.vnets.iter().enumerate() {
        for s in 0..vnet.subnets.len() {
            let Some(routes) = t.subnet_routes(v, s) else {
                continue;
            };
            for r in &routes.routes {
                push_cidr(b, v6, &r.prefix);
                if let Some(a) = r.next_hop.address() {
                    push_addr(b, v6, a);
                }
            }
        }
    }
    for fw in &t.firewalls {
        push_addr(b, v6, fw.private_address);
        push_addr(b, v6, fw.instance_address);
        for &a in &fw.public_addresses {
            push_addr(b, v6, a);
        }
        push_set(b, v6, &fw.private_ranges);
        for g in &fw.groups {
            for c in &g.collections {
                for r in &c.rules {
                    for set in [&r.sources, &r.destinations].into_iter().flatten() {
                        push_set(b, v6, set);
                    }
                    if r.ports.is_any() {
                        continue;
                    }
                    for p in [Protocol::Tcp, Protocol::Udp] {
                        if r.protocols & p.bit() != 0 {
                            b.platform[p as usize]
                                .destination
                                .push(r.ports.ranges().to_vec());
                        }
                    }
                }
            }
        }
    }
    for n in &t.nat_gateways {
        for &a in &n.public_addresses {
            push_addr(b, v6, a);
        }
    }
    for c in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"] {
        push_cidr(b, v6, &c.parse().expect("constant prefix"));
    }
}
