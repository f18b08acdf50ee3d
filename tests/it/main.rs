//! Integration tests (one binary): the fixtures table, and the `vnetsim` binary end to end.

mod azure;
mod bench;
mod bounds;
mod check;
mod e2e;
mod errors;
mod expectations;
mod faults;
mod fixtures_table;
mod formats;
mod harness_rules;
mod locations;
mod one_answer;
mod parity;
mod routes;
mod soak;
mod space;
mod support;
mod templates;
mod up;
mod validate;
