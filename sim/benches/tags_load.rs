//! Service tag table load time (before the full-table blob: the generated subset of string
//! literals parsed per call).
use std::time::Instant;

fn main() {
    let t = Instant::now();
    let table = sim::ServiceTagTable::builtin();
    let first = t.elapsed();
    let n: usize = table.iter().map(|t| t.prefixes.len()).sum();
    let mut v = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let x = sim::ServiceTagTable::builtin();
        v.push(t.elapsed().as_nanos());
        std::hint::black_box(x);
    }
    v.sort();
    println!(
        "builtin(): {} tags, {n} prefixes; first call {:?}; later calls median {} us",
        table.len(),
        first,
        v[v.len() / 2] / 1000
    );
}
