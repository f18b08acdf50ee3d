//! Property tests on `sim`'s public API (STYLE §6): address arithmetic, port sets, the NSG
//! evaluators against the reference oracle, and robustness of the fixture parser and the
//! topology builder on arbitrary input.
//!
//! Groups, in order: prefixes ([`Cidr`]); subnets' reserved addresses; address sets
//! ([`AddrSet`]); port sets ([`PortSet`]); NSG evaluation (compiled == reference, explain ==
//! decide, order independence, lower-priority rules never override); the fixture parser; the
//! topology builder.
//!
//! Case counts are chosen so the whole file runs in a few seconds in a debug build on two cores;
//! every NSG case evaluates dozens of flows in both directions. Groups 6 and 7 are also the
//! fixture loader's fuzz targets: `VNETSIM_FUZZ_CASES` overrides their counts (`fuzz/main.rs`).

#[path = "support/cases.rs"]
mod cases;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use cases::fuzz_config;
use proptest::prelude::*;
use proptest::sample::select;

use sim::addr_to_u128;
use sim::fixture::{
    AddressField, ApiFile, ApimFile, DnsZoneFile, Fixture, Format, GatewayFile, HostFile, HostKind,
    NetworkMode, NsgFile, PortField, PrincipalFile, PrivateEndpointPolicies, ResolutionPolicy,
    RuleFile, ServeKind, ServiceEndpointFile, ServiceFile, Sku, SubnetFile, SubscriptionFile,
    VnetFile, ZoneLinkFile,
};
use sim::FlowKey;
use sim::NO_PORT;
use sim::RESERVED_AT_START;
use sim::{
    Access, AddrSet, Cidr, CidrError, Direction, Flow, PortSet, Protocol, RuleProtocol,
    ServiceTagTable, Topology,
};

// === shared helpers ===

/// The built-in tag table, built once (it parses a few thousand prefixes).
fn tags() -> &'static ServiceTagTable {
    static T: OnceLock<ServiceTagTable> = OnceLock::new();
    T.get_or_init(ServiceTagTable::builtin)
}

fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}

fn v4_mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn v6_mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

fn ip_of(v4: bool, x: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(x as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(x))
    }
}

/// Usable addresses of a subnet: Azure reserves the first four and the last (VNet FAQ, §2.2).
fn usable(c: &Cidr) -> u128 {
    c.size() - 5
}

/// A point of `c` chosen by `sel`: often a boundary (first, last, just outside), else inside.
fn point_in(c: &Cidr, sel: u64) -> IpAddr {
    let (lo, hi) = c.interval();
    let max = if c.is_ipv4() {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    let x = match sel % 6 {
        0 => lo,
        1 => hi,
        2 => lo.saturating_sub(1),
        3 => hi.saturating_add(1).min(max),
        _ => {
            let span = hi - lo;
            let r = u128::from(sel >> 3) | (u128::from(sel.rotate_left(17)) << 64);
            if span == u128::MAX {
                r
            } else {
                lo + r % (span + 1)
            }
        }
    };
    ip_of(c.is_ipv4(), x)
}

/// A point inside `c` chosen by `sel`: its first, its last, or one in between.
fn point_inside(c: &Cidr, sel: u64) -> IpAddr {
    match sel % 4 {
        0 => c.first(),
        1 => c.last(),
        _ => point_in(c, (sel / 8) * 6 + 4), // `point_in` case 4: a random inner point
    }
}

// === 1. Prefixes ===

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A truncated IPv4 prefix prints as `a.b.c.d/len` and parses back to itself; the same text
    /// with host bits set is refused (HostBitsSet naming the network), never truncated.
    #[test]
    fn v4_prefix_round_trip_and_strictness(addr in any::<u32>(), len in 0u8..=32) {
        let net = addr & v4_mask(len);
        let text = format!("{}/{len}", Ipv4Addr::from(net));
        let c: Cidr = text.parse().expect("a truncated prefix parses");
        // Display is the canonical text, and parsing it gives the same value.
        prop_assert_eq!(c.to_string(), text.clone());
        prop_assert_eq!(c.to_string().parse::<Cidr>(), Ok(c));
        prop_assert_eq!(c.prefix_len(), len);
        prop_assert!(c.is_ipv4());
        let given = format!("{}/{len}", Ipv4Addr::from(addr));
        if addr == net {
            // Without host bits the given text is the prefix itself.
            prop_assert_eq!(given.parse::<Cidr>(), Ok(c));
        } else {
            // Strict: host bits set is an error that names the intended network.
            prop_assert_eq!(
                given.parse::<Cidr>(),
                Err(CidrError::HostBitsSet { given: given.clone(), network: text })
            );
        }
    }

    /// The same for IPv6, in its canonical (compressed) text.
    #[test]
    fn v6_prefix_round_trip_and_strictness(addr in any::<u128>(), len in 0u8..=128) {
        let net = addr & v6_mask(len);
        let text = format!("{}/{len}", Ipv6Addr::from(net));
        let c: Cidr = text.parse().expect("a truncated prefix parses");
        // Display is the canonical text, and parsing it gives the same value.
        prop_assert_eq!(c.to_string(), text.clone());
        prop_assert_eq!(c.to_string().parse::<Cidr>(), Ok(c));
        prop_assert!(!c.is_ipv4());
        let given = format!("{}/{len}", Ipv6Addr::from(addr));
        // Parses exactly when no host bit is set …
        prop_assert_eq!(given.parse::<Cidr>().is_ok(), addr == net);
        if addr != net {
            // … and otherwise says so (never truncates).
            let host_bits_set = matches!(given.parse::<Cidr>(), Err(CidrError::HostBitsSet { .. }));
            prop_assert!(host_bits_set);
        }
    }

    /// `contains` agrees with the first and last address: x ∈ prefix ⇔ same family and
    /// first ≤ x ≤ last; first/last/size agree with the mask arithmetic.
    #[test]
    fn contains_agrees_with_first_and_last(
        v4 in any::<bool>(), addr in any::<u128>(), len in 0u8..=128, probe in any::<u128>(), sel in any::<u64>(),
    ) {
        let (c, first, last) = if v4 {
            let len = len % 33;
            let a = addr as u32 & v4_mask(len);
            (cidr(&format!("{}/{len}", Ipv4Addr::from(a))), u128::from(a), u128::from(a | !v4_mask(len)))
        } else {
            let a = addr & v6_mask(len);
            (cidr(&format!("{}/{len}", Ipv6Addr::from(a))), a, a | !v6_mask(len))
        };
        // first/last are the network and the all-ones host part.
        prop_assert_eq!(addr_to_u128(c.first()), first);
        prop_assert_eq!(addr_to_u128(c.last()), last);
        // size = last − first + 1 (saturating for ::/0).
        prop_assert_eq!(c.size(), (last - first).saturating_add(1));
        // Probes: boundaries, just outside, and an arbitrary address, in both families.
        let probes = [
            point_in(&c, sel),
            ip_of(v4, first), ip_of(v4, last),
            ip_of(v4, first.saturating_sub(1)),
            ip_of(v4, if v4 { (last + 1).min(u128::from(u32::MAX)) } else { last.saturating_add(1) }),
            ip_of(v4, if v4 { probe % (1 << 32) } else { probe }),
            ip_of(!v4, probe % (1 << 32)),
        ];
        for x in probes {
            let same_family = x.is_ipv4() == v4;
            let n = addr_to_u128(x);
            prop_assert_eq!(c.contains(x), same_family && first <= n && n <= last, "{} in {}", x, c);
        }
    }

    /// Overlap is symmetric and equals "one covers the other", which equals interval
    /// intersection within one family.
    #[test]
    fn overlap_is_symmetric_and_means_nesting(a in arb_prefix(), b in arb_prefix()) {
        // Symmetric …
        prop_assert_eq!(a.overlaps(&b), b.overlaps(&a));
        // … and, prefixes being nested or disjoint, the same as one covering the other …
        prop_assert_eq!(a.overlaps(&b), a.covers(&b) || b.covers(&a));
        let (alo, ahi) = a.interval();
        let (blo, bhi) = b.interval();
        let intersect = a.is_ipv4() == b.is_ipv4() && alo <= bhi && blo <= ahi;
        // … and the same as the intervals intersecting (never across families).
        prop_assert_eq!(a.overlaps(&b), intersect);
        // covers = containment of both ends.
        prop_assert_eq!(a.covers(&b), a.is_ipv4() == b.is_ipv4() && alo <= blo && bhi <= ahi);
    }
}

/// Prefixes biased towards a few shared regions so that pairs and lists often overlap.
fn arb_prefix() -> impl Strategy<Value = Cidr> {
    prop_oneof![arb_v4_prefix(), arb_v6_prefix()]
}

/// IPv4 prefixes drawn under anchors: the test VNet, its peer, another private range, public
/// ranges, the AzureLoadBalancer address, and the whole space.
fn arb_v4_prefix() -> impl Strategy<Value = Cidr> {
    const ANCHORS: &[(u32, u8)] = &[
        (0x0a00_0000, 16), // 10.0.0.0/16 — the VNet
        (0x0a01_0000, 16), // 10.1.0.0/16 — its peer
        (0x0a02_0000, 16), // 10.2.0.0/16 — private, in no VNet
        (0xac10_0000, 12), // 172.16.0.0/12
        (0x1400_0000, 8),  // 20.0.0.0/8 — public (Azure)
        (0x1401_0000, 16), // 20.1.0.0/16 — public, but in the VNet's address space
        (0x0d40_0000, 11), // 13.64.0.0/11 — public
        (0xa83f_8110, 32), // 168.63.129.16/32
        (0, 0),            // anywhere
    ];
    (0..ANCHORS.len(), any::<u32>(), any::<u8>()).prop_map(|(i, r, l)| {
        let (base, alen) = ANCHORS[i];
        let len = alen + l % (33 - alen);
        let a = (base | (r & !v4_mask(alen))) & v4_mask(len);
        cidr(&format!("{}/{len}", Ipv4Addr::from(a)))
    })
}

/// IPv6 prefixes under the VNet's ULA range, another ULA range, Azure public space, the
/// documentation range (special: neither private nor Internet) and anywhere.
fn arb_v6_prefix() -> impl Strategy<Value = Cidr> {
    const ANCHORS: &[(u128, u8)] = &[
        (0xfd00_0010_0000 << 80, 48), // fd00:10::/48 — the VNet
        (0xfd00_0099_0000 << 80, 48), // fd00:99::/48
        (0x2603_1000 << 96, 24),      // 2603:1000::/24 — public
        (0x2001_0db8 << 96, 32),      // 2001:db8::/32 — documentation
        (0, 0),
    ];
    (0..ANCHORS.len(), any::<u128>(), any::<u8>()).prop_map(|(i, r, l)| {
        let (base, alen) = ANCHORS[i];
        let len = alen + l % (129 - alen);
        let a = (base | (r & !v6_mask(alen))) & v6_mask(len);
        cidr(&format!("{}/{len}", Ipv6Addr::from(a)))
    })
}

// === 2. Reserved addresses of a subnet ===

/// A one-subnet topology with hosts at the given addresses; returns, per host, whether it got
/// `HOST_ADDRESS_RESERVED`.
fn reserved_flags(space: &str, subnet: &str, hosts: &[IpAddr]) -> Vec<bool> {
    let fx = Fixture {
        vnets: vec![VnetFile {
            name: "v".into(),
            region: "westeurope".into(),
            subscription: None,
            address_space: vec![space.into()],
            peerings: vec![],
            subnets: vec![subnet_file("s", vec![subnet.into()], None)],
            bgp_routes: vec![],
        }],
        hosts: hosts
            .iter()
            .enumerate()
            .map(|(i, a)| host_file(&format!("h{i}"), &a.to_string()))
            .collect(),
        ..Fixture::default()
    };
    let b = Topology::build(&fx, tags().clone());
    (0..hosts.len())
        .map(|i| {
            let subject = format!("hosts/h{i}");
            b.findings
                .iter()
                .any(|f| f.subject == subject && f.code.as_str() == "HOST_ADDRESS_RESERVED")
        })
        .collect()
}

fn subnet_file(name: &str, prefixes: Vec<String>, nsg: Option<&str>) -> SubnetFile {
    SubnetFile {
        name: name.into(),
        address_prefixes: prefixes,
        delegations: vec![],
        nsg: nsg.map(str::to_string),
        resources: vec![],
        private_endpoint_network_policies: PrivateEndpointPolicies::Disabled,
        route_table: None,
        nat_gateway: None,
        service_endpoints: Vec::new(),
    }
}

fn host_file(name: &str, address: &str) -> HostFile {
    HostFile {
        name: name.into(),
        address: address.into(),
        public_address: None,
        nsg: None,
        application_security_groups: vec![],
        dns: vec![],
        kind: HostKind::Nic,
        services: vec![],
        subnet: None,
        ip_forwarding: false,
        public_network_access: None,
        private_link_fqdn: None,
    }
}

#[test]
fn every_small_subnet_has_size_minus_five_usable_addresses() {
    // Azure reserves the first four addresses (network, gateway, two DNS) and the last.
    assert_eq!(RESERVED_AT_START, 4);
    for len in 26..=29u8 {
        let s = cidr(&format!("10.0.1.0/{len}"));
        let all: Vec<IpAddr> = (0..s.size()).map(|o| s.nth(o).unwrap()).collect();
        let flags = reserved_flags("10.0.0.0/16", &s.to_string(), &all);
        // Exactly offsets 0–3 and the last one are refused …
        for (o, reserved) in flags.iter().enumerate() {
            let o = o as u128;
            assert_eq!(*reserved, o < 4 || o == s.size() - 1, "{s} offset {o}");
        }
        // … so the usable count is size − 5 (a /29 has three usable addresses, SUBNET-MGMT).
        let free = flags.iter().filter(|r| !**r).count() as u128;
        assert_eq!(free, usable(&s), "{s}");
    }
    assert_eq!(usable(&cidr("10.0.1.0/29")), 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// At random offsets of random IPv4 subnets (/2–/29) and of a /64: HOST_ADDRESS_RESERVED
    /// appears exactly for offsets 0–3 and the last address.
    #[test]
    fn reserved_addresses_are_the_first_four_and_the_last(
        v4 in any::<bool>(), len in 2u8..=29, net in any::<u32>(), offs in prop::collection::vec(any::<u128>(), 1..6),
    ) {
        let (space, s) = if v4 {
            let n = net & v4_mask(len);
            // The subnet is its own address space; skip the few that touch a range Azure forbids
            // in address spaces (loopback, multicast, link-local, 168.63.129.16, broadcast).
            let s = cidr(&format!("{}/{len}", Ipv4Addr::from(n)));
            let forbidden = sim::FORBIDDEN_ADDRESS_SPACE.iter().any(|f| cidr(f).overlaps(&s));
            prop_assume!(!forbidden);
            (s.to_string(), s)
        } else {
            let s = cidr(&format!("fd00:10:0:{:x}::/64", net & 0xffff));
            ("fd00:10::/48".to_string(), s)
        };
        let size = s.size();
        // Offsets: the boundaries plus random ones.
        let mut offsets: Vec<u128> = vec![0, 3, 4, size - 2, size - 1];
        offsets.extend(offs.iter().map(|o| o % size));
        let addrs: Vec<IpAddr> = offsets.iter().map(|o| s.nth(*o).unwrap()).collect();
        // Hosts must not share an address (that is a different finding): dedupe.
        let mut seen = BTreeSet::new();
        let (offsets, addrs): (Vec<u128>, Vec<IpAddr>) =
            offsets.into_iter().zip(addrs).filter(|(_, a)| seen.insert(*a)).unzip();
        let flags = reserved_flags(&space, &s.to_string(), &addrs);
        for (o, reserved) in offsets.iter().zip(flags) {
            prop_assert_eq!(reserved, *o < RESERVED_AT_START || *o == size - 1, "{} offset {}", s, o);
        }
    }
}

// === 3. Address sets ===

/// Probe addresses for a list of prefixes: each prefix's boundaries and neighbours, plus extras.
fn probes_for(prefixes: &[Cidr], extra: &[u64]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for (i, p) in prefixes.iter().enumerate() {
        for k in 0..4 {
            out.push(point_in(p, k));
        }
        out.push(point_inside(p, extra.get(i).copied().unwrap_or(7)));
    }
    out.extend(
        [
            "0.0.0.0",
            "255.255.255.255",
            "::",
            "10.0.0.0",
            "20.1.2.3",
            "fd00:10::1",
        ]
        .map(|s| s.parse::<IpAddr>().unwrap()),
    );
    out
}

/// The merged-interval invariant: sorted, disjoint and non-adjacent.
fn normalised<T: Copy + Ord + Into<u128>>(ivs: &[(T, T)]) -> bool {
    ivs.iter().all(|(lo, hi)| lo <= hi)
        && ivs
            .windows(2)
            .all(|w| w[0].1.into().saturating_add(1) < w[1].0.into())
}

fn set_ok(s: &AddrSet) -> bool {
    normalised(s.v4_intervals()) && normalised(s.v6_intervals())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    /// Membership equals "any prefix contains", and the stored intervals are normalised.
    #[test]
    fn addrset_membership_is_any_prefix(ps in prop::collection::vec(arb_prefix(), 0..12), extra in prop::collection::vec(any::<u64>(), 12)) {
        let s = AddrSet::from_cidrs(ps.iter().copied());
        // Stored as sorted, merged, non-adjacent intervals.
        prop_assert!(set_ok(&s));
        // Empty exactly when built from nothing.
        prop_assert_eq!(s.is_empty(), ps.is_empty());
        // Membership is "some prefix contains it", at every boundary and inside.
        for x in probes_for(&ps, &extra) {
            prop_assert_eq!(s.contains(x), ps.iter().any(|p| p.contains(x)), "{}", x);
        }
    }

    /// Union, difference and intersection agree with membership logic; `intersects` equals
    /// "some pair of prefixes overlaps".
    #[test]
    fn addrset_algebra_agrees_with_membership(
        a in prop::collection::vec(arb_prefix(), 0..8),
        b in prop::collection::vec(arb_prefix(), 0..8),
        extra in prop::collection::vec(any::<u64>(), 16),
    ) {
        let sa = AddrSet::from_cidrs(a.iter().copied());
        let sb = AddrSet::from_cidrs(b.iter().copied());
        let u = sa.union(&sb);
        let d = sa.difference(&sb);
        // Results stay normalised.
        prop_assert!(set_ok(&u) && set_ok(&d));
        let mut all = a.clone();
        all.extend(&b);
        for x in probes_for(&all, &extra) {
            // x ∈ a ∪ b ⇔ x ∈ a ∨ x ∈ b; x ∈ a − b ⇔ x ∈ a ∧ x ∉ b.
            prop_assert_eq!(u.contains(x), sa.contains(x) || sb.contains(x), "union at {}", x);
            prop_assert_eq!(d.contains(x), sa.contains(x) && !sb.contains(x), "difference at {}", x);
        }
        let pairwise = a.iter().any(|p| b.iter().any(|q| p.overlaps(q)));
        // The sets meet exactly when some prefix of one overlaps some prefix of the other.
        prop_assert_eq!(sa.intersects(&sb), pairwise);
        // (a − b) never meets b, and (a − b) ∪ b = a ∪ b (as normalised intervals).
        prop_assert!(!d.intersects(&sb));
        prop_assert_eq!(d.union(&sb), u.clone());
        // The complement of a set, united with it, is everything.
        prop_assert!(AddrSet::any().difference(&sa).union(&sa).is_any());
    }
}

// === 4. Port sets ===

fn arb_port() -> impl Strategy<Value = u32> {
    prop_oneof![
        select(vec![
            0u32, 1, 22, 53, 80, 443, 1433, 3389, 8080, 65534, 65535
        ]),
        0u32..=65535,
    ]
}

fn arb_port_range() -> impl Strategy<Value = (u32, u32)> {
    (arb_port(), arb_port()).prop_map(|(a, b)| (a.min(b), a.max(b)))
}

/// A port item as text: `N` or `N-M`, sometimes padded with spaces.
fn range_text((lo, hi): (u32, u32), pad: bool) -> String {
    let t = if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    };
    if pad {
        format!(" {t} ")
    } else {
        t
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any list of valid items parses; membership equals "some item covers the port"; the set
    /// prints and parses back to itself; a port-less flow matches only a set covering every port.
    #[test]
    fn portset_parse_round_trip_and_membership(
        ranges in prop::collection::vec(arb_port_range(), 1..6), pads in any::<u8>(), probes in prop::collection::vec(arb_port(), 8),
    ) {
        let items: Vec<String> = ranges.iter().enumerate().map(|(i, r)| range_text(*r, pads >> (i % 8) & 1 == 1)).collect();
        let p = PortSet::parse_list(&items).expect("valid items parse");
        // The comma-joined single-field form is the same set.
        prop_assert_eq!(PortSet::parse(&items.join(",")), Ok(p.clone()));
        // Display round-trips.
        prop_assert_eq!(PortSet::parse(&p.to_string()), Ok(p.clone()));
        let covers = |x: u32| ranges.iter().any(|(lo, hi)| *lo <= x && x <= *hi);
        let mut ps = probes.clone();
        for (lo, hi) in &ranges {
            ps.extend([*lo, *hi, lo.saturating_sub(1), (hi + 1).min(65535)]);
        }
        for x in ps {
            // Membership at every item boundary, its outer neighbours and random ports.
            prop_assert_eq!(p.contains(x), covers(x), "port {} in {}", x, p);
        }
        // Whether the items cover 0–65535, by merging them (independently of PortSet).
        let mut sorted = ranges.clone();
        sorted.sort_unstable();
        let mut reach = 0u32; // every port below `reach` is covered
        for (lo, hi) in sorted {
            if lo <= reach {
                reach = reach.max(hi + 1);
            }
        }
        let every = reach > 65535;
        // Items covering every port (e.g. `0-100, 101-65535`) normalise to `*`.
        prop_assert_eq!(p.is_any(), every);
        // NO_PORT (ICMP/ESP/AH) is matched only by a field that covers every port.
        prop_assert_eq!(p.contains(NO_PORT), every);
        // `*` anywhere in the list means every port.
        let mut with_star = items.clone();
        with_star.push("*".into());
        prop_assert!(PortSet::parse_list(&with_star).unwrap().is_any());
    }

    /// Reversed ranges, ports above 65535 and non-numbers are refused, never clamped.
    #[test]
    fn portset_rejects_bad_items(lo in 1u32..=65535, d in 1u32..1000, big in 65536u32..1_000_000, junk in "[a-z+ ]{1,4}") {
        let reversed = format!("{lo}-{}", lo - 1);
        let too_big = format!("{}-{big}", lo.saturating_sub(d));
        prop_assert!(PortSet::parse(&reversed).is_err());
        prop_assert!(PortSet::parse(&big.to_string()).is_err());
        prop_assert!(PortSet::parse(&too_big).is_err());
        prop_assert!(PortSet::parse(&junk).is_err());
        // A field with no item at all is not "any port" either.
        prop_assert!(PortSet::parse_list(Vec::<String>::new()).is_err());
    }
}

// === 5. NSG evaluation ===

/// Tags the generated rules use: the three virtual tags (one in a classic or odd case) and
/// table tags of the built-in (whole) table, global and regional. Global tags of the whole file
/// hold hundreds to thousands of prefixes (`Sql` 1,513); two of them plus regional forms keep the
/// unoptimised oracle comparison fast, and the NSG bench measures the biggest.
const TAGS: &[&str] = &[
    "VirtualNetwork",
    "Internet",
    "AzureLoadBalancer",
    "internet",
    "VIRTUAL_NETWORK",
    "Storage",
    "Storage.WestEurope",
    "SQL.EastAsia",
    "AzureKeyVault.SwedenCentral",
    "AzureKeyVault.NorthEurope",
    "ApiManagement",
    "AzureActiveDirectory",
    "EventHub.EastUS",
];
const ASGS: &[&str] = &["asg-a", "asg-b", "asg-c"];

/// The text of a prefix in a rule: a bare address for host prefixes (the "single IP" form).
fn prefix_text(c: &Cidr) -> String {
    if c.size() == 1 {
        c.first().to_string()
    } else {
        c.to_string()
    }
}

/// The prefixes that overlap none kept before them: one rule's list may not overlap itself
/// (RULE_PREFIX_OVERLAP, ARM's OverlappingSubnetsNotPermittedInSecurityRule).
fn disjoint(v: &[Cidr]) -> Vec<Cidr> {
    let mut kept: Vec<Cidr> = Vec::new();
    for c in v {
        if !kept.iter().any(|k| k.overlaps(c)) {
            kept.push(*c);
        }
    }
    kept
}

fn arb_address_field(v6: bool) -> BoxedStrategy<AddressField> {
    let prefix = if v6 {
        arb_v6_prefix().boxed()
    } else {
        arb_v4_prefix().boxed()
    };
    prop_oneof![
        3 => Just(AddressField::Prefix("*".into())),
        3 => prefix.clone().prop_map(|c| AddressField::Prefix(prefix_text(&c))),
        2 => prop::collection::vec(prefix.clone(), 1..5)
            .prop_map(|v| AddressField::Prefixes(disjoint(&v).iter().map(prefix_text).collect())),
        1 => (select(TAGS), prop::collection::vec(prefix, 0..3)).prop_map(|(t, v)| {
            // An augmented list with one service tag besides prefixes.
            let mut items: Vec<String> = disjoint(&v).iter().map(prefix_text).collect();
            items.insert(0, t.to_string());
            AddressField::Prefixes(items)
        }),
        3 => select(TAGS).prop_map(|t| AddressField::Prefix(t.into())),
        2 => prop::sample::subsequence(ASGS, 1..=2)
            .prop_map(|v| AddressField::Asgs(v.iter().map(|s| s.to_string()).collect())),
    ]
    .boxed()
}

fn arb_port_field() -> impl Strategy<Value = PortField> {
    prop_oneof![
        3 => Just(PortField::Range("*".into())),
        3 => arb_port_range().prop_map(|r| PortField::Range(range_text(r, false))),
        2 => prop::collection::vec(arb_port_range(), 1..4)
            .prop_map(|v| PortField::Ranges(v.into_iter().map(|r| range_text(r, false)).collect())),
        1 => Just(PortField::Range("0-65535".into())),
        // The portal's "80, 1024-65535" input is the plural field (a list in the singular field
        // is RULE_PORT_INVALID, ARM's SecurityRuleInvalidPortRange), padded as typed.
        1 => prop::collection::vec(arb_port_range(), 2..4)
            .prop_map(|v| PortField::Ranges(v.into_iter().map(|r| format!(" {}", range_text(r, false))).collect())),
    ]
}

fn arb_rule_protocol() -> impl Strategy<Value = RuleProtocol> {
    select(RuleProtocol::ALL.to_vec())
}

/// A custom rule without name and priority (assigned per NSG so both stay unique).
#[derive(Clone, Debug)]
struct GenRule {
    inbound: bool,
    access: Access,
    protocol: RuleProtocol,
    source: AddressField,
    source_ports: PortField,
    destination: AddressField,
    destination_ports: PortField,
    priority_seed: u16,
}

/// Rules of one address family each (a rule may not mix families); `inbound_bias` in 0..=8 skews
/// the direction, so many NSGs have one long list (the lead's classifier starts past 24 rules).
fn arb_gen_rule(inbound_bias: u8) -> impl Strategy<Value = GenRule> {
    (
        0u8..8,
        any::<bool>(),
        prop_oneof![4 => Just(false), 1 => Just(true)],
        arb_rule_protocol(),
        arb_port_field(),
        arb_port_field(),
        any::<u16>(),
    )
        .prop_flat_map(move |(d, deny, v6, protocol, sp, dp, seed)| {
            // Port-less protocols mostly come with `*` ports, as real ICMP rules do (a rule
            // naming ports never matches a port-less flow, ASSUMPTION_PORTLESS_PROTOCOLS).
            let portless = matches!(
                protocol,
                RuleProtocol::Icmp | RuleProtocol::Esp | RuleProtocol::Ah
            );
            let star = || PortField::Range("*".into());
            let (sp, dp) = if portless && seed % 5 != 0 {
                (star(), star())
            } else {
                (sp, dp)
            };
            (arb_address_field(v6), arb_address_field(v6)).prop_map(move |(s, t)| GenRule {
                inbound: d < inbound_bias,
                access: if deny { Access::Deny } else { Access::Allow },
                protocol,
                source: s,
                source_ports: sp.clone(),
                destination: t,
                destination_ports: dp.clone(),
                priority_seed: seed,
            })
        })
}

fn arb_rules(max: usize) -> impl Strategy<Value = Vec<GenRule>> {
    (0u8..=8).prop_flat_map(move |bias| prop::collection::vec(arb_gen_rule(bias), 0..=max))
}

/// Turns generated rules into fixture rules with unique names (`r0`, `r1`, …) and priorities
/// unique per direction.
fn to_rule_files(rules: &[GenRule]) -> Vec<RuleFile> {
    let mut used: BTreeSet<(bool, i64)> = BTreeSet::new();
    rules
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut p = 100 + i64::from(g.priority_seed) % 3997;
            while !used.insert((g.inbound, p)) {
                p = if p == 4096 { 100 } else { p + 1 };
            }
            rule_file(&format!("r{i}"), p, g)
        })
        .collect()
}

fn rule_file(name: &str, priority: i64, g: &GenRule) -> RuleFile {
    RuleFile {
        name: name.into(),
        priority,
        direction: if g.inbound {
            Direction::Inbound
        } else {
            Direction::Outbound
        },
        access: g.access,
        protocol: g.protocol,
        source: g.source.clone(),
        source_ports: g.source_ports.clone(),
        destination: g.destination.clone(),
        destination_ports: g.destination_ports.clone(),
        description: None,
    }
}

/// ASG members: hosts of the NSG's subnet (IPv4 and IPv6), each in some ASGs.
fn arb_members() -> impl Strategy<Value = Vec<(IpAddr, Vec<&'static str>)>> {
    prop::collection::vec(
        (
            any::<bool>(),
            4u32..=254,
            prop::sample::subsequence(ASGS, 0..=2),
        )
            .prop_map(|(v6, o, asgs)| {
                let a: IpAddr = if v6 {
                    format!("fd00:10::{o:x}").parse().unwrap()
                } else {
                    format!("10.0.0.{o}").parse().unwrap()
                };
                (a, asgs)
            }),
        0..8,
    )
}

/// One VNet (`v`: 10.0.0.0/16 + fd00:10::/48 + public 20.1.0.0/16, peered both ways with `p`:
/// 10.1.0.0/16) whose
/// subnet `s` has the NSG `n` with `rules`, and the ASG member hosts.
fn nsg_topology(rules: Vec<RuleFile>, members: &[(IpAddr, Vec<&'static str>)]) -> Topology {
    let mut seen = BTreeSet::new();
    let fx = Fixture {
        vnets: vec![
            VnetFile {
                name: "v".into(),
                region: "westeurope".into(),
                subscription: None,
                // A public range too: Azure allows it, and it is VirtualNetwork, not Internet.
                address_space: vec![
                    "10.0.0.0/16".into(),
                    "fd00:10::/48".into(),
                    "20.1.0.0/16".into(),
                ],
                peerings: vec!["p".into()],
                subnets: vec![subnet_file(
                    "s",
                    vec!["10.0.0.0/24".into(), "fd00:10::/64".into()],
                    Some("n"),
                )],
                bgp_routes: vec![],
            },
            VnetFile {
                name: "p".into(),
                region: "westeurope".into(),
                subscription: None,
                address_space: vec!["10.1.0.0/16".into()],
                peerings: vec!["v".into()],
                subnets: vec![],
                bgp_routes: vec![],
            },
        ],
        nsgs: vec![NsgFile {
            name: "n".into(),
            flush_connection: false,
            security_rules: rules,
        }],
        application_security_groups: ASGS.iter().map(|s| s.to_string()).collect(),
        hosts: members
            .iter()
            .filter(|(a, _)| seen.insert(*a))
            .enumerate()
            .map(|(i, (a, asgs))| HostFile {
                application_security_groups: asgs.iter().map(|s| s.to_string()).collect(),
                ..host_file(&format!("m{i}"), &a.to_string())
            })
            .collect(),
        ..Fixture::default()
    };
    let b = Topology::build(&fx, tags().clone());
    let errs = b.structural_errors();
    assert!(errs.is_empty(), "generated topology has errors: {errs:#?}");
    b.topology
}

/// Raw choices for one flow; mapped onto addresses and ports the rules mention.
type FlowSeed = (u8, u64, u64, u16, u16);

fn arb_flow_seeds(n: usize) -> impl Strategy<Value = Vec<FlowSeed>> {
    prop::collection::vec(any::<FlowSeed>(), n)
}

/// Addresses outside any rule: private, public and special, in both families.
const EXTRA_REGIONS: &[&str] = &[
    "10.0.0.0/24",
    "10.0.0.0/16",
    "10.1.0.0/16",
    "10.2.0.0/16",
    "172.31.0.100/32",
    "100.64.0.1/32",
    "127.0.0.1/32",
    "168.63.129.16/32",
    "13.107.21.200/32",
    "20.0.0.0/8",
    "20.1.0.0/16",
    "8.8.8.8/32",
    "203.0.113.0/24",
    "fd00:10::/64",
    "fd00:99::/48",
    "2603:1000::/24",
    "2001:db8::/32",
    "::1/128",
];

/// The regions an address field covers, as prefixes to draw from: its prefixes, a few prefixes
/// of its table tag, the VNet for VirtualNetwork, public ranges for Internet, ASG members.
fn field_regions(t: &Topology, field: &AddressField) -> Vec<Cidr> {
    let items: Vec<&String> = match field {
        AddressField::Prefix(p) => vec![p],
        AddressField::Prefixes(ps) => ps.iter().collect(),
        AddressField::Asgs(asgs) => {
            return t
                .hosts()
                .iter()
                .filter(|h| {
                    asgs.iter()
                        .any(|a| h.asgs.contains(&a.to_ascii_lowercase()))
                })
                .map(|h| Cidr::host(h.address))
                .collect()
        }
    };
    let mut out = Vec::new();
    for it in items {
        let lower = it.to_ascii_lowercase();
        if let Ok(c) = Cidr::parse_address_or_prefix(it) {
            out.push(c);
        } else if lower == "*" {
            out.extend(EXTRA_REGIONS.iter().map(|s| cidr(s)));
        } else if lower == "virtualnetwork" || lower == "virtual_network" {
            out.extend(["10.0.0.0/16", "fd00:10::/48", "10.1.0.0/16", "20.1.0.0/16"].map(cidr));
        } else if lower == "internet" {
            out.extend(["13.107.21.200/32", "20.0.0.0/8", "2603:1000::/24"].map(cidr));
        } else if lower == "azureloadbalancer" {
            out.push(cidr("168.63.129.16/32"));
        } else if let Some(tag) = t.service_tags().get(it) {
            let n = tag.prefixes.len();
            out.extend(
                [0, n / 3, n / 2, n.saturating_sub(1)]
                    .iter()
                    .filter_map(|i| tag.prefixes.get(*i)),
            );
        }
    }
    out
}

/// Ports a port field mentions: each range's ends, a point inside, and (unless `inside`) the
/// ends' outer neighbours.
fn field_ports(pf: &PortField, sel: u16, inside: bool) -> Vec<u16> {
    let items: Vec<String> = match pf {
        PortField::Range(s) => vec![s.clone()],
        PortField::Ranges(v) => v.clone(),
    };
    let mut out = Vec::new();
    if let Ok(p) = PortSet::parse_list(&items) {
        for (lo, hi) in p.ranges() {
            let hi = (*hi).min(65535);
            let within = lo + u32::from(sel) % (hi - lo + 1);
            out.extend([*lo, hi, within].map(|x| u16::try_from(x).expect("a port")));
            if !inside {
                out.extend(
                    [lo.saturating_sub(1), hi + 1]
                        .iter()
                        .filter_map(|x| u16::try_from(*x).ok()),
                );
            }
        }
    }
    out
}

fn protocol_of(r: RuleProtocol, sel: u8) -> Protocol {
    match r {
        RuleProtocol::Tcp => Protocol::Tcp,
        RuleProtocol::Udp => Protocol::Udp,
        RuleProtocol::Icmp => Protocol::Icmp,
        RuleProtocol::Esp => Protocol::Esp,
        RuleProtocol::Ah => Protocol::Ah,
        // Mostly protocols with ports, so port fields matter; port-less ones too.
        RuleProtocol::Any => [
            Protocol::Tcp,
            Protocol::Udp,
            Protocol::Tcp,
            Protocol::Icmp,
            Protocol::Esp,
            Protocol::Ah,
        ][usize::from(sel) % 6],
    }
}

fn pick<T: Copy>(v: &[T], sel: u64) -> Option<T> {
    (!v.is_empty()).then(|| v[(sel % v.len() as u64) as usize])
}

/// Flows biased to hit rules: three in four aim at one rule (its protocol, addresses from its
/// own fields, ports from its own ranges), so they are decided by that rule unless an earlier
/// one matches first; the rest draw from everything the rules mention plus extras.
fn flow_keys(t: &Topology, rules: &[RuleFile], seeds: &[FlowSeed]) -> Vec<FlowKey> {
    let mut pool: Vec<Cidr> = EXTRA_REGIONS.iter().map(|s| cidr(s)).collect();
    let mut ports: Vec<u16> = vec![0, 22, 80, 443, 1433, 3389, 8080, 60000, 65535];
    pool.extend(t.hosts().iter().map(|h| Cidr::host(h.address)));
    for r in rules {
        pool.extend(field_regions(t, &r.source));
        pool.extend(field_regions(t, &r.destination));
        ports.extend(field_ports(&r.source_ports, 7, false));
        ports.extend(field_ports(&r.destination_ports, 7, false));
    }
    seeds
        .iter()
        .map(|&(p, s, d, sp, dp)| {
            let target = (p % 4 != 0 && !rules.is_empty())
                .then(|| &rules[((s ^ d) % rules.len() as u64) as usize]);
            let (protocol, src_regions, dst_regions, sports, dports) = match target {
                Some(r) => (
                    protocol_of(r.protocol, p >> 2),
                    field_regions(t, &r.source),
                    field_regions(t, &r.destination),
                    field_ports(&r.source_ports, sp, true),
                    field_ports(&r.destination_ports, dp, true),
                ),
                None => (
                    Protocol::ALL[usize::from(p >> 2) % Protocol::ALL.len()],
                    pool.clone(),
                    pool.clone(),
                    ports.clone(),
                    ports.clone(),
                ),
            };
            // The family: that of the rule's explicit prefixes when it has any (a rule has one
            // family), else whatever the source draws.
            let explicit = |f: &AddressField| match f {
                AddressField::Prefix(p) => Cidr::parse_address_or_prefix(p).ok(),
                AddressField::Prefixes(ps) => ps
                    .iter()
                    .find_map(|p| Cidr::parse_address_or_prefix(p).ok()),
                AddressField::Asgs(_) => None,
            };
            let v4 = target
                .and_then(|r| explicit(&r.source).or_else(|| explicit(&r.destination)))
                .map(|c| c.is_ipv4());
            let of_family = |v: &[Cidr]| -> Vec<Cidr> {
                v.iter()
                    .copied()
                    .filter(|c| v4.is_none_or(|f| c.is_ipv4() == f))
                    .collect()
            };
            let src_region = pick(&of_family(&src_regions), s)
                .or_else(|| pick(&src_regions, s))
                .or_else(|| pick(&pool, s))
                .unwrap();
            // Same family at both ends, as a real packet has.
            let family = |v: &[Cidr]| -> Vec<Cidr> {
                v.iter()
                    .copied()
                    .filter(|c| c.is_ipv4() == src_region.is_ipv4())
                    .collect()
            };
            let dst_region = pick(&family(&dst_regions), d)
                .or_else(|| pick(&family(&pool), d))
                .unwrap();
            // Aimed flows land inside the rule's prefixes; the others also probe just outside.
            let point = if target.is_some() {
                point_inside
            } else {
                point_in
            };
            FlowKey::new(
                protocol,
                point(&src_region, s >> 16),
                pick(&sports, u64::from(sp)).or_else(|| pick(&ports, u64::from(sp))),
                point(&dst_region, d >> 16),
                pick(&dports, u64::from(dp)).or_else(|| pick(&ports, u64::from(dp))),
            )
        })
        .collect()
}

const DIRECTIONS: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The compiled evaluator (linear scan or the classifier behind long lists) decides exactly
    /// like the reference oracle, and the explaining path names the same rule with a coherent
    /// trace: every rule in priority order up to the match, only the last one matching, and
    /// port/protocol flags equal to the rule's own fields.
    #[test]
    fn compiled_equals_reference_and_explain_equals_decide(
        rules in arb_rules(60), members in arb_members(), seeds in arb_flow_seeds(48),
    ) {
        let files = to_rule_files(&rules);
        let t = nsg_topology(files.clone(), &members);
        let nsg = &t.nsgs()[0];
        // Every generated rule is valid, so none was left out of the model.
        prop_assert_eq!(nsg.rules.len(), files.len() + 6);
        let compiled = t.compiled(0, 0).expect("n is applied in v");
        let reference = t.reference(0, 0).expect("n exists");
        for key in flow_keys(&t, &files, &seeds) {
            for dir in DIRECTIONS {
                let m = compiled.decide(dir, &key);
                // The compiled verdict-only path equals the oracle.
                prop_assert_eq!(Some(m), reference.decide(dir, &key), "{:?} {:?}", dir, key);
                let (trace, em) = compiled.explain(nsg, dir, &key);
                // The explaining path picks the same rule.
                prop_assert_eq!(em, m);
                let order = nsg.order(dir);
                prop_assert!(!trace.is_empty());
                for (i, ev) in trace.iter().enumerate() {
                    let rule = &nsg.rules[order[i]];
                    // The trace walks the rules in priority order …
                    prop_assert_eq!(&ev.name, &rule.qualified_name());
                    prop_assert_eq!(ev.priority, rule.priority);
                    // … with port and protocol flags equal to the rule's own fields …
                    prop_assert_eq!(ev.protocol_matched, rule.protocol.matches(key.protocol));
                    prop_assert_eq!(ev.source_port_matched, rule.source_ports.contains(key.source_port));
                    prop_assert_eq!(ev.destination_port_matched, rule.destination_ports.contains(key.destination_port));
                    // … and only the last rule examined matches, and it is the decided rule.
                    prop_assert_eq!(ev.matched(), i + 1 == trace.len());
                }
                prop_assert_eq!(order[trace.len() - 1], m.rule);
                prop_assert_eq!(nsg.rules[m.rule].access, m.access);
            }
        }
    }
}

proptest! {
    // Each case builds two topologies; fewer cases, same flows per case.
    #![proptest_config(ProptestConfig::with_cases(112))]

    /// The order of rules in the file never changes a verdict: shuffled, the same rule (by name)
    /// decides every flow.
    #[test]
    fn rule_order_in_the_file_is_irrelevant(
        rules in arb_rules(60), members in arb_members(), seeds in arb_flow_seeds(32), shuffle in any::<u64>(),
    ) {
        let files = to_rule_files(&rules);
        let mut shuffled = files.clone();
        let mut x = shuffle | 1;
        for i in (1..shuffled.len()).rev() {
            // xorshift64: a deterministic Fisher–Yates driven by the generated seed.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let a = nsg_topology(files.clone(), &members);
        let b = nsg_topology(shuffled, &members);
        let (ca, cb) = (a.compiled(0, 0).unwrap(), b.compiled(0, 0).unwrap());
        let (na, nb) = (&a.nsgs()[0], &b.nsgs()[0]);
        for key in flow_keys(&a, &files, &seeds) {
            for dir in DIRECTIONS {
                let (ma, mb) = (ca.decide(dir, &key), cb.decide(dir, &key));
                prop_assert_eq!(
                    (ma.access, &na.rules[ma.rule].name),
                    (mb.access, &nb.rules[mb.rule].name),
                    "{:?} {:?}", dir, key
                );
            }
        }
    }

    /// Once a custom rule decides a flow, adding a rule with a larger priority number (in either
    /// direction) never changes that decision.
    #[test]
    fn a_larger_priority_number_never_overrides(
        rules in arb_rules(40), members in arb_members(), seeds in arb_flow_seeds(32),
        extra in arb_gen_rule(4), above in any::<bool>(),
    ) {
        let files = to_rule_files(&rules);
        let t = nsg_topology(files.clone(), &members);
        let nsg = &t.nsgs()[0];
        let c = t.compiled(0, 0).unwrap();
        let keys = flow_keys(&t, &files, &seeds);
        let before: Vec<[(Access, String, u32, bool); 2]> = keys
            .iter()
            .map(|k| {
                DIRECTIONS.map(|d| {
                    let m = c.decide(d, k);
                    let r = &nsg.rules[m.rule];
                    (m.access, r.name.clone(), r.priority, r.is_default)
                })
            })
            .collect();
        // A free priority for the extra rule: above every rule of its direction when possible
        // (so every custom decision is checked), else any free one.
        let dir = if extra.inbound { Direction::Inbound } else { Direction::Outbound };
        let used: BTreeSet<i64> = files.iter().filter(|r| r.direction == dir).map(|r| r.priority).collect();
        let max_used = used.iter().max().copied().unwrap_or(99);
        let free: Vec<i64> = (100..=4096).filter(|p| !used.contains(p)).collect();
        let q = if above && max_used < 4096 {
            max_used + 1 + i64::from(extra.priority_seed) % (4096 - max_used)
        } else {
            free[usize::from(extra.priority_seed) % free.len()]
        };
        let mut more = files.clone();
        more.push(rule_file("extra", q, &extra));
        let t2 = nsg_topology(more, &members);
        let c2 = t2.compiled(0, 0).unwrap();
        let n2 = &t2.nsgs()[0];
        for (k, b) in keys.iter().zip(&before) {
            for (di, d) in DIRECTIONS.iter().enumerate() {
                let (access, name, prio, is_default) = &b[di];
                if *is_default || i64::from(*prio) > q {
                    continue; // a default rule, or a custom rule behind the new one, may change
                }
                let m = c2.decide(*d, k);
                prop_assert_eq!((m.access, &n2.rules[m.rule].name), (*access, name), "{:?} {:?}", d, k);
            }
        }
    }
}

// === 6. Fixture parser robustness ===

const DEFAULT_FIXTURE: &str = include_str!("../../fixtures/default.toml");

/// The default fixture in the three syntaxes of one schema.
fn valid_texts() -> &'static [(Format, String); 3] {
    static T: OnceLock<[(Format, String); 3]> = OnceLock::new();
    T.get_or_init(|| {
        let f = Fixture::parse(DEFAULT_FIXTURE, Format::Toml).expect("default fixture parses");
        [
            (Format::Toml, DEFAULT_FIXTURE.to_string()),
            (
                Format::Json,
                serde_json::to_string_pretty(&f).expect("fixture serialises to JSON"),
            ),
            (
                Format::Yaml,
                serde_yaml_ng::to_string(&f).expect("fixture serialises to YAML"),
            ),
        ]
    })
}

#[test]
fn the_default_fixture_reads_the_same_in_toml_json_and_yaml() {
    let f = Fixture::parse(DEFAULT_FIXTURE, Format::Toml).unwrap();
    // One schema, three syntaxes: the JSON and YAML renderings parse to the same value …
    for (format, text) in valid_texts() {
        assert_eq!(Fixture::parse(text, *format).as_ref(), Ok(&f), "{format:?}");
    }
    // … and so does the TOML the fixture serialises back to.
    assert_eq!(Fixture::parse(&f.to_toml().unwrap(), Format::Toml), Ok(f));
}

/// Parses `text` in every format; whatever parses must also build and evaluate without panicking.
/// The source map of any text locates any pointer without panicking, always naming the file.
fn parse_everywhere(text: &str) -> Result<(), TestCaseError> {
    for format in [Format::Toml, Format::Json, Format::Yaml] {
        let map = sim::SourceMap::from_text("p", text, format);
        for pointer in [
            "",
            "/nsgs/0",
            "/nsgs/0/security_rules/1",
            "/vnets/0/subnets/0",
            "/a~1b/~0",
        ] {
            let at = map.locate(pointer).expect("a fixture's map always answers");
            prop_assert_eq!(at.file.as_deref(), Some("p"));
            prop_assert!(at.line != Some(0) && at.column != Some(0));
        }
        match Fixture::parse(text, format) {
            Ok(f) => exercise(&f)?,
            Err(e) => {
                // A load error carries a message (and a 1-based position when it has one).
                prop_assert!(!e.message.is_empty() || e.line.is_some());
                prop_assert!(e.line != Some(0) && e.column != Some(0));
            }
        }
    }
    Ok(())
}

/// Token soup: fragments of the three syntaxes and of fixture keys, so arbitrary input reaches
/// past the first byte of the parsers.
fn arb_token_soup() -> impl Strategy<Value = String> {
    const TOKENS: &[&str] = &[
        "[[",
        "]]",
        "[",
        "]",
        "{",
        "}",
        "=",
        ":",
        ",",
        "\"",
        "'",
        "\n",
        " ",
        "-",
        "#",
        "\"\"\"",
        "'''",
        "\\u00e9",
        "\\",
        "name",
        "vnets",
        "nsgs",
        "hosts",
        "apim",
        "subnets",
        "security_rules",
        "address_space",
        "address_prefix",
        "priority",
        "direction",
        "Inbound",
        "protocol",
        "*",
        "Tcp",
        "10.0.0.0/16",
        "10.0.1.7/24",
        "fd00::/64",
        "1e999",
        "0x10",
        "-1",
        "4096",
        "true",
        "null",
        "~",
        "&a",
        "*a",
        "!!str",
        "---",
        "é",
        "𝄞",
        "\u{0}",
        "\t",
        "\r\n",
        "1979-05-27",
    ];
    prop::collection::vec(select(TOKENS), 0..64).prop_map(|v| v.concat())
}

/// One edit of a text (as chars): delete a span, insert a token, replace a char, duplicate or
/// drop a line, or truncate.
#[derive(Clone, Debug)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, &'static str),
    Replace(usize, char),
    DupLine(usize),
    DropLine(usize),
    Truncate(usize),
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    const INS: &[&str] = &[
        "\"",
        "'",
        "[",
        "]",
        "{",
        "}",
        ",",
        "=",
        ":",
        "\n",
        " ",
        "-",
        "#",
        "0",
        "99999999999",
        "é",
        "𝄞",
        "\"\"",
        "[[nsgs]]\n",
        "- ",
        "  ",
        "null",
        "*",
        "/33",
        "::",
        "\u{0}",
    ];
    prop_oneof![
        (any::<usize>(), 1usize..16).prop_map(|(p, n)| Edit::Delete(p, n)),
        (any::<usize>(), select(INS)).prop_map(|(p, s)| Edit::Insert(p, s)),
        (any::<usize>(), any::<char>()).prop_map(|(p, c)| Edit::Replace(p, c)),
        any::<usize>().prop_map(Edit::DupLine),
        any::<usize>().prop_map(Edit::DropLine),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut c: Vec<char> = text.chars().collect();
    for e in edits {
        let n = c.len().max(1);
        match e {
            Edit::Delete(p, k) => {
                let p = p % n;
                let end = (p + k).min(c.len());
                if p < end {
                    c.drain(p..end);
                }
            }
            Edit::Insert(p, s) => {
                let p = p % (c.len() + 1);
                c.splice(p..p, s.chars());
            }
            Edit::Replace(p, ch) => {
                if !c.is_empty() {
                    let p = p % c.len();
                    c[p] = *ch;
                }
            }
            Edit::DupLine(l) | Edit::DropLine(l) => {
                let s: String = c.iter().collect();
                let mut lines: Vec<&str> = s.split('\n').collect();
                let i = l % lines.len();
                if matches!(e, Edit::DupLine(_)) {
                    lines.insert(i, lines[i]);
                } else {
                    lines.remove(i);
                }
                c = lines.join("\n").chars().collect();
            }
            Edit::Truncate(p) => c.truncate(p % n),
        }
    }
    c.into_iter().collect()
}

proptest! {
    // The fixture loader's fuzz targets: `VNETSIM_FUZZ_CASES` runs more (see `fuzz.rs`).
    #![proptest_config(fuzz_config(256))]

    /// The fixture parser never panics on arbitrary text, in any of the three formats.
    #[test]
    fn parser_never_panics_on_arbitrary_text(s in any::<String>()) {
        parse_everywhere(&s)?;
    }

    /// … nor on token soup made of the syntaxes' own fragments.
    #[test]
    fn parser_never_panics_on_token_soup(s in arb_token_soup()) {
        parse_everywhere(&s)?;
    }

    /// … nor on mutations of a valid fixture (TOML, JSON, YAML); a mutation that still parses
    /// also builds and evaluates without panicking.
    #[test]
    fn parser_never_panics_on_mutated_fixtures(which in 0usize..3, edits in prop::collection::vec(arb_edit(), 1..8)) {
        let (format, text) = &valid_texts()[which];
        let mutated = apply(text, &edits);
        match Fixture::parse(&mutated, *format) {
            Ok(f) => exercise(&f)?,
            Err(e) => prop_assert!(e.line.is_none_or(|l| l >= 1 && l <= mutated.split('\n').count() + 1)),
        }
        parse_everywhere(&mutated)?;
    }
}

// === 7. Topology builder robustness ===

/// Builds a fixture and puts the model through its paces: flows between every pair of known
/// addresses on both evaluation paths (which must agree), DNS from everywhere, API routing.
fn exercise(f: &Fixture) -> Result<(), TestCaseError> {
    let b = Topology::build(f, tags().clone());
    let t = &b.topology;
    // Findings are sorted errors-first and every one carries its code's severity.
    prop_assert!(b
        .findings
        .windows(2)
        .all(|w| w[0].severity <= w[1].severity));
    for fi in &b.findings {
        prop_assert_eq!(fi.severity, fi.code.severity());
    }
    let mut addrs: Vec<IpAddr> = Vec::new();
    for h in t.hosts() {
        addrs.push(h.address);
        addrs.extend(h.public_address);
    }
    addrs.extend(t.apim_source());
    addrs.extend(t.apim_endpoint());
    addrs.extend(
        ["93.184.216.34", "10.0.1.4", "172.31.0.100", "fd00:10::4"]
            .map(|s| s.parse::<IpAddr>().unwrap()),
    );
    addrs.truncate(10);
    for &s in &addrs {
        for &d in &addrs {
            for flow in [
                Flow::tcp(s, 60000, d, 443),
                Flow {
                    protocol: Protocol::Icmp,
                    source: s,
                    source_port: None,
                    destination: d,
                    destination_port: None,
                },
            ] {
                let v = t.evaluate(&flow);
                let dd = t.decide(&flow);
                // Deciding on a path computed once for the two addresses is the same decision
                // (and a path for other addresses is not misused).
                prop_assert_eq!(t.decide_on(&t.path(s, d), &flow), dd);
                prop_assert_eq!(t.decide_on(&t.path(d, s), &flow), dd);
                // Both paths agree on the verdict, the code and the deciding rule.
                prop_assert_eq!(dd.verdict, v.verdict);
                prop_assert_eq!(dd.code, v.code);
                prop_assert_eq!(
                    dd.decided_by.map(|r| t.rule_info(r).rule),
                    v.decided_by.as_ref().map(|x| x.rule.clone())
                );
                prop_assert_eq!(dd.nsgs().count(), v.evaluated.len());
                let _ = v.to_string();
            }
        }
    }
    // The question engine: an API's question (what `check --from apim --to HOST:PORT` asks)
    // gets the answer the gateway's path gives (its endpoints, then the verdict-only walk), and
    // an allowed flow is kept by the topology that allowed it.
    for i in 0..t.apis().len() {
        let Some(q) = t.api_question(i, 60000) else {
            continue;
        };
        let v = t.ask(&q);
        let e = t.api_endpoints(i).expect("the API exists");
        match (e.source, e.resolved.address) {
            (Some(s), Some(d)) => {
                let flow = Flow::tcp(s, 60000, d, e.port);
                let dd = t.decide(&flow);
                prop_assert_eq!((dd.verdict, dd.code), (v.verdict, v.code));
                prop_assert_eq!(v.resolved.as_ref(), Some(&e.resolved));
                if dd.allowed() {
                    prop_assert_eq!(t.established_fate(&flow), sim::Fate::Keep);
                }
            }
            (_, None) => {
                prop_assert_eq!(v.code, sim::VerdictCode::DnsFailure);
                prop_assert!(v.flow.destination.is_none());
            }
            (None, Some(_)) => prop_assert!(false, "a question needs a source"),
        }
    }
    let names: Vec<String> = t
        .hosts()
        .iter()
        .flat_map(|h| h.dns.clone())
        .chain(["nope.example".to_string()])
        .collect();
    for n in names.iter().take(8) {
        for v in 0..t.vnets().len().min(4) {
            let _ = t.resolve(n, sim::ResolveFrom::Vnet(v));
        }
        let _ = t.resolve(n, sim::ResolveFrom::Public);
        let _ = t.resolve_from_apim(n);
    }
    for p in ["/", "/orders", "/orders/1", "/ORDERS", "", "/é"] {
        let _ = t.route(p);
    }
    Ok(())
}

/// Name pools per kind: mostly the first three names (references hit them, once in another
/// case), sometimes odd or empty ones.
fn arb_name_from(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(&pool[..3]).prop_map(str::to_string),
        1 => select(pool).prop_map(str::to_string),
    ]
}
const VNET_NAMES: &[&str] = &["v", "a", "V", "x y", "", "vnet-app"];
const SUBNET_NAMES: &[&str] = &["s", "t", "S", "é-1", ""];
const NSG_NAMES: &[&str] = &["n", "m", "N", "nope", ""];
const HOST_NAMES: &[&str] = &["h1", "h2", "H1", "h3", "", "x y"];

fn strs(v: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    select(v).prop_map(str::to_string)
}

/// Prefix text: mostly valid (v4 and v6), sometimes invalid, forbidden, oversized or host bits set.
fn arb_prefix_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => arb_v4_prefix().prop_map(|c| c.to_string()),
        1 => arb_v6_prefix().prop_map(|c| c.to_string()),
        2 => strs(&[
            "10.0.0.0/16", "10.0.1.0/24", "10.0.1.0/27", "10.0.1.0/29", "10.1.0.0/16", "fd00:10::/64",
            "10.0.1.7/24", "garbage", "::/0", "0.0.0.0/0", "224.0.0.0/4", "10.0.0.0/31", "10.0.0.0/1",
            "fd00::/63", "168.63.129.16/32", "127.0.0.0/8", "10.0.0.0/33", " 10.0.0.0/16 ", "", "10.0.0.0",
        ]),
    ]
}

/// Address-space text: mostly the shared VNet ranges, sometimes anything or broken.
fn arb_space_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => strs(&["10.0.0.0/16", "10.1.0.0/16", "fd00:10::/48"]),
        1 => arb_prefix_text(),
    ]
}

/// Subnet-prefix text: mostly subnets of the shared ranges in several sizes (some overlapping,
/// some too small for APIM, some invalid for Azure), sometimes anything.
fn arb_subnet_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0u8..2, 0u8..4, select(vec![24u8, 24, 27, 29, 30, 22])).prop_map(|(a, b, l)| {
            let third = if l == 22 { 0 } else { b };
            format!("10.{a}.{third}.0/{l}")
        }),
        1 => (0u8..3).prop_map(|b| format!("fd00:10:0:{b}::/64")),
        1 => arb_prefix_text(),
    ]
}

/// Addresses: mostly inside the shared subnets (reserved ones included), sometimes public,
/// special or junk.
fn arb_ip_text() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => (0u32..2, 0u32..4, 0u32..=255).prop_map(|(a, b, c)| format!("10.{a}.{b}.{c}")),
        1 => (0u32..=20).prop_map(|o| format!("fd00:10::{o:x}")),
        2 => strs(&[
            "20.50.1.10", "93.184.216.34", "13.107.21.200", "168.63.129.16", "127.0.0.1", "172.31.0.100",
            "nope", "10.0.0.0", "10.0.1.255", "::", "256.1.1.1", "20.105.0.10", "",
        ]),
    ]
}

fn arb_any_address_field() -> impl Strategy<Value = AddressField> {
    let item = prop_oneof![
        arb_prefix_text(),
        strs(&[
            "*",
            "VirtualNetwork",
            "Internet",
            "Storage",
            "SQL",
            "NoSuchTag",
            "Storage.Mars",
            "10.0.0.4"
        ]),
    ];
    prop_oneof![
        item.clone().prop_map(AddressField::Prefix),
        prop::collection::vec(item, 1..4).prop_map(AddressField::Prefixes),
        prop::collection::vec(strs(&["asg-a", "ASG-A", "asg-x"]), 1..3)
            .prop_map(AddressField::Asgs),
    ]
}

fn arb_any_port_field() -> impl Strategy<Value = PortField> {
    let item = strs(&[
        "*",
        "80",
        "80-88",
        "88-80",
        "70000",
        "",
        "a",
        "0-65535",
        "443, 8080",
    ]);
    prop_oneof![
        item.clone().prop_map(PortField::Range),
        prop::collection::vec(item, 1..3).prop_map(PortField::Ranges),
    ]
}

/// Any rule: valid or not (bad names, priorities out of range or duplicated, bad ports,
/// unknown tags, unknown ASGs).
fn arb_any_rule() -> impl Strategy<Value = RuleFile> {
    (
        strs(&["r", "R", "allow-1", "bad name-", "_x", "ok_"]),
        prop_oneof![100i64..=4096, -10i64..5000],
        any::<bool>(),
        any::<bool>(),
        arb_rule_protocol(),
        arb_any_address_field(),
        arb_any_port_field(),
        arb_any_address_field(),
        arb_any_port_field(),
        prop::option::of(strs(&["d", "x"])),
    )
        .prop_map(
            |(name, priority, inb, deny, protocol, source, sp, destination, dp, description)| {
                RuleFile {
                    name,
                    priority,
                    direction: if inb {
                        Direction::Inbound
                    } else {
                        Direction::Outbound
                    },
                    access: if deny { Access::Deny } else { Access::Allow },
                    protocol,
                    source,
                    source_ports: sp,
                    destination,
                    destination_ports: dp,
                    description,
                }
            },
        )
}

fn arb_subnet() -> impl Strategy<Value = SubnetFile> {
    (
        arb_name_from(SUBNET_NAMES),
        prop::collection::vec(arb_subnet_text(), 1..3),
        prop::collection::vec(
            strs(&[
                "Microsoft.Web/serverFarms",
                "microsoft.web/serverfarms",
                "Microsoft.Web/hostingEnvironments",
                "X",
            ]),
            0..2,
        ),
        prop::option::of(arb_name_from(NSG_NAMES)),
        prop::collection::vec(Just("appgw-1".to_string()), 0..2),
        select(PrivateEndpointPolicies::ALL.to_vec()),
        // Service endpoints, valid or not (unknown service, unknown location, `*`).
        prop::collection::vec(
            (
                strs(&["Microsoft.KeyVault", "Microsoft.Storage", "Microsoft.Bogus"]),
                prop::option::of(prop::collection::vec(
                    strs(&["westeurope", "*", "atlantis"]),
                    0..3,
                )),
            )
                .prop_map(|(service, locations)| ServiceEndpointFile { service, locations }),
            0..3,
        ),
    )
        .prop_map(
            |(name, address_prefixes, delegations, nsg, resources, pol, service_endpoints)| {
                SubnetFile {
                    name,
                    address_prefixes,
                    delegations,
                    nsg,
                    resources,
                    private_endpoint_network_policies: pol,
                    route_table: None,
                    nat_gateway: None,
                    service_endpoints,
                }
            },
        )
}

fn arb_vnet() -> impl Strategy<Value = VnetFile> {
    (
        arb_name_from(VNET_NAMES),
        strs(&["westeurope", "northeurope", "West Europe"]),
        prop::option::of(strs(&["sub-1", "sub-2"])),
        prop::collection::vec(arb_space_text(), 0..3),
        prop::collection::vec(arb_name_from(VNET_NAMES), 0..3),
        prop::collection::vec(arb_subnet(), 0..4),
    )
        .prop_map(
            |(name, region, subscription, address_space, peerings, subnets)| VnetFile {
                name,
                region,
                subscription,
                address_space,
                peerings: peerings.into_iter().map(Into::into).collect(),
                subnets,
                bgp_routes: vec![],
            },
        )
}

fn arb_host() -> impl Strategy<Value = HostFile> {
    let service = (
        any::<u16>(),
        any::<bool>(),
        prop::option::of(Just(ServeKind::Echo)),
        prop::option::of(strs(&["127.0.0.1:9000", "10.0.0.1:80", "bad", "[::1]:80"])),
    )
        .prop_map(|(port, tls, serve, upstream)| ServiceFile {
            port,
            tls,
            serve,
            upstream,
        });
    (
        arb_name_from(HOST_NAMES),
        arb_ip_text(),
        prop::option::of(arb_ip_text()),
        prop::option::of(arb_name_from(NSG_NAMES)),
        prop::collection::vec(strs(&["asg-a", "ASG-A", "asg-b"]), 0..3),
        prop::collection::vec(
            strs(&[
                "orders.internal.contoso.com",
                "ORDERS.internal.contoso.com.",
                "api.example",
                "bad..name",
                "-x.com",
                "x",
                "é.com",
            ]),
            0..3,
        ),
        select(HostKind::ALL.to_vec()),
        prop::collection::vec(service, 0..3),
    )
        .prop_map(
            |(name, address, public_address, nsg, asgs, dns, kind, services)| HostFile {
                name,
                address,
                public_address,
                nsg,
                application_security_groups: asgs,
                dns,
                kind,
                services,
                subnet: None,
                ip_forwarding: false,
                public_network_access: None,
                private_link_fqdn: None,
            },
        )
}

fn arb_apim() -> impl Strategy<Value = ApimFile> {
    (
        select(Sku::ALL.to_vec()),
        select(vec![0u32, 1, 10, 11, 14, 30, 31, u32::MAX]),
        strs(&["westeurope", "northeurope", "West Europe"]),
        prop::option::of(strs(&["sub-1", "sub-2"])),
        select(NetworkMode::ALL.to_vec()),
        prop::option::of(strs(&[
            "v/s", "v/t", "a/s", "A/S", "V/t", "nosuch", "a/b/c", "", "/",
        ])),
        prop::option::of(select(NetworkMode::ALL.to_vec())),
        prop::option::of(arb_ip_text()),
        prop::option::of(arb_ip_text()),
    )
        .prop_map(
            |(
                sku,
                capacity,
                region,
                subscription,
                mode,
                subnet,
                previous,
                address,
                public_address,
            )| {
                ApimFile {
                    name: "apim".into(),
                    sku,
                    capacity,
                    region,
                    subscription,
                    virtual_network: mode,
                    subnet,
                    previous_virtual_network: previous,
                    address,
                    public_address,
                    classic_vnet_type: None,
                    outbound_route_all: None,
                    named_values: Vec::new(),
                }
            },
        )
}

fn arb_fixture() -> impl Strategy<Value = Fixture> {
    let misc = (
        prop::option::of(
            (
                strs(&["sub-1", "sub-2"]),
                prop::option::of(prop::collection::vec(
                    strs(&["Microsoft.Web", "microsoft.web", "Microsoft.Network"]),
                    0..3,
                )),
            )
                .prop_map(|(id, registered_providers)| SubscriptionFile {
                    id,
                    registered_providers,
                }),
        ),
        prop::option::of(
            prop::collection::vec(
                strs(&[
                    "*",
                    "Microsoft.Network/*",
                    "Microsoft.Network/virtualNetworks/read",
                    "x",
                ]),
                0..3,
            )
            .prop_map(|actions| PrincipalFile { actions }),
        ),
        prop::collection::vec(strs(&["asg-a", "asg-b"]), 0..2),
        prop::collection::vec(
            (
                strs(&[
                    "internal.contoso.com",
                    "contoso.com",
                    "bad..zone",
                    "privatelink.vaultcore.azure.net",
                ]),
                prop::collection::vec((arb_name_from(VNET_NAMES), any::<bool>()), 0..3),
            )
                .prop_map(|(name, links)| DnsZoneFile {
                    name,
                    links: links
                        .into_iter()
                        .map(|(vnet, redirect)| ZoneLinkFile {
                            vnet,
                            resolution_policy: if redirect {
                                ResolutionPolicy::NxDomainRedirect
                            } else {
                                ResolutionPolicy::Default
                            },
                        })
                        .collect(),
                }),
            0..3,
        ),
        prop::collection::vec(
            (
                strs(&["orders", "Orders", "x"]),
                strs(&["/", "/orders", "/orders/", "x", "//", "/a?b", "/é"]),
                strs(&[
                    "https://orders.internal.contoso.com/v1",
                    "http://api.example:8080",
                    "http://[::1]:80",
                    "http://[fe80::1",
                    "https://x:99999",
                    "HTTPS://A",
                    "http://10.0.1.4:0",
                    "ftp://x",
                    "http:/ü",
                    "https:/é/",
                    "http://ü.com",
                    "http://10.0.2.4:443",
                    "https://20.50.1.10",
                ]),
            )
                .prop_map(|(name, path, backend)| ApiFile {
                    name,
                    path,
                    backend,
                }),
            0..3,
        ),
        prop::option::of(
            (
                prop::option::of(strs(&["127.0.0.1:0", "0.0.0.0:80", "bad"])),
                prop::option::of(strs(&["127.0.0.1:0", "[::1]:0", "x"])),
            )
                .prop_map(|(listen, admin_listen)| GatewayFile {
                    listen,
                    admin_listen,
                    ..GatewayFile::default()
                }),
        ),
    );
    (
        prop::collection::vec(arb_vnet(), 0..=3),
        prop::collection::vec(
            (
                arb_name_from(NSG_NAMES),
                any::<bool>(),
                prop::collection::vec(arb_any_rule(), 0..6),
            )
                .prop_map(|(name, flush_connection, security_rules)| NsgFile {
                    name,
                    flush_connection,
                    security_rules,
                }),
            0..3,
        ),
        prop::collection::vec(arb_host(), 0..=6),
        prop::option::of(arb_apim()),
        misc,
    )
        .prop_map(
            |(vnets, nsgs, hosts, apim, (subscription, principal, asgs, zones, apis, gateway))| {
                Fixture {
                    subscription,
                    principal,
                    vnets,
                    nsgs,
                    application_security_groups: asgs,
                    hosts,
                    apim,
                    service_tags: None,
                    gateway,
                    apis,
                    private_dns_zones: zones,
                    faults: None,
                    route_tables: vec![],
                    nat_gateways: vec![],
                    firewalls: vec![],
                }
            },
        )
}

/// A coherent fixture: VNets `v` (10.0.0.0/16) and `a` (10.1.0.0/16) with /24 subnets, NSGs
/// `n` and `m` with valid generated rules, hosts inside the subnets (some with public addresses,
/// NIC NSGs, ASGs, private-endpoint kind), random peering, an APIM instance in any mode, and a
/// private DNS zone — so that flows really cross NSGs, peerings and the APIM paths.
fn arb_coherent_fixture() -> impl Strategy<Value = Fixture> {
    let subnet = |v: u8| {
        (
            0u8..4,
            prop::option::of(strs(&["n", "m"])),
            prop::collection::vec(
                strs(&[
                    "Microsoft.Web/serverFarms",
                    "Microsoft.Web/hostingEnvironments",
                ]),
                0..2,
            ),
            select(PrivateEndpointPolicies::ALL.to_vec()),
        )
            .prop_map(move |(k, nsg, delegations, pol)| SubnetFile {
                delegations,
                private_endpoint_network_policies: pol,
                ..subnet_file(
                    &format!("s{k}"),
                    vec![format!("10.{v}.{k}.0/24")],
                    nsg.as_deref(),
                )
            })
    };
    let host = (
        0u8..2,
        0u8..4,
        4u8..=250,
        prop::option::of((1u8..=254).prop_map(|o| format!("20.60.0.{o}"))),
        prop::option::of(strs(&["n", "m"])),
        prop::sample::subsequence(ASGS, 0..=2),
        select(HostKind::ALL.to_vec()),
        prop::option::of(strs(&[
            "orders.internal.contoso.com",
            "db.local",
            "www.example",
        ])),
    )
        .prop_map(|(v, k, o, public_address, nsg, asgs, kind, dns)| HostFile {
            public_address,
            nsg,
            application_security_groups: asgs.iter().map(|s| s.to_string()).collect(),
            kind,
            dns: dns.into_iter().collect(),
            ..host_file(&format!("h{v}-{k}-{o}"), &format!("10.{v}.{k}.{o}"))
        });
    let apim = (
        select(vec![Sku::StandardV2, Sku::PremiumV2, Sku::BasicV2]),
        select(NetworkMode::ALL.to_vec()),
        0u8..4,
    )
        .prop_map(|(sku, mode, k)| ApimFile {
            name: "apim".into(),
            sku,
            capacity: 1,
            region: "westeurope".into(),
            subscription: None,
            virtual_network: mode,
            subnet: Some(format!("v/s{k}")),
            previous_virtual_network: None,
            address: None,
            public_address: None,
            classic_vnet_type: None,
            outbound_route_all: None,
            named_values: Vec::new(),
        });
    (
        prop::collection::vec(subnet(0), 1..4),
        prop::collection::vec(subnet(1), 0..3),
        (any::<bool>(), any::<bool>()),
        (arb_rules(12), arb_rules(12)),
        prop::collection::vec(host, 0..8),
        prop::option::of(apim),
        prop::collection::vec(strs(&["v", "a"]), 0..2),
    )
        .prop_map(
            |(s0, s1, (peer_va, peer_av), (rn, rm), hosts, apim, links)| {
                let vnet =
                    |name: &str, space: &str, subnets: Vec<SubnetFile>, peer: bool, other: &str| {
                        VnetFile {
                            name: name.into(),
                            region: "westeurope".into(),
                            subscription: None,
                            address_space: vec![space.into()],
                            peerings: if peer { vec![other.into()] } else { vec![] },
                            subnets,
                            bgp_routes: vec![],
                        }
                    };
                Fixture {
                    vnets: vec![
                        vnet("v", "10.0.0.0/16", s0, peer_va, "a"),
                        vnet("a", "10.1.0.0/16", s1, peer_av, "v"),
                    ],
                    nsgs: vec![
                        NsgFile {
                            name: "n".into(),
                            flush_connection: false,
                            security_rules: to_rule_files(&rn),
                        },
                        NsgFile {
                            name: "m".into(),
                            flush_connection: true,
                            security_rules: to_rule_files(&rm),
                        },
                    ],
                    application_security_groups: ASGS.iter().map(|s| s.to_string()).collect(),
                    hosts,
                    apim,
                    private_dns_zones: vec![DnsZoneFile {
                        name: "internal.contoso.com".into(),
                        links: links.into_iter().map(ZoneLinkFile::new).collect(),
                    }],
                    ..Fixture::default()
                }
            },
        )
}

proptest! {
    // A fuzz target too: `VNETSIM_FUZZ_CASES` runs more.
    #![proptest_config(fuzz_config(320))]

    /// `Topology::build` never panics on any fixture that parses — here generated structurally
    /// with random prefixes (valid, invalid, forbidden), names that collide case-insensitively,
    /// dangling references, odd APIM settings, DNS zones and APIs — and the built model answers
    /// flows and lookups without panicking, both evaluation paths agreeing.
    #[test]
    fn build_never_panics_on_generated_fixtures(f in prop_oneof![arb_fixture(), arb_coherent_fixture()]) {
        exercise(&f)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A generated fixture survives the round trip through each syntax unchanged (one schema,
    /// three syntaxes), so a fixture converted between formats means the same.
    #[test]
    fn generated_fixtures_round_trip_through_every_syntax(f in prop_oneof![arb_fixture(), arb_coherent_fixture()]) {
        let toml = f.to_toml().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Fixture::parse(&toml, Format::Toml), Ok(f.clone()), "{}", toml);
        let json = serde_json::to_string(&f).unwrap();
        prop_assert_eq!(Fixture::parse(&json, Format::Json), Ok(f.clone()), "{}", json);
        let yaml = serde_yaml_ng::to_string(&f).unwrap();
        prop_assert_eq!(Fixture::parse(&yaml, Format::Yaml), Ok(f.clone()), "{}", yaml);
    }
}

/// The synthesized setting of the long-list property (built once: its tag table is large).
fn synth_setting() -> &'static sim::synth::Setting {
    static T: OnceLock<sim::synth::Setting> = OnceLock::new();
    T.get_or_init(|| sim::synth::Setting::new(7, 300, 6_000))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Long rule lists (the classifier with several words per row, sub-tables of clustered
    /// prefixes, service tags): the compiled evaluator equals the reference oracle on
    /// flows that hit early, late and default rules.
    #[test]
    fn long_compiled_nsgs_equal_the_reference(
        seed in any::<u64>(), rules in 65usize..=1000, prefixes in 1usize..=600,
    ) {
        let setting = synth_setting();
        let (table, ctx) = (&setting.tags, setting.context());
        let nsg = sim::synth::nsg(seed, rules, prefixes, table);
        let compiled = nsg.compile(&ctx);
        let reference = nsg.reference(&ctx);
        prop_assert!(compiled.uses_classifier(Direction::Outbound));
        for key in sim::synth::flows(seed ^ 1, &nsg, table, 400) {
            for dir in DIRECTIONS {
                let expected = reference.decide(dir, &key);
                prop_assert_eq!(Some(compiled.decide(dir, &key)), expected, "{:?} {:?}", dir, key);
                // The classifier alone (no linear-scan fallback) finds the same rule: the
                // default Deny-all matches every flow, so it never comes back empty.
                if compiled.uses_classifier(dir) {
                    prop_assert_eq!(compiled.classifier_decide(dir, &key), expected, "{:?} {:?}", dir, key);
                }
            }
        }
    }
}

// === platform exemptions ===

/// One generated outbound rule: (access, protocol, destination, destination port).
type PlatformRule = (&'static str, &'static str, &'static str, &'static str);

fn arb_platform_rule() -> impl Strategy<Value = PlatformRule> {
    (
        select(vec!["Allow", "Deny"]),
        select(vec!["*", "Tcp", "Udp"]),
        select(vec![
            "AzurePlatformDNS",
            "AzurePlatformIMDS",
            "AzurePlatformLKM",
            "*",
            "168.63.129.16",
            "Internet",
        ]),
        select(vec!["*", "53", "80", "1688"]),
    )
}

/// The simple reference: the exemption a flow gets (`sim::Exemption::of`), kept unless a Deny
/// rule naming its tag matches the flow's protocol and destination port. Every generated
/// rule's source is `*` and the tag's addresses contain the flow's destination.
fn reference_exempt(rules: &[PlatformRule], f: &Flow) -> bool {
    let Some(ex) = sim::Exemption::of(f) else {
        return false;
    };
    let Some(tag) = ex.tag() else { return true };
    !rules.iter().any(|(access, proto, dst, port)| {
        *access == "Deny"
            && dst.eq_ignore_ascii_case(tag.as_str())
            && (*proto == "*"
                || (*proto == "Tcp" && f.protocol == Protocol::Tcp)
                || (*proto == "Udp" && f.protocol == Protocol::Udp))
            && (*port == "*" || f.destination_port.map(|p| p.to_string()).as_deref() == Some(port))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A flow is PLATFORM_EXEMPT exactly when the reference says so, whatever other rules
    /// (Allow rules, literal 168.63.129.16, Internet, other platform tags) the NSG holds; a
    /// flow whose exemption is taken away is decided by the NSG (never exempt, never
    /// unreachable), and decide agrees with evaluate.
    #[test]
    fn platform_exemption_matches_the_reference(
        rules in proptest::collection::vec(arb_platform_rule(), 0..6),
    ) {
        let mut text = String::from(r#"
[[vnets]]
name = "v"
region = "westeurope"
address_space = ["10.0.0.0/16"]
  [[vnets.subnets]]
  name = "web"
  address_prefix = "10.0.1.0/24"
  nsg = "n"
[[hosts]]
name = "vm1"
address = "10.0.1.4"
[[nsgs]]
name = "n"
"#);
        for (i, (access, proto, dst, port)) in rules.iter().enumerate() {
            text.push_str(&format!(
                "  [[nsgs.security_rules]]\n  name = \"r{i}\"\n  priority = {}\n  direction = \"Outbound\"\n  access = \"{access}\"\n  protocol = \"{proto}\"\n  source_address_prefix = \"*\"\n  source_port_range = \"*\"\n  destination_address_prefix = \"{dst}\"\n  destination_port_range = \"{port}\"\n",
                100 + i
            ));
        }
        let fx = Fixture::parse(&text, Format::Toml).expect("generated fixture parses");
        let b = Topology::build(&fx, tags().clone());
        prop_assert!(b.structural_errors().is_empty(), "{:?}", b.findings);
        let t = b.topology;
        let vm: IpAddr = "10.0.1.4".parse().unwrap();
        let flows = [
            (Protocol::Udp, 60000, "168.63.129.16", 53),
            (Protocol::Tcp, 60000, "168.63.129.16", 53),
            (Protocol::Tcp, 60000, "168.63.129.16", 80),
            (Protocol::Tcp, 60000, "168.63.129.16", 443),
            (Protocol::Udp, 68, "168.63.129.16", 67),
            (Protocol::Tcp, 60000, "169.254.169.254", 80),
            (Protocol::Tcp, 60000, "20.118.99.224", 1688),
            (Protocol::Tcp, 60000, "40.83.235.53", 443),
        ];
        for (protocol, sport, dst, dport) in flows {
            let f = Flow {
                protocol,
                source: vm,
                source_port: Some(sport),
                destination: dst.parse().unwrap(),
                destination_port: Some(dport),
            };
            let d = t.decide(&f);
            let v = t.evaluate(&f);
            prop_assert_eq!(d.code, v.code);
            let exempt = d.code == sim::VerdictCode::PlatformExempt;
            prop_assert_eq!(exempt, reference_exempt(&rules, &f), "{:?} {:?}", f, rules);
            if !exempt {
                prop_assert!(
                    matches!(d.code, sim::VerdictCode::Allowed | sim::VerdictCode::NsgDenied),
                    "{:?}: {:?}", f, d.code
                );
            }
        }
    }
}
