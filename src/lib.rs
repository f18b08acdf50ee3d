//! `vnetsim` — the process side of the simulator: it turns files and command-line words into the
//! values the pure model in [`sim`] works on, and its answers back into reports. What a user's
//! test crate needs is public; the rest serves the `vnetsim` binary (`src/main.rs` calls
//! [`cli::main`]).
//!
//! # The public surface
//! - [`harness`] — start a topology with its gateway and backends from your own tests
//!   ([`harness::Simulation`]).
//! - [`client`] — the small HTTP(S) client the harness hands out, its responses and problems.
//! - [`load`] — the one loader: inputs and options ([`load::Recipe`]) into a [`sim::Topology`]
//!   with every finding; the recipe is also the gateway's reload hook.
//! - [`query`] — a flow as a user writes it (`apim`, a host name, a DNS name, an IP,
//!   `[addr]:port`), turned into the question `sim` answers ([`sim::Topology::ask`]).
//! - [`expect`] — expectations files (`vnetsim test`): parsing, evaluation, the report.
//!
//! # Private modules (the binary's)
//! `azure` (Azure inputs on the file-system side), `junit`, `atomic` (atomic file writes),
//! `demo` (the eight checks), `loadgen` (an HTTP load generator), `bench` (`vnetsim bench`),
//! `runtime` (the Tokio runtime of a gateway process and its signals), `cli` (argument
//! parsing and dispatch).
//!
//! Library code returns typed errors that name the file and position or the resource path;
//! exit codes and printing belong to the binary.

#![warn(missing_docs)]

pub mod client;
pub mod expect;
pub mod harness;
pub mod load;
pub mod query;

mod atomic;
mod azure;
mod bench;
#[doc(hidden)]
pub mod cli;
mod demo;
mod junit;
mod loadgen;
mod runtime;

pub use azure::AzureOptions;
pub use load::{load_inputs, load_path, load_str, LoadError, LoadOptions, Loaded, TagSource};
pub use query::{FlowQuery, QueryError};

/// What the crate's own integration tests and benches reach that is not the public surface
/// (the demo's check names, the load generator, the bench's process helpers). Not a stable API.
#[doc(hidden)]
pub mod testing {
    pub use crate::bench::{find_nginx, process_exists};
    pub use crate::demo::CHECKS;
    pub use crate::loadgen::{run as loadgen_run, LoadSpec};
}
