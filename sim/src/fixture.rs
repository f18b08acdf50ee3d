//! The fixture file format: serde shapes that mirror the file exactly (TOML, or the same schema
//! as JSON or YAML). Unknown keys, wrong types, missing required keys and unknown enum values are
//! *load errors* with a line and column; everything else (bad prefixes, overlaps, unknown
//! references, ...) is checked later by [`crate::topology`] and reported as findings.
//!
//! This module owns the **whole** schema, including the gateway keys (`[gateway]`, `[[apis]]`,
//! `[[hosts.services]]`, `[[private_dns_zones]]`), so there is one parser and `validate` checks
//! everything a gateway will use.

use serde::{Deserialize, Serialize};

use crate::proto::{azure_enum, Access, Direction, RuleProtocol};

/// A fixture file's syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// TOML (`.toml`, the default).
    Toml,
    /// JSON (`.json`).
    Json,
    /// YAML (`.yaml`/`.yml`), through the maintained `serde_yaml_ng`.
    Yaml,
}

impl Format {
    /// The format for a file name, by extension; TOML when unknown.
    pub fn from_file_name(name: &str) -> Format {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".json") {
            Format::Json
        } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Format::Yaml
        } else {
            Format::Toml
        }
    }
}

/// A fixture that could not be read: where (1-based line and column, when the parser knows) and
/// what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location(*.line, *.column))]
pub struct LoadError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong and what was expected.
    pub message: String,
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{l}:{c}: "),
        (Some(l), None) => format!("{l}: "),
        _ => String::new(),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

// === impl Fixture ===

impl Fixture {
    /// Parses fixture text.
    ///
    /// # Errors
    /// [`LoadError`] with line and column for syntax errors, unknown keys, wrong types, missing
    /// required keys and unknown enum values.
    ///
    /// ```
    /// use sim::fixture::{Fixture, Format};
    /// let f = Fixture::parse("[[vnets]]\nname = \"v\"\nregion = \"westeurope\"\naddress_space = [\"10.0.0.0/16\"]\n", Format::Toml).unwrap();
    /// assert_eq!(f.vnets[0].name, "v");
    /// let e = Fixture::parse("[[vnets]]\nnmae = \"v\"\n", Format::Toml).unwrap_err();
    /// assert_eq!(e.line, Some(2));
    /// ```
    pub fn parse(text: &str, format: Format) -> Result<Fixture, LoadError> {
        match format {
            Format::Toml => toml::from_str(text).map_err(|e| {
                let (line, column) = match e.span() {
                    Some(span) => {
                        let (l, c) = line_col(text, span.start);
                        (Some(l), Some(c))
                    }
                    None => (None, None),
                };
                LoadError {
                    line,
                    column,
                    message: e.message().trim().to_string(),
                }
            }),
            Format::Json => serde_json::from_str(text).map_err(|e| LoadError {
                line: Some(e.line()).filter(|l| *l > 0),
                column: Some(e.column()).filter(|c| *c > 0),
                message: strip_json_position(&e.to_string()),
            }),
            Format::Yaml => serde_yaml_ng::from_str(text).map_err(|e| {
                let loc = e.location();
                LoadError {
                    line: loc.as_ref().map(|l| l.line()),
                    column: loc.as_ref().map(|l| l.column()),
                    message: strip_yaml_position(&e.to_string()),
                }
            }),
        }
    }

    /// Serializes the fixture back to TOML (used by importers and round-trip tests).
    ///
    /// # Errors
    /// Only if a value cannot be represented in TOML.
    pub fn to_toml(&self) -> Result<String, LoadError> {
        toml::to_string_pretty(self).map_err(|e| LoadError {
            line: None,
            column: None,
            message: e.to_string(),
        })
    }
}

fn strip_json_position(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn strip_yaml_position(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

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

/// `[[vnets]]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VnetFile {
    /// VNet name.
    pub name: String,
    /// Azure region, e.g. `westeurope`.
    pub region: String,
    /// Subscription id; default `[subscription].id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// Address space prefixes.
    pub address_space: Vec<String>,
    /// Names of VNets this one is peered with (connected only when both sides list each other).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peerings: Vec<String>,
    /// Subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<SubnetFile>,
}

/// `[[vnets.subnets]]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawSubnet")]
pub struct SubnetFile {
    /// Subnet name.
    pub name: String,
    /// Prefixes (`address_prefix` or `address_prefixes` in the file; exactly one is required).
    pub address_prefixes: Vec<String>,
    /// Delegations, e.g. `Microsoft.Web/serverFarms`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegations: Vec<String>,
    /// Name of the NSG associated with the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsg: Option<String>,
    /// Other resources deployed in the subnet (besides hosts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Private endpoint network policies (default `Disabled`, as in ARM).
    #[serde(default)]
    pub private_endpoint_network_policies: PrivateEndpointPolicies,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubnet {
    name: String,
    address_prefix: Option<String>,
    address_prefixes: Option<Vec<String>>,
    #[serde(default)]
    delegations: Vec<String>,
    nsg: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    private_endpoint_network_policies: PrivateEndpointPolicies,
}

impl TryFrom<RawSubnet> for SubnetFile {
    type Error = String;
    fn try_from(r: RawSubnet) -> Result<SubnetFile, String> {
        let address_prefixes = match (r.address_prefix, r.address_prefixes) {
            (Some(p), None) => vec![p],
            (None, Some(ps)) if !ps.is_empty() => ps,
            (None, Some(_)) => {
                return Err(format!("subnet `{}`: `address_prefixes` is empty", r.name))
            }
            (None, None) => {
                return Err(format!(
                    "subnet `{}`: missing `address_prefix` (or `address_prefixes`)",
                    r.name
                ))
            }
            (Some(_), Some(_)) => {
                return Err(format!(
                    "subnet `{}`: give either `address_prefix` or `address_prefixes`, not both",
                    r.name
                ))
            }
        };
        Ok(SubnetFile {
            name: r.name,
            address_prefixes,
            delegations: r.delegations,
            nsg: r.nsg,
            resources: r.resources,
            private_endpoint_network_policies: r.private_endpoint_network_policies,
        })
    }
}

azure_enum!(
    /// `privateEndpointNetworkPolicies` of a subnet.
    #[derive(Default)]
    PrivateEndpointPolicies, "private_endpoint_network_policies",
    "Disabled, Enabled, NetworkSecurityGroupEnabled, RouteTableEnabled",
    { #[default] Disabled => "Disabled", Enabled => "Enabled",
      NetworkSecurityGroupEnabled => "NetworkSecurityGroupEnabled", RouteTableEnabled => "RouteTableEnabled" }
);

impl PrivateEndpointPolicies {
    /// Whether NSG rules apply to private endpoints in the subnet.
    pub fn nsg_applies(self) -> bool {
        matches!(
            self,
            PrivateEndpointPolicies::Enabled | PrivateEndpointPolicies::NetworkSecurityGroupEnabled
        )
    }
}

/// `[[nsgs]]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NsgFile {
    /// NSG name.
    pub name: String,
    /// Re-evaluate established flows when rules change (`flushConnection`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub flush_connection: bool,
    /// Custom rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_rules: Vec<RuleFile>,
}

/// One side's address field of a rule: exactly one of the three forms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum AddressField {
    /// `*_address_prefix`: a prefix, address, `*` or service tag.
    Prefix(String),
    /// `*_address_prefixes`: an augmented list.
    Prefixes(Vec<String>),
    /// `*_application_security_groups`: ASG names.
    Asgs(Vec<String>),
}

/// One side's port field: exactly one of the two forms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum PortField {
    /// `*_port_range`.
    Range(String),
    /// `*_port_ranges`.
    Ranges(Vec<String>),
}

/// `[[nsgs.security_rules]]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawRule")]
pub struct RuleFile {
    /// Rule name.
    pub name: String,
    /// Priority (checked to be 100–4096 as a finding, so out-of-range values still load).
    pub priority: i64,
    /// Direction.
    pub direction: Direction,
    /// Access.
    pub access: Access,
    /// Protocol.
    pub protocol: RuleProtocol,
    /// Source addresses.
    pub source: AddressField,
    /// Source ports.
    pub source_ports: PortField,
    /// Destination addresses.
    pub destination: AddressField,
    /// Destination ports.
    pub destination_ports: PortField,
    /// Description (≤ 140 chars).
    pub description: Option<String>,
}

/// The file shape of a rule (also what `PUT /admin/nsgs/{name}/security_rules` takes).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Rule name.
    pub name: String,
    /// Priority.
    pub priority: i64,
    /// Direction.
    pub direction: Option<Direction>,
    /// Access.
    pub access: Option<Access>,
    /// Protocol.
    pub protocol: Option<RuleProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub source_address_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub source_address_prefixes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub source_application_security_groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub source_port_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub source_port_ranges: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub destination_address_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub destination_address_prefixes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub destination_application_security_groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub destination_port_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub destination_port_ranges: Option<Vec<String>>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn address_field(
    rule: &str,
    side: &str,
    prefix: Option<String>,
    prefixes: Option<Vec<String>>,
    asgs: Option<Vec<String>>,
) -> Result<AddressField, String> {
    match (prefix, prefixes, asgs) {
        (Some(p), None, None) => Ok(AddressField::Prefix(p)),
        (None, Some(ps), None) if !ps.is_empty() => Ok(AddressField::Prefixes(ps)),
        (None, None, Some(a)) if !a.is_empty() => Ok(AddressField::Asgs(a)),
        (None, None, None) => Err(format!(
            "rule `{rule}`: missing the {side} address: give one of `{side}_address_prefix`, `{side}_address_prefixes` or `{side}_application_security_groups`"
        )),
        (None, Some(_), None) | (None, None, Some(_)) => {
            Err(format!("rule `{rule}`: the {side} address list is empty"))
        }
        _ => Err(format!(
            "rule `{rule}`: give exactly one of `{side}_address_prefix`, `{side}_address_prefixes` and `{side}_application_security_groups`"
        )),
    }
}

fn port_field(
    rule: &str,
    side: &str,
    range: Option<String>,
    ranges: Option<Vec<String>>,
) -> Result<PortField, String> {
    match (range, ranges) {
        (Some(r), None) => Ok(PortField::Range(r)),
        (None, Some(rs)) if !rs.is_empty() => Ok(PortField::Ranges(rs)),
        (None, Some(_)) => Err(format!("rule `{rule}`: `{side}_port_ranges` is empty")),
        (None, None) => Err(format!(
            "rule `{rule}`: missing `{side}_port_range` (or `{side}_port_ranges`); use \"*\" for any port"
        )),
        (Some(_), Some(_)) => {
            Err(format!("rule `{rule}`: give either `{side}_port_range` or `{side}_port_ranges`, not both"))
        }
    }
}

impl TryFrom<RawRule> for RuleFile {
    type Error = String;
    fn try_from(r: RawRule) -> Result<RuleFile, String> {
        let name = r.name;
        let missing = |k: &str| format!("rule `{name}`: missing required key `{k}`");
        Ok(RuleFile {
            priority: r.priority,
            direction: r.direction.ok_or_else(|| missing("direction"))?,
            access: r.access.ok_or_else(|| missing("access"))?,
            protocol: r.protocol.ok_or_else(|| missing("protocol"))?,
            source: address_field(
                &name,
                "source",
                r.source_address_prefix,
                r.source_address_prefixes,
                r.source_application_security_groups,
            )?,
            source_ports: port_field(&name, "source", r.source_port_range, r.source_port_ranges)?,
            destination: address_field(
                &name,
                "destination",
                r.destination_address_prefix,
                r.destination_address_prefixes,
                r.destination_application_security_groups,
            )?,
            destination_ports: port_field(
                &name,
                "destination",
                r.destination_port_range,
                r.destination_port_ranges,
            )?,
            description: r.description,
            name,
        })
    }
}

impl RawRule {
    /// A rule from any source address and port to `destination` on `destination_port` (a
    /// prefix, address, tag or `*`; a port, range or `*`) — the shape most live changes take.
    ///
    /// ```
    /// use sim::fixture::RawRule;
    /// use sim::{Access, Direction, RuleProtocol};
    /// let r = RawRule::new("deny-orders", 120, Direction::Outbound, Access::Deny, RuleProtocol::Tcp, "10.0.2.4", "443");
    /// assert_eq!(r.source_address_prefix.as_deref(), Some("*"));
    /// ```
    pub fn new(
        name: &str,
        priority: i64,
        direction: Direction,
        access: Access,
        protocol: RuleProtocol,
        destination: &str,
        destination_port: &str,
    ) -> RawRule {
        RawRule {
            name: name.into(),
            priority,
            direction: Some(direction),
            access: Some(access),
            protocol: Some(protocol),
            source_address_prefix: Some("*".into()),
            source_port_range: Some("*".into()),
            destination_address_prefix: Some(destination.into()),
            destination_port_range: Some(destination_port.into()),
            ..RawRule::default()
        }
    }
}

impl From<&RuleFile> for RawRule {
    fn from(r: &RuleFile) -> RawRule {
        let mut raw = RawRule {
            name: r.name.clone(),
            priority: r.priority,
            direction: Some(r.direction),
            access: Some(r.access),
            protocol: Some(r.protocol),
            description: r.description.clone(),
            ..RawRule::default()
        };
        match &r.source {
            AddressField::Prefix(p) => raw.source_address_prefix = Some(p.clone()),
            AddressField::Prefixes(p) => raw.source_address_prefixes = Some(p.clone()),
            AddressField::Asgs(a) => raw.source_application_security_groups = Some(a.clone()),
        }
        match &r.destination {
            AddressField::Prefix(p) => raw.destination_address_prefix = Some(p.clone()),
            AddressField::Prefixes(p) => raw.destination_address_prefixes = Some(p.clone()),
            AddressField::Asgs(a) => raw.destination_application_security_groups = Some(a.clone()),
        }
        match &r.source_ports {
            PortField::Range(p) => raw.source_port_range = Some(p.clone()),
            PortField::Ranges(p) => raw.source_port_ranges = Some(p.clone()),
        }
        match &r.destination_ports {
            PortField::Range(p) => raw.destination_port_range = Some(p.clone()),
            PortField::Ranges(p) => raw.destination_port_ranges = Some(p.clone()),
        }
        raw
    }
}

impl Serialize for RuleFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RawRule::from(self).serialize(s)
    }
}

impl Serialize for SubnetFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("SubnetFile", 6)?;
        st.serialize_field("name", &self.name)?;
        if self.address_prefixes.len() == 1 {
            st.serialize_field("address_prefix", &self.address_prefixes[0])?;
        } else {
            st.serialize_field("address_prefixes", &self.address_prefixes)?;
        }
        if !self.delegations.is_empty() {
            st.serialize_field("delegations", &self.delegations)?;
        }
        if let Some(n) = &self.nsg {
            st.serialize_field("nsg", n)?;
        }
        if !self.resources.is_empty() {
            st.serialize_field("resources", &self.resources)?;
        }
        st.serialize_field(
            "private_endpoint_network_policies",
            &self.private_endpoint_network_policies,
        )?;
        st.end()
    }
}

azure_enum!(
    /// What a host is.
    #[derive(Default)]
    HostKind, "host kind", "nic, private-endpoint",
    { #[default] Nic => "nic", PrivateEndpoint => "private-endpoint" | "privateendpoint" | "private_endpoint" }
);

/// `[[hosts]]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostFile {
    /// Host name.
    pub name: String,
    /// Private address (inside a subnet) or, outside every VNet, the host's own address.
    pub address: String,
    /// Public address through which the internet reaches it (NSGs see the private address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_address: Option<String>,
    /// NIC NSG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsg: Option<String>,
    /// ASG memberships.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub application_security_groups: Vec<String>,
    /// DNS names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// `nic` (default) or `private-endpoint`.
    #[serde(default)]
    pub kind: HostKind,
    /// Services the gateway can reach on this host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceFile>,
}

azure_enum!(
    /// A built-in backend the gateway harness starts on loopback.
    ServeKind, "serve", "echo",
    { Echo => "echo" }
);

/// `[[hosts.services]]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    /// Port on the simulated host.
    pub port: u16,
    /// Whether the service speaks HTTPS (certificate for the host's DNS names from the local CA).
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls: bool,
    /// A built-in backend to start on loopback for this host:port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve: Option<ServeKind>,
    /// Or an existing loopback server that plays this host:port (`127.0.0.1:9443`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

azure_enum!(
    /// API Management tier (`sku.name`).
    Sku, "sku", "Developer, Basic, Standard, Premium, Isolated, Consumption, BasicV2, StandardV2, PremiumV2",
    { Developer => "Developer", Basic => "Basic", Standard => "Standard", Premium => "Premium",
      Isolated => "Isolated", Consumption => "Consumption", BasicV2 => "BasicV2",
      StandardV2 => "StandardV2", PremiumV2 => "PremiumV2" }
);

azure_enum!(
    /// How the APIM instance is attached to a VNet.
    #[derive(Default)]
    NetworkMode, "virtual_network", "none, integration, injection",
    { #[default] None => "none", Integration => "integration", Injection => "injection" }
);

/// `[apim]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApimFile {
    /// Instance name.
    pub name: String,
    /// Tier.
    pub sku: Sku,
    /// Scale units (default 1).
    #[serde(default = "one")]
    pub capacity: u32,
    /// Region.
    pub region: String,
    /// Subscription id; default `[subscription].id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// Network mode (default `none`).
    #[serde(default)]
    pub virtual_network: NetworkMode,
    /// `vnet/subnet` for integration or injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// The mode before this change, to check mode switches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_virtual_network: Option<NetworkMode>,
    /// The instance's private address in its subnet (default: first usable address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The public address it uses when not integrated, and its inbound public endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_address: Option<String>,
}

fn one() -> u32 {
    1
}

/// `[service_tags]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceTagsFile {
    /// A `ServiceTags_Public` JSON file, relative to the fixture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

azure_enum!(
    /// What the gateway does when the NSG denies a new backend flow.
    #[derive(Default)]
    DenyMode, "deny_mode", "answer, drop",
    { #[default] Answer => "answer", Drop => "drop" }
);

/// `[gateway]`: the front door and its limits. Every limit has a documented default.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    /// The gateway host name (its certificate's name when `tls = true`).
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Listen address (default `127.0.0.1:0`, an ephemeral port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Serve HTTPS at the front door.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls: bool,
    /// PEM certificate chain for the front door (default: issued by the local CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
    /// PEM private key for `tls_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    /// Answer denied flows at once (`answer`, default) or wait like a dropped SYN (`drop`).
    #[serde(default)]
    pub deny_mode: DenyMode,
    /// Admin listener address (default `127.0.0.1:0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<String>,
    /// Admin bearer token (default: random per start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// Allow `upstream` sockets that are not loopback (off: the gateway dials loopback only).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_non_loopback_upstreams: bool,
    /// Largest request head accepted, in bytes (default 16384; larger → 431).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_header_bytes: Option<usize>,
    /// Largest request body accepted, in bytes (default 10 MiB; larger → 413).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Most concurrent client connections (default 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Time a client has to send its request head, ms (default 10000; then 408).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_read_timeout_ms: Option<u64>,
    /// Backend connect timeout, ms (default 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// Backend response-head timeout, ms (default 30000; then 504).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_timeout_ms: Option<u64>,
    /// Grace period for in-flight requests at shutdown, ms (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_ms: Option<u64>,
}

fn default_hostname() -> String {
    "apim.azure-api.net".to_string()
}

impl Default for GatewayFile {
    fn default() -> Self {
        GatewayFile {
            hostname: default_hostname(),
            listen: None,
            tls: false,
            tls_cert: None,
            tls_key: None,
            deny_mode: DenyMode::Answer,
            admin_listen: None,
            admin_token: None,
            allow_non_loopback_upstreams: false,
            max_header_bytes: None,
            max_body_bytes: None,
            max_connections: None,
            header_read_timeout_ms: None,
            connect_timeout_ms: None,
            response_timeout_ms: None,
            shutdown_grace_ms: None,
        }
    }
}

/// `[[apis]]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFile {
    /// API name.
    pub name: String,
    /// Path prefix on the gateway (`/orders`).
    pub path: String,
    /// The API's service URL (`https://orders.internal.contoso.com/v1`).
    pub backend: String,
}

/// `[[private_dns_zones]]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsZoneFile {
    /// Zone name, e.g. `internal.contoso.com` or `privatelink.blob.core.windows.net`.
    pub name: String,
    /// VNets linked to the zone.
    #[serde(default)]
    pub links: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_sides_need_exactly_one_form() {
        let base = "[[nsgs]]\nname = \"n\"\n[[nsgs.security_rules]]\nname = \"r\"\npriority = 100\ndirection = \"Inbound\"\naccess = \"Allow\"\nprotocol = \"Tcp\"\nsource_port_range = \"*\"\ndestination_port_range = \"80\"\n";
        let ok =
            format!("{base}source_address_prefix = \"*\"\ndestination_address_prefix = \"*\"\n");
        let f = Fixture::parse(&ok, Format::Toml).unwrap();
        assert_eq!(
            f.nsgs[0].security_rules[0].destination,
            AddressField::Prefix("*".into())
        );
        let missing = format!("{base}source_address_prefix = \"*\"\n");
        let e = Fixture::parse(&missing, Format::Toml).unwrap_err();
        assert!(e.message.contains("missing the destination address"), "{e}");
        assert!(e.line.is_some());
        let both = format!("{ok}source_address_prefixes = [\"10.0.0.0/8\"]\n");
        assert!(Fixture::parse(&both, Format::Toml)
            .unwrap_err()
            .message
            .contains("exactly one"));
    }

    #[test]
    fn unknown_enum_value_is_a_load_error_with_position() {
        let t = "[apim]\nname = \"a\"\nsku = \"Gold\"\nregion = \"westeurope\"\n";
        let e = Fixture::parse(t, Format::Toml).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("StandardV2"), "{e}");
    }

    #[test]
    fn enums_are_case_insensitive() {
        let t = "[apim]\nname = \"a\"\nsku = \"Standardv2\"\nregion = \"westeurope\"\nvirtual_network = \"Integration\"\n";
        let f = Fixture::parse(t, Format::Toml).unwrap();
        let a = f.apim.unwrap();
        assert_eq!(a.sku, Sku::StandardV2);
        assert_eq!(a.virtual_network.to_string(), "integration");
    }

    #[test]
    fn json_and_yaml_share_the_schema() {
        let j = r#"{"vnets": [{"name": "v", "region": "westeurope", "address_space": ["10.0.0.0/16"],
                   "subnets": [{"name": "s", "address_prefix": "10.0.1.0/24"}]}]}"#;
        let f = Fixture::parse(j, Format::Json).unwrap();
        assert_eq!(f.vnets[0].subnets[0].address_prefixes, vec!["10.0.1.0/24"]);
        let y = "vnets:\n  - name: v\n    region: westeurope\n    address_space: [10.0.0.0/16]\n    bogus: 1\n";
        let e = Fixture::parse(y, Format::Yaml).unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
        assert!(e.line.is_some());
    }

    #[test]
    fn toml_round_trip() {
        let t = "[[vnets]]\nname = \"v\"\nregion = \"westeurope\"\naddress_space = [\"10.0.0.0/16\"]\n[[vnets.subnets]]\nname = \"s\"\naddress_prefix = \"10.0.1.0/24\"\n[[nsgs]]\nname = \"n\"\n[[nsgs.security_rules]]\nname = \"r\"\npriority = 100\ndirection = \"Inbound\"\naccess = \"Allow\"\nprotocol = \"Tcp\"\nsource_address_prefix = \"*\"\nsource_port_range = \"*\"\ndestination_address_prefixes = [\"10.0.0.0/24\"]\ndestination_port_ranges = [\"80\", \"443\"]\n";
        let f = Fixture::parse(t, Format::Toml).unwrap();
        let back = Fixture::parse(&f.to_toml().unwrap(), Format::Toml).unwrap();
        assert_eq!(f, back);
    }
}
