//! Azure Firewall as a device on a flow's path: its rule collection groups, collections and
//! rules, evaluated in Azure's order, and the source address it gives a flow (SNAT).
//!
//! Order ("Azure Firewall rule processing logic",
//! <https://learn.microsoft.com/azure/firewall/rule-processing>): rule collection groups by
//! priority, collections by priority within their group; "DNAT rules … then network rules,
//! then application rules"; then the built-in infrastructure collection; then the default deny
//! ("If there's no rule match, the traffic is denied"). First match wins. The infrastructure
//! collection allows platform FQDNs no modelled host has
//! (`ASSUMPTION_FIREWALL_INFRASTRUCTURE_RULES`).
//!
//! DNAT ("Filter inbound Internet or intranet traffic with Azure Firewall DNAT",
//! <https://learn.microsoft.com/azure/firewall/tutorial-firewall-dnat-policy>; "Azure Firewall
//! rule processing logic"): a flow addressed to one of the firewall's public addresses is
//! matched against the `Dnat` collections only ([`Firewall::evaluate_dnat`], group priority then
//! collection priority, rules in order): "NAT rules are applied in priority before network
//! rules. If a match is found, the traffic is translated according to the DNAT rule and allowed
//! by the firewall. So the traffic isn't subject to any further processing by other network
//! rules" ("DNAT rules implicitly add a corresponding network rule to allow the translated
//! traffic"). A rule translates the destination to `translated_address` (or `translated_fqdn`,
//! resolved from the firewall's VNet) and `translated_port`. No DNAT match is the default deny
//! ("Azure Firewall denies all traffic by default, until rules are manually configured to allow
//! traffic"): network and application rules filter traffic the firewall forwards, and nothing
//! answers on its own public address. The source is translated too: "When a new flow matches
//! against a DNAT rule on the Azure Firewall, both the source and destination IP addresses will
//! be translated … the source IP address will translate to one of the IP addresses in the
//! AzureFirewallSubnet" (Microsoft, Azure Network Security Blog, "Azure Firewall NAT
//! Behaviors", 2023; the Learn pages do not say which address:
//! `ASSUMPTION_FIREWALL_INSTANCE_ADDRESS`). DNAT rules take TCP and UDP only. A DNAT rule on a
//! private address (private IP DNAT) stays unmodelled (`FIREWALL_DNAT_NOT_MODELLED`).
//!
//! SNAT ("Azure Firewall SNAT private IP address ranges",
//! <https://learn.microsoft.com/azure/firewall/snat-private-range>): "Azure Firewall doesn't
//! SNAT with Network rules when the destination IP address is in a private IP address range
//! per IANA RFC 1918 or shared address space per IANA RFC 6598"; "Application rules are always
//! SNATed using a transparent proxy whatever the destination IP address" — to an instance
//! address of `AzureFirewallSubnet` (`ASSUMPTION_FIREWALL_INSTANCE_ADDRESS`: the subnet's first
//! usable address after the firewall's own). Public destinations leave from the firewall's
//! first public address.
//!
//! Application rules name FQDNs; the firewall reads them from the TLS SNI or HTTP Host. vnetsim
//! matches a flow by address: the addresses of the hosts whose DNS names match a target FQDN
//! (`ASSUMPTION_FIREWALL_FQDN_BY_ADDRESS`).

use std::net::IpAddr;

use crate::cidr::{addr_to_u128, AddrSet, Cidr};
use crate::fixture::{CollectionKind, FirewallAction};
use crate::flow::FlowKey;
use crate::proto::{PortSet, Protocol};

/// An Azure Firewall of the model.
#[derive(Clone, Debug)]
pub struct Firewall {
    /// Name.
    pub name: String,
    /// `(vnet, subnet)` of its `AzureFirewallSubnet`.
    pub placement: (usize, usize),
    /// Private address (the next hop routes name).
    pub private_address: IpAddr,
    /// Public addresses.
    pub public_addresses: Vec<IpAddr>,
    /// The instance address application rules SNAT to.
    pub instance_address: IpAddr,
    /// Destinations network rules do not SNAT.
    pub private_ranges: AddrSet,
    /// Groups (as written).
    pub groups: Vec<FirewallGroup>,
    /// Rules in evaluation order: `(group, collection, rule)` indices.
    pub(crate) order: Vec<(u32, u32, u32)>,
    /// DNAT rules in evaluation order (flows to a public address of the firewall only).
    pub(crate) dnat_order: Vec<(u32, u32, u32)>,
    /// Candidate rules per destination interval (positions in `order`, ascending), so a flow
    /// checks only the rules whose destination covers it; `None` when the index would be too
    /// large (then every rule is scanned).
    pub(crate) index: Option<DestIndex>,
}

/// Destination intervals (per family) and the positions in `order` of the rules covering each.
#[derive(Clone, Debug, Default)]
pub(crate) struct DestIndex {
    v4: Segments,
    v6: Segments,
}

#[derive(Clone, Debug, Default)]
struct Segments {
    starts: Vec<u128>,
    /// `cands[ranges[i].0..ranges[i].1]` are the candidates of segment `i`.
    ranges: Vec<(u32, u32)>,
    cands: Vec<u32>,
}

/// The most candidate entries an index may hold before it is given up for the linear scan.
const MAX_INDEX_ENTRIES: usize = 1 << 20;

impl Segments {
    /// Segments from each rule position's closed intervals: a sweep over interval ends keeping
    /// the covering positions.
    fn build(intervals: &[(u32, Vec<(u128, u128)>)]) -> Option<Segments> {
        let mut events: Vec<(u128, bool, u32)> = Vec::new();
        for (p, ivs) in intervals {
            for &(a, b) in ivs {
                events.push((a, true, *p));
                if let Some(next) = b.checked_add(1) {
                    events.push((next, false, *p));
                }
            }
        }
        events.sort_unstable();
        let mut active: std::collections::BTreeMap<u32, u32> = std::collections::BTreeMap::new();
        let mut s = Segments::default();
        let mut i = 0;
        while i < events.len() {
            let at = events[i].0;
            while i < events.len() && events[i].0 == at {
                let (_, open, p) = events[i];
                let n = active.entry(p).or_insert(0);
                if open {
                    *n += 1;
                } else {
                    *n -= 1;
                    if *n == 0 {
                        active.remove(&p);
                    }
                }
                i += 1;
            }
            let from = s.cands.len() as u32;
            s.cands.extend(active.keys().copied());
            if s.cands.len() > MAX_INDEX_ENTRIES {
                return None;
            }
            s.starts.push(at);
            s.ranges.push((from, s.cands.len() as u32));
        }
        Some(s)
    }

    fn candidates(&self, x: u128) -> &[u32] {
        let i = self.starts.partition_point(|&s| s <= x);
        match i.checked_sub(1) {
            Some(i) => {
                let (a, b) = self.ranges[i];
                &self.cands[a as usize..b as usize]
            }
            None => &[],
        }
    }
}

/// A rule collection group.
#[derive(Clone, Debug)]
pub struct FirewallGroup {
    /// Name.
    pub name: String,
    /// Priority.
    pub priority: u32,
    /// Collections (as written).
    pub collections: Vec<FirewallCollection>,
}

/// A rule collection.
#[derive(Clone, Debug)]
pub struct FirewallCollection {
    /// Name.
    pub name: String,
    /// Priority.
    pub priority: u32,
    /// Kind.
    pub kind: CollectionKind,
    /// Action.
    pub action: FirewallAction,
    /// Rules.
    pub rules: Vec<FirewallRule>,
}

/// One compiled rule.
#[derive(Clone, Debug)]
pub struct FirewallRule {
    /// Name.
    pub name: String,
    /// Protocol bit mask (`Protocol::bit`); application rules: TCP.
    pub protocols: u8,
    /// Sources (`None`: any).
    pub sources: Option<AddrSet>,
    /// Destinations (`None`: any).
    pub destinations: Option<AddrSet>,
    /// Destination ports.
    pub ports: PortSet,
    /// An application rule's `target_fqdns` as written (empty for network rules): the names
    /// its `destinations` were resolved from (`ASSUMPTION_FIREWALL_FQDN_BY_ADDRESS`).
    pub fqdns: Vec<String>,
    /// A DNAT rule's translation (`None` for network and application rules).
    pub translation: Option<Translation>,
}

/// Where a DNAT rule sends a flow: `translatedAddress` or `translatedFqdn`, and
/// `translatedPort`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The translated address: `translated_address`, or `translated_fqdn` as the resolver
    /// answers it from the firewall's VNet (`None` when the name does not resolve).
    pub address: Option<IpAddr>,
    /// `translated_fqdn` as written.
    pub fqdn: Option<String>,
    /// Why `fqdn` does not resolve.
    pub failure: Option<String>,
    /// The translated port.
    pub port: u16,
}

/// A flow a DNAT rule translated: the rule, the translated destination and port, and the
/// source after the firewall's SNAT (what the translated destination sees).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dnat {
    /// Firewall index.
    pub firewall: usize,
    /// `(group, collection, rule)` of the DNAT rule.
    pub rule: (u32, u32, u32),
    /// The translated destination address.
    pub destination: IpAddr,
    /// The translated destination port.
    pub port: u16,
    /// The source after the firewall's SNAT.
    pub source: IpAddr,
}

/// Which rule of a firewall decided a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FirewallMatch {
    /// Firewall index.
    pub firewall: usize,
    /// `(group, collection, rule)`, or `None` for the default deny.
    pub rule: Option<(u32, u32, u32)>,
    /// Allow or Deny.
    pub action: FirewallAction,
    /// The collection kind that matched (`None`: default deny).
    pub kind: Option<CollectionKind>,
}

impl FirewallRule {
    #[inline]
    fn matches(&self, key: &FlowKey) -> bool {
        self.protocols & key.protocol.bit() != 0
            && self.ports.contains(key.destination_port)
            && self
                .destinations
                .as_ref()
                .is_none_or(|d| d.contains(key.destination))
            && self.sources.as_ref().is_none_or(|s| s.contains(key.source))
    }
}

impl Firewall {
    /// Evaluates a flow: the first matching rule in Azure's order, else the default deny. No
    /// allocation. Only the rules whose destination covers the flow's are checked (the
    /// destination index); [`Firewall::evaluate_linear`] is the scan it equals.
    pub fn evaluate(&self, index: usize, key: &FlowKey) -> FirewallMatch {
        let Some(ix) = &self.index else {
            return self.evaluate_linear(index, key);
        };
        let seg = if key.destination.is_ipv4() {
            &ix.v4
        } else {
            &ix.v6
        };
        let x = addr_to_u128(key.destination);
        for &p in seg.candidates(x) {
            let (g, c, r) = self.order[p as usize];
            let col = &self.groups[g as usize].collections[c as usize];
            if col.rules[r as usize].matches(key) {
                return self.hit(index, (g, c, r));
            }
        }
        self.default_deny(index)
    }

    /// Evaluates a flow addressed to one of this firewall's public addresses: the first DNAT
    /// rule that matches it (group priority, collection priority, rule order), else the default
    /// deny. No allocation.
    pub fn evaluate_dnat(&self, index: usize, key: &FlowKey) -> FirewallMatch {
        self.first_match(index, &self.dnat_order, key)
    }

    /// The source a DNAT-translated flow to `destination` leaves the firewall with: an
    /// instance address of `AzureFirewallSubnet` (`ASSUMPTION_FIREWALL_INSTANCE_ADDRESS`), or
    /// the first public address when the translated destination is on the internet.
    pub fn dnat_source(&self, destination: IpAddr) -> IpAddr {
        match self.public_addresses.first() {
            Some(&p) if crate::cidr::is_public(destination) => p,
            _ => self.instance_address,
        }
    }

    /// Whether `ip` is one of this firewall's public addresses.
    pub fn is_public_address(&self, ip: IpAddr) -> bool {
        self.public_addresses.contains(&ip)
    }

    /// The reference: every rule in Azure's order, first match.
    pub fn evaluate_linear(&self, index: usize, key: &FlowKey) -> FirewallMatch {
        self.first_match(index, &self.order, key)
    }

    /// The first rule of `order` matching `key`, else the default deny.
    fn first_match(&self, index: usize, order: &[(u32, u32, u32)], key: &FlowKey) -> FirewallMatch {
        for &(g, c, r) in order {
            let col = &self.groups[g as usize].collections[c as usize];
            if col.rules[r as usize].matches(key) {
                return self.hit(index, (g, c, r));
            }
        }
        self.default_deny(index)
    }

    fn hit(&self, index: usize, (g, c, r): (u32, u32, u32)) -> FirewallMatch {
        let col = &self.groups[g as usize].collections[c as usize];
        FirewallMatch {
            firewall: index,
            rule: Some((g, c, r)),
            action: col.action,
            kind: Some(col.kind),
        }
    }

    fn default_deny(&self, index: usize) -> FirewallMatch {
        FirewallMatch {
            firewall: index,
            rule: None,
            action: FirewallAction::Deny,
            kind: None,
        }
    }

    /// The source address after this firewall for an allowed match to `destination`.
    /// Internet destinations see the firewall's first public address either way.
    pub fn snat(&self, m: &FirewallMatch, source: IpAddr, destination: IpAddr) -> IpAddr {
        let public = crate::cidr::is_public(destination);
        let out = || {
            self.public_addresses
                .first()
                .copied()
                .unwrap_or(self.instance_address)
        };
        match m.kind {
            Some(CollectionKind::Application) if public => out(),
            Some(CollectionKind::Application) => self.instance_address,
            _ if self.private_ranges.contains(destination) => source,
            _ if public => out(),
            _ => self.instance_address,
        }
    }

    /// The rule of a match (`None` for the default deny).
    pub fn rule(&self, m: &FirewallMatch) -> Option<&FirewallRule> {
        let (g, c, r) = m.rule?;
        Some(&self.groups[g as usize].collections[c as usize].rules[r as usize])
    }

    /// Names of a match: `(group, collection, rule)`, `rule` = `default` for the default deny.
    pub fn names(&self, m: &FirewallMatch) -> (Option<&str>, Option<&str>, &str) {
        match m.rule {
            Some((g, c, r)) => {
                let group = &self.groups[g as usize];
                let col = &group.collections[c as usize];
                (
                    Some(&group.name),
                    Some(&col.name),
                    &col.rules[r as usize].name,
                )
            }
            None => (None, None, "default"),
        }
    }

    /// Computes the evaluation orders: Network, then Application collections, each by group
    /// priority then collection priority; Dnat collections apart ([`Firewall::evaluate_dnat`]).
    pub(crate) fn order_rules(&mut self) {
        self.dnat_order = self.kind_order(&[CollectionKind::Dnat]);
        self.order = self.kind_order(&[CollectionKind::Network, CollectionKind::Application]);
        self.index = self.build_index();
    }

    fn kind_order(&self, kinds: &[CollectionKind]) -> Vec<(u32, u32, u32)> {
        let mut order = Vec::new();
        for &kind in kinds {
            let mut cols: Vec<(u32, u32, u32, u32)> = Vec::new();
            for (gi, g) in self.groups.iter().enumerate() {
                for (ci, c) in g.collections.iter().enumerate() {
                    if c.kind == kind {
                        cols.push((g.priority, c.priority, gi as u32, ci as u32));
                    }
                }
            }
            cols.sort_unstable();
            for (_, _, gi, ci) in cols {
                let n = self.groups[gi as usize].collections[ci as usize]
                    .rules
                    .len();
                order.extend((0..n as u32).map(|r| (gi, ci, r)));
            }
        }
        order
    }

    fn build_index(&self) -> Option<DestIndex> {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (p, &(g, c, r)) in self.order.iter().enumerate() {
            let rule = &self.groups[g as usize].collections[c as usize].rules[r as usize];
            let p = p as u32;
            match &rule.destinations {
                None => {
                    v4.push((p, vec![(0, u128::from(u32::MAX))]));
                    v6.push((p, vec![(0, u128::MAX)]));
                }
                Some(d) => {
                    let four: Vec<(u128, u128)> = d
                        .v4_intervals()
                        .iter()
                        .map(|&(a, b)| (u128::from(a), u128::from(b)))
                        .collect();
                    v4.push((p, four));
                    v6.push((p, d.v6_intervals().to_vec()));
                }
            }
        }
        Some(DestIndex {
            v4: Segments::build(&v4)?,
            v6: Segments::build(&v6)?,
        })
    }
}

/// IANA private ranges as Azure Firewall defines `IANAPrivateRanges` (RFC 1918 and RFC 6598).
pub(crate) fn iana_private_ranges() -> Vec<Cidr> {
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
    ]
    .iter()
    .map(|s| s.parse().expect("constant prefix"))
    .collect()
}

/// Network-rule protocols: `TCP`, `UDP`, `ICMP`, `Any`.
pub(crate) fn network_protocol_mask(p: &str) -> Option<u8> {
    match p.trim().to_ascii_lowercase().as_str() {
        "tcp" => Some(Protocol::Tcp.bit()),
        "udp" => Some(Protocol::Udp.bit()),
        "icmp" => Some(Protocol::Icmp.bit()),
        "any" | "*" => Some(Protocol::Tcp.bit() | Protocol::Udp.bit() | Protocol::Icmp.bit()),
        _ => None,
    }
}

/// Application-rule protocols: `Http:80`, `Https:443`, `Mssql:1433` → the port.
pub(crate) fn application_protocol_port(p: &str) -> Option<u16> {
    let (name, port) = p.trim().split_once(':')?;
    let ok = ["http", "https", "mssql"]
        .iter()
        .any(|n| name.trim().eq_ignore_ascii_case(n));
    ok.then(|| port.trim().parse().ok()).flatten()
}

/// Whether a target FQDN (`api.example.com`, `*.contoso.com`, `*`) matches a DNS name.
pub(crate) fn fqdn_matches(pattern: &str, name: &str) -> bool {
    let p = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
    let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
    if p == "*" {
        return true;
    }
    match p.strip_prefix("*.") {
        Some(suffix) => n.len() > suffix.len() + 1 && n.ends_with(&format!(".{suffix}")),
        None => p == n,
    }
}

/// The first usable address after `after` in `prefix` (offset 4 or more, not the last).
pub(crate) fn next_usable(prefix: Cidr, after: IpAddr) -> Option<IpAddr> {
    let start = addr_to_u128(prefix.first());
    let a = addr_to_u128(after);
    let off = a.checked_sub(start)?.max(3) + 1;
    (off < prefix.size().saturating_sub(1))
        .then(|| prefix.nth(off))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Rng;

    fn cidr(rng: &mut Rng) -> Cidr {
        let len = [0u8, 8, 16, 20, 24, 28, 32][rng.below(7) as usize];
        let raw = (rng.next_u64() as u32) & 0x0A0F_FFFF;
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        format!("{}/{len}", std::net::Ipv4Addr::from(raw & mask))
            .parse()
            .unwrap()
    }

    /// The destination index gives the same first match as the scan of every rule, on random
    /// rule sets (nested, overlapping and `*` destinations) and flows.
    #[test]
    fn indexed_evaluation_equals_the_linear_scan() {
        for seed in 0..200u64 {
            let mut rng = Rng::new(seed);
            let rule = |rng: &mut Rng, i: usize| FirewallRule {
                name: format!("r{i}"),
                fqdns: Vec::new(),
                translation: None,
                protocols: if rng.chance(80) {
                    Protocol::Tcp.bit()
                } else {
                    0xFF
                },
                sources: rng.chance(30).then(|| AddrSet::from_cidrs([cidr(rng)])),
                destinations: (!rng.chance(10))
                    .then(|| AddrSet::from_cidrs((0..1 + rng.below(3)).map(|_| cidr(rng)))),
                ports: if rng.chance(50) {
                    PortSet::parse("443").unwrap()
                } else {
                    PortSet::any()
                },
            };
            let collections = (0..1 + rng.below(4))
                .map(|c| FirewallCollection {
                    name: format!("c{c}"),
                    priority: 100 + rng.below(5) as u32,
                    kind: if rng.chance(70) {
                        CollectionKind::Network
                    } else {
                        CollectionKind::Application
                    },
                    action: if rng.chance(50) {
                        FirewallAction::Allow
                    } else {
                        FirewallAction::Deny
                    },
                    rules: (0..rng.below(12) as usize)
                        .map(|i| rule(&mut rng, i))
                        .collect(),
                })
                .collect();
            let mut fw = Firewall {
                name: "fw".into(),
                placement: (0, 0),
                private_address: "10.100.1.4".parse().unwrap(),
                public_addresses: Vec::new(),
                instance_address: "10.100.1.5".parse().unwrap(),
                private_ranges: AddrSet::empty(),
                groups: vec![FirewallGroup {
                    name: "g".into(),
                    priority: 100,
                    collections,
                }],
                order: Vec::new(),
                dnat_order: Vec::new(),
                index: None,
            };
            fw.order_rules();
            assert!(fw.index.is_some());
            for _ in 0..50 {
                let dst = IpAddr::V4(((rng.next_u64() as u32) & 0x0A0F_FFFF).into());
                let src = IpAddr::V4(((rng.next_u64() as u32) & 0x0A0F_FFFF).into());
                let port = if rng.chance(50) { 443 } else { 80 };
                let key = FlowKey::new(Protocol::Tcp, src, Some(50000), dst, Some(port));
                assert_eq!(
                    fw.evaluate(0, &key),
                    fw.evaluate_linear(0, &key),
                    "seed {seed} {key:?}"
                );
            }
        }
    }
}
