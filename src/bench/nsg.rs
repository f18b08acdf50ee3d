//! The NSG micro-measure of `vnetsim bench`: one NSG of 1,000 rules (augmented up to 4,000
//! prefixes per side, service tags from a `ServiceTags_Public`-sized table) from `sim::synth`,
//! evaluated for 10,000 seeded flows by the compiled evaluator and by the reference
//! (first-match linear scan over pre-parsed rules), alternately, in the same process. The same
//! workload as `benches/nsg.rs`, without criterion: the median of several passes, each
//! after a discarded warm pass of the same evaluator.

use std::hint::black_box;
use std::time::Instant;

use serde::Serialize;
use sim::{synth, Direction};

/// Rules of the measured NSG (Azure's maximum).
pub const RULES: usize = 1000;
/// Prefixes per side of the augmented rules (Azure's maximum per NSG side).
pub const PREFIXES: usize = 4000;
/// Distinct flows evaluated per pass.
pub const FLOWS: usize = 10_000;
/// Passes per evaluator; the median is reported.
const PASSES: usize = 15;

/// Median nanoseconds per flow of both evaluators.
#[derive(Clone, Debug, Serialize)]
pub struct NsgMeasure {
    /// Rules in the NSG.
    pub rules: usize,
    /// Compiled evaluator, median ns per flow.
    pub compiled_ns: f64,
    /// Reference evaluator, median ns per flow.
    pub reference_ns: f64,
    /// `reference_ns / compiled_ns`.
    pub speedup: f64,
    /// Prefixes per side of the augmented rules.
    pub prefixes_per_side: usize,
    /// Distinct flows per pass.
    pub flows: usize,
}

/// Runs the measure (a second or two, most of it building the tag table).
pub fn measure() -> NsgMeasure {
    let setting = synth::Setting::public_sized();
    let (table, ctx) = (&setting.tags, setting.context());
    let nsg = synth::nsg(RULES as u64, RULES, PREFIXES, table);
    let compiled = nsg.compile(&ctx);
    let reference = nsg.reference(&ctx);
    let flows = synth::flows(9, &nsg, table, FLOWS);
    let per_flow = |start: Instant| start.elapsed().as_nanos() as f64 / flows.len() as f64;
    let run_compiled = || {
        for f in &flows {
            black_box(compiled.decide(Direction::Outbound, black_box(f)));
        }
    };
    let run_reference = || {
        for f in &flows {
            black_box(reference.decide(Direction::Outbound, black_box(f)));
        }
    };
    let (mut c, mut r) = (Vec::with_capacity(PASSES), Vec::with_capacity(PASSES));
    for _ in 0..PASSES {
        // Each measured pass follows a discarded pass of the same evaluator: the other
        // evaluator's pass evicts its tables from the caches, and the figure is the steady
        // state (as criterion's repeated iterations measure it), not a cache refill.
        run_compiled();
        let start = Instant::now();
        run_compiled();
        c.push(per_flow(start));
        run_reference();
        let start = Instant::now();
        run_reference();
        r.push(per_flow(start));
    }
    let compiled_ns = super::median(&mut c).unwrap_or(f64::NAN);
    let reference_ns = super::median(&mut r).unwrap_or(f64::NAN);
    NsgMeasure {
        rules: RULES,
        compiled_ns,
        reference_ns,
        speedup: reference_ns / compiled_ns,
        prefixes_per_side: PREFIXES,
        flows: FLOWS,
    }
}
