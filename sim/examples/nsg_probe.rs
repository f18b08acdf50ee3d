//! Quick NSG timing probe (not a benchmark):
//! `cargo run --release -p sim --example nsg_probe [rules] [secs] [flows]` (10,000 flows unless
//! given).
use std::hint::black_box;
use std::time::{Duration, Instant};

use sim::{synth, Direction};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rules: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let secs: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let n_flows: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let prefixes = (rules * 4).clamp(40, 4000);
    let setting = synth::Setting::public_sized();
    let (table, ctx) = (&setting.tags, setting.context());
    let nsg = synth::nsg(rules as u64, rules, prefixes, table);
    let t = Instant::now();
    let mut n = 0;
    let budget = if std::env::var_os("PROBE_COMPILE").is_some() {
        5000
    } else {
        500
    };
    while t.elapsed() < Duration::from_millis(budget) {
        black_box(nsg.compile(&ctx));
        n += 1;
    }
    let compile = t.elapsed().as_secs_f64() / n as f64;
    let compiled = nsg.compile(&ctx);
    let reference = nsg.reference(&ctx);
    let flows = synth::flows(9, &nsg, table, n_flows);
    hist(&nsg, &compiled, &flows);
    println!("{:?}", compiled.classifier_summary(Direction::Outbound));
    let mut samples = Vec::new();
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < secs {
        let s = Instant::now();
        for f in &flows {
            black_box(compiled.decide(Direction::Outbound, black_box(f)));
        }
        samples.push(s.elapsed().as_nanos() as f64 / flows.len() as f64);
    }
    samples.sort_by(f64::total_cmp);
    let s = Instant::now();
    for f in &flows {
        black_box(reference.decide(Direction::Outbound, black_box(f)));
    }
    let r = s.elapsed().as_nanos() as f64 / flows.len() as f64;
    let q = |p: usize| samples[samples.len() * p / 100];
    println!(
        "passes {}: p5 {:.1} p25 {:.1} p50 {:.1} p75 {:.1} p95 {:.1}",
        samples.len(),
        q(5),
        q(25),
        q(50),
        q(75),
        q(95)
    );
    println!(
        "rules {rules}: compiled median {:.1} ns/flow (min {:.1}), reference {:.0} ns/flow, compile {:.2} ms, heap {} KiB",
        samples[samples.len() / 2], samples[0], r, compile * 1e3, compiled.heap_bytes() / 1024
    );
}
#[allow(dead_code)]
fn hist(nsg: &sim::Nsg, c: &sim::CompiledNsg, flows: &[sim::FlowKey]) {
    let mut pos: Vec<usize> = flows
        .iter()
        .map(|f| c.decide(Direction::Outbound, f).rule)
        .collect();
    pos.sort();
    let n = nsg.rules.len();
    println!(
        "match rule index quantiles (of {n}): p10 {} p25 {} p50 {} p75 {} p90 {}",
        pos[pos.len() / 10],
        pos[pos.len() / 4],
        pos[pos.len() / 2],
        pos[pos.len() * 3 / 4],
        pos[pos.len() * 9 / 10]
    );
}
