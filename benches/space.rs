//! Whole-space answers on `sim::synth` NSGs (1,000 outbound rules, 4,000 destination prefixes,
//! service tags from a `ServiceTags_Public`-sized table): `reach --from apim` through one such
//! NSG, `reach` from a VM through two (NIC and subnet NSG), `lint` of one, and `diff` of two
//! that differ in 10 rules. Output formatting is excluded. Targets (issue 19): 50 ms, 200 ms,
//! 1 s, 1 s.
//!
//! Run: `cargo bench --bench space -- --warm-up-time 1 --measurement-time 5` (from the
//! repository root). A summary at the end prints classes, cells walked and the process's peak
//! resident memory (VmHWM).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use sim::{synth, DiffKey, Nsg, SpaceQuery, Topology};

fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The synthetic NSG with 10 rules' access flipped (every 100th rule).
fn changed(n: &Nsg) -> Nsg {
    let mut m = n.clone();
    for i in (0..1000).step_by(100) {
        let r = &mut m.rules[i];
        r.access = match r.access {
            sim::Access::Allow => sim::Access::Deny,
            sim::Access::Deny => sim::Access::Allow,
        };
    }
    m
}

fn benches(c: &mut Criterion) {
    let setting = synth::Setting::public_sized();
    let a = synth::nsg(1000, 1000, 4000, &setting.tags);
    let b = synth::nsg(2000, 1000, 4000, &setting.tags);
    let one = synth::topology(&setting, &[&a]);
    let two = synth::topology(&setting, &[&a, &b]);
    let after = synth::topology(&setting, &[&changed(&a)]);
    let apim = SpaceQuery::from(one.apim_source().expect("synthetic APIM"));
    let vm = SpaceQuery::from(two.hosts()[0].address);
    let mut g = c.benchmark_group("space");
    g.sample_size(10);
    g.bench_function("reach_apim_one_nsg_1000_rules", |x| {
        x.iter(|| black_box(one.reach(black_box(&apim))))
    });
    g.bench_function("reach_vm_two_nsgs_1000_rules", |x| {
        x.iter(|| black_box(two.reach(black_box(&vm))))
    });
    g.bench_function("lint_1000_rules", |x| x.iter(|| black_box(one.lint())));
    g.bench_function("diff_1000_rules_10_changed", |x| {
        x.iter(|| black_box(one.diff(&after, black_box(&apim), DiffKey::Verdict)))
    });
    g.finish();
    let summary = |name: &str, t: &Topology, q: &SpaceQuery| {
        let r = t.reach(q);
        println!(
            "{name}: {} classes, {} cells walked",
            r.classes.len(),
            r.cells
        );
    };
    summary("reach one NSG", &one, &apim);
    summary("reach two NSGs", &two, &vm);
    println!("lint: {} findings", one.lint().len());
    println!(
        "diff: {} changed classes",
        one.diff(&after, &apim, DiffKey::Verdict).len()
    );
    if let Some(k) = peak_rss_kib() {
        println!("peak resident memory (VmHWM): {} MiB", k / 1024);
    }
}

criterion_group! {
    name = space;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(space);
