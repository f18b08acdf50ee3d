//! Load time of the built-in service tag table (plain timing, no criterion; the table is
//! decoded once per process, so this is a one-off cost, not a per-topology one).
//!
//! Run: `cargo bench -p sim --bench tags_load`. Prints the first `ServiceTagTable::builtin()`
//! (decode + cache), later calls (a shared clone), the median of 30 uncached decodes of the
//! embedded blob, and, when the corpus file is present, the median of 5 parses of the same
//! table from its JSON (what `--service-tags FILE` costs), and the median build of a one-VM
//! topology whose NSG has one rule on the biggest tag, `AzureCloud` (13,080 prefixes) —
//! parsing, resolving and compiling the rule included. Results: docs/service-tags.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use sim::fixture::{Fixture, Format};
use sim::{ServiceTagTable, Topology};

/// One subnet, one NSG with one outbound rule on `TAG`.
const FIXTURE: &str = "[[vnets]]\nname = \"v\"\nregion = \"westeurope\"\naddress_space = [\"10.0.0.0/16\"]\n\
[[vnets.subnets]]\nname = \"s\"\naddress_prefix = \"10.0.1.0/24\"\nnsg = \"n\"\n\
[[nsgs]]\nname = \"n\"\n[[nsgs.security_rules]]\nname = \"r\"\npriority = 100\ndirection = \"Outbound\"\n\
access = \"Deny\"\nprotocol = \"Tcp\"\nsource_address_prefix = \"*\"\nsource_port_range = \"*\"\n\
destination_address_prefix = \"TAG\"\ndestination_port_range = \"443\"\n";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let t = Instant::now();
    let table = ServiceTagTable::builtin();
    let first = t.elapsed();
    let prefixes: usize = table.iter().map(|t| t.prefixes.len()).sum();
    let later = median(
        (0..1000)
            .map(|_| {
                let t = Instant::now();
                black_box(ServiceTagTable::builtin());
                t.elapsed()
            })
            .collect(),
    );
    let blob = ServiceTagTable::builtin_blob();
    let decode = median(
        (0..30)
            .map(|_| {
                let t = Instant::now();
                black_box(ServiceTagTable::from_blob(blob, "bench").expect("valid"));
                t.elapsed()
            })
            .collect(),
    );
    println!(
        "built-in table: {} tags, {prefixes} prefixes, blob {} bytes ({})",
        table.len(),
        blob.len(),
        table.info().describe()
    );
    println!("first ServiceTagTable::builtin() (decode once): {first:?}");
    println!("later ServiceTagTable::builtin() (shared): {later:?} median");
    println!("ServiceTagTable::from_blob (uncached decode): {decode:?} median of 30");
    for tag in ["10.9.0.0/16", "Storage", "AzureCloud"] {
        let f = Fixture::parse(&FIXTURE.replace("TAG", tag), Format::Toml).expect("fixture");
        let n = table.get(tag).map_or(1, |t| t.prefixes.len());
        let build = median(
            (0..21)
                .map(|_| {
                    let t = Instant::now();
                    let b = Topology::build(&f, ServiceTagTable::builtin());
                    assert!(b.findings.is_empty(), "{:?}", b.findings);
                    let _ = black_box(b);
                    t.elapsed()
                })
                .collect(),
        );
        println!("Topology::build, one rule on {tag} ({n} prefixes): {build:?} median of 21");
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../../shared/corpus/ryanborMSFT_AzureServiceTagsJson/Public/ServiceTags_Public_20251028.json",
    );
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let json = median(
                (0..5)
                    .map(|_| {
                        let t = Instant::now();
                        black_box(ServiceTagTable::from_json(&text).expect("valid"));
                        t.elapsed()
                    })
                    .collect(),
            );
            println!(
                "ServiceTagTable::from_json of the same file ({} bytes): {json:?} median of 5",
                text.len()
            );
        }
        Err(_) => println!("SKIPPED from_json: {} is absent", path.display()),
    }
}
