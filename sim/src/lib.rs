//! `sim` — a pure, synchronous model of an Azure virtual network as an API Management v2
//! instance sees it: addresses, VNets and peerings, NSGs with Azure's evaluation semantics,
//! service tags, private DNS, flow verdicts and the APIM v2 VNet-integration preflight.
//!
//! No async, no I/O, no clocks: callers pass text or values and get values back.
//!
//! # The public surface
//! The model's types are re-exported here, at the crate root; the modules behind them are
//! private. Three subsystems stay public as namespaces: [`fixture`] (the file schema users
//! write, TOML/JSON/YAML, with load errors at line:column), [`arm`] (ARM templates, parameters
//! files and exported Azure resource JSON → a [`fixture::Fixture`]) and [`synth`] (seeded
//! synthetic tag tables, NSGs and flows for benchmarks and tests).
//!
//! # Map of the private modules
//! - `cidr` — [`Cidr`] (strict prefixes) and [`AddrSet`] (interval sets), special ranges.
//! - `proto` — [`Protocol`], [`RuleProtocol`], [`Direction`], [`Access`], [`PortSet`].
//! - `tags` — [`ServiceTagTable`]: the `ServiceTags_Public` format and the built-in table (the
//!   whole dated public file as an embedded blob, decoded once per process).
//! - `fault` — `[faults]`: [`FaultRule`], its check ([`Topology::check_fault`]) and the seeded
//!   decision ([`fault_fires`]) the gateway applies on the backend leg.
//! - `finding` — [`Finding`] codes and severities (preflight or not: a column of the table);
//!   [`Assumption`] codes.
//! - `nsg` — security rules, default rules, the reference and compiled evaluators.
//! - `platform` — Azure platform addresses (168.63.129.16, IMDS, KMS), their exemptions from
//!   NSG rules and the `AzurePlatform*` tags that remove them.
//! - `classifier` — the bit-vector first-match classifier behind long rule lists (the one
//!   module allowed `unsafe`).
//! - `topology` — the validated model ([`Topology`]) and its queries.
//! - `build` — the build stage: fixture → [`Topology`], one file per stage, then the preflight.
//! - `settings` — [`GatewaySettings`] (`[gateway]` parsed once into typed values) and
//!   [`Change`], a typed live change (a rule list, one rule put or deleted) and what it did
//!   ([`RuleChanges`]).
//! - `flow` — [`Flow`] (the question), the one plan-and-walk shared by [`Topology::decide`]
//!   and [`Topology::evaluate`], and [`Verdict`] (the answer with its explanation).
//! - `dns` — [`Topology::lookup`], the one resolver; `dns_name` — DNS name syntax.
//! - `ask` — the question engine's front door ([`Topology::ask`]): a flow whose destination
//!   may be a name, an API's backend flow, the fate of an established flow after a change.
//! - `apim` — the APIM v2 preflight (integration and injection requirements).
//! - `api` — the gateway's APIs and backend services, as data.
//! - `source` — [`Location`] and [`SourceMap`]: where each fixture entry is written.
//! - `suggest` — "did you mean …?": the nearest known names by edit distance (resource
//!   names in findings, service tags).
//! - `space` — whole-space answers: [`Topology::reach`], [`Topology::diff`] and
//!   [`Topology::lint`], exact and set-based, every outcome from the one walk.

#![warn(missing_docs)]
// Only the classifier may use `unsafe` (each block has a SAFETY note and a scalar oracle).
#![deny(unsafe_code)]

mod api;
mod apim;
pub mod arm;
mod ask;
mod build;
mod cidr;
#[allow(unsafe_code)]
mod classifier;
mod dns;
mod dns_name;
mod fault;
mod finding;
mod firewall;
pub mod fixture;
mod flow;
mod keyvault;
mod nsg;
mod platform;
mod proto;
mod route;
mod settings;
mod source;
mod space;
mod suggest;
pub mod synth;
mod tags;
mod topology;

pub use api::{Api, BackendUrl, UrlError};
pub use ask::{ApiEndpoints, Destination, Fate, FateText, Question};
pub use cidr::{addr_to_u128, AddrSet, Cidr, CidrError};
pub use dns::{
    is_private_link_zone, private_link_name, public_name_of, DnsError, ResolveFrom, Resolved, Via,
};
pub use fault::{
    draw as fault_draw, fires as fault_fires, latency_for as fault_latency, Fault, FaultAction,
    FaultKind, FaultProblem, FaultRule, FaultSet, FaultsFile, DEFAULT_CHUNK_BYTES,
};
pub use finding::{sort_findings, Assumption, Finding, FindingCode, Severity};
pub use firewall::{
    Dnat, Firewall, FirewallCollection, FirewallGroup, FirewallMatch, FirewallRule, Translation,
};
pub use fixture::{DenyMode, RawRule, ServeKind};
pub use flow::{
    AppliedTo, DecidedBy, DecidedKind, Decision, DnatView, Flow, FlowKey, FlowPath, FlowView, Hop,
    NsgEvaluation, RouteInfo, RouteRef, RouteTaken, RuleInfo, RuleRef, Step, Verdict, VerdictCode,
    VerdictKind, PATH_ROUTES,
};
pub use nsg::{CompiledNsg, Context, Nsg, ReferenceNsg, RuleEvaluation, RuleMatch, SecurityRule};
pub use platform::{Exemption, PlatformTag, HOST_VIP, IMDS};
pub use proto::{Access, Direction, PortSet, Protocol, RuleProtocol, NO_PORT};
pub use route::{known_services, paired_region, ResolvedEndpoint};
pub use route::{
    EffectiveRoute, EffectiveRouteTable, EffectiveRouteView, NextHop, NextHopResult, RouteSource,
    RouteState, SubnetRoutes, AZURE_PLATFORM_ADDRESS,
};
pub use settings::{
    Applied, Change, ChangeError, GatewayLimits, GatewaySettings, ListenAddr, RuleChanges,
};
pub use source::{Location, SourceMap};
pub use space::{
    Anchor, DiffClass, DiffKey, FlowClass, LintCode, LintFinding, LintSeverity, Reach, SpaceQuery,
};
pub use tags::{
    BlobError, ServiceTag, ServiceTagTable, ServiceTagsInfo, TagDecision, TagTableError,
};
pub use topology::{
    normalize_dns, valid_dns_name, Apim, Built, DnsZone, Document, Host, NatGateway, ReservedRole,
    RouteTable, Service, Subnet, Topology, Vnet, DEFAULT_APIM_PUBLIC_ADDRESS,
    FORBIDDEN_ADDRESS_SPACE, RESERVED_AT_START,
};
