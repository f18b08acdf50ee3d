//! Azure Firewall as a device on a flow's path: its rule collection groups, collections and
//! rules, evaluated in Azure's order, and the source address it gives a flow (SNAT).
//!
//! Order ("Azure Firewall rule processing logic",
//! <https://learn.microsoft.com/azure/firewall/rule-processing>): rule collection groups by
//! priority, collections by priority within their group; "DNAT rules … then network rules,
//! then application rules"; then the built-in infrastructure collection; then the default deny
//! ("If there's no rule match, the traffic is denied"). First match wins. `Dnat` collections
//! are parsed and reported (`FIREWALL_DNAT_NOT_MODELLED`) but never match: a flow from a subnet
//! is not addressed to the firewall's public address. The infrastructure collection allows
//! platform FQDNs no modelled host has (`ASSUMPTION_FIREWALL_INFRASTRUCTURE_RULES`).
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
    /// allocation.
    pub fn evaluate(&self, index: usize, key: &FlowKey) -> FirewallMatch {
        for &(g, c, r) in &self.order {
            let col = &self.groups[g as usize].collections[c as usize];
            if col.rules[r as usize].matches(key) {
                return FirewallMatch {
                    firewall: index,
                    rule: Some((g, c, r)),
                    action: col.action,
                    kind: Some(col.kind),
                };
            }
        }
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

    /// Computes the evaluation order: Dnat (never matching, see the module doc), Network, then
    /// Application collections, each by group priority then collection priority.
    pub(crate) fn order_rules(&mut self) {
        let mut order = Vec::new();
        for kind in [CollectionKind::Network, CollectionKind::Application] {
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
        self.order = order;
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
