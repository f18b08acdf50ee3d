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
