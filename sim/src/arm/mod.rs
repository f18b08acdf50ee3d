//! Azure's own formats as a second front end to the same model: ARM deployment templates,
//! parameters files and exported resource JSON are read into a [`Fixture`] — the schema of
//! `fixtures/*.toml` — so everything downstream (topology, flows, preflight, gateway) is shared.
//! This module reads text and returns values; reading files and folders, and printing, are the
//! CLI's job.
//!
//! # Inputs ([`detect`], from content)
//! - **ARM templates** (`$schema` containing `deploymentTemplate.json`), `languageVersion` 1.0
//!   (resource arrays) and 2.0 (symbolic names); nested child resources; resource `copy` loops
//!   and `condition`; property and variable `copy` loops.
//! - **Parameters files** (`deploymentParameters.json`): values read per the declared type; Key
//!   Vault references are unknown. `name=value` pairs ([`ImportOptions::parameters`]) override
//!   files and are read per the declared type too.
//! - **Exported resources**: one object or an array, as `az network vnet|nsg|nic show`, `az apim
//!   show` or `az resource show --ids` print them, in the REST shape (nested `properties`) or the
//!   flattened CLI shape; also REST list responses (`{"value": [...]}`) and REST API examples
//!   (`responses.200.body`). A resource without properties (the `az resource list` form) is
//!   refused with the command that prints the full form.
//!
//! # Expressions
//! Evaluated: `parameters` (case-insensitive names; `defaultValue` may itself be an expression;
//! `allowedValues` checked), `variables`, `concat`, `format`, `toLower`, `toUpper`, `resourceId`,
//! `subscriptionResourceId`, `resourceGroup`, `subscription`, `uniqueString` (deterministic:
//! MurmurHash64A + base32, **not** guaranteed to equal Azure's value), `equals`, `not`, `and`,
//! `or`, `if` (lazy), `empty`, `length`, `json`, `split`, `last`, `contains`, `union`,
//! `createArray`, `createObject`, `coalesce`, `cidrSubnet`, `copyIndex`; and what Bicep emits
//! (issue 17, modules `builtins` and `lambda`): `tryGet`, the lambda functions, user-defined
//! functions, `items`, `shallowMerge`, `flatten`, `objectKeys`, `range`, `take`, `skip`,
//! `indexOf`, `join`, `replace`, `substring`, `string`, `null`, `true`, `false`, `array`,
//! `guid`/`newGuid` (deterministic), `deployment`, `environment` (public cloud), `parseCidr`,
//! `cidrHost`, numeric and comparison functions, `extensionResourceId`. Nested deployments expand
//! (module `nested`), and `reference(…)` of one gives its evaluated `outputs` (module
//! `nested::outputs`). `[[`
//! escapes a leading bracket; `.name` and `[i]` apply to results. A name that is not an ARM
//! function is an error ([`ImportError::UnknownFunction`]) wherever it is in the template. Any
//! other ARM function or a deployment-time value (`reference(...).ipAddress`, `list*`, `utcNow`)
//! makes the value *unknown*; `--set SUBJECT=VALUE` ([`ImportOptions::sets`]) supplies one.
//! Errors in values the importer never reads do not stop it.
//!
//! # Limits
//! ARM's own template limits (4 MB, 256 parameters, 512 variables, 800 resources, 64 outputs,
//! 800 copies, 24,576-character expressions) and vnetsim's bounds on evaluation (value size
//! and nesting, evaluation depth, total bytes evaluated) are one table, [`LIMITS`]; exceeding
//! any is [`ImportError::LimitExceeded`] (`ARM_LIMIT_EXCEEDED`), never an abort.
//!
//! # Mapping
//! | Azure | Fixture |
//! |---|---|
//! | `Microsoft.Network/virtualNetworks` (+ inline `subnets`, `virtualNetworkPeerings`) | `[[vnets]]` |
//! | `…/virtualNetworks/subnets` (`vnet/subnet`): prefixes, `delegations[].serviceName`, `networkSecurityGroup.id`, `privateEndpointNetworkPolicies` | `[[vnets.subnets]]` |
//! | `…/virtualNetworks/virtualNetworkPeerings`: `remoteVirtualNetwork.id` | `peerings` (Disconnected or `allowVirtualNetworkAccess: false` → left out, `PEERING_NOT_CONNECTED`) |
//! | `Microsoft.Network/networkSecurityGroups` (+ inline `securityRules`, `flushConnection`) | `[[nsgs]]` (no `properties`: default rules only) |
//! | `…/networkSecurityGroups/securityRules` | `[[nsgs.security_rules]]` (singular/plural/ASG fields; null or empty = unused) |
//! | `defaultSecurityRules` (exports) | compared with [`crate::nsg::default_rules`], then ignored (`DEFAULT_RULES_MISMATCH`) |
//! | `Microsoft.Network/applicationSecurityGroups`, ASG ids in rules and NICs | `application_security_groups` |
//! | `Microsoft.Network/networkInterfaces`: each IP configuration | `[[hosts]]` (dynamic, unset address: first free usable ≥ .4, `ASSUMPTION_DYNAMIC_PRIVATE_ADDRESS`) |
//! | `Microsoft.ApiManagement/service`: `sku`, `location`, `virtualNetworkType`, `subnetResourceId` | `[apim]`: v2 + External → `integration`; v2 + Internal → `injection`; classic tiers → `classic` + `classic_vnet_type` (the build warns `CLASSIC_TIER_VNET`) |
//! | `Microsoft.ApiManagement/service/apis`: `path`, `serviceUrl` | `[[apis]]`, plus an echo service on the backend's host (attached after the private endpoints, so a backend may be one) |
//! | `…/service/backends` selected by `…/apis/policies` (`set-backend-service`) | the API's `backend` (see module `policy`; `API_POLICY_INVALID`) |
//! | private endpoints, zone groups, private DNS zones, links, A records, vaults, storage accounts, named values | see module `private_link` |
//! | route tables, routes, NAT gateways, public IP addresses, Azure Firewalls, firewall policies and rule collection groups; subnets' `routeTable`/`natGateway`/`serviceEndpoints`, peerings' `allowForwardedTraffic`, NICs' `enableIPForwarding` | see module `routing` |
//! | anything else | [`ImportResult::ignored`] |
//!
//! Several inputs merge into one fixture: a resource defined twice must be identical
//! ([`ImportError::Conflict`] names both definitions), child resources join their parent, and
//! every reference (a subnet's NSG and VNet, a NIC's subnet, the instance's subnet) must resolve
//! among the inputs ([`ImportError::MissingReference`] names the command that provides it).
//!
//! # Unknown values
//! An unknown value that lands in a string field of the fixture is written as a marker,
//! `<unknown:POINTER>` ([`marker`]), where POINTER is the RFC 6901 pointer of the template string
//! that produced it, and listed in [`ImportResult::unknowns`]. Markers round-trip through TOML.
//! They can appear in rule address and port fields (alone or as list items), subnet prefixes
//! and delegations, address spaces, regions, NSG and subnet references, host addresses and API
//! paths and backends. A rule whose `access` or `protocol` is unknown is kept as `Deny`/`*` with
//! its source ports replaced by the marker. Unknowns the schema cannot hold (names, `condition`,
//! `copy` counts, priorities, directions, SKUs, capacities) are
//! [`ImportError::Unrepresentable`]. Until the NSG engine reads markers, a topology built from
//! a fixture with markers reports them as invalid prefixes or ports, never as a verdict.
//!
//! # Example
//! ```
//! use sim::arm::{import, ImportOptions, Input};
//! let template = r#"{
//!   "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
//!   "parameters": { "prefix": { "type": "string", "defaultValue": "10.1.0.0/16" } },
//!   "resources": [{
//!     "type": "Microsoft.Network/virtualNetworks", "name": "vnet", "location": "westeurope",
//!     "properties": { "addressSpace": { "addressPrefixes": ["[parameters('prefix')]"] },
//!       "subnets": [{ "name": "a", "properties": { "addressPrefix": "[cidrSubnet(parameters('PREFIX'), 24, 2)]" } }] }
//!   }]
//! }"#;
//! let r = import(&[Input::new("t.json", template)], &ImportOptions::default()).unwrap();
//! assert_eq!(r.fixture.vnets[0].subnets[0].address_prefixes, vec!["10.1.2.0/24"]);
//! ```

// Internal: import errors carry one or two locations and are built once per failed import, off
// any hot path; a plain public enum is easier to match on than a boxed one.
#![allow(clippy::result_large_err)]

mod assemble;
mod builtins;
mod error;
mod eval;
mod expr;
mod functions;
mod json;
mod lambda;
mod limits;
mod map;
mod nested;
mod params;
mod policy;
mod private_link;
mod resource;
mod routing;
mod template;
mod unknowns;
mod value;

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

pub use error::{ImportError, Location};
pub(crate) use json::{object_start as json_object_start, offsets as json_offsets};
pub use limits::{Limit, LIMITS};
pub use unknowns::{cause, group_unknowns, UnknownGroup};

use crate::finding::{sort_findings, Assumption, Finding};
use crate::fixture::Fixture;
use crate::source::SourceMap;
use eval::{get_ci, DeployScope};
use params::Provided;
use resource::{Kind, Res};

/// Subscription id that stands in when no `--subscription-id` is given and no export names one.
pub const DEFAULT_SUBSCRIPTION_ID: &str = "00000000-0000-0000-0000-000000000000";
/// Resource group name that stands in when no `--resource-group` is given.
pub const DEFAULT_RESOURCE_GROUP: &str = "vnetsim-rg";
/// Location that stands in for `resourceGroup().location` when no `--location` is given.
pub const DEFAULT_LOCATION: &str = "westeurope";

const MARKER_PREFIX: &str = "<unknown:";
const MARKER_SUFFIX: &str = ">";

/// The marker written into a fixture for an unknown value: `<unknown:POINTER>`.
///
/// ```
/// let m = sim::arm::marker("/resources/0/properties/securityRules/1/properties/destinationAddressPrefix");
/// assert_eq!(m, "<unknown:/resources/0/properties/securityRules/1/properties/destinationAddressPrefix>");
/// assert_eq!(sim::arm::parse_marker(&m), Some("/resources/0/properties/securityRules/1/properties/destinationAddressPrefix"));
/// ```
pub fn marker(pointer: &str) -> String {
    format!("{MARKER_PREFIX}{pointer}{MARKER_SUFFIX}")
}

/// The pointer inside a marker, or `None` when `value` is not one (surrounding spaces allowed).
pub fn parse_marker(value: &str) -> Option<&str> {
    value
        .trim()
        .strip_prefix(MARKER_PREFIX)?
        .strip_suffix(MARKER_SUFFIX)
}

/// Whether a fixture value is an unknown-value marker.
pub fn is_marker(value: &str) -> bool {
    parse_marker(value).is_some()
}

/// One input text and the name to use for it in messages (usually its file name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Display name.
    pub name: String,
    /// The text.
    pub text: String,
}

impl Input {
    /// An input.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Input {
        Input {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// What an input text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum InputKind {
    /// An ARM deployment template.
    Template,
    /// An ARM parameters file.
    Parameters,
    /// Exported resource JSON.
    Resources,
    /// A `ServiceTags_Public` file (give it to `--service-tags`, not as an input).
    ServiceTags,
}

/// Detects an Azure format from content (not the file name); `None` for anything else (a
/// vnetsim fixture in TOML, JSON or YAML, for example). Broken JSON is recognised by its
/// `$schema` text, so the import can report where it breaks.
///
/// ```
/// use sim::arm::{detect, InputKind};
/// assert_eq!(detect(r#"{"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", "resources": []}"#), Some(InputKind::Template));
/// assert_eq!(detect(r#"{"type": "Microsoft.Network/networkSecurityGroups", "name": "n", "properties": {}}"#), Some(InputKind::Resources));
/// assert_eq!(detect("[[vnets]]\nname = \"v\""), None);
/// assert_eq!(detect(r#"{"vnets": []}"#), None);
/// ```
pub fn detect(text: &str) -> Option<InputKind> {
    match serde_json::from_str::<Value>(strip_bom(text)) {
        Ok(v) => detect_value(&v),
        Err(_) => {
            let lower = text.to_ascii_lowercase();
            if lower.contains("deploymenttemplate.json") {
                Some(InputKind::Template)
            } else if lower.contains("deploymentparameters.json") {
                Some(InputKind::Parameters)
            } else {
                None
            }
        }
    }
}

fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

fn detect_value(v: &Value) -> Option<InputKind> {
    match v {
        Value::Object(_) => {
            let schema = get_ci(v, "$schema")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            if schema.contains("deploymenttemplate.json") {
                return Some(InputKind::Template);
            }
            if schema.contains("deploymentparameters.json") {
                return Some(InputKind::Parameters);
            }
            let has = |k: &str| get_ci(v, k).is_some();
            if get_ci(v, "values").is_some_and(Value::is_array)
                && (has("changeNumber") || has("cloud"))
            {
                return Some(InputKind::ServiceTags);
            }
            if has("resources") && has("contentVersion") && !has("type") {
                return Some(InputKind::Template);
            }
            if resource::rest_example_body(v).is_some() {
                return Some(InputKind::Resources);
            }
            if get_ci(v, "type").is_some_and(Value::is_string) && (has("id") || has("name")) {
                return Some(InputKind::Resources);
            }
            if let Some(Value::Array(items)) = get_ci(v, "value") {
                if items
                    .iter()
                    .all(|i| get_ci(i, "type").is_some_and(Value::is_string))
                {
                    return Some(InputKind::Resources);
                }
            }
            None
        }
        Value::Array(items) => items
            .iter()
            .all(|i| get_ci(i, "type").is_some_and(Value::is_string))
            .then_some(InputKind::Resources),
        _ => None,
    }
}

/// What the CLI passes besides the inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// `--subscription-id`: `subscription().subscriptionId` and the fixture's `[subscription]`.
    pub subscription_id: Option<String>,
    /// `--resource-group`: `resourceGroup().name`.
    pub resource_group: Option<String>,
    /// `--location`: `resourceGroup().location`.
    pub location: Option<String>,
    /// `--parameters FILE` (in order; later files win).
    pub parameter_files: Vec<Input>,
    /// `--parameter name=value` (in order; these win over files).
    pub parameters: Vec<String>,
    /// `--set SUBJECT=VALUE`: a value for a deployment-time unknown, SUBJECT as
    /// [`Unknown::subject`] prints it; VALUE is JSON, else a string. A SUBJECT no unknown
    /// lands in is an error.
    pub sets: Vec<String>,
}

/// A resource vnetsim does not model (listed, never fatal).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IgnoredResource {
    /// Resource type.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Name (evaluated when possible).
    pub name: String,
    /// Input display name.
    pub input: String,
    /// RFC 6901 pointer of the resource.
    pub pointer: String,
    /// Why it is ignored.
    pub reason: String,
}

impl fmt::Display for IgnoredResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} `{}` ({}#{}): {}",
            self.resource_type, self.name, self.input, self.pointer, self.reason
        )
    }
}

/// A value known only at deployment time (or computed by a function vnetsim does not evaluate)
/// that the fixture holds as a [`marker`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unknown {
    /// Input display name.
    pub input: String,
    /// RFC 6901 pointer of the template string with the expression.
    pub pointer: String,
    /// The expression.
    pub expression: String,
    /// 1-based line of the string, when known.
    pub line: Option<usize>,
    /// 1-based column of the string, when known.
    pub column: Option<usize>,
    /// Where it lands in the fixture, e.g. `nsgs/n/security_rules/r/destination`.
    pub subject: String,
    /// Why it is unknown.
    pub reason: String,
    /// The marker written into the fixture.
    pub marker: String,
}

impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = Location {
            input: self.input.clone(),
            pointer: self.pointer.clone(),
            line: self.line,
            column: self.column,
        };
        write!(
            f,
            "{at}: {} is unknown: {} (`{}`)",
            self.subject, self.reason, self.expression
        )
    }
}

/// The imported topology and everything the import noticed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[must_use]
pub struct ImportResult {
    /// The fixture (write it with [`Fixture::to_toml`] for `vnetsim import`).
    pub fixture: Fixture,
    /// Resources of types vnetsim does not model, and other resources left out.
    pub ignored: Vec<IgnoredResource>,
    /// Unknown values now held as markers.
    pub unknowns: Vec<Unknown>,
    /// Assumptions the import relied on.
    pub assumptions: Vec<Assumption>,
    /// Findings of the import itself (`CLASSIC_TIER_VNET`, `DEFAULT_RULES_MISMATCH`,
    /// `PEERING_NOT_CONNECTED`), located in the inputs; building the topology adds its own.
    pub findings: Vec<Finding>,
    /// Where each entry of `fixture` came from (input file, ARM pointer, line): pass it to
    /// [`Topology::build_with_source`](crate::topology::Topology::build_with_source) so the
    /// topology's findings and verdicts point into the inputs.
    #[serde(skip)]
    pub source: SourceMap,
}

/// Imports Azure inputs into one fixture.
///
/// # Errors
/// [`ImportError`] with the input, RFC 6901 pointer and (where the text has it) line and column
/// of the offending value: broken JSON, an input that is no Azure format, a resource without
/// properties, an unknown function, an expression that fails, a missing, mistyped, disallowed
/// or undeclared parameter, a value Azure would refuse, an unknown the fixture cannot hold, a
/// reference to a resource outside the inputs, or a conflicting duplicate.
pub fn import(inputs: &[Input], options: &ImportOptions) -> Result<ImportResult, ImportError> {
    let mut all: Vec<&Input> = inputs.iter().collect();
    all.extend(options.parameter_files.iter());
    import_inner(inputs, options).map_err(|mut e| {
        for loc in e.locations_mut() {
            place(loc, &all);
        }
        e
    })
}

fn place(loc: &mut Location, inputs: &[&Input]) {
    if loc.line.is_some() {
        return;
    }
    if let Some(i) = inputs.iter().find(|i| i.name == loc.input) {
        if let Some((l, c)) = json::position(&i.text, &loc.pointer) {
            loc.line = Some(l);
            loc.column = Some(c);
        }
    }
}

/// [`place`] for a location a finding carries.
fn place_source(at: &mut crate::source::Location, inputs: &[&Input]) {
    if let (Some(file), Some(pointer), None) = (&at.file, &at.pointer, at.line) {
        let mut loc = Location::new(file.clone(), pointer.clone());
        place(&mut loc, inputs);
        at.line = loc.line;
        at.column = loc.column;
    }
}

fn parse(input: &Input) -> Result<Value, ImportError> {
    serde_json::from_str(strip_bom(&input.text)).map_err(|e| {
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        ImportError::Json {
            at: Location {
                input: input.name.clone(),
                pointer: json::error_pointer(&input.text),
                line: Some(e.line()).filter(|l| *l > 0),
                column: Some(e.column()).filter(|c| *c > 0),
            },
            message,
        }
    })
}

fn import_inner(inputs: &[Input], options: &ImportOptions) -> Result<ImportResult, ImportError> {
    let mut parsed = Vec::with_capacity(inputs.len());
    for input in inputs {
        let doc = parse(input)?;
        let kind = detect_value(&doc);
        let size = input.text.len();
        if kind == Some(InputKind::Template) && size > Limit::TemplateSize.maximum() {
            return Err(ImportError::LimitExceeded {
                at: Location::new(input.name.clone(), ""),
                limit: Limit::TemplateSize,
                found: format!("the template has {size} bytes"),
            });
        }
        parsed.push((input, doc, kind));
    }
    // `--parameters` files and parameters files given before any template apply to every
    // template; a parameters file given as an input right after a template applies to that
    // template (so two modules that both declare `name` can be imported together).
    let mut files = Provided::default();
    let mut paired: Vec<Provided> = vec![Provided::default(); parsed.len()];
    let mut last_template: Option<usize> = None;
    for (i, (input, doc, kind)) in parsed.iter().enumerate() {
        match kind {
            Some(InputKind::Template) => last_template = Some(i),
            Some(InputKind::Parameters) => match last_template {
                Some(t) => paired[t].add_file(&input.name, doc)?,
                None => files.add_file(&input.name, doc)?,
            },
            _ => {}
        }
    }
    for f in &options.parameter_files {
        let doc = parse(f)?;
        if detect_value(&doc) != Some(InputKind::Parameters) && get_ci(&doc, "parameters").is_none()
        {
            return Err(ImportError::NotAzure {
                input: f.name.clone(),
                reason: "not an ARM parameters file (expected `$schema` …/deploymentParameters.json# and `parameters`)".into(),
            });
        }
        files.add_file(&f.name, &doc)?;
    }
    let mut pairs = Provided::default();
    for pair in &options.parameters {
        pairs.add_pair(pair)?;
    }
    let provided_for = |i: usize| -> Provided {
        let mut p = files.clone();
        p.entries.extend(paired[i].entries.iter().cloned());
        p.entries.extend(pairs.entries.iter().cloned());
        p
    };

    // The fixture's subscription: the option, else the first exported resource's.
    let export_sub = parsed.iter().find_map(|(_, doc, kind)| {
        (*kind == Some(InputKind::Resources))
            .then(|| first_subscription(doc))
            .flatten()
    });
    let subscription_known = options.subscription_id.is_some() || export_sub.is_some();
    let subscription = options
        .subscription_id
        .clone()
        .or(export_sub)
        .unwrap_or_else(|| DEFAULT_SUBSCRIPTION_ID.to_string());
    let scope = DeployScope {
        subscription_id: subscription.clone(),
        resource_group: options
            .resource_group
            .clone()
            .unwrap_or_else(|| DEFAULT_RESOURCE_GROUP.to_string()),
        location: options
            .location
            .clone()
            .unwrap_or_else(|| DEFAULT_LOCATION.to_string()),
        defaulted: !subscription_known
            || options.resource_group.is_none()
            || options.location.is_none(),
    };

    let mut resources: Vec<Res> = Vec::new();
    let mut ignored = Vec::new();
    let mut declared: BTreeSet<String> = BTreeSet::new();
    let mut used_defaults = false;
    let mut null_defaults = false;
    for (i, (input, doc, kind)) in parsed.iter().enumerate() {
        match kind {
            Some(InputKind::Template) => {
                let provided = provided_for(i);
                let x = template::expand(&input.name, doc, &scope, &provided)?;
                let here: BTreeSet<String> = x.declared.iter().cloned().collect();
                for p in &paired[i].entries {
                    if !here.contains(&p.name.to_ascii_lowercase()) {
                        return Err(ImportError::ParameterUndeclared {
                            at: p.at.clone(),
                            name: p.name.clone(),
                        });
                    }
                }
                resources.extend(x.resources);
                ignored.extend(x.ignored);
                declared.extend(x.declared);
                used_defaults |= x.used_defaults;
                null_defaults |= x.null_defaults;
            }
            Some(InputKind::Resources) => {
                let (rs, ig) = resource::collect_exports(&input.name, doc)?;
                resources.extend(rs);
                ignored.extend(ig);
            }
            Some(InputKind::Parameters) => {}
            Some(InputKind::ServiceTags) => {
                return Err(ImportError::NotAzure {
                    input: input.name.clone(),
                    reason: "this is a ServiceTags_Public file; pass it with --service-tags, not as a topology input".into(),
                })
            }
            None => {
                return Err(ImportError::NotAzure {
                    input: input.name.clone(),
                    reason: "not an ARM template, parameters file or exported Azure resource JSON".into(),
                })
            }
        }
    }
    for p in files.entries.iter().chain(&pairs.entries) {
        if !declared.contains(&p.name.to_ascii_lowercase()) {
            return Err(ImportError::ParameterUndeclared {
                at: p.at.clone(),
                name: p.name.clone(),
            });
        }
    }

    // Backends the APIs' policies select, read before the APIs are mapped.
    let policies = policy::read(&resources);
    ignored.extend(policies.ignored);
    let mapper = map::Mapper {
        subscription: subscription.clone(),
        unknowns: Vec::new(),
        findings: policies.findings,
        referenced_asgs: Vec::new(),
        sets: parse_sets(&options.sets)?,
        used_sets: BTreeSet::new(),
        policy_backends: policies.urls,
    };
    let mut asm = assemble::Assembler::new(mapper);
    // Parents first, then children, then NICs (which need subnets).
    let passes: [&[Kind]; 3] = [
        &[Kind::Vnet, Kind::Nsg, Kind::Asg, Kind::Apim],
        &[
            Kind::Subnet,
            Kind::Peering,
            Kind::SecurityRule,
            Kind::ApimApi,
        ],
        &[Kind::Nic],
    ];
    for pass in passes {
        for r in resources.iter().filter(|r| pass.contains(&r.kind)) {
            asm.add(r)?;
        }
    }
    let (mut fixture, mut asm) = asm.finish(&subscription)?;
    let around: Vec<&Res> = resources
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                Kind::PrivateEndpoint
                    | Kind::ZoneGroup
                    | Kind::PrivateDnsZone
                    | Kind::ZoneLink
                    | Kind::ZoneARecord
                    | Kind::KeyVault
                    | Kind::StorageAccount
                    | Kind::ApimNamedValue
                    | Kind::ApimCertificate
            )
        })
        .collect();
    let pl = private_link::apply(
        &around,
        &mut fixture,
        &crate::tags::ServiceTagTable::builtin(),
    );
    let routed: Vec<&Res> = resources
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                Kind::RouteTable
                    | Kind::Route
                    | Kind::NatGateway
                    | Kind::PublicIp
                    | Kind::AzureFirewall
                    | Kind::FirewallPolicy
                    | Kind::RuleCollectionGroup
            )
        })
        .collect();
    let rt = routing::apply(&routed, &mut fixture, &mut asm.mapper)?;
    unused_sets(&asm.mapper)?;
    ignored.extend(rt.ignored);
    // After the private endpoints: an API may target a backend behind one.
    assemble::attach_backends(&mut fixture);
    ignored.extend(pl.ignored);
    ignored.extend(asm.ignored);
    let mut assumptions: BTreeSet<Assumption> = asm.assumptions;
    assumptions.extend(pl.assumptions);
    assumptions.extend(rt.assumptions);
    if used_defaults {
        assumptions.insert(Assumption::DeploymentScopeDefaults);
    }
    if null_defaults {
        assumptions.insert(Assumption::NullModuleParameter);
    }
    let all: Vec<&Input> = inputs
        .iter()
        .chain(options.parameter_files.iter())
        .collect();
    let mut unknowns = asm.mapper.unknowns;
    for u in &mut unknowns {
        let mut loc = Location::new(u.input.clone(), u.pointer.clone());
        place(&mut loc, &all);
        u.line = loc.line;
        u.column = loc.column;
    }
    let mut findings = asm.mapper.findings;
    for f in &mut findings {
        if let Some(at) = &mut f.location {
            place_source(at, &all);
        }
    }
    sort_findings(&mut findings);
    let source = SourceMap::imported(asm.origins.iter().map(|(pointer, at)| {
        let mut at = at.clone();
        place(&mut at, &all);
        (pointer.clone(), (&at).into())
    }));
    Ok(ImportResult {
        fixture,
        ignored,
        unknowns,
        assumptions: assumptions.into_iter().collect(),
        findings,
        source,
    })
}

/// Display name used in locations of `--set` values.
pub(crate) const SET_INPUT: &str = "--set";

fn parse_sets(sets: &[String]) -> Result<Vec<(String, Value)>, ImportError> {
    sets.iter()
        .map(|s| {
            let (subject, value) = s.split_once('=').ok_or_else(|| ImportError::Invalid {
                at: Location::new(SET_INPUT, ""),
                message: format!(
                    "`{s}` is not SUBJECT=VALUE (SUBJECT as the unknown list prints it)"
                ),
            })?;
            let value = serde_json::from_str(value.trim())
                .unwrap_or_else(|_| Value::String(value.to_string()));
            Ok((subject.trim().to_string(), value))
        })
        .collect()
}

/// A `--set` whose SUBJECT no unknown value landed in is an error naming the subjects that are
/// unknown (a typo must not silently leave the value unknown).
fn unused_sets(m: &map::Mapper) -> Result<(), ImportError> {
    for (subject, _) in &m.sets {
        if !m.used_sets.contains(subject) {
            let mut known: Vec<&str> = m.unknowns.iter().map(|u| u.subject.as_str()).collect();
            known.dedup();
            return Err(ImportError::Invalid {
                at: Location::new(SET_INPUT, json::key("", subject)),
                message: format!(
                    "no unknown value lands in `{subject}`; the unknown subjects are: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
    }
    Ok(())
}

fn first_subscription(doc: &Value) -> Option<String> {
    let items: Vec<&Value> = match doc {
        Value::Array(a) => a.iter().collect(),
        _ => match (resource::rest_example_body(doc), get_ci(doc, "value")) {
            (Some((_, b)), _) => vec![b],
            (None, Some(Value::Array(a))) => a.iter().collect(),
            _ => vec![doc],
        },
    };
    items.iter().find_map(|i| {
        get_ci(i, "id")
            .and_then(Value::as_str)
            .and_then(|id| resource::parse_id(id).subscription)
    })
}

/// Points `HOST:PORT` of a fixture at an existing loopback server (`vnetsim up --upstream
/// HOST:PORT=127.0.0.1:N`): the host is found by name, DNS name or address; its service on
/// PORT (added when missing) gets `upstream` instead of `serve`.
///
/// # Errors
/// When `target` is not `HOST:PORT` or no host matches.
///
/// ```
/// use sim::fixture::{Fixture, Format};
/// let mut f = Fixture::parse("[[hosts]]\nname = \"orders\"\naddress = \"10.0.2.4\"\n", Format::Toml).unwrap();
/// sim::arm::set_upstream(&mut f, "10.0.2.4:443", "127.0.0.1:9443").unwrap();
/// assert_eq!(f.hosts[0].services[0].upstream.as_deref(), Some("127.0.0.1:9443"));
/// ```
pub fn set_upstream(fixture: &mut Fixture, target: &str, upstream: &str) -> Result<(), String> {
    let (host, port) = target
        .trim()
        .rsplit_once(':')
        .ok_or_else(|| format!("`{target}` is not HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` in `{target}` is not a port"))?;
    let ip = host.parse::<std::net::IpAddr>().ok();
    let h = fixture
        .hosts
        .iter_mut()
        .find(|h| match ip {
            Some(ip) => {
                h.address.trim().parse() == Ok(ip)
                    || h.public_address
                        .as_deref()
                        .and_then(|p| p.trim().parse().ok())
                        == Some(ip)
            }
            None => {
                h.name.eq_ignore_ascii_case(host)
                    || h.dns
                        .iter()
                        .any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(host))
            }
        })
        .ok_or_else(|| format!("no host of the topology is `{host}`"))?;
    match h.services.iter_mut().find(|s| s.port == port) {
        Some(s) => {
            s.serve = None;
            s.upstream = Some(upstream.to_string());
        }
        None => h.services.push(crate::fixture::ServiceFile {
            port,
            tls: false,
            serve: None,
            upstream: Some(upstream.to_string()),
        }),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
