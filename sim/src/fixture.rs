//! The fixture file format: serde shapes that mirror the file exactly (TOML, or the same schema
//! as JSON or YAML). Unknown keys, wrong types, missing required keys and unknown enum values are
//! *load errors* with a line and column; everything else (bad prefixes, overlaps, unknown
//! references, ...) is checked later by [`crate::topology`] and reported as findings.
//!
//! This module owns the **whole** schema, including the gateway keys (`[gateway]`, `[[apis]]`,
//! `[[hosts.services]]`, `[[private_dns_zones]]`), so there is one parser and `validate` checks
//! everything a gateway will use.
//!
//! One file per resource family: `fixture/network.rs` (`[[vnets]]`, subnets), `fixture/nsg.rs`
//! (`[[nsgs]]` and their rules), `fixture/host.rs` (`[[hosts]]`, services), `fixture/apim.rs`
//! (`[apim]`), `fixture/gateway.rs` (`[gateway]`, `[[apis]]`, `[[private_dns_zones]]`), and
//! `fixture/load.rs` (formats, parsing and load errors). This file keeps the top-level shape.

use serde::{Deserialize, Serialize};

mod apim;
mod gateway;
mod host;
mod load;
mod network;
mod nsg;
mod routing;

pub use apim::{ApimFile, ClassicVnetType, NamedValueFile, NetworkMode, Sku};
pub use gateway::{ApiFile, DenyMode, DnsZoneFile, GatewayFile, ResolutionPolicy, ZoneLinkFile};
pub use host::{HostFile, HostKind, PublicNetworkAccess, ServeKind, ServiceFile};
pub use load::{Format, LoadError};
pub use network::{
    PeeringFile, PrivateEndpointPolicies, ServiceEndpointFile, SubnetFile, VnetFile,
};
pub use nsg::{AddressField, NsgFile, PortField, RawRule, RuleFile};
pub use routing::{
    CollectionKind, FirewallAction, FirewallFile, FirewallRuleFile, NatGatewayFile, NextHopType,
    RouteFile, RouteTableFile, RuleCollectionFile, RuleCollectionGroupFile,
};

fn is_false(b: &bool) -> bool {
    !*b
}

// === The schema ===

/// A whole fixture file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// The subscription the resources live in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionFile>,
    /// Who enables the integration (default: holds all three required actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<PrincipalFile>,
    /// Virtual networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vnets: Vec<VnetFile>,
    /// Network security groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nsgs: Vec<NsgFile>,
    /// Application security groups declared without members (members come from hosts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub application_security_groups: Vec<String>,
    /// VM NICs, private endpoints and internet services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostFile>,
    /// The API Management instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apim: Option<ApimFile>,
    /// Where service tags come from (default: the built-in table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tags: Option<ServiceTagsFile>,
    /// The gateway's front door.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayFile>,
    /// APIs the gateway routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apis: Vec<ApiFile>,
    /// Private DNS zones and the VNets linked to them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_dns_zones: Vec<DnsZoneFile>,
    /// Seeded faults on the backend leg (a testing aid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<crate::fault::FaultsFile>,
    /// Route tables (user-defined routes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route_tables: Vec<RouteTableFile>,
    /// NAT gateways.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nat_gateways: Vec<NatGatewayFile>,
    /// Azure Firewalls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewalls: Vec<FirewallFile>,
}

/// `[subscription]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionFile {
    /// Subscription id (any string).
    pub id: String,
    /// Registered resource providers; default `["Microsoft.Web", "Microsoft.Network"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_providers: Option<Vec<String>>,
}

/// `[principal]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalFile {
    /// RBAC actions held on the subnet or above; `*` and `Provider/*` wildcards allowed.
    pub actions: Vec<String>,
}

/// `[service_tags]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceTagsFile {
    /// A `ServiceTags_Public` JSON file, relative to the fixture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}
