//! Property tests of the whole-space engine (`reach`, `diff`, `lint`) against the one walk that
//! `check` uses: on random topologies (two VNets, optional peering, NSGs on subnets and NICs,
//! hosts with public addresses, an integrated APIM instance, a dual-stack subnet),
//!
//! * every class's example flow gets the class's outcome from `decide` and `evaluate`;
//! * a random flow lies in exactly one class, whose outcome `check`'s function confirms (this
//!   also catches a missing boundary in `space/boundaries.rs`);
//! * restricted queries (`--to`, `--ports`, `--protocol`) cover exactly the restricted space;
//! * `diff(A, A)` is empty; `diff(A, B)` holds exactly the random flows whose outcomes differ;
//! * a `RULE_SHADOWED` rule is never the matched rule of its NSG for any random flow.

#[path = "support/cases.rs"]
mod cases;

use std::net::IpAddr;

use proptest::prelude::*;
use proptest::sample::select;

use sim::fixture::{Fixture, Format};
use sim::{
    AddrSet, Anchor, Cidr, DiffKey, Flow, LintCode, PortSet, Protocol, ServiceTagTable, SpaceQuery,
    Topology,
};

// === random topologies ===

const V4_DST: &[&str] = &[
    "*",
    "*",
    "VirtualNetwork",
    "Internet",
    "Storage",
    "10.0.2.0/24",
    "10.0.2.0/25",
    "10.0.2.4",
    "10.0.2.5",
    "10.1.0.0/16",
    "10.0.0.0/8",
    "20.50.1.0/24",
    "20.50.1.10",
    "52.0.0.0/6",
    "0.0.0.0/1",
    "224.0.0.0/4",
];
const V6_DST: &[&str] = &[
    "fd00:0:0:2::/64",
    "fd00:0:0:2::4",
    "fd00::/16",
    "2001:db9::/32",
];
const V4_SRC: &[&str] = &[
    "*",
    "*",
    "VirtualNetwork",
    "10.0.1.0/24",
    "10.0.0.0/8",
    "20.0.0.0/8",
    "10.0.2.4",
];
const V6_SRC: &[&str] = &["fd00:0:0:1::/64", "fd00::/16"];
const PORTS: &[&str] = &[
    "*",
    "*",
    "80",
    "443",
    "22",
    "67",
    "8000-9000",
    "0-100",
    "433",
    "80,443",
    "1024-65535",
];
const SPORTS: &[&str] = &["*", "*", "*", "*", "68", "1024-65535", "65330"];
const PROTOS: &[&str] = &["Tcp", "Udp", "Icmp", "Esp", "Ah", "*", "*"];

#[derive(Clone, Debug)]
struct GenRule {
    inbound: bool,
    deny: bool,
    proto: &'static str,
    src: &'static str,
    dst: &'static str,
    sport: &'static str,
    dport: &'static str,
}

fn arb_rule() -> impl Strategy<Value = GenRule> {
    (
        prop::bool::weighted(0.15),
        any::<bool>(),
        any::<bool>(),
        select(PROTOS),
        (0usize..64, 0usize..64),
        select(SPORTS),
        select(PORTS),
    )
        .prop_map(|(v6, inbound, deny, proto, (s, d), sport, dport)| GenRule {
            inbound,
            deny,
            proto,
            src: if v6 {
                V6_SRC[s % V6_SRC.len()]
            } else {
                V4_SRC[s % V4_SRC.len()]
            },
            dst: if v6 {
                V6_DST[d % V6_DST.len()]
            } else {
                V4_DST[d % V4_DST.len()]
            },
            sport,
            dport,
        })
}

/// Choices for one topology.
#[derive(Clone, Debug)]
struct GenTopology {
    nsgs: Vec<Vec<GenRule>>,
    peered: bool,
    apim_nsg: bool,
    backend_nsg: bool,
    nic_nsg: bool,
    public: bool,
    /// Route tables, BGP, a firewall, an appliance, a NAT gateway (`None`: no routing keys).
    routing: Option<GenRouting>,
}

// === random routing (issue 18's inputs) ===

const ROUTE_PREFIXES: &[&str] = &[
    "0.0.0.0/0",
    "0.0.0.0/0",
    "10.0.2.0/24",
    "10.0.2.0/25",
    "10.0.2.4/32",
    "10.1.0.0/16",
    "10.0.0.0/8",
    "20.50.1.0/24",
    "52.0.0.0/8",
    "192.168.0.0/16",
    // Inside AzureKeyVault.WestEurope 20.61.103.224/29 (a service endpoint prefix): a longer
    // and an equal user route.
    "20.61.103.228/32",
    "20.61.103.224/29",
];
/// Service endpoints of snet-apim / snet-b: none, Key Vault in West Europe (5 IPv4 prefixes,
/// 20.61.103.224/29 among them), Key Vault in North Europe.
const SERVICE_ENDPOINTS: &[&str] = &[
    "",
    "",
    "\n  service_endpoints = [{ service = \"Microsoft.KeyVault\", locations = [\"westeurope\"] }]",
    "\n  service_endpoints = [{ service = \"Microsoft.KeyVault\", locations = [\"westeurope\", \"northeurope\"] }]",
];
/// Next hops: the firewall, None, Internet, a gateway, the appliance, VnetLocal.
const NEXT_HOPS: &[&str] = &[
    "VirtualAppliance:10.0.3.4",
    "VirtualAppliance:10.0.3.4",
    "None",
    "Internet",
    "VirtualNetworkGateway",
    "VirtualAppliance:10.0.2.10",
    "VnetLocal",
];
const FW_SRC: &[&str] = &[
    "*",
    "*",
    "10.0.1.0/24",
    "10.0.0.0/8",
    "10.0.2.4",
    "10.1.1.0/24",
];
const FW_DST: &[&str] = &[
    "*",
    "10.0.2.0/24",
    "10.0.2.4",
    "20.50.1.0/24",
    "10.1.0.0/16",
    "52.0.0.0/6",
    "0.0.0.0/1",
];
const FW_PORTS: &[&str] = &["*", "443", "80", "8000-9000", "22", "53"];
const FW_PROTOS: &[&str] = &["TCP", "UDP", "ICMP", "Any"];

#[derive(Clone, Debug)]
struct GenFwRule {
    deny: bool,
    proto: &'static str,
    src: &'static str,
    dst: &'static str,
    port: &'static str,
}

#[derive(Clone, Debug)]
struct GenRouting {
    /// Route tables of snet-apim, snet-b, snet-c: `(prefix, next hop)`s.
    tables: [Vec<(&'static str, &'static str)>; 3],
    /// BGP routes of v1.
    bgp: Vec<&'static str>,
    /// Network rules, one collection each (priority order).
    fw_rules: Vec<GenFwRule>,
    /// An application rule for `*.contoso.example` (host `orders`) on Https:443.
    app_rule: bool,
    /// A NAT gateway on snet-b.
    nat: bool,
    /// `[apim] outbound_route_all = false`.
    route_all_off: bool,
    /// `service_endpoints` keys of snet-apim and snet-b (`SERVICE_ENDPOINTS`).
    endpoints: [&'static str; 2],
    /// DNAT rules on the firewall's public address 20.61.20.5: `(protocol, source, port,
    /// translated address, translated port)`, one collection each.
    dnat: Vec<(&'static str, &'static str, &'static str, &'static str, u16)>,
}

const DNAT_TO: &[&str] = &["10.0.2.4", "10.1.1.7", "10.0.2.9", "20.50.1.10"];

fn arb_routing() -> impl Strategy<Value = GenRouting> {
    let route = (select(ROUTE_PREFIXES), select(NEXT_HOPS));
    let table = prop::collection::vec(route, 0..4);
    let fw_rule = (
        prop::bool::weighted(0.3),
        select(FW_PROTOS),
        select(FW_SRC),
        select(FW_DST),
        select(FW_PORTS),
    )
        .prop_map(|(deny, proto, src, dst, port)| GenFwRule {
            deny,
            proto,
            src,
            dst,
            port,
        });
    (
        [table.clone(), table.clone(), table],
        prop::collection::vec(
            select(&["0.0.0.0/0", "20.50.0.0/16", "10.1.0.0/16"][..]),
            0..2,
        ),
        prop::collection::vec(fw_rule, 0..6),
        any::<bool>(),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
        [select(SERVICE_ENDPOINTS), select(SERVICE_ENDPOINTS)],
        prop::collection::vec(
            (
                select(&["TCP", "UDP"][..]),
                select(&["*", "20.60.0.0/16", "10.0.0.0/8"][..]),
                select(&["443", "80", "8000-9000"][..]),
                select(DNAT_TO),
                select(&[443u16, 8443, 22][..]),
            ),
            0..3,
        ),
    )
        .prop_map(
            |(tables, bgp, fw_rules, app_rule, nat, route_all_off, endpoints, dnat)| GenRouting {
                tables,
                bgp,
                fw_rules,
                app_rule,
                nat,
                route_all_off,
                endpoints,
                dnat,
            },
        )
}

/// The routing keys of `r` (route tables, firewall, NAT gateway, appliance host).
fn routing_toml(r: &GenRouting) -> String {
    let mut s = String::from(
        "\n[[hosts]]\nname = \"nva\"\naddress = \"10.0.2.10\"\nip_forwarding = true\n\n[[nat_gateways]]\nname = \"nat\"\npublic_addresses = [\"20.61.10.4\"]\n\n[[firewalls]]\nname = \"fw\"\nsubnet = \"v1/AzureFirewallSubnet\"\nprivate_address = \"10.0.3.4\"\npublic_addresses = [\"20.61.20.5\"]\n  [[firewalls.rule_collection_groups]]\n  name = \"g\"\n  priority = 200\n",
    );
    for (i, f) in r.fw_rules.iter().enumerate() {
        s.push_str(&format!(
            "    [[firewalls.rule_collection_groups.rule_collections]]\n    name = \"c{i}\"\n    priority = {}\n    kind = \"Network\"\n    action = \"{}\"\n      [[firewalls.rule_collection_groups.rule_collections.rules]]\n      name = \"f{i}\"\n      protocols = [\"{}\"]\n      source_addresses = [\"{}\"]\n      destination_addresses = [\"{}\"]\n      destination_ports = [\"{}\"]\n",
            100 + 10 * i,
            if f.deny { "Deny" } else { "Allow" },
            f.proto,
            f.src,
            f.dst,
            f.port,
        ));
    }
    for (i, (proto, src, port, to, to_port)) in r.dnat.iter().enumerate() {
        s.push_str(&format!(
            "    [[firewalls.rule_collection_groups.rule_collections]]\n    name = \"d{i}\"\n    priority = {}\n    kind = \"Dnat\"\n      [[firewalls.rule_collection_groups.rule_collections.rules]]\n      name = \"n{i}\"\n      protocols = [\"{proto}\"]\n      source_addresses = [\"{src}\"]\n      destination_addresses = [\"20.61.20.5\"]\n      destination_ports = [\"{port}\"]\n      translated_address = \"{to}\"\n      translated_port = \"{to_port}\"\n",
            600 + 10 * i,
        ));
    }
    if r.app_rule {
        s.push_str("    [[firewalls.rule_collection_groups.rule_collections]]\n    name = \"app\"\n    priority = 500\n    kind = \"Application\"\n    action = \"Allow\"\n      [[firewalls.rule_collection_groups.rule_collections.rules]]\n      name = \"contoso\"\n      protocols = [\"Https:443\"]\n      source_addresses = [\"*\"]\n      target_fqdns = [\"*.contoso.example\"]\n");
    }
    for (t, routes) in r.tables.iter().enumerate() {
        s.push_str(&format!("\n[[route_tables]]\nname = \"rt{t}\"\n"));
        for (i, (prefix, hop)) in routes.iter().enumerate() {
            let (kind, ip) = match hop.split_once(':') {
                Some((k, ip)) => (k, format!("  next_hop_ip_address = \"{ip}\"\n")),
                None => (*hop, String::new()),
            };
            s.push_str(&format!(
                "  [[route_tables.routes]]\n  name = \"u{i}\"\n  address_prefix = \"{prefix}\"\n  next_hop_type = \"{kind}\"\n{ip}"
            ));
        }
    }
    s
}

fn arb_rules() -> impl Strategy<Value = Vec<GenRule>> {
    prop::collection::vec(arb_rule(), 0..9)
}

fn arb_topology() -> impl Strategy<Value = GenTopology> {
    arb_topology_with(Just(None))
}

/// Random topologies with routing (route tables on every subnet, BGP, a firewall, an
/// appliance, a NAT gateway).
fn arb_routed_topology() -> impl Strategy<Value = GenTopology> {
    arb_topology_with(arb_routing().prop_map(Some))
}

fn arb_topology_with(
    routing: impl Strategy<Value = Option<GenRouting>>,
) -> impl Strategy<Value = GenTopology> {
    (
        prop::collection::vec(arb_rules(), 3),
        any::<bool>(),
        prop::bool::weighted(0.85),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        routing,
    )
        .prop_map(
            |(nsgs, peered, apim_nsg, backend_nsg, nic_nsg, public, routing)| GenTopology {
                nsgs,
                peered,
                apim_nsg,
                backend_nsg,
                nic_nsg,
                public,
                routing,
            },
        )
}

fn rule_toml(i: usize, r: &GenRule) -> String {
    let list = |s: &str| {
        s.split(',')
            .map(|x| format!("\"{x}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "  [[nsgs.security_rules]]\n  name = \"r{i}\"\n  priority = {}\n  direction = \"{}\"\n  access = \"{}\"\n  protocol = \"{}\"\n  source_address_prefix = \"{}\"\n  source_port_range = \"{}\"\n  destination_address_prefix = \"{}\"\n  destination_port_ranges = [{}]\n",
        100 + 10 * i,
        if r.inbound { "Inbound" } else { "Outbound" },
        if r.deny { "Deny" } else { "Allow" },
        r.proto,
        r.src,
        r.sport,
        r.dst,
        list(r.dport),
    )
}

fn toml_of(g: &GenTopology) -> String {
    let nsg = |on: bool, n: &str| {
        if on {
            format!("nsg = \"{n}\"\n")
        } else {
            String::new()
        }
    };
    let r = g.routing.as_ref();
    let mut s = format!(
        r#"
[[vnets]]
name = "v1"
region = "westeurope"
address_space = ["10.0.0.0/16", "fd00::/48"]
{peer1}
{bgp}
  [[vnets.subnets]]
  name = "snet-apim"
  address_prefixes = ["10.0.1.0/24", "fd00:0:0:1::/64"]
  delegations = ["Microsoft.Web/serverFarms"]
  {apim_nsg}{rt0}{se0}
  [[vnets.subnets]]
  name = "snet-b"
  address_prefixes = ["10.0.2.0/24", "fd00:0:0:2::/64"]
  {backend_nsg}{rt1}{nat}{se1}
{fw_subnet}
[[vnets]]
name = "v2"
region = "westeurope"
address_space = ["10.1.0.0/16"]
{peer2}
  [[vnets.subnets]]
  name = "snet-c"
  address_prefix = "10.1.1.0/24"
  nsg = "n2"
  {rt2}

[[hosts]]
name = "orders"
address = "10.0.2.4"
dns = ["orders.contoso.example"]
{public}{nic}
[[hosts]]
name = "six"
address = "fd00:0:0:2::4"

[[hosts]]
name = "web6"
address = "fd00:0:0:1::4"

[[hosts]]
name = "far"
address = "10.1.1.7"

[apim]
name = "apim"
sku = "StandardV2"
capacity = 1
region = "westeurope"
virtual_network = "integration"
subnet = "v1/snet-apim"
{route_all}
"#,
        peer1 = if g.peered { "peerings = [\"v2\"]" } else { "" },
        peer2 = if g.peered { "peerings = [\"v1\"]" } else { "" },
        apim_nsg = nsg(g.apim_nsg, "n0"),
        backend_nsg = nsg(g.backend_nsg, "n1"),
        public = if g.public {
            "public_address = \"20.31.5.6\"\n"
        } else {
            ""
        },
        nic = nsg(g.nic_nsg, "n1"),
        bgp = r.map_or(String::new(), |r| format!(
            "bgp_routes = [{}]",
            r.bgp.iter().map(|b| format!("\"{b}\"")).collect::<Vec<_>>().join(", ")
        )),
        rt0 = r.map_or("", |_| "\n  route_table = \"rt0\""),
        rt1 = r.map_or("", |_| "\n  route_table = \"rt1\""),
        rt2 = r.map_or("", |_| "route_table = \"rt2\""),
        nat = r.map_or("", |r| if r.nat { "\n  nat_gateway = \"nat\"" } else { "" }),
        se0 = r.map_or("", |r| r.endpoints[0]),
        se1 = r.map_or("", |r| r.endpoints[1]),
        fw_subnet = r.map_or("", |_| "  [[vnets.subnets]]\n  name = \"AzureFirewallSubnet\"\n  address_prefix = \"10.0.3.0/26\""),
        route_all = r.map_or("", |r| if r.route_all_off { "outbound_route_all = false" } else { "" }),
    );
    if let Some(r) = r {
        s.push_str(&routing_toml(r));
    }
    for (n, rules) in g.nsgs.iter().enumerate() {
        s.push_str(&format!("\n[[nsgs]]\nname = \"n{n}\"\n"));
        for (i, r) in rules.iter().enumerate() {
            s.push_str(&rule_toml(i, r));
        }
    }
    s
}

fn tags() -> &'static ServiceTagTable {
    static T: std::sync::OnceLock<ServiceTagTable> = std::sync::OnceLock::new();
    T.get_or_init(ServiceTagTable::builtin)
}

fn build(g: &GenTopology) -> Topology {
    let text = toml_of(g);
    let fx = Fixture::parse(&text, Format::Toml).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let b = Topology::build(&fx, tags().clone());
    let errs = b.structural_errors();
    assert!(
        errs.is_empty(),
        "generated topology has errors: {errs:#?}\n{text}"
    );
    b.topology
}

// === random flows ===

const V4_PROBES: &[&str] = &[
    "10.0.2.4",
    "10.0.2.5",
    "10.0.2.0",
    "10.0.2.1",
    "10.0.2.3",
    "10.0.2.4",
    "10.0.2.255",
    "10.0.2.200",
    "10.0.1.4",
    "10.0.1.9",
    "10.0.9.9",
    "10.1.1.7",
    "10.1.1.255",
    "10.1.9.9",
    "20.31.5.6",
    "20.50.1.10",
    "20.50.1.11",
    "52.1.2.3",
    "13.107.21.200",
    "224.0.0.1",
    "255.255.255.255",
    "192.168.1.1",
    "127.0.0.1",
    "0.0.0.0",
    "100.64.0.1",
    "10.0.3.4",
    "10.0.3.5",
    "10.0.2.10",
    "20.61.20.5",
    "20.61.10.4",
    "168.63.129.16",
    "169.254.169.254",
    "20.118.99.224",
    "172.16.0.1",
    // Key Vault: West Europe (20.61.103.224/29, 13.69.64.72/30) and its edges, North Europe.
    "20.61.103.224",
    "20.61.103.228",
    "20.61.103.231",
    "20.61.103.223",
    "13.69.64.73",
    "13.69.227.73",
];
const V6_PROBES: &[&str] = &[
    "fd00:0:0:2::4",
    "fd00:0:0:2::5",
    "fd00:0:0:2::",
    "fd00:0:0:1::4",
    "fd00:0:0:3::1",
    "fd00:1::1",
    "2001:db9::1",
    "2603:1020::1",
    "ff02::1",
    "::1",
];
const PORT_PROBES: &[u16] = &[
    0, 22, 53, 67, 68, 80, 100, 101, 433, 443, 1023, 1024, 1688, 8000, 9000, 9001, 32526, 60000,
    65330, 65535,
];

/// Raw choices for one flow: protocol, destination (probe or random), ports.
type FlowSeed = (u8, u8, u32, u8, u16, u8, u16);

fn flow_of(source: IpAddr, seed: FlowSeed) -> Flow {
    let (proto, pick, raw, dsel, dport, ssel, sport) = seed;
    let protocol = Protocol::ALL[proto as usize % 5];
    let destination: IpAddr = if source.is_ipv6() {
        if pick % 4 == 0 {
            IpAddr::V6((u128::from(raw) << 64 | 0xfd00 << 112).into())
        } else {
            V6_PROBES[pick as usize % V6_PROBES.len()].parse().unwrap()
        }
    } else if pick % 3 == 0 {
        IpAddr::V4(raw.into())
    } else {
        V4_PROBES[pick as usize % V4_PROBES.len()].parse().unwrap()
    };
    let port = |sel: u8, raw: u16| {
        if sel.is_multiple_of(2) {
            PORT_PROBES[sel as usize / 2 % PORT_PROBES.len()]
        } else {
            raw
        }
    };
    let ports = protocol.has_ports();
    Flow {
        protocol,
        source,
        source_port: ports.then(|| port(ssel, sport)),
        destination,
        destination_port: ports.then(|| port(dsel, dport)),
    }
}

fn sources(t: &Topology) -> Vec<IpAddr> {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    vec![
        t.apim_source().unwrap(),
        ip("10.0.2.4"),
        ip("fd00:0:0:1::4"),
        ip("20.60.0.1"),
        ip("10.1.1.7"),
    ]
}

/// A decided path's steps by name, in order ([`sim::Decision::steps`]): `nsg NAME`, `route
/// NAME` (named by [`Topology::route_info`]), `firewall NAME`.
fn steps_named(t: &Topology, d: &sim::Decision) -> Vec<String> {
    d.steps()
        .into_iter()
        .map(|s| match s {
            sim::Step::Nsg(r) => format!("nsg {}", t.rule_info(r).nsg),
            sim::Step::Route(r) => format!("route {}", t.route_info(r).name()),
            sim::Step::Firewall(m) => format!("firewall {}", t.firewalls()[m.firewall].name),
        })
        .collect()
}

/// The reference: `check`'s hops (`Topology::evaluate`) of `f` by name — the routes, and, when
/// at most one firewall hop is on the path (a decision keeps the last firewall only), the NSGs,
/// routes and firewall in order — against the class's `steps`.
fn check_route_hops(t: &Topology, class: &sim::Decision, f: &Flow) -> Result<(), TestCaseError> {
    let v = t.evaluate(f);
    let named = |kinds: &[&str]| -> Vec<String> {
        v.hops
            .iter()
            .filter(|h| kinds.contains(&h.kind))
            .map(|h| format!("{} {}", h.kind, h.name))
            .collect()
    };
    let ours = steps_named(t, class);
    let routes: Vec<String> = ours
        .iter()
        .filter(|s| s.starts_with("route "))
        .cloned()
        .collect();
    prop_assert_eq!(&routes, &named(&["route"]), "routes of {}", f);
    if v.hops.iter().filter(|h| h.kind == "firewall").count() <= 1 {
        prop_assert_eq!(
            &ours,
            &named(&["nsg", "route", "firewall"]),
            "steps of {}",
            f
        );
    }
    Ok(())
}

fn outcome(t: &Topology, f: &Flow) -> (sim::VerdictKind, sim::VerdictCode) {
    let v = t.evaluate(f);
    (v.verdict, v.code)
}

fn arb_seeds(n: usize) -> impl Strategy<Value = Vec<FlowSeed>> {
    prop::collection::vec(any::<FlowSeed>(), n)
}

proptest! {
    #![proptest_config(cases::fuzz_config(24))]

    /// Every class's example has the class's outcome; every random flow is in exactly one
    /// class, whose outcome `check`'s function confirms.
    #[test]
    fn reach_classes_agree_with_check(g in arb_topology(), seeds in arb_seeds(60), s in 0usize..5) {
        check_reach_from(&g, seeds, s)?;
    }

    /// `--into`: every class's example has the class's outcome; every random flow into the
    /// destination is in exactly one class, whose outcome `check`'s function confirms.
    #[test]
    fn reach_into_classes_agree_with_check(g in arb_topology(), seeds in arb_seeds(60), d in select(&["10.0.2.4", "20.31.5.6", "10.0.1.4", "10.1.1.7", "52.1.2.3", "10.0.2.9", "fd00:0:0:2::4"][..])) {
        check_reach_into(&g, seeds, d)?;
    }

    /// The reach properties on routed topologies (route tables, BGP, a firewall, an
    /// appliance, a NAT gateway): the seam must list routing's inputs too.
    #[test]
    fn routed_reach_classes_agree_with_check(g in arb_routed_topology(), seeds in arb_seeds(60), s in 0usize..5) {
        check_reach_from(&g, seeds, s)?;
    }

    /// `--into` on routed topologies.
    #[test]
    fn routed_reach_into_classes_agree_with_check(g in arb_routed_topology(), seeds in arb_seeds(60), d in select(&["10.0.2.4", "20.31.5.6", "10.0.1.4", "10.1.1.7", "52.1.2.3", "10.0.2.9", "10.0.2.10", "20.61.20.5"][..])) {
        check_reach_into(&g, seeds, d)?;
    }

    /// `diff` on routed topologies.
    #[test]
    fn routed_diff_lists_exactly_the_changed_flows(a in arb_routed_topology(), b_nsgs in prop::collection::vec(arb_rules(), 3), seeds in arb_seeds(60), s in 0usize..5, by_rule in any::<bool>()) {
        check_diff(&a, b_nsgs, seeds, s, by_rule)?;
    }

    /// `diff` after a route table change (and an NSG change): exactly the random flows whose
    /// verdict, code or routes taken changed.
    #[test]
    fn routed_diff_lists_exactly_the_rerouted_flows(a in arb_routed_topology(), b in arb_routing(), b_nsgs in prop::collection::vec(arb_rules(), 3), seeds in arb_seeds(60), s in 0usize..5, by_rule in any::<bool>()) {
        check_diff_with(&a, b_nsgs, Some(b.tables), seeds, s, by_rule)?;
    }

    /// A restricted query covers exactly its restriction, with the same outcomes.
    #[test]
    fn restricted_reach_covers_exactly_the_query(g in arb_topology(), seeds in arb_seeds(40), to in select(&["10.0.2.0/24", "20.50.0.0/16", "10.0.0.0/8"][..]), ports in select(&["443", "80,8000-8100", "60-70"][..])) {
        let t = build(&g);
        let source = t.apim_source().unwrap();
        let dst = AddrSet::from_cidrs([to.parse::<Cidr>().unwrap()]);
        let pset = PortSet::parse(ports).unwrap();
        let q = SpaceQuery {
            anchor: Anchor::From(source),
            addresses: Some(dst.clone()),
            protocols: vec![Protocol::Tcp, Protocol::Udp],
            ports: Some(pset.clone()),
        };
        let reach = t.reach(&q);
        for seed in seeds {
            let f = flow_of(source, seed);
            let inside = dst.contains(f.destination)
                && matches!(f.protocol, Protocol::Tcp | Protocol::Udp)
                && f.destination_port.is_some_and(|p| pset.contains(u32::from(p)));
            let hits: Vec<_> = reach.classes.iter().filter(|c| c.contains(&f)).collect();
            prop_assert_eq!(hits.len(), usize::from(inside), "flow {}", f);
            if inside {
                prop_assert_eq!(hits[0].decision, t.decide(&f));
            }
        }
    }

    /// diff(A, A) is empty; diff(A, B) holds exactly the flows whose outcomes differ.
    #[test]
    fn diff_lists_exactly_the_changed_flows(a in arb_topology(), b_nsgs in prop::collection::vec(arb_rules(), 3), seeds in arb_seeds(60), s in 0usize..5, by_rule in any::<bool>()) {
        check_diff(&a, b_nsgs, seeds, s, by_rule)?;
    }

    /// A shadowed rule is never the matched rule of its NSG (in its context) for any flow; a
    /// redundant rule can be removed without changing any verdict.
    #[test]
    fn lint_claims_hold_on_random_flows(g in arb_topology(), seeds in arb_seeds(40)) {
        let t = build(&g);
        let findings = t.lint();
        let shadowed: Vec<(String, String, String)> = findings
            .iter()
            .filter(|f| f.code == LintCode::RuleShadowed)
            .map(|f| (f.nsg.clone(), f.context.clone().unwrap(), f.rule.clone()))
            .collect();
        for f in findings.iter().filter(|f| f.code != LintCode::RulePortTypo) {
            prop_assert!(f.context.is_some());
        }
        for source in sources(&t) {
            for &seed in &seeds {
                let f = flow_of(source, seed);
                for r in t.decide(&f).nsgs() {
                    let i = t.rule_info(*r);
                    let key = (i.nsg.to_string(), format!("vnets/{}", t.vnets()[r.vnet].name), i.rule);
                    prop_assert!(!shadowed.contains(&key), "shadowed rule {:?} decided {}", key, f);
                }
            }
        }
        // Each NSG of the generator is applied in one VNet, so a rule redundant there can go.
        if let Some(red) = findings.iter().find(|f| f.code == LintCode::RuleRedundant) {
            let n: usize = red.nsg[1..].parse().unwrap();
            let i: usize = red.rule.trim_start_matches("securityRules/r").parse().unwrap();
            let mut h = g.clone();
            h.nsgs[n].remove(i);
            // Names and priorities of the others must stay: rebuild from a renamed list.
            let without = build_named(&h, n, i);
            for source in sources(&t) {
                for &seed in &seeds {
                    let f = flow_of(source, seed);
                    prop_assert_eq!(outcome(&t, &f), outcome(&without, &f), "removing {:?} changed {}", red, f);
                }
            }
        }
    }
}

fn check_reach_from(g: &GenTopology, seeds: Vec<FlowSeed>, s: usize) -> Result<(), TestCaseError> {
    let t = build(g);
    let source = sources(&t)[s];
    let reach = t.reach(&SpaceQuery::from(source));
    for c in &reach.classes {
        prop_assert!(c.contains(&c.example), "example outside its class: {:?}", c);
        prop_assert_eq!(t.decide(&c.example), c.decision, "class {:?}", c);
        let v = t.evaluate(&c.example);
        prop_assert_eq!((v.verdict, v.code), (c.decision.verdict, c.decision.code));
    }
    for seed in seeds {
        let f = flow_of(source, seed);
        let hits: Vec<_> = reach.classes.iter().filter(|c| c.contains(&f)).collect();
        prop_assert_eq!(
            hits.len(),
            1,
            "flow {} in {} classes\n{}",
            f,
            hits.len(),
            toml_of(g)
        );
        prop_assert_eq!(hits[0].decision, t.decide(&f), "flow {}\n{}", f, toml_of(g));
        prop_assert_eq!(
            outcome(&t, &f),
            (hits[0].decision.verdict, hits[0].decision.code)
        );
        check_route_hops(&t, &hits[0].decision, &f)?;
    }
    Ok(())
}

fn check_reach_into(g: &GenTopology, seeds: Vec<FlowSeed>, d: &str) -> Result<(), TestCaseError> {
    let t = build(g);
    let destination: IpAddr = d.parse().unwrap();
    let reach = t.reach(&SpaceQuery::into(destination));
    for c in &reach.classes {
        prop_assert!(c.contains(&c.example), "example outside its class: {:?}", c);
        prop_assert_eq!(c.example.destination, destination);
        prop_assert_eq!(
            t.decide(&c.example).as_class_into(c.example.source),
            c.decision,
            "class {:?}",
            c
        );
    }
    for seed in seeds {
        // The probes as sources.
        let mut f = flow_of(destination, seed);
        std::mem::swap(&mut f.source, &mut f.destination);
        let hits: Vec<_> = reach.classes.iter().filter(|c| c.contains(&f)).collect();
        prop_assert_eq!(
            hits.len(),
            1,
            "flow {} in {} classes\n{}",
            f,
            hits.len(),
            toml_of(g)
        );
        prop_assert_eq!(
            hits[0].decision,
            t.decide(&f).as_class_into(f.source),
            "flow {}\n{}",
            f,
            toml_of(g)
        );
        prop_assert_eq!(
            outcome(&t, &f),
            (hits[0].decision.verdict, hits[0].decision.code)
        );
    }
    Ok(())
}

fn check_diff(
    a: &GenTopology,
    b_nsgs: Vec<Vec<GenRule>>,
    seeds: Vec<FlowSeed>,
    s: usize,
    by_rule: bool,
) -> Result<(), TestCaseError> {
    check_diff_with(a, b_nsgs, None, seeds, s, by_rule)
}

type Tables = [Vec<(&'static str, &'static str)>; 3];

fn check_diff_with(
    a: &GenTopology,
    b_nsgs: Vec<Vec<GenRule>>,
    b_tables: Option<Tables>,
    seeds: Vec<FlowSeed>,
    s: usize,
    by_rule: bool,
) -> Result<(), TestCaseError> {
    let ta = build(a);
    let source = sources(&ta)[s];
    let q = SpaceQuery::from(source);
    prop_assert!(ta.diff(&ta, &q, DiffKey::ByRule).is_empty());
    let mut b = a.clone();
    // Change one NSG's rules (or all): the typical pull request.
    b.nsgs[seeds.len() % 3] = b_nsgs[0].clone();
    if let (Some(r), Some(tables)) = (b.routing.as_mut(), b_tables) {
        r.tables = tables;
    }
    let tb = build(&b);
    let key = if by_rule {
        DiffKey::ByRule
    } else {
        DiffKey::Verdict
    };
    // Routes by prefix and next hop (names too with --by-rule), as diff compares them.
    let routes = |t: &Topology, f: &Flow| -> Vec<String> {
        t.decide(f)
            .routes()
            .map(|r| {
                let i = t.route_info(r);
                if by_rule {
                    format!("{} {}", i.text(), i.name())
                } else {
                    i.text()
                }
            })
            .collect()
    };
    let diff = ta.diff(&tb, &q, key);
    for d in &diff {
        prop_assert_eq!(ta.decide(&d.class.example), d.class.decision);
        prop_assert_eq!(tb.decide(&d.class.example), d.after);
        prop_assert_eq!(
            d.rerouted,
            routes(&ta, &d.class.example) != routes(&tb, &d.class.example)
        );
    }
    let rule = |t: &Topology, f: &Flow| {
        t.decide(f).decided_by.map(|r| {
            let i = t.rule_info(r);
            (i.nsg.to_string(), i.rule)
        })
    };
    for seed in seeds {
        let f = flow_of(source, seed);
        let changed = outcome(&ta, &f) != outcome(&tb, &f)
            || routes(&ta, &f) != routes(&tb, &f)
            || (by_rule && rule(&ta, &f) != rule(&tb, &f));
        let hits = diff.iter().filter(|d| d.class.contains(&f)).count();
        prop_assert_eq!(hits, usize::from(changed), "flow {}", f);
    }
    Ok(())
}

/// [`build`] with rule `removed` of NSG `n` already taken out of `g`: the remaining rules keep
/// their original names and priorities.
fn build_named(g: &GenTopology, n: usize, removed: usize) -> Topology {
    let mut text = toml_of(&GenTopology {
        nsgs: vec![vec![], vec![], vec![]],
        ..g.clone()
    });
    text = text.split("\n[[nsgs]]").next().unwrap().to_string();
    for (k, rules) in g.nsgs.iter().enumerate() {
        text.push_str(&format!("\n[[nsgs]]\nname = \"n{k}\"\n"));
        for (j, r) in rules.iter().enumerate() {
            let orig = if k == n && j >= removed { j + 1 } else { j };
            text.push_str(&rule_toml(orig, r));
        }
    }
    let fx = Fixture::parse(&text, Format::Toml).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let b = Topology::build(&fx, tags().clone());
    assert!(b.structural_errors().is_empty());
    b.topology
}

/// Into a host's public address, the source side's rules see the public address and the
/// inbound side the private one: a rule that matches every Tcp port but not the public address
/// must not hide a later rule's port from the partition.
#[test]
fn into_a_public_address_keeps_every_rule_port() {
    let rule = |inbound, deny, proto, src, dst, dport| GenRule {
        inbound,
        deny,
        proto,
        src,
        dst,
        sport: "*",
        dport,
    };
    let g = GenTopology {
        nsgs: vec![
            vec![
                rule(false, false, "Tcp", "*", "10.0.2.0/24", "*"),
                rule(false, true, "Tcp", "*", "Internet", "22"),
            ],
            vec![rule(true, false, "Tcp", "*", "10.0.2.0/24", "*")],
            vec![],
        ],
        peered: false,
        apim_nsg: true,
        backend_nsg: true,
        nic_nsg: false,
        public: true,
        routing: None,
    };
    let t = build(&g);
    let into: IpAddr = "20.31.5.6".parse().unwrap();
    let reach = t.reach(&SpaceQuery::into(into));
    for port in [21, 22, 23] {
        let f = Flow::tcp("10.0.1.9".parse().unwrap(), 60000, into, port);
        let hits: Vec<_> = reach.classes.iter().filter(|c| c.contains(&f)).collect();
        assert_eq!(hits.len(), 1);
        assert_eq!(
            hits[0].decision,
            t.decide(&f).as_class_into(f.source),
            "{f}"
        );
    }
    // The source side's deny decides port 22 only.
    assert!(!t
        .decide(&Flow::tcp("10.0.1.9".parse().unwrap(), 60000, into, 22))
        .allowed());
}

/// The seam sees service endpoint routes: with `0.0.0.0/0` forced to the firewall and a Key
/// Vault endpoint (West Europe) on snet-apim, the reach classes from the APIM source split
/// exactly at each endpoint prefix — inside, the flow leaves directly from the private source
/// (no firewall); one address before or after, the firewall decides ("Virtual network traffic
/// routing": "Traffic to the service doesn't route to the next hop type in a route with the
/// 0.0.0.0/0 address prefix").
#[test]
fn reach_classes_split_at_service_endpoint_prefixes() {
    let routing = GenRouting {
        tables: [
            vec![("0.0.0.0/0", "VirtualAppliance:10.0.3.4")],
            vec![],
            vec![],
        ],
        bgp: vec![],
        fw_rules: vec![GenFwRule {
            deny: false,
            proto: "TCP",
            src: "*",
            dst: "*",
            port: "443",
        }],
        app_rule: false,
        nat: false,
        route_all_off: false,
        endpoints: [SERVICE_ENDPOINTS[2], ""],
        dnat: Vec::new(),
    };
    let g = GenTopology {
        nsgs: vec![vec![], vec![], vec![]],
        peered: false,
        apim_nsg: false,
        backend_nsg: false,
        nic_nsg: false,
        public: false,
        routing: Some(routing),
    };
    let t = build(&g);
    let src = t.apim_source().unwrap();
    let reach = t.reach(&SpaceQuery::from(src));
    let class_of = |dst: IpAddr| {
        let f = Flow::tcp(src, 60000, dst, 443);
        let hits: Vec<_> = reach.classes.iter().filter(|c| c.contains(&f)).collect();
        assert_eq!(hits.len(), 1, "{f}");
        assert_eq!(hits[0].decision, t.decide(&f), "{f}");
        hits[0]
    };
    let prefixes: Vec<sim::Cidr> = tags()
        .get("AzureKeyVault.WestEurope")
        .unwrap()
        .prefixes
        .iter()
        .copied()
        .filter(|p| p.is_ipv4())
        .collect();
    assert!(!prefixes.is_empty());
    let v4 = |ip: IpAddr| match ip {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(_) => unreachable!("IPv4 prefixes"),
    };
    for p in &prefixes {
        let (first, last) = (v4(p.first()), v4(p.last()));
        for inside in [first, last] {
            let c = class_of(IpAddr::V4(inside.into()));
            assert!(c.decision.allowed() && c.decision.firewall.is_none(), "{p}");
            assert_eq!(c.decision.egress_source, Some(src), "{p}");
        }
        for outside in [first - 1, last + 1] {
            let ip = IpAddr::V4(outside.into());
            if prefixes.iter().any(|q| q.contains(ip)) {
                continue;
            }
            let c = class_of(ip);
            assert!(c.decision.firewall.is_some(), "{ip} next to {p}");
            assert!(!c.contains(&Flow::tcp(src, 60000, IpAddr::V4(first.into()), 443)));
        }
    }
}

/// DNAT (`boundaries.rs`, concern `dnat`): flows to the firewall's public address split at the
/// DNAT rules' ports and sources, and the translated destination's NSG (which sees the
/// translated port and the firewall's SNAT address) cuts them again: every class agrees with
/// `check` at each port.
#[test]
fn dnat_on_the_firewalls_public_address_splits_reach_classes() {
    let rule = |inbound, deny, proto, src, dst, dport| GenRule {
        inbound,
        deny,
        proto,
        src,
        dst,
        sport: "*",
        dport,
    };
    let g = GenTopology {
        nsgs: vec![
            vec![],
            // snet-b's NSG: only the firewall's subnet on 8443.
            vec![
                rule(true, false, "Tcp", "10.0.3.0/24", "*", "8443"),
                rule(true, true, "*", "*", "*", "*"),
            ],
            vec![],
        ],
        peered: false,
        apim_nsg: false,
        backend_nsg: true,
        nic_nsg: false,
        public: false,
        routing: Some(GenRouting {
            tables: [Vec::new(), Vec::new(), Vec::new()],
            bgp: Vec::new(),
            fw_rules: Vec::new(),
            app_rule: false,
            nat: false,
            route_all_off: false,
            endpoints: ["", ""],
            dnat: vec![
                ("TCP", "*", "443", "10.0.2.4", 8443),
                ("TCP", "20.60.0.0/16", "80", "10.0.2.4", 22),
            ],
        }),
    };
    let t = build(&g);
    let fw: IpAddr = "20.61.20.5".parse().unwrap();
    for source in ["20.60.0.1", "52.1.2.3"] {
        let source: IpAddr = source.parse().unwrap();
        let reach = t.reach(&SpaceQuery::from(source));
        let mut seen = Vec::new();
        for port in [442, 443, 444, 79, 80, 81] {
            let f = Flow::tcp(source, 60000, fw, port);
            let hits: Vec<_> = reach.classes.iter().filter(|c| c.contains(&f)).collect();
            assert_eq!(hits.len(), 1, "{f}\n{}", toml_of(&g));
            assert_eq!(hits[0].decision, t.decide(&f), "{f}\n{}", toml_of(&g));
            seen.push((port, t.decide(&f).code.as_str()));
        }
        // 443 is translated to 10.0.2.4:8443 and allowed; 80 (from 20.60/16 only) to port 22,
        // which snet-b's NSG denies; every other port is the firewall's default deny.
        let want_80 = if source.to_string() == "20.60.0.1" {
            "NSG_DENIED"
        } else {
            "FIREWALL_DENIED"
        };
        assert_eq!(
            seen,
            vec![
                (442, "FIREWALL_DENIED"),
                (443, "ALLOWED"),
                (444, "FIREWALL_DENIED"),
                (79, "FIREWALL_DENIED"),
                (80, want_80),
                (81, "FIREWALL_DENIED"),
            ]
        );
    }
    // Into the public address: sources split at the DNAT rule's source prefix.
    let reach = t.reach(&SpaceQuery::into(fw));
    for source in ["20.60.0.1", "52.1.2.3"] {
        let f = Flow::tcp(source.parse().unwrap(), 60000, fw, 80);
        let hits: Vec<_> = reach.classes.iter().filter(|c| c.contains(&f)).collect();
        assert_eq!(hits.len(), 1, "{f}");
        assert_eq!(
            hits[0].decision,
            t.decide(&f).as_class_into(f.source),
            "{f}"
        );
    }
}

/// The route taken is part of a class's outcome: with no NSG and no firewall on the way, flows
/// from the APIM subnet to 20.50.0.0/16 (a user route to the Internet) and to the rest of the
/// internet (the system route) are all allowed, yet land in different classes, each naming the
/// route `check` shows for its flows ("Virtual network traffic routing": the longest prefix
/// match picks the route).
#[test]
fn classes_split_by_route_with_the_same_verdict() {
    let g = GenTopology {
        nsgs: vec![vec![], vec![], vec![]],
        peered: false,
        apim_nsg: false,
        backend_nsg: false,
        nic_nsg: false,
        public: false,
        routing: Some(GenRouting {
            tables: [vec![("20.50.0.0/16", "Internet")], Vec::new(), Vec::new()],
            bgp: Vec::new(),
            fw_rules: Vec::new(),
            app_rule: false,
            nat: false,
            route_all_off: false,
            endpoints: ["", ""],
            dnat: Vec::new(),
        }),
    };
    let t = build(&g);
    let src = t.apim_source().unwrap();
    let reach = t.reach(&SpaceQuery::from(src));
    let class_of = |dst: &str| {
        let f = Flow::tcp(src, 60000, dst.parse().unwrap(), 443);
        let hits: Vec<_> = reach.classes.iter().filter(|c| c.contains(&f)).collect();
        assert_eq!(hits.len(), 1, "{f}");
        (hits[0], f)
    };
    let (user, fu) = class_of("20.50.1.10");
    let (system, fs) = class_of("20.51.1.10");
    for (c, f) in [(user, fu), (system, fs)] {
        assert_eq!(c.decision.code, sim::VerdictCode::Allowed, "{f}");
        assert_eq!(c.decision, t.decide(&f), "{f}");
        check_route_hops(&t, &c.decision, &f).unwrap();
    }
    assert_ne!(
        user, system,
        "same verdict, different routes: different classes"
    );
    assert!(!user.contains(&fs) && !system.contains(&fu));
    let names = |c: &sim::FlowClass| -> Vec<String> {
        c.decision
            .routes()
            .map(|r| t.route_info(r).name())
            .collect()
    };
    assert_eq!(names(user), ["rt0/u0"]);
    assert_eq!(names(system), ["System Route"]);
    assert_eq!(
        t.route_info(system.decision.routes().next().unwrap())
            .next_hop
            .as_str(),
        "Internet"
    );
    // The user route's class is exactly its prefix.
    assert_eq!(user.destinations, ["20.50.0.0/16".parse::<Cidr>().unwrap()]);
}
