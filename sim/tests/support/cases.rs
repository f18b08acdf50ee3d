//! Case counts of the fuzz properties (`sim/tests/fuzz.rs`, and the parser and builder
//! robustness groups of `sim/tests/properties.rs`): a CI default that keeps each property to
//! about a second in a debug build, or `VNETSIM_FUZZ_CASES` for a long run
//! (`VNETSIM_FUZZ_CASES=20000 cargo test -p sim --test fuzz`).

use proptest::test_runner::Config;

/// The environment variable that overrides every fuzz property's case count.
pub const FUZZ_CASES_VAR: &str = "VNETSIM_FUZZ_CASES";

/// `default` cases, or `VNETSIM_FUZZ_CASES` when it is set to a number.
pub fn fuzz_config(default: u32) -> Config {
    let cases = std::env::var(FUZZ_CASES_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        ..Config::default()
    }
}
