//! NSG evaluation: the compiled verdict path against the reference (first-match linear scan over
//! pre-parsed rules) at 10, 100 and 1,000 rules, with augmented rules up to 4,000 prefixes per
//! side and service tags from a `ServiceTags_Public`-sized table (3,039 tags, ~93k prefixes).
//! 10,000 distinct seeded flows mixing hits on early, late and default rules; no flow cache.
//!
//! Run: `cargo bench -p sim --bench nsg` (times are per iteration of 10,000 flows; divide by
//! 10,000, or read criterion's "thrpt" line, for per-flow figures).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim::nsg::Context;
use sim::{synth, Direction};

const FLOWS: usize = 10_000;

fn bench(c: &mut Criterion) {
    let table = synth::tag_table(42, 3039, 93_362);
    let (vnet, asgs) = synth::context_parts();
    let ctx = Context {
        virtual_network: &vnet,
        tags: &table,
        asg_members: &asgs,
    };
    let mut g = c.benchmark_group("verdict");
    g.throughput(Throughput::Elements(FLOWS as u64));
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    for (rules, prefixes) in [(10usize, 40usize), (100, 1000), (1000, 4000)] {
        let nsg = synth::nsg(rules as u64, rules, prefixes, &table);
        let compiled = nsg.compile(&ctx);
        let reference = nsg.reference(&ctx);
        let flows = synth::flows(9, &nsg, &table, FLOWS);
        eprintln!(
            "nsg {rules} rules: compiled heap {} KiB, classifier: {}",
            compiled.heap_bytes() / 1024,
            compiled.uses_classifier(Direction::Outbound)
        );
        g.bench_with_input(BenchmarkId::new("compiled", rules), &flows, |b, flows| {
            b.iter(|| {
                for f in flows {
                    black_box(compiled.decide(Direction::Outbound, black_box(f)));
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("reference", rules), &flows, |b, flows| {
            b.iter(|| {
                for f in flows {
                    black_box(reference.decide(Direction::Outbound, black_box(f)));
                }
            })
        });
        if rules == 1000 {
            g.bench_with_input(BenchmarkId::new("explain", rules), &flows, |b, flows| {
                b.iter(|| {
                    for f in flows {
                        black_box(compiled.explain(&nsg, Direction::Outbound, black_box(f)));
                    }
                })
            });
        }
    }
    g.finish();
    let mut g = c.benchmark_group("compile");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    let nsg = synth::nsg(1000, 1000, 4000, &table);
    g.bench_function("1000-rules", |b| b.iter(|| black_box(nsg.compile(&ctx))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
