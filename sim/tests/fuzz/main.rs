//! The structure-aware fuzz harness of `sim`'s untrusted inputs (item 6 of the hardening issue).
//! `cargo fuzz` needs a nightly toolchain; these are proptest properties that generate and
//! mutate inputs with the shape of the real thing, run a bounded number of cases in CI and as
//! many as `VNETSIM_FUZZ_CASES` says in a long run (see `../support/cases.rs`).
//!
//! What is fuzzed here, and the oracle of each group:
//! 1. **The ARM evaluator and importer** ([`sim::arm::import`]): generated templates
//!    (expressions with known, deployment-time and random function names, nested `[...]` in
//!    string literals, copy loops with any count, variables that reference each other and
//!    themselves, huge and negative numbers, deep expression and JSON nesting) and structural
//!    mutations of the templates and exports in `fixtures/arm/`. Never a panic or a stack
//!    overflow (each import runs on a 2 MiB thread, what a reload gets), an error always has one
//!    of the documented `ARM_*` codes, each import ends in bounded time, and an imported fixture
//!    builds and round-trips through TOML.
//! 2. **The rule field parsers** (`sim/src/nsg/rule.rs`): random text in the port, prefix,
//!    protocol, priority, name and description fields of a rule, through the admin API's shape
//!    ([`sim::RawRule`] from JSON, then [`sim::Topology::apply`] with [`sim::Change::SetRules`])
//!    and through fixture text in the three syntaxes. Never a panic; a rule is either in force
//!    or reported by the findings [`sim::SecurityRule::from_file`] gives for it, and malformed
//!    shapes are typed errors ([`sim::ChangeError`], a [`sim::fixture::LoadError`]).
//!
//! The fixture loader itself (arbitrary text, token soup and mutations of a valid fixture in
//! TOML, JSON and YAML, then the topology builder) is fuzzed by groups 6 and 7 of
//! `properties.rs`, which honour `VNETSIM_FUZZ_CASES` too.
//!
//! Regression inputs of the hardening issue live next to the code they broke, as targeted
//! tests: the doubling template, the 3,000-variable chain and the 26,000 accessors in
//! `sim/tests/arm.rs` (`doubling_a_string_stops_at_the_value_limit`,
//! `long_reference_chains_are_refused_not_a_stack_overflow`,
//! `accessor_chains_are_refused_not_a_stack_overflow`) and, through the CLI with time and memory
//! bounds, in `tests/it/bounds.rs` (also `[service_tags] file = "/dev/zero"`). The seeds of `arm.rs`
//! include shortened forms of them, so mutations start from those shapes.

mod arm;
#[path = "../support/cases.rs"]
mod cases;
mod rules;

use std::sync::OnceLock;
use std::time::Duration;

use sim::ServiceTagTable;

// === shared helpers ===

/// The built-in tag table, built once.
pub(crate) fn tags() -> &'static ServiceTagTable {
    static T: OnceLock<ServiceTagTable> = OnceLock::new();
    T.get_or_init(ServiceTagTable::builtin)
}

/// How long one import (or one rule change) may take in a debug build on a busy two-core
/// machine. The evaluator's bounds (`sim::arm::LIMITS`) keep the worst generated case to tens
/// of milliseconds; the margin is for CI noise, not for slow inputs.
pub(crate) const CASE_TIME_BOUND: Duration = Duration::from_secs(5);
