//! NSG evaluation: the compiled verdict path against the reference (first-match linear scan over
//! pre-parsed rules) at 10, 30, 100, 300 and 1,000 rules, with augmented rules up to 4,000
//! prefixes per side and service tags from a `ServiceTags_Public`-sized table (3,039 tags, ~93k
//! prefixes). 10,000 distinct seeded flows mixing hits on early, late and default rules; no flow
//! cache. Also the explaining path at 1,000 rules and compiling a 1,000-rule NSG.
//!
//! Run: `cargo bench --bench nsg` (from the repository root). Criterion times one iteration of 10,000 flows; a
//! summary at the end prints median ns per flow (median iteration / 10,000) for compiled and
//! reference measured alternately in the same run, their ratio, compile time and heap bytes.
//! `tools/nsg_plot.py` turns criterion's estimates into `docs/nsg-eval.svg`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim::{synth, Direction};
use sim::{CompiledNsg, FlowKey, ReferenceNsg};

const FLOWS: usize = 10_000;
/// (rules, explicit destination prefixes spread over them; ≤ 4,000 per side).
const SIZES: [(usize, usize); 5] = [(10, 40), (30, 300), (100, 1000), (300, 3000), (1000, 4000)];

/// One pass after an untimed one, so each side runs with its own data in cache (the other
/// side's pass evicts it).
fn per_flow_ns(f: impl Fn(), flows: usize) -> f64 {
    f();
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64 / flows as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Compiled and reference passes over all flows, alternately, for about `budget`.
fn paired(c: &CompiledNsg, r: &ReferenceNsg, flows: &[FlowKey], budget: Duration) -> (f64, f64) {
    let (mut cs, mut rs) = (Vec::new(), Vec::new());
    let t = Instant::now();
    while cs.len() < 5 || t.elapsed() < budget {
        cs.push(per_flow_ns(
            || {
                for f in flows {
                    black_box(c.decide(Direction::Outbound, black_box(f)));
                }
            },
            flows.len(),
        ));
        rs.push(per_flow_ns(
            || {
                for f in flows {
                    black_box(r.decide(Direction::Outbound, black_box(f)));
                }
            },
            flows.len(),
        ));
    }
    (median(cs), median(rs))
}

fn bench(c: &mut Criterion) {
    let setting = synth::Setting::public_sized();
    let (table, ctx) = (&setting.tags, setting.context());
    let mut summary = Vec::new();
    let mut g = c.benchmark_group("verdict");
    g.throughput(Throughput::Elements(FLOWS as u64));
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    for (rules, prefixes) in SIZES {
        let nsg = synth::nsg(rules as u64, rules, prefixes, table);
        let compiled = nsg.compile(&ctx);
        let reference = nsg.reference(&ctx);
        let flows = synth::flows(9, &nsg, table, FLOWS);
        eprintln!(
            "nsg {rules} rules / {prefixes} prefixes: compiled heap {} KiB, {}",
            compiled.heap_bytes() / 1024,
            compiled
                .classifier_summary(Direction::Outbound)
                .unwrap_or_else(|| "linear scan".into())
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
        let (cn, rn) = paired(&compiled, &reference, &flows, Duration::from_secs(2));
        summary.push((rules, prefixes, cn, rn, compiled.heap_bytes()));
    }
    g.finish();

    let mut g = c.benchmark_group("compile");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    let nsg = synth::nsg(1000, 1000, 4000, table);
    g.bench_function("1000-rules", |b| b.iter(|| black_box(nsg.compile(&ctx))));
    g.finish();
    let mut compile_ms: Vec<f64> = (0..50)
        .map(|_| {
            let t = Instant::now();
            black_box(nsg.compile(&ctx));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    compile_ms.sort_by(f64::total_cmp);

    println!();
    println!("NSG evaluation summary (median ns per flow over {FLOWS} flows; compiled and reference alternated in this run)");
    println!("| rules | prefixes/side | compiled ns/flow | reference ns/flow | speedup | compiled heap |");
    println!("|------:|--------------:|-----------------:|------------------:|--------:|--------------:|");
    for (rules, prefixes, cn, rn, heap) in summary {
        println!(
            "| {rules} | {prefixes} | {cn:.1} | {rn:.1} | {:.1}× | {:.0} KiB |",
            rn / cn,
            heap as f64 / 1024.0
        );
    }
    println!(
        "compile 1,000 rules / 4,000 prefixes: median {:.2} ms (of 50)",
        compile_ms[compile_ms.len() / 2]
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
