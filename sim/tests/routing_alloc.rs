//! The verdict-only walk allocates nothing, on a path through an Azure Firewall with 400 UDRs,
//! 1,000 BGP routes and 1,000 firewall network rules (the routing benchmark's topology,
//! `synth::forced_tunnel`). A counting global allocator (this binary only) counts the
//! allocations each thread makes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use sim::fixture::{Fixture, Format};
use sim::{ServiceTagTable, Topology, VerdictCode};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: defers to `System`; the counter is a plain thread-local cell.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn verdict_only_walk_through_a_firewall_does_not_allocate() {
    let (text, flows) = sim::synth::forced_tunnel(7, 400, 1000, 1000, 2000);
    let f = Fixture::parse(&text, Format::Toml).unwrap();
    let b = Topology::build(&f, ServiceTagTable::builtin());
    assert!(
        b.structural_errors().is_empty(),
        "{:#?}",
        b.structural_errors()
    );
    let t = b.topology;
    // The counter works: building a string allocates.
    let before = allocations();
    let s = std::hint::black_box(String::from("x"));
    assert!(allocations() > before);
    drop(s);
    let before = allocations();
    let mut allowed = 0;
    for f in &flows {
        let d = std::hint::black_box(t.decide(std::hint::black_box(f)));
        allowed += usize::from(d.code == VerdictCode::Allowed);
        assert!(d.firewall.is_some(), "every flow passes the firewall: {f}");
    }
    assert_eq!(allocations() - before, 0, "decide allocated");
    // Every flow targets a rule's /24: the firewall allows them all, SNAT to its address.
    assert_eq!(allowed, flows.len());
    let d = t.decide(&flows[0]);
    assert_eq!(d.egress_source, Some("20.61.20.5".parse().unwrap()));
    // And the explaining walk agrees.
    for f in flows.iter().take(50) {
        assert_eq!(t.evaluate(f).code, t.decide(f).code);
    }
}

/// The DNAT step (a flow to the firewall's public address: DNAT rules, the translation, the
/// second leg to the translated destination and its NSG) allocates nothing either.
#[test]
fn verdict_only_walk_through_dnat_does_not_allocate() {
    let text = r#"
[[vnets]]
name = "hub"
region = "westeurope"
address_space = ["10.100.0.0/16"]
peerings = ["spoke"]
  [[vnets.subnets]]
  name = "AzureFirewallSubnet"
  address_prefix = "10.100.1.0/26"
[[vnets]]
name = "spoke"
region = "westeurope"
address_space = ["10.1.0.0/16"]
peerings = ["hub"]
  [[vnets.subnets]]
  name = "backend"
  address_prefix = "10.1.1.0/24"
  nsg = "nsg-backend"
[[nsgs]]
name = "nsg-backend"
  [[nsgs.security_rules]]
  name = "allow-firewall"
  priority = 100
  direction = "Inbound"
  access = "Allow"
  protocol = "Tcp"
  source_address_prefix = "10.100.1.0/26"
  source_port_range = "*"
  destination_address_prefix = "*"
  destination_port_range = "8443"
[[firewalls]]
name = "fw"
subnet = "hub/AzureFirewallSubnet"
private_address = "10.100.1.4"
public_addresses = ["20.61.20.5"]
  [[firewalls.rule_collection_groups]]
  name = "g"
  priority = 100
    [[firewalls.rule_collection_groups.rule_collections]]
    name = "publish"
    priority = 100
    kind = "Dnat"
      [[firewalls.rule_collection_groups.rule_collections.rules]]
      name = "web"
      protocols = ["TCP"]
      source_addresses = ["*"]
      destination_addresses = ["20.61.20.5"]
      destination_ports = ["443"]
      translated_address = "10.1.1.4"
      translated_port = "8443"
"#;
    let f = Fixture::parse(text, Format::Toml).unwrap();
    let b = Topology::build(&f, ServiceTagTable::builtin());
    assert!(b.structural_errors().is_empty());
    let t = b.topology;
    let flows: Vec<sim::Flow> = (0..200u16)
        .map(|i| {
            sim::Flow::tcp(
                "52.1.2.3".parse().unwrap(),
                40000 + i,
                "20.61.20.5".parse().unwrap(),
                if i % 2 == 0 { 443 } else { 80 },
            )
        })
        .collect();
    let before = allocations();
    let mut translated = 0;
    for f in &flows {
        let d = std::hint::black_box(t.decide(std::hint::black_box(f)));
        translated += usize::from(d.dnat.is_some() && d.code == VerdictCode::Allowed);
    }
    assert_eq!(allocations() - before, 0, "decide allocated");
    // Port 443 is published (translated and allowed), port 80 is the default deny.
    assert_eq!(translated, 100);
    assert_eq!(t.decide(&flows[1]).code, VerdictCode::FirewallDenied);
}
