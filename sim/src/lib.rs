//! `sim` — a pure, synchronous model of an Azure virtual network as an API Management v2
//! instance sees it: addresses, VNets and peerings, NSGs with Azure's evaluation semantics,
//! service tags, private DNS, flow verdicts and the APIM v2 VNet-integration preflight.
//!
//! No async, no I/O, no clocks: callers pass text or values and get values back.
//!
//! # Map of the modules
//! - [`cidr`] — [`Cidr`] (strict prefixes) and [`AddrSet`] (interval sets), special ranges.
//! - [`proto`] — [`Protocol`], [`RuleProtocol`], [`Direction`], [`Access`], [`PortSet`].
//! - [`tags`] — [`ServiceTagTable`]: the `ServiceTags_Public` format and the built-in subset.
//! - [`fixture`] — the fixture file schema (TOML/JSON/YAML), load errors with line:column.
//! - [`finding`] — [`Finding`] codes and severities; [`Assumption`] codes.
//! - [`nsg`] — security rules, default rules, the reference and compiled evaluators.
//! - `classifier` (private) — the bit-vector first-match classifier behind long rule lists.
//! - [`topology`] — the validated model built from a fixture, with every finding.
//! - `build` (private) — the build stage: fixture → [`Topology`], one file per stage, then the preflight.
//! - [`flow`] — [`Flow`] (the question) and [`Verdict`] (the answer with its explanation).
//! - [`dns`] — name resolution from a VNet or from a non-integrated instance: the one resolver.
//! - `dns_name` (private) — DNS name syntax and normalisation (re-exported by [`topology`]).
//! - [`ask`] — the question engine's front door: a flow whose destination may be a name, an
//!   API's backend flow, the fate of an established flow after a change.
//! - `settings` (private) — [`GatewaySettings`]: `[gateway]` parsed once into typed values;
//!   [`Change`]: a typed live change.
//! - [`apim`] — the APIM v2 preflight (integration and injection requirements).
//! - [`api`] — the gateway's APIs and backend services, as data.
//! - [`synth`] — seeded synthetic tag tables, NSGs and flows for benchmarks and tests.
//! - [`source`] — [`source::Location`] and [`source::SourceMap`]: where each fixture entry is
//!   written (file, line, column, pointer), for findings, verdicts and load errors.
//! - [`arm`] — ARM templates, parameters files and exported Azure resource JSON → a [`fixture::Fixture`].

#![warn(missing_docs)]
// Only the classifier may use `unsafe` (each block has a SAFETY note and a scalar oracle).
#![deny(unsafe_code)]

pub mod api;
pub mod apim;
pub mod arm;
pub mod ask;
mod build;
pub mod cidr;
#[allow(unsafe_code)]
mod classifier;
pub mod dns;
mod dns_name;
pub mod finding;
pub mod fixture;
pub mod flow;
pub mod nsg;
pub mod proto;
mod settings;
pub mod source;
pub mod synth;
pub mod tags;
pub mod topology;

pub use ask::{ApiEndpoints, Destination, Fate, Question};
pub use cidr::{AddrSet, Cidr, CidrError};
pub use dns::{Resolved, Via};
pub use finding::{Assumption, Finding, FindingCode, Severity};
pub use fixture::{DenyMode, RawRule, ServeKind};
pub use flow::{Decision, Flow, Verdict, VerdictCode, VerdictKind};
pub use proto::{Access, Direction, PortSet, Protocol, RuleProtocol};
pub use settings::{Change, ChangeError, GatewaySettings, ListenAddr};
pub use tags::{ServiceTagTable, ServiceTagsInfo};
pub use topology::{Built, Topology};
// API-READY
