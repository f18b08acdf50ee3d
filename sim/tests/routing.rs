//! Routing and egress devices, written as fixtures: each test cites the Learn page of the
//! behaviour it checks.
//! - ROUTING: "Virtual network traffic routing"
//!   <https://learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview>
//! - PE-POLICIES: "Manage network policies for private endpoints"
//!   <https://learn.microsoft.com/azure/private-link/disable-private-endpoint-network-policy>
//! - FW-RULES: "Azure Firewall rule processing logic"
//!   <https://learn.microsoft.com/azure/firewall/rule-processing>
//! - FW-SNAT: "Azure Firewall SNAT private IP address ranges"
//!   <https://learn.microsoft.com/azure/firewall/snat-private-range>
//! - NAT: "What is Azure NAT Gateway?" <https://learn.microsoft.com/azure/nat-gateway/nat-overview>
//! - PEERING: "Create, change, or delete a virtual network peering" (allow forwarded traffic)
//!   <https://learn.microsoft.com/azure/virtual-network/virtual-network-manage-peering>
//!
//! Every flow goes through [`both`], which checks that the verdict-only walk
//! ([`Topology::decide`]) and the explaining walk ([`Topology::evaluate`]) agree.

use std::net::IpAddr;

use proptest::prelude::*;
use sim::fixture::{Fixture, Format};
use sim::{
    Cidr, Decision, Flow, NextHop, RouteSource, RouteState, ServiceTagTable, SubnetRoutes,
    Topology, VerdictKind,
};

// === helpers ===

fn topo(text: &str) -> Topology {
    let f = Fixture::parse(text, Format::Toml).unwrap_or_else(|e| panic!("fixture: {e}\n{text}"));
    let b = Topology::build(&f, ServiceTagTable::builtin());
    let errs = b.structural_errors();
    assert!(errs.is_empty(), "structural errors: {errs:#?}");
    b.topology
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Both walks on one flow: they must agree; returns the decision and the explained code.
fn both(t: &Topology, src: &str, dst: &str, port: u16) -> Decision {
    let f = Flow::tcp(ip(src), 60000, ip(dst), port);
    let d = t.decide(&f);
    let v = t.evaluate(&f);
    assert_eq!(
        (d.verdict, d.code),
        (v.verdict, v.code),
        "{f}: {}",
        v.detail
    );
    d
}

fn code(t: &Topology, src: &str, dst: &str, port: u16) -> &'static str {
    both(t, src, dst, port).code.as_str()
}

/// A spoke (10.0.0.0/16: snet-a 10.0.1.0/24, snet-b 10.0.2.0/24, snet-pe 10.0.3.0/24) peered
/// with a hub (10.100.0.0/16: AzureFirewallSubnet 10.100.1.0/26, snet-nva 10.100.2.0/24);
/// `extra` adds keys (route tables, hosts, firewalls); `{rt_a}`/`{rt_b}` name subnet keys.
fn hub_spoke(subnet_a: &str, subnet_b: &str, extra: &str) -> String {
    format!(
        r#"
[[vnets]]
name = "spoke"
region = "westeurope"
address_space = ["10.0.0.0/16"]
peerings = [{{ remote = "hub", allow_forwarded_traffic = true }}]
bgp_routes = []
  [[vnets.subnets]]
  name = "snet-a"
  address_prefix = "10.0.1.0/24"
  {subnet_a}
  [[vnets.subnets]]
  name = "snet-b"
  address_prefix = "10.0.2.0/24"
  {subnet_b}
  [[vnets.subnets]]
  name = "snet-pe"
  address_prefix = "10.0.3.0/24"
  private_endpoint_network_policies = "RouteTableEnabled"

[[vnets]]
name = "hub"
region = "westeurope"
address_space = ["10.100.0.0/16"]
peerings = ["spoke"]
  [[vnets.subnets]]
  name = "AzureFirewallSubnet"
  address_prefix = "10.100.1.0/26"
  [[vnets.subnets]]
  name = "snet-nva"
  address_prefix = "10.100.2.0/24"

[[hosts]]
name = "a"
address = "10.0.1.4"
[[hosts]]
name = "b"
address = "10.0.2.4"
[[hosts]]
name = "pe"
address = "10.0.3.5"
kind = "private-endpoint"
[[hosts]]
name = "partner"
address = "20.50.1.10"
dns = ["api.partner.example"]

[[firewalls]]
name = "fw"
subnet = "hub/AzureFirewallSubnet"
private_address = "10.100.1.4"
public_addresses = ["20.61.20.5"]
  [[firewalls.rule_collection_groups]]
  name = "g"
  priority = 200
    [[firewalls.rule_collection_groups.rule_collections]]
    name = "net"
    priority = 150
    kind = "Network"
    action = "Allow"
      [[firewalls.rule_collection_groups.rule_collections.rules]]
      name = "a-to-b"
      protocols = ["TCP"]
      source_addresses = ["10.0.1.0/24"]
      destination_addresses = ["10.0.2.0/24", "10.0.3.0/24", "20.50.1.30"]
      destination_ports = ["443"]
    [[firewalls.rule_collection_groups.rule_collections]]
    name = "deny-b-8080"
    priority = 100
    kind = "Network"
    action = "Deny"
      [[firewalls.rule_collection_groups.rule_collections.rules]]
      name = "no-8080"
      protocols = ["Any"]
      source_addresses = ["*"]
      destination_addresses = ["10.0.2.0/24"]
      destination_ports = ["8080"]
    [[firewalls.rule_collection_groups.rule_collections]]
    name = "app"
    priority = 300
    kind = "Application"
    action = "Allow"
      [[firewalls.rule_collection_groups.rule_collections.rules]]
      name = "partner"
      protocols = ["Https:443"]
      source_addresses = ["10.0.1.0/24"]
      target_fqdns = ["*.partner.example"]

{extra}
"#
    )
}

const RT_A_FW: &str = r#"
[[route_tables]]
name = "rt-a"
  [[route_tables.routes]]
  name = "default-to-fw"
  address_prefix = "0.0.0.0/0"
  next_hop_type = "VirtualAppliance"
  next_hop_ip_address = "10.100.1.4"
  [[route_tables.routes]]
  name = "b-via-fw"
  address_prefix = "10.0.2.0/24"
  next_hop_type = "VirtualAppliance"
  next_hop_ip_address = "10.100.1.4"

[[route_tables]]
name = "rt-b"
  [[route_tables.routes]]
  name = "a-via-fw"
  address_prefix = "10.0.1.0/24"
  next_hop_type = "VirtualAppliance"
  next_hop_ip_address = "10.100.1.4"
"#;

fn forced() -> Topology {
    topo(&hub_spoke(
        r#"route_table = "rt-a""#,
        r#"route_table = "rt-b""#,
        RT_A_FW,
    ))
}

// === ROUTING: longest prefix, ties, precedence ===

/// ROUTING: "Azure selects a route based on the destination IP address, using the longest
/// prefix match algorithm" — a /24 None UDR beats the /16 VNet route, a /25 VnetLocal UDR
/// inside it beats the /24.
#[test]
fn longest_prefix_wins() {
    let extra = r#"
[[route_tables]]
name = "rt-a"
  [[route_tables.routes]]
  name = "drop-b"
  address_prefix = "10.0.2.0/24"
  next_hop_type = "None"
  [[route_tables.routes]]
  name = "keep-low-b"
  address_prefix = "10.0.2.0/25"
  next_hop_type = "VnetLocal"
"#;
    let t = topo(&hub_spoke(r#"route_table = "rt-a""#, "", extra));
    assert_eq!(code(&t, "10.0.1.4", "10.0.2.4", 443), "ALLOWED");
    assert_eq!(code(&t, "10.0.1.4", "10.0.2.200", 443), "ROUTE_NONE");
    let d = both(&t, "10.0.1.4", "10.0.2.200", 443);
    assert_eq!(d.verdict, VerdictKind::Deny);
}

/// ROUTING: on an equal prefix "1. User-defined route 2. BGP route 3. System route"; the
/// overridden routes stay listed Invalid.
#[test]
fn equal_prefix_user_beats_bgp_beats_system() {
    let bgp = hub_spoke("", "", "").replace("bgp_routes = []", r#"bgp_routes = ["0.0.0.0/0"]"#);
    let t = topo(&bgp);
    // BGP 0.0.0.0/0 beats the system Internet route: the flow leaves for on-premises.
    assert_eq!(code(&t, "10.0.1.4", "20.50.1.10", 443), "LEAVES_MODEL");
    let routes = t.subnet_routes(0, 0).unwrap();
    let default: Vec<_> = routes
        .routes
        .iter()
        .filter(|r| r.prefix.to_string() == "0.0.0.0/0")
        .map(|r| (r.source, r.state))
        .collect();
    assert_eq!(
        default,
        [
            (RouteSource::Default, RouteState::Invalid),
            (RouteSource::VirtualNetworkGateway, RouteState::Active)
        ]
    );
    // A user route for 0.0.0.0/0 (Internet) beats the BGP one.
    let extra = r#"
[[route_tables]]
name = "rt-a"
  [[route_tables.routes]]
  name = "internet"
  address_prefix = "0.0.0.0/0"
  next_hop_type = "Internet"
"#;
    let t = topo(
        &hub_spoke(r#"route_table = "rt-a""#, "", extra)
            .replace("bgp_routes = []", r#"bgp_routes = ["0.0.0.0/0"]"#),
    );
    assert_eq!(code(&t, "10.0.1.4", "20.50.1.10", 443), "ALLOWED");
    assert_eq!(code(&t, "10.0.2.4", "20.50.1.10", 443), "LEAVES_MODEL");
}

/// ROUTING: "System routes for traffic related to virtual network, virtual network peerings,
/// or virtual network service endpoints, are preferred routes, even if BGP routes are more
/// specific" — a BGP /24 inside the peer's space is Invalid; a BGP route elsewhere leaves the
/// model; `disable_bgp_route_propagation` drops it.
#[test]
fn peering_beats_more_specific_bgp() {
    let text = hub_spoke(
        "",
        r#"route_table = "rt-nobgp""#,
        "[[route_tables]]\nname = \"rt-nobgp\"\ndisable_bgp_route_propagation = true\n",
    )
    .replace(
        "bgp_routes = []",
        r#"bgp_routes = ["10.100.2.0/24", "192.168.10.0/24"]"#,
    );
    let t = topo(&text);
    let routes = t.subnet_routes(0, 0).unwrap();
    let bgp: Vec<_> = routes
        .routes
        .iter()
        .filter(|r| r.source == RouteSource::VirtualNetworkGateway)
        .map(|r| (r.prefix.to_string(), r.state))
        .collect();
    assert_eq!(
        bgp,
        [
            ("10.100.2.0/24".to_string(), RouteState::Invalid),
            ("192.168.10.0/24".to_string(), RouteState::Active)
        ]
    );
    assert_eq!(code(&t, "10.0.1.4", "10.100.2.4", 443), "ALLOWED");
    assert_eq!(code(&t, "10.0.1.4", "192.168.10.4", 443), "LEAVES_MODEL");
    // snet-b's table disables BGP propagation: 192.168.0.0/16 is a system None route again.
    assert_eq!(code(&t, "10.0.2.4", "192.168.10.4", 443), "NO_ROUTE");
}

/// ROUTING: a peering is a system route VNetPeering in the same region, VNetGlobalPeering
/// across regions.
#[test]
fn peering_route_types() {
    let t = topo(&hub_spoke("", "", ""));
    let hop = |t: &Topology| {
        let r = t.subnet_routes(0, 0).unwrap();
        r.routes[r.lookup(ip("10.100.2.4")).unwrap()]
            .next_hop
            .as_str()
    };
    assert_eq!(hop(&t), "VNetPeering");
    let t = topo(&hub_spoke("", "", "").replacen(
        "region = \"westeurope\"\naddress_space = [\"10.100",
        "region = \"northeurope\"\naddress_space = [\"10.100",
        1,
    ));
    assert_eq!(hop(&t), "VNetGlobalPeering");
}

// === PE-POLICIES: private-endpoint /32 routes ===

/// PE-POLICIES: a private endpoint's /32 route beats a 0.0.0.0/0 UDR ("a user-defined route
/// default route (0.0.0.0/0) doesn't invalidate private endpoint routes"), and is invalidated
/// only when the endpoint's subnet has route-table policies and a UDR covering it has "a prefix
/// size that is equal to or smaller than the virtual network address space" (here /16 and /24
/// for a /16 space).
#[test]
fn private_endpoint_route_beats_default_udr_until_invalidated() {
    let t = forced();
    let r = t.subnet_routes(0, 0).unwrap();
    let taken = &r.routes[r.lookup(ip("10.0.3.5")).unwrap()];
    assert_eq!(taken.next_hop.as_str(), "InterfaceEndpoint");
    assert_eq!(taken.state, RouteState::Active);
    let d = both(&t, "10.0.1.4", "10.0.3.5", 443);
    assert_eq!(d.code.as_str(), "ALLOWED");
    assert!(
        d.firewall.is_none(),
        "the /32 goes straight to the endpoint"
    );
    // A UDR for the endpoint's subnet (10.0.3.0/24, as narrow as or narrower than the /16
    // space) to the firewall invalidates the /32.
    let wide = RT_A_FW.replace(
        "10.0.2.0/24\"\n  next_hop_type = \"VirtualAppliance\"",
        "10.0.3.0/24\"\n  next_hop_type = \"VirtualAppliance\"",
    );
    let t = topo(&hub_spoke(
        r#"route_table = "rt-a""#,
        r#"route_table = "rt-b""#,
        &wide,
    ));
    let r = t.subnet_routes(0, 0).unwrap();
    let pe = r
        .routes
        .iter()
        .find(|x| x.next_hop.as_str() == "InterfaceEndpoint")
        .unwrap();
    assert_eq!(pe.state, RouteState::Invalid);
    let d = both(&t, "10.0.1.4", "10.0.3.5", 443);
    assert!(d.firewall.is_some(), "now through the firewall");
    // The same UDR with the endpoint's subnet policies Disabled leaves the /32 in force.
    let t = topo(
        &hub_spoke(r#"route_table = "rt-a""#, r#"route_table = "rt-b""#, &wide).replace(
            "private_endpoint_network_policies = \"RouteTableEnabled\"",
            "",
        ),
    );
    assert!(both(&t, "10.0.1.4", "10.0.3.5", 443).firewall.is_none());
}

// === ROUTING: None, appliances, loops, gateways ===

/// ROUTING: "Traffic routed to the None next hop type is dropped" — a user None route is
/// ROUTE_NONE (Deny); the system None routes of the private ranges keep NO_ROUTE.
#[test]
fn none_routes() {
    let t = topo(&hub_spoke(
        r#"route_table = "rt-a""#,
        "",
        "[[route_tables]]\nname = \"rt-a\"\n  [[route_tables.routes]]\n  name = \"drop\"\n  address_prefix = \"20.50.0.0/16\"\n  next_hop_type = \"None\"\n",
    ));
    assert_eq!(code(&t, "10.0.1.4", "20.50.1.10", 443), "ROUTE_NONE");
    assert_eq!(code(&t, "10.0.1.4", "172.16.0.4", 443), "NO_ROUTE");
}

fn nva(forwarding: bool, nsg: &str) -> String {
    let rt = RT_A_FW.replace("10.100.1.4", "10.100.2.10");
    hub_spoke(
        r#"route_table = "rt-a""#,
        r#"route_table = "rt-b""#,
        &format!(
            "{rt}\n[[hosts]]\nname = \"nva\"\naddress = \"10.100.2.10\"\nip_forwarding = {forwarding}\n{nsg}\n"
        ),
    )
}

/// ROUTING: a VirtualAppliance next hop must forward: a NIC without IP forwarding drops the
/// flow (NEXT_HOP_UNREACHABLE); with it the flow passes its NIC's NSGs in and out.
#[test]
fn appliance_needs_ip_forwarding_and_passes_its_nsgs() {
    assert_eq!(
        code(&topo(&nva(false, "")), "10.0.1.4", "10.0.2.4", 443),
        "NEXT_HOP_UNREACHABLE"
    );
    let t = topo(&nva(true, ""));
    let d = both(&t, "10.0.1.4", "10.0.2.4", 443);
    assert_eq!(d.code.as_str(), "ALLOWED");
    assert_eq!(
        d.egress_source,
        Some(ip("10.0.1.4")),
        "a generic appliance does not SNAT"
    );
    let nsg = "nsg = \"nsg-nva\"\n[[nsgs]]\nname = \"nsg-nva\"\n  [[nsgs.security_rules]]\n  name = \"no-in\"\n  priority = 100\n  direction = \"Inbound\"\n  access = \"Deny\"\n  protocol = \"*\"\n  source_address_prefix = \"*\"\n  source_port_range = \"*\"\n  destination_address_prefix = \"*\"\n  destination_port_range = \"*\"\n";
    let t = topo(&nva(true, nsg));
    let d = both(&t, "10.0.1.4", "10.0.2.4", 443);
    assert_eq!(d.code.as_str(), "NSG_DENIED");
    let r = t.rule_info(d.decided_by.unwrap());
    assert_eq!((r.nsg, r.rule.as_str()), ("nsg-nva", "securityRules/no-in"));
    // The next hop address of nothing at all.
    let t = topo(&hub_spoke(
        r#"route_table = "rt-a""#,
        "",
        &RT_A_FW.replace("10.100.1.4", "10.100.2.99"),
    ));
    assert_eq!(
        code(&t, "10.0.1.4", "20.50.1.10", 443),
        "NEXT_HOP_UNREACHABLE"
    );
}

/// PEERING: "Allow forwarded traffic" off on the receiving side drops what an appliance in
/// the remote VNet forwards into it.
#[test]
fn forwarded_traffic_refused_by_peering() {
    let t = topo(&nva(true, "").replace(
        r#"peerings = [{ remote = "hub", allow_forwarded_traffic = true }]"#,
        r#"peerings = ["hub"]"#,
    ));
    let f = Flow::tcp(ip("10.0.1.4"), 60000, ip("10.0.2.4"), 443);
    let v = t.evaluate(&f);
    assert_eq!(v.code.as_str(), "NO_ROUTE");
    assert!(v.detail.contains("allow_forwarded_traffic"), "{}", v.detail);
    assert_eq!(t.decide(&f).code, v.code);
}

/// ROUTING: routes that send a packet back to a device it passed loop (ROUTING_LOOP, a
/// bounded walk); a VirtualNetworkGateway next hop leaves the model.
#[test]
fn loops_and_gateways() {
    let extra = format!(
        "{}\n[[route_tables]]\nname = \"rt-nva\"\n  [[route_tables.routes]]\n  name = \"back\"\n  address_prefix = \"0.0.0.0/0\"\n  next_hop_type = \"VirtualAppliance\"\n  next_hop_ip_address = \"10.100.1.4\"\n[[route_tables]]\nname = \"rt-fw\"\n  [[route_tables.routes]]\n  name = \"to-nva\"\n  address_prefix = \"0.0.0.0/0\"\n  next_hop_type = \"VirtualAppliance\"\n  next_hop_ip_address = \"10.100.2.10\"\n[[hosts]]\nname = \"nva\"\naddress = \"10.100.2.10\"\nip_forwarding = true\n",
        RT_A_FW
    );
    let text = hub_spoke(r#"route_table = "rt-a""#, "", &extra)
        .replace("name = \"AzureFirewallSubnet\"\n  address_prefix = \"10.100.1.0/26\"", "name = \"AzureFirewallSubnet\"\n  address_prefix = \"10.100.1.0/26\"\n  route_table = \"rt-fw\"")
        .replace("name = \"snet-nva\"\n  address_prefix = \"10.100.2.0/24\"", "name = \"snet-nva\"\n  address_prefix = \"10.100.2.0/24\"\n  route_table = \"rt-nva\"");
    let t = topo(&text);
    let d = both(&t, "10.0.1.4", "20.50.1.10", 443);
    assert_eq!(d.code.as_str(), "ROUTING_LOOP");
    assert_eq!(d.verdict, VerdictKind::Unreachable);
    let gw = "[[route_tables]]\nname = \"rt-a\"\n  [[route_tables.routes]]\n  name = \"onprem\"\n  address_prefix = \"192.168.0.0/16\"\n  next_hop_type = \"VirtualNetworkGateway\"\n";
    let t = topo(&hub_spoke(r#"route_table = "rt-a""#, "", gw));
    assert_eq!(code(&t, "10.0.1.4", "192.168.1.1", 443), "LEAVES_MODEL");
}

// === FW-RULES and FW-SNAT ===

/// FW-RULES: network collections (by group, then collection priority) before application
/// collections, first match, default deny; FW-SNAT: no SNAT to a private destination for
/// network rules, public destinations SNAT to the public address, application rules always.
#[test]
fn firewall_rules_and_snat() {
    let t = forced();
    // Network rule allows a → b:443, no SNAT (private destination).
    let d = both(&t, "10.0.1.4", "10.0.2.4", 443);
    assert_eq!(d.code.as_str(), "ALLOWED");
    assert_eq!(d.egress_source, Some(ip("10.0.1.4")));
    let fw = &t.firewalls()[0];
    let m = d.firewall.unwrap();
    assert_eq!(fw.names(&m), (Some("g"), Some("net"), "a-to-b"));
    // The Deny collection (priority 100) comes before the Allow one (150).
    let d = both(&t, "10.0.1.4", "10.0.2.4", 8080);
    assert_eq!(d.code.as_str(), "FIREWALL_DENIED");
    assert_eq!(fw.names(&d.firewall.unwrap()).2, "no-8080");
    // Application rule: the partner's FQDN; SNAT to the public address for the internet.
    let d = both(&t, "10.0.1.4", "20.50.1.10", 443);
    assert_eq!(d.code.as_str(), "ALLOWED");
    assert_eq!(fw.names(&d.firewall.unwrap()).2, "partner");
    assert_eq!(d.egress_source, Some(ip("20.61.20.5")));
    // A public destination by network rule: SNAT to the public address too.
    let d = both(&t, "10.0.1.4", "20.50.1.30", 443);
    assert_eq!(d.egress_source, Some(ip("20.61.20.5")));
    // No rule: the default deny.
    let d = both(&t, "10.0.1.4", "20.50.1.99", 443);
    assert_eq!(d.code.as_str(), "FIREWALL_DENIED");
    assert_eq!(fw.names(&d.firewall.unwrap()), (None, None, "default"));
    let v = t.evaluate(&Flow::tcp(ip("10.0.1.4"), 60000, ip("20.50.1.99"), 443));
    let by = v.decided_by.expect("the firewall decided");
    assert_eq!(by.kind, sim::DecidedKind::Firewall);
    assert_eq!(
        (by.nsg.as_str(), by.rule.as_str(), by.group.as_deref()),
        ("fw", "default", None)
    );
    let json = serde_json::to_value(&by).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"kind": "firewall", "firewall": "fw", "group": null, "collection": null, "rule": "default"})
    );
    assert_eq!(v.egress_source, None);
    assert_eq!(v.hops.last().unwrap().kind, "firewall");
}

/// FW-SNAT: "Application rules are always SNATed" — to a private destination the source
/// becomes a firewall instance address in AzureFirewallSubnet.
#[test]
fn application_rule_snats_to_an_instance_address() {
    let t = topo(
        &hub_spoke(
            r#"route_table = "rt-a""#,
            r#"route_table = "rt-b""#,
            &format!("{RT_A_FW}\n[[hosts]]\nname = \"internal-api\"\naddress = \"10.0.2.8\"\ndns = [\"api.partner.example\"]\n"),
        )
        .replace("[[hosts]]\nname = \"partner\"\naddress = \"20.50.1.10\"\ndns = [\"api.partner.example\"]", ""),
    );
    let d = both(&t, "10.0.1.4", "10.0.2.8", 443);
    assert_eq!(
        d.code.as_str(),
        "ALLOWED",
        "the network rule a-to-b matches first"
    );
    let fw = &t.firewalls()[0];
    assert_eq!(fw.instance_address, ip("10.100.1.5"));
    // Port 443 to a host the network rule does not cover: the application rule, SNAT to the
    // instance address, which snet-b's NSG then sees.
    let t2 = topo(&format!(
        "{}\n[[nsgs]]\nname = \"nsg-b\"\n  [[nsgs.security_rules]]\n  name = \"only-fw-instances\"\n  priority = 100\n  direction = \"Inbound\"\n  access = \"Deny\"\n  protocol = \"*\"\n  source_address_prefix = \"10.100.1.5\"\n  source_port_range = \"*\"\n  destination_address_prefix = \"*\"\n  destination_port_range = \"*\"\n",
        hub_spoke(r#"route_table = "rt-a""#, "route_table = \"rt-b\"\n  nsg = \"nsg-b\"", RT_A_FW)
            .replace("20.50.1.10\"\ndns = [\"api.partner.example\"]", "10.0.2.9\"\ndns = [\"api.partner.example\"]")
            .replace("destination_addresses = [\"10.0.2.0/24\", ", "destination_addresses = [")
    ));
    let d = both(&t2, "10.0.1.4", "10.0.2.9", 443);
    assert_eq!(t2.firewalls()[0].names(&d.firewall.unwrap()).2, "partner");
    assert_eq!(
        d.code.as_str(),
        "NSG_DENIED",
        "snet-b's NSG sees the instance address"
    );
    assert_eq!(
        t2.rule_info(d.decided_by.unwrap()).rule,
        "securityRules/only-fw-instances"
    );
}

/// ROUTING + FW: a stateful firewall must see both directions: without a route in the
/// backend subnet back through the firewall, the reply bypasses it (ASYMMETRIC_ROUTE).
#[test]
fn asymmetric_return_path() {
    let t = topo(&hub_spoke(r#"route_table = "rt-a""#, "", RT_A_FW));
    let f = Flow::tcp(ip("10.0.1.4"), 60000, ip("10.0.2.4"), 443);
    let v = t.evaluate(&f);
    assert_eq!(v.code.as_str(), "ASYMMETRIC_ROUTE");
    assert_eq!(v.verdict, VerdictKind::Deny);
    assert_eq!(t.decide(&f).code, v.code);
    // With the firewall SNATing (a public destination) the reply comes back to it.
    assert_eq!(code(&t, "10.0.1.4", "20.50.1.10", 443), "ALLOWED");
}

// === NAT ===

/// NAT: "NAT gateway replaces the default Internet destination of a subnet" — internet-bound
/// TCP/UDP flows leave from its public address, unless a UDR sends them to an appliance first
/// ("Virtual appliance UDR … >> NAT gateway").
#[test]
fn nat_gateway_source_address() {
    let nat = "[[nat_gateways]]\nname = \"nat\"\npublic_addresses = [\"20.61.10.4\"]\n";
    let t = topo(&hub_spoke(r#"nat_gateway = "nat""#, "", nat));
    let d = both(&t, "10.0.1.4", "20.50.1.10", 443);
    assert_eq!(d.egress_source, Some(ip("20.61.10.4")));
    // Inside the VNet the NAT gateway is not used.
    assert_eq!(
        both(&t, "10.0.1.4", "10.0.2.4", 443).egress_source,
        Some(ip("10.0.1.4"))
    );
    // A UDR to the firewall first: the firewall's address.
    let t = topo(&hub_spoke(
        "nat_gateway = \"nat\"\n  route_table = \"rt-a\"",
        "",
        &format!("{nat}{RT_A_FW}"),
    ));
    assert_eq!(
        both(&t, "10.0.1.4", "20.50.1.10", 443).egress_source,
        Some(ip("20.61.20.5"))
    );
}

// === APIM outbound_route_all ===

fn apim(route_all: &str) -> Topology {
    topo(&format!(
        "{}\n[apim]\nname = \"apim\"\nsku = \"StandardV2\"\nregion = \"westeurope\"\nvirtual_network = \"integration\"\nsubnet = \"spoke/snet-a\"\naddress = \"10.0.1.10\"\n{route_all}\n",
        hub_spoke(r#"route_table = "rt-a""#, r#"route_table = "rt-b""#, RT_A_FW)
    ))
}

/// `[apim] outbound_route_all`: true (the default, ASSUMPTION_ALL_EGRESS_VIA_SUBNET) sends
/// public egress through the subnet's route table; false lets only RFC 1918 destinations in.
#[test]
fn outbound_route_all_both_ways() {
    let assumptions = |t: &Topology, dst: &str| -> Vec<&'static str> {
        t.evaluate(&Flow::tcp(ip("10.0.1.10"), 60000, ip(dst), 443))
            .assumptions
            .iter()
            .map(|a| a.code())
            .collect()
    };
    let t = apim("");
    assert_eq!(code(&t, "10.0.1.10", "20.50.1.99", 443), "FIREWALL_DENIED");
    assert!(assumptions(&t, "20.50.1.99").contains(&"ASSUMPTION_ALL_EGRESS_VIA_SUBNET"));
    let t = apim("outbound_route_all = false");
    let d = both(&t, "10.0.1.10", "20.50.1.99", 443);
    assert_eq!(d.code.as_str(), "ALLOWED");
    assert!(d.firewall.is_none());
    assert_eq!(d.egress_source, Some(t.apim().unwrap().public_address));
    assert!(assumptions(&t, "20.50.1.99").contains(&"ASSUMPTION_PUBLIC_EGRESS_FROM_PLATFORM"));
    // RFC 1918 destinations still take the subnet's routes.
    assert!(both(&t, "10.0.1.10", "10.0.2.4", 443).firewall.is_some());
}

// === property: the compiled lookup ===

const HOPS: [NextHop; 5] = [
    NextHop::VnetLocal,
    NextHop::Internet,
    NextHop::None,
    NextHop::VirtualNetworkGateway,
    NextHop::VirtualNetworkServiceEndpoint,
];

fn arb_row() -> impl Strategy<Value = (RouteSource, Cidr, NextHop, bool)> {
    (0u8..3, any::<u32>(), 0u8..=32, 0usize..5, any::<bool>()).prop_map(|(s, a, len, h, tag)| {
        let source = [
            RouteSource::User,
            RouteSource::VirtualNetworkGateway,
            RouteSource::Default,
        ][s as usize];
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        // Few distinct networks, so that equal and nested prefixes are common.
        let net = std::net::Ipv4Addr::from(a & mask & 0x0A0F_FFFF);
        let prefix: Cidr = format!("{net}/{len}").parse().unwrap();
        (source, prefix, HOPS[h], tag && source == RouteSource::User)
    })
}

/// The reference: Azure's selection stated directly on the raw rows.
fn reference(rows: &[(RouteSource, Cidr, NextHop, bool)], x: IpAddr) -> Option<(Cidr, NextHop)> {
    let default_udr = rows
        .iter()
        .any(|r| r.0 == RouteSource::User && r.1.prefix_len() == 0);
    let rank = |r: &(RouteSource, Cidr, NextHop, bool)| match (r.0, r.3) {
        (RouteSource::User, false) => 0,
        (RouteSource::User, true) => 1,
        (RouteSource::VirtualNetworkGateway, _) => 2,
        (RouteSource::Default, _) => 3,
    };
    rows.iter()
        .enumerate()
        .filter(|(_, r)| r.1.contains(x))
        .filter(|(_, r)| !(default_udr && r.0 == RouteSource::Default && r.2 == NextHop::None))
        // "System routes for traffic related to virtual network, virtual network peerings, or
        // virtual network service endpoints, are preferred routes, even if BGP routes are more
        // specific."
        .filter(|(_, r)| {
            r.0 != RouteSource::VirtualNetworkGateway
                || !rows.iter().any(|s| {
                    s.0 == RouteSource::Default
                        && matches!(
                            s.2,
                            NextHop::VnetLocal | NextHop::VirtualNetworkServiceEndpoint
                        )
                        && s.1.covers(&r.1)
                })
        })
        .max_by_key(|(i, r)| {
            (
                r.1.prefix_len(),
                std::cmp::Reverse(rank(r)),
                std::cmp::Reverse(*i),
            )
        })
        .map(|(_, r)| {
            (
                r.1,
                if r.0 == RouteSource::VirtualNetworkGateway {
                    NextHop::VirtualNetworkGateway
                } else {
                    r.2
                },
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The compiled lookup (sorted disjoint intervals) equals the scan of active routes and
    /// the reference selection on the raw rows, on random tables and addresses.
    #[test]
    fn compiled_lookup_equals_reference(
        rows in prop::collection::vec(arb_row(), 0..40),
        probes in prop::collection::vec(any::<u32>(), 1..40),
    ) {
        let routes = SubnetRoutes::from_rows(&rows);
        let mut addrs: Vec<u32> = probes.iter().map(|p| p & 0x0A0F_FFFF).collect();
        for r in &rows {
            if let (IpAddr::V4(a), IpAddr::V4(b)) = (r.1.first(), r.1.last()) {
                addrs.extend([u32::from(a), u32::from(b), u32::from(b).wrapping_add(1), u32::from(a).wrapping_sub(1)]);
            }
        }
        for a in addrs {
            let x = IpAddr::V4(a.into());
            let fast = routes.lookup(x);
            prop_assert_eq!(fast, routes.lookup_reference(x), "{}", x);
            let got = fast.map(|i| (routes.routes[i].prefix, routes.routes[i].next_hop));
            prop_assert_eq!(got, reference(&rows, x), "{}", x);
        }
    }
}

// === TAGS: the VirtualNetwork tag includes the prefixes of user-defined routes ===

/// Service tags overview, VirtualNetwork: "… and address prefixes used on user-defined routes.
/// This tag might also contain default routes."
/// (<https://learn.microsoft.com/azure/virtual-network/service-tags-overview#available-service-tags>)
/// — a `0.0.0.0/0` UDR on a subnet puts every address in its VNet's `VirtualNetwork` tag, so
/// the default `AllowVnetInBound` lets an internet source reach a VM's public address that
/// `DenyAllInBound` refuses without the route; a narrower UDR prefix joins the tag alone, and
/// `Internet` still matches public sources (it excludes only the VNet and its peers).
#[test]
fn user_route_prefixes_join_the_virtual_network_tag() {
    let web = r#"
[[nsgs]]
name = "nsg-a"

[[hosts]]
name = "web"
address = "10.0.1.10"
public_address = "20.70.1.1"
"#;
    let default_route = r#"
[[route_tables]]
name = "rt-a"
  [[route_tables.routes]]
  name = "all-to-internet"
  address_prefix = "0.0.0.0/0"
  next_hop_type = "Internet"
"#;
    let narrow_route = r#"
[[route_tables]]
name = "rt-a"
  [[route_tables.routes]]
  name = "partner-direct"
  address_prefix = "52.10.1.0/24"
  next_hop_type = "Internet"
"#;
    let decided = |t: &Topology, src: &str| {
        let f = Flow::tcp(ip(src), 50000, ip("20.70.1.1"), 443);
        let v = t.evaluate(&f);
        let d = t.decide(&f);
        assert_eq!((d.verdict, d.code), (v.verdict, v.code), "{}", v.detail);
        let rule = v.decided_by.map(|b| b.rule).unwrap_or_default();
        (v.verdict, rule)
    };
    let without = topo(&hub_spoke(r#"nsg = "nsg-a""#, "", web));
    assert_eq!(
        decided(&without, "52.10.1.9"),
        (
            VerdictKind::Deny,
            "defaultSecurityRules/DenyAllInBound".into()
        )
    );
    let with_default = topo(&hub_spoke(
        "nsg = \"nsg-a\"\n  route_table = \"rt-a\"",
        "",
        &format!("{web}{default_route}"),
    ));
    assert_eq!(
        decided(&with_default, "52.10.1.9"),
        (
            VerdictKind::Allow,
            "defaultSecurityRules/AllowVnetInBound".into()
        )
    );
    let with_narrow = topo(&hub_spoke(
        "nsg = \"nsg-a\"\n  route_table = \"rt-a\"",
        "",
        &format!("{web}{narrow_route}"),
    ));
    assert_eq!(
        decided(&with_narrow, "52.10.1.9"),
        (
            VerdictKind::Allow,
            "defaultSecurityRules/AllowVnetInBound".into()
        )
    );
    assert_eq!(
        decided(&with_narrow, "52.20.1.9"),
        (
            VerdictKind::Deny,
            "defaultSecurityRules/DenyAllInBound".into()
        )
    );
    // The tag of the VNet the NSG is applied in: the spoke's UDRs are not the hub's.
    let tag = |t: &Topology, v: usize| t.context(v).virtual_network.to_vec();
    assert!(tag(&with_narrow, 0).contains(&"52.10.1.0/24".parse::<Cidr>().unwrap()));
    assert!(!tag(&with_narrow, 1).contains(&"52.10.1.0/24".parse::<Cidr>().unwrap()));
}
