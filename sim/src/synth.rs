//! Seeded synthetic workloads for benchmarks and tests: a `ServiceTags_Public`-sized tag table,
//! NSGs of any size up to Azure's limits (1,000 rules, 4,000 prefixes per side, augmented
//! rules, service tags), and flows that hit early, late and default rules.
//!
//! Everything is deterministic for a seed (SplitMix64), so two runs measure the same work.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use crate::cidr::Cidr;
use crate::nsg::{AddressSpec, Context, FlowKey, Nsg, SecurityRule, TagRef};
use crate::proto::{Access, Direction, PortSet, Protocol, RuleProtocol};
use crate::tags::{ServiceTag, ServiceTagTable, VirtualTag};

/// SplitMix64: a tiny, good-enough seeded generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `p` percent.
    pub fn chance(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// The VNet address space of the synthetic NSG's context.
pub const SYNTH_VNET: &str = "10.0.0.0/16";

fn random_public_prefix(rng: &mut Rng) -> Cidr {
    loop {
        let len = 16 + rng.below(13) as u8; // /16../28
        let raw = (rng.next_u64() as u32) & (u32::MAX << (32 - u32::from(len)));
        let first = Ipv4Addr::from(raw);
        if crate::cidr::is_public(IpAddr::V4(first)) {
            if let Ok(c) = format!("{first}/{len}").parse() {
                return c;
            }
        }
    }
}

/// A `ServiceTags_Public`-sized table: `tags` tags holding `prefixes` IPv4 prefixes in total.
/// The real file (2025-10-28) has 3,039 tags and 93,362 prefixes.
pub fn tag_table(seed: u64, tags: usize, prefixes: usize) -> ServiceTagTable {
    let mut rng = Rng::new(seed);
    let per = (prefixes / tags.max(1)).max(1);
    let list = (0..tags)
        .map(|i| {
            let n = 1 + rng.below(2 * per as u64) as usize;
            ServiceTag {
                name: format!("SynthTag{i}"),
                region: String::new(),
                change_number: None,
                prefixes: (0..n).map(|_| random_public_prefix(&mut rng)).collect(),
            }
        })
        .collect();
    ServiceTagTable::from_tags("synthetic", list)
}

/// An outbound NSG of `rules` custom rules in `table`'s context: a mix of `*`, VirtualNetwork,
/// single addresses, prefixes, augmented lists and (at most one per side) service tags, with
/// `prefixes_per_side` explicit prefixes spread over the rules (≤ 4,000, Azure's limit).
pub fn nsg(seed: u64, rules: usize, prefixes_per_side: usize, table: &ServiceTagTable) -> Nsg {
    let mut rng = Rng::new(seed);
    let tag_names: Vec<String> = table.iter().map(|t| t.name.clone()).collect();
    let mut dst_budget = prefixes_per_side;
    let mut src_budget = prefixes_per_side / 4;
    let mut out = Vec::with_capacity(rules);
    for i in 0..rules {
        let remaining = rules - i;
        let take = |budget: &mut usize, rng: &mut Rng| {
            let fair = (*budget / remaining).max(1);
            let n = (1 + rng.below(2 * fair as u64) as usize).min(*budget);
            *budget -= n;
            n
        };
        let dst_n = take(&mut dst_budget, &mut rng);
        let destination = if rng.chance(10) && !tag_names.is_empty() {
            let t = &tag_names[rng.below(tag_names.len() as u64) as usize];
            AddressSpec {
                tags: vec![TagRef::Table(t.clone())],
                text: vec![t.clone()],
                ..AddressSpec::default()
            }
        } else if dst_n == 0 || rng.chance(5) {
            AddressSpec::any()
        } else {
            let prefixes: Vec<Cidr> = (0..dst_n).map(|_| random_public_prefix(&mut rng)).collect();
            AddressSpec {
                text: prefixes.iter().map(Cidr::to_string).collect(),
                prefixes,
                ..AddressSpec::default()
            }
        };
        let source = match rng.below(10) {
            0..=4 => AddressSpec::any(),
            5..=6 => AddressSpec::tag(VirtualTag::VirtualNetwork),
            _ => {
                let n = take(&mut src_budget, &mut rng).max(1);
                let prefixes: Vec<Cidr> = (0..n)
                    .map(|_| {
                        let third = rng.below(256);
                        format!("10.0.{third}.0/24").parse().expect("valid literal")
                    })
                    .collect();
                AddressSpec {
                    text: prefixes.iter().map(Cidr::to_string).collect(),
                    prefixes,
                    ..AddressSpec::default()
                }
            }
        };
        let destination_ports = match rng.below(4) {
            0 => PortSet::any(),
            1 => PortSet::parse(&format!("{}", 1 + rng.below(65000))).expect("valid port"),
            2 => {
                let lo = rng.below(60000);
                PortSet::parse(&format!("{lo}-{}", lo + rng.below(5000))).expect("valid range")
            }
            _ => PortSet::parse_list(["80", "443", "8080-8090"]).expect("valid list"),
        };
        out.push(SecurityRule {
            name: format!("rule-{i}"),
            priority: 100 + i as u32,
            direction: Direction::Outbound,
            access: if rng.chance(30) {
                Access::Deny
            } else {
                Access::Allow
            },
            protocol: [RuleProtocol::Tcp, RuleProtocol::Udp, RuleProtocol::Any]
                [rng.below(3) as usize],
            source,
            source_ports: PortSet::any(),
            destination,
            destination_ports,
            is_default: false,
            description: None,
            unknown: crate::nsg::UnknownFields::default(),
            index: None,
        });
    }
    Nsg::new("synthetic", false, out)
}

fn pick_in(rng: &mut Rng, c: &Cidr) -> IpAddr {
    let size = c.size().min(u128::from(u64::MAX));
    c.nth(u128::from(rng.below(size as u64)))
        .unwrap_or_else(|| c.first())
}

fn pick_port(rng: &mut Rng, p: &PortSet) -> u32 {
    let ranges = p.ranges();
    let (lo, hi) = ranges[rng.below(ranges.len() as u64) as usize];
    let hi = hi.min(65_535);
    lo + rng.below(u64::from(hi - lo) + 1) as u32
}

/// `n` outbound flows aimed at the NSG's early rules (first tenth), late rules (last tenth) and
/// nothing in particular (left to the default rules), a third each.
pub fn flows(seed: u64, nsg: &Nsg, table: &ServiceTagTable, n: usize) -> Vec<FlowKey> {
    let mut rng = Rng::new(seed);
    let custom: Vec<&SecurityRule> = nsg.rules.iter().filter(|r| !r.is_default).collect();
    let tenth = (custom.len() / 10).max(1);
    let vnet: Cidr = SYNTH_VNET.parse().expect("valid literal");
    (0..n)
        .map(|_| {
            let source_port = 1024 + rng.below(60000) as u32;
            let target = match rng.below(3) {
                0 if !custom.is_empty() => {
                    Some(custom[rng.below(tenth.min(custom.len()) as u64) as usize])
                }
                1 if !custom.is_empty() => Some(
                    custom[custom.len() - 1 - rng.below(tenth.min(custom.len()) as u64) as usize],
                ),
                _ => None,
            };
            let Some(r) = target else {
                return FlowKey {
                    protocol: if rng.chance(50) {
                        Protocol::Tcp
                    } else {
                        Protocol::Udp
                    },
                    source: pick_in(&mut rng, &vnet),
                    source_port,
                    destination: {
                        let c = random_public_prefix(&mut rng);
                        pick_in(&mut rng, &c)
                    },
                    destination_port: rng.below(65536) as u32,
                };
            };
            let protocol = match r.protocol {
                RuleProtocol::Udp => Protocol::Udp,
                _ => Protocol::Tcp,
            };
            let source = match r.source.prefixes.first() {
                Some(_) => {
                    let c = r.source.prefixes[rng.below(r.source.prefixes.len() as u64) as usize];
                    pick_in(&mut rng, &c)
                }
                None => pick_in(&mut rng, &vnet),
            };
            let dst_prefixes: Vec<Cidr> = if let Some(TagRef::Table(t)) = r.destination.tags.first()
            {
                table.get(t).map(|t| t.prefixes.clone()).unwrap_or_default()
            } else {
                r.destination.prefixes.clone()
            };
            let destination = match dst_prefixes.is_empty() {
                true => {
                    let c = random_public_prefix(&mut rng);
                    pick_in(&mut rng, &c)
                }
                false => {
                    let c = dst_prefixes[rng.below(dst_prefixes.len() as u64) as usize];
                    pick_in(&mut rng, &c)
                }
            };
            FlowKey {
                protocol,
                source,
                source_port,
                destination,
                destination_port: pick_port(&mut rng, &r.destination_ports),
            }
        })
        .collect()
}

/// What the synthetic NSGs are evaluated in: a tag table and VNet [`SYNTH_VNET`], no ASGs.
#[derive(Clone, Debug)]
pub struct Setting {
    /// The service tags.
    pub tags: ServiceTagTable,
    /// The `VirtualNetwork` tag's prefixes.
    pub vnet: Vec<Cidr>,
    /// ASG members (none).
    pub asgs: BTreeMap<String, Vec<IpAddr>>,
}

impl Setting {
    /// A setting whose tags are [`tag_table`]`(seed, tags, prefixes)`.
    pub fn new(seed: u64, tags: usize, prefixes: usize) -> Setting {
        Setting {
            tags: tag_table(seed, tags, prefixes),
            vnet: vec![SYNTH_VNET.parse().expect("valid literal")],
            asgs: BTreeMap::new(),
        }
    }

    /// The setting every NSG benchmark measures in: a `ServiceTags_Public`-sized table
    /// (seed 42, 3,039 tags, 93,362 prefixes).
    pub fn public_sized() -> Setting {
        Setting::new(42, 3039, 93_362)
    }

    /// The evaluation context.
    pub fn context(&self) -> Context<'_> {
        Context {
            virtual_network: &self.vnet,
            vnet_space: &self.vnet,
            tags: &self.tags,
            asg_members: &self.asgs,
        }
    }
}

// === Routing ===

/// A forced-tunnel hub and spoke for the routing benchmark and the allocation test, as fixture
/// TOML: the spoke's `snet-apim` (10.0.1.0/24, source 10.0.1.4) has a route table with
/// `0.0.0.0/0` and `udrs - 1` random public prefixes to the hub's Azure Firewall (10.100.1.4);
/// the spoke learns `bgp` random /24s of 172.16.0.0/12 through BGP; the firewall has `rules`
/// network rules allowing TCP 443 from the spoke to one random public /24 each. Returns the
/// text and `flows` TCP flows from 10.0.1.4 to addresses of those /24s (rules hit uniformly,
/// so a flow scans half the rules on average) — each walks NSG, route lookup, firewall, route
/// lookup and the internet.
pub fn forced_tunnel(
    seed: u64,
    udrs: usize,
    bgp: usize,
    rules: usize,
    flows: usize,
) -> (String, Vec<crate::flow::Flow>) {
    use std::fmt::Write as _;
    let mut rng = Rng::new(seed);
    let mut t = String::from(
        "[[vnets]]\nname = \"spoke\"\nregion = \"westeurope\"\naddress_space = [\"10.0.0.0/16\"]\npeerings = [\"hub\"]\nbgp_routes = [",
    );
    for i in 0..bgp {
        let a = 0xAC10_0000u32 | ((rng.below(1 << 12) as u32) << 8);
        let _ = write!(
            t,
            "{}\"{}/24\"",
            if i > 0 { ", " } else { "" },
            Ipv4Addr::from(a)
        );
    }
    t.push_str("]\n  [[vnets.subnets]]\n  name = \"snet-apim\"\n  address_prefix = \"10.0.1.0/24\"\n  nsg = \"nsg-apim\"\n  route_table = \"rt-apim\"\n\n");
    t.push_str("[[vnets]]\nname = \"hub\"\nregion = \"westeurope\"\naddress_space = [\"10.100.0.0/16\"]\npeerings = [\"spoke\"]\n  [[vnets.subnets]]\n  name = \"AzureFirewallSubnet\"\n  address_prefix = \"10.100.1.0/26\"\n\n");
    t.push_str("[[nsgs]]\nname = \"nsg-apim\"\n\n[[route_tables]]\nname = \"rt-apim\"\n");
    for i in 0..udrs {
        let prefix = if i == 0 {
            "0.0.0.0/0".to_string()
        } else {
            random_public_prefix(&mut rng).to_string()
        };
        let _ = write!(t, "  [[route_tables.routes]]\n  name = \"r{i}\"\n  address_prefix = \"{prefix}\"\n  next_hop_type = \"VirtualAppliance\"\n  next_hop_ip_address = \"10.100.1.4\"\n");
    }
    t.push_str("\n[[firewalls]]\nname = \"fw\"\nsubnet = \"hub/AzureFirewallSubnet\"\nprivate_address = \"10.100.1.4\"\npublic_addresses = [\"20.61.20.5\"]\n  [[firewalls.rule_collection_groups]]\n  name = \"g\"\n  priority = 100\n    [[firewalls.rule_collection_groups.rule_collections]]\n    name = \"net\"\n    priority = 100\n    kind = \"Network\"\n    action = \"Allow\"\n");
    let mut targets = Vec::with_capacity(rules);
    for i in 0..rules {
        let a = loop {
            let c = random_public_prefix(&mut rng);
            let IpAddr::V4(first) = c.first() else {
                continue;
            };
            let a = u32::from(first) & 0xFFFF_FF00;
            if crate::cidr::is_public(IpAddr::V4(a.into())) {
                break a;
            }
        };
        targets.push(a);
        let _ = write!(t, "      [[firewalls.rule_collection_groups.rule_collections.rules]]\n      name = \"n{i}\"\n      protocols = [\"TCP\"]\n      source_addresses = [\"10.0.1.0/24\"]\n      destination_addresses = [\"{}/24\"]\n      destination_ports = [\"443\"]\n", Ipv4Addr::from(a));
    }
    let src = IpAddr::V4(Ipv4Addr::new(10, 0, 1, 4));
    let flows = (0..flows)
        .map(|_| {
            let base = targets[rng.below(targets.len() as u64) as usize];
            let dst = IpAddr::V4(Ipv4Addr::from(base | (1 + rng.below(254) as u32)));
            crate::flow::Flow::tcp(src, 49152 + rng.below(16384) as u16, dst, 443)
        })
        .collect();
    (t, flows)
}

/// A topology for the whole-space benchmarks: VNet [`SYNTH_VNET`] with an integrated APIM
/// instance in `snet-apim` (10.0.1.0/24) whose subnet NSG is `nsgs[0]`, and a host `vm`
/// (10.0.1.10) there whose NIC NSG is `nsgs[1]` when given — so `--from vm` crosses both.
/// Rules are written as a fixture and built like any other (tags from `setting`).
pub fn topology(setting: &Setting, nsgs: &[&Nsg]) -> crate::topology::Topology {
    let mut text = String::from(
        "[[vnets]]\nname = \"vnet\"\nregion = \"westeurope\"\naddress_space = [\"10.0.0.0/16\"]\n\n  [[vnets.subnets]]\n  name = \"snet-apim\"\n  address_prefix = \"10.0.1.0/24\"\n  delegations = [\"Microsoft.Web/serverFarms\"]\n  nsg = \"nsg0\"\n\n",
    );
    if nsgs.len() > 1 {
        text.push_str("[[hosts]]\nname = \"vm\"\naddress = \"10.0.1.10\"\nnsg = \"nsg1\"\n\n");
    }
    text.push_str("[apim]\nname = \"apim\"\nsku = \"StandardV2\"\ncapacity = 1\nregion = \"westeurope\"\nvirtual_network = \"integration\"\nsubnet = \"vnet/snet-apim\"\n");
    let list = |v: &[String]| {
        v.iter()
            .map(|x| format!("\"{x}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (n, nsg) in nsgs.iter().enumerate() {
        text.push_str(&format!("\n[[nsgs]]\nname = \"nsg{n}\"\n"));
        for r in nsg.rules.iter().filter(|r| !r.is_default) {
            let ports = |p: &PortSet| -> Vec<String> {
                p.to_string().split(',').map(str::to_string).collect()
            };
            text.push_str(&format!(
                "  [[nsgs.security_rules]]\n  name = \"{}\"\n  priority = {}\n  direction = \"{}\"\n  access = \"{}\"\n  protocol = \"{}\"\n  source_address_prefixes = [{}]\n  source_port_ranges = [{}]\n  destination_address_prefixes = [{}]\n  destination_port_ranges = [{}]\n",
                r.name,
                r.priority,
                r.direction,
                r.access,
                r.protocol,
                list(&r.source.text),
                list(&ports(&r.source_ports)),
                list(&r.destination.text),
                list(&ports(&r.destination_ports)),
            ));
        }
    }
    let fx = crate::fixture::Fixture::parse(&text, crate::fixture::Format::Toml)
        .expect("the synthetic fixture parses");
    crate::topology::Topology::build(&fx, setting.tags.clone()).topology
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_matches_reference_on_large_synthetic_nsgs() {
        // The classifier path (> LINEAR_SCAN_MAX rules) must agree with the oracle.
        let setting = Setting::new(1, 200, 4000);
        let (table, ctx) = (&setting.tags, setting.context());
        for (rules, prefixes) in [(10, 40), (100, 1000), (1000, 4000)] {
            let n = nsg(rules as u64, rules, prefixes, table);
            let c = n.compile(&ctx);
            assert_eq!(
                c.uses_classifier(Direction::Outbound),
                rules > crate::nsg::LINEAR_SCAN_MAX
            );
            let r = n.reference(&ctx);
            for f in flows(7, &n, table, 3000) {
                assert_eq!(
                    Some(c.decide(Direction::Outbound, &f)),
                    r.decide(Direction::Outbound, &f),
                    "{f:?}"
                );
            }
        }
    }

    #[test]
    fn synthetic_topology_builds_and_reaches() {
        let setting = Setting::new(1, 20, 200);
        let a = nsg(3, 30, 120, &setting.tags);
        let t = topology(&setting, &[&a, &a]);
        assert_eq!(t.nsgs().len(), 2);
        assert_eq!(
            t.nsgs()[0].rules.len(),
            30 + 6,
            "every synthetic rule is valid"
        );
        let q = crate::space::SpaceQuery::from(t.apim_source().unwrap());
        for c in &t.reach(&q).classes {
            assert_eq!(t.decide(&c.example), c.decision);
        }
    }

    #[test]
    fn deterministic() {
        let t1 = tag_table(3, 10, 100);
        let t2 = tag_table(3, 10, 100);
        assert_eq!(t1, t2);
        assert_eq!(nsg(5, 50, 200, &t1), nsg(5, 50, 200, &t2));
    }
}
