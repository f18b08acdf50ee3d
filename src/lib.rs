//! `vnetsim` — the process side of the simulator: it turns files and command-line words into the
//! values the pure model in [`sim`] works on, and its answers back into reports. The `vnetsim`
//! binary (`src/main.rs`, `src/cli/`) is a thin shell over this library; the test harness reuses
//! the same loading code.
//!
//! # Map of the modules
//! - [`load`] — the one loader: inputs and options ([`load::Recipe`]) into a [`sim::Topology`]
//!   with every finding — format by extension, load errors as `path:line:col: message`, the
//!   service tag table; the recipe is also the gateway's reload hook.
//! - [`azure`] — Azure inputs (ARM templates, parameters files, exported resources) on the
//!   file-system side: files and folders, content detection, import options; [`load`] builds
//!   them into the same topology as a fixture.
//! - [`query`] — a flow as a user writes it (`apim`, a host name, a DNS name, an IP,
//!   `[addr]:port`, protocol and ports with their defaults), turned into the question `sim`
//!   answers ([`sim::Topology::ask`]).
//! - [`expect`] — expectations files (`vnetsim test`): parsing with line:col errors, evaluation,
//!   the pass/fail report.
//! - [`junit`] — JUnit XML for an expectations report.
//! - [`atomic`] — writing a file atomically (temporary file, then rename).
//! - [`demo`] — the eight checks of `vnetsim demo` on the embedded default topology.
//! - [`harness`] — start a topology with its gateway and backends from your own tests.
//! - [`client`] — the small HTTP(S) client the harness hands out.
//! - [`loadgen`] — an HTTP load generator (keep-alive or connection-per-request, HdrHistogram).
//! - [`runtime`] — the Tokio runtime a gateway process runs on (`vnetsim up`, the bench's
//!   gateway child) and the signals that stop it.
//! - [`mod@bench`] — `vnetsim bench`: direct vs gateway vs nginx in child processes, paired ratios.
//!
//! Library code returns typed errors that name the file and position or the resource path;
//! exit codes and printing belong to the binary.

#![warn(missing_docs)]

pub mod atomic;
pub mod azure;
pub mod bench;
pub mod client;
pub mod demo;
pub mod expect;
pub mod harness;
pub mod junit;
pub mod load;
pub mod loadgen;
pub mod query;
pub mod runtime;

pub use azure::AzureOptions;
pub use load::{
    load_inputs, load_path, load_str, FileRefs, LoadError, LoadOptions, Loaded, TagSource,
};
pub use query::{FlowQuery, QueryError};
