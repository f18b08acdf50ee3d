//! Routing: the verdict-only walk (`Topology::decide`) of a flow through an Azure Firewall —
//! source NSG, a route lookup among 400 UDRs + 1,000 BGP routes + system routes, 1,000
//! firewall network rules (first match, half scanned on average), SNAT, the firewall subnet's
//! route lookup, internet egress. Target: ≤ 1 µs per verdict (issue 18). Topology and flows from
//! `sim::synth::forced_tunnel` (seeded), the same the allocation test walks.
//!
//! Run: `cargo bench --bench routing`. Prints the median ns per verdict at the end.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sim::fixture::{Fixture, Format};
use sim::{ServiceTagTable, Topology};

const FLOWS: usize = 10_000;

fn topology() -> (Topology, Vec<sim::Flow>) {
    let (text, flows) = sim::synth::forced_tunnel(7, 400, 1000, 1000, FLOWS);
    let f = Fixture::parse(&text, Format::Toml).expect("synthetic fixture parses");
    let b = Topology::build(&f, ServiceTagTable::builtin());
    assert!(b.structural_errors().is_empty());
    (b.topology, flows)
}

fn bench(c: &mut Criterion) {
    let (t, flows) = topology();
    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(FLOWS as u64));
    g.bench_function("decide_through_firewall_400udr_1000bgp_1000rules", |b| {
        b.iter(|| {
            for f in &flows {
                let _ = black_box(t.decide(black_box(f)));
            }
        })
    });
    g.finish();
    let mut samples: Vec<f64> = (0..11)
        .map(|_| {
            let s = Instant::now();
            for f in &flows {
                let _ = black_box(t.decide(black_box(f)));
            }
            s.elapsed().as_nanos() as f64 / FLOWS as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    println!(
        "routing: median {:.0} ns per verdict-only walk through the firewall (target <= 1000 ns)",
        samples[5]
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
