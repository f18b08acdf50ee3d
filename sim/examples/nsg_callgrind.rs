//! One pass of the verdict path over 10,000 seeded flows, in a function of its own, for counting
//! instructions per flow with callgrind (counts, unlike timings, repeat on a shared machine):
//!
//! ```sh
//! cargo build --release -p sim --example nsg_callgrind
//! valgrind --tool=callgrind --toggle-collect='nsg_callgrind::pass' \
//!     target/release/examples/nsg_callgrind 1000     # "Collected" ÷ 10,000 = instructions/flow
//! ```
//!
//! A binary of its own (not a mode of `nsg_probe`): there `decide` is called from more places
//! and is not inlined into the pass, which adds ~20 instructions per flow to the count.
use sim::{synth, Direction};
use std::hint::black_box;
/// The measured pass (not inlined, so that callgrind can collect it alone).
#[inline(never)]
fn pass(c: &sim::CompiledNsg, flows: &[sim::FlowKey]) {
    for f in flows {
        black_box(c.decide(Direction::Outbound, black_box(f)));
    }
}
fn main() {
    let rules: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let prefixes = (rules * 4).clamp(40, 4000);
    let setting = synth::Setting::public_sized();
    let (table, ctx) = (&setting.tags, setting.context());
    let nsg = synth::nsg(rules as u64, rules, prefixes, table);
    let compiled = nsg.compile(&ctx);
    let flows = synth::flows(9, &nsg, table, 10_000);
    pass(&compiled, &flows);
}
