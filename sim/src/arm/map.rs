//! Mapping resources onto the fixture schema, one resource at a time: VNets with their subnets
//! and peerings, NSGs with their rules (both shapes; singular and plural fields, where null or
//! empty means unused), ASGs, NICs, the APIM instance and its APIs. Unknown values become
//! markers ([`super::marker`]); values the schema cannot mark are errors. Merging, references
//! and addresses are settled afterwards in [`super::assemble`].

use std::str::FromStr;
use std::sync::Arc;

use super::error::{ImportError, Location};
use super::json;
use super::resource::{name_in_id, Kind, Res};
use super::value::{Pending, Val};
use super::{marker, IgnoredResource, Unknown};
use crate::finding::{Finding, FindingCode};
use crate::fixture::{
    ApiFile, ApimFile, PrivateEndpointPolicies, RuleFile, ServiceEndpointFile, SubnetFile,
};

mod apim;
mod nic;
mod rules;

/// A value read from a resource.
pub(crate) enum Got<'v> {
    Missing,
    Known(&'v Val),
    Unknown(Arc<Pending>),
}

/// Reads a member: `null` is missing, a failed evaluation is raised.
pub(crate) fn read(v: Option<&Val>) -> Result<Got<'_>, ImportError> {
    match v {
        None | Some(Val::Null) => Ok(Got::Missing),
        Some(Val::Failed(e)) => Err((**e).clone()),
        Some(Val::Unknown(p)) => Ok(Got::Unknown(p.clone())),
        Some(x) => Ok(Got::Known(x)),
    }
}

/// The properties of a nested item (a rule, subnet, delegation, ...) and their pointer: the
/// `properties` object (REST shape) or the item itself (flattened CLI shape).
pub(crate) fn props_of<'v>(item: &'v Val, pointer: &str) -> (&'v Val, String) {
    match item.get("properties") {
        Some(p @ Val::Obj(_)) => (p, json::key(pointer, "properties")),
        _ => (item, pointer.to_string()),
    }
}

/// A VNet resource's own definition (compared when a VNet is defined twice).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct VnetDef {
    pub name: String,
    pub region: String,
    pub subscription: Option<String>,
    pub address_space: Vec<String>,
    pub subnets: Vec<SubnetEntry>,
    pub peerings: Vec<PeeringEntry>,
}

/// A subnet with where it was defined and what the export says is attached to it.
#[derive(Clone, Debug)]
pub(crate) struct SubnetEntry {
    pub file: SubnetFile,
    pub at: Location,
    /// Ids of IP configurations and private endpoints in the subnet (exports).
    pub attached: Vec<String>,
}

impl PartialEq for SubnetEntry {
    fn eq(&self, o: &Self) -> bool {
        self.file == o.file
    }
}

/// A peering to `remote` (a VNet name, or a marker).
#[derive(Clone, Debug)]
pub(crate) struct PeeringEntry {
    pub remote: String,
    /// ARM `allowForwardedTraffic` (default false).
    pub allow_forwarded_traffic: bool,
    /// Where the peering is defined (not compared: the same peering may be defined twice).
    pub at: Location,
}

impl PartialEq for PeeringEntry {
    fn eq(&self, o: &Self) -> bool {
        self.remote.eq_ignore_ascii_case(&o.remote)
    }
}

/// An NSG resource's own definition.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NsgDef {
    pub name: String,
    pub flush_connection: bool,
    pub rules: Vec<RuleFile>,
}

/// A NIC IP configuration's private address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Addr {
    /// Given (or a marker).
    Static(String),
    /// Dynamic, not given: allocated later.
    Dynamic,
}

/// One IP configuration of a NIC.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct IpConfig {
    pub name: String,
    pub address: Addr,
    /// `vnet/subnet` (or a marker).
    pub subnet: String,
    pub asgs: Vec<String>,
    pub primary: bool,
    pub ipv6: bool,
}

/// A NIC resource.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NicDef {
    pub name: String,
    /// ARM `enableIPForwarding` (default false).
    pub ip_forwarding: bool,
    pub nsg: Option<String>,
    pub ip_configs: Vec<IpConfig>,
}

/// The APIM instance and whether it uses classic VNet injection.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApimDef {
    pub file: ApimFile,
    pub classic_vnet: Option<String>,
}

/// An API of the instance.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiDef {
    pub service: String,
    pub file: ApiFile,
}

/// What one resource maps to.
pub(crate) enum Mapped {
    Vnet(VnetDef),
    Subnet {
        vnet: String,
        entry: SubnetEntry,
    },
    Peering {
        vnet: String,
        entry: Option<PeeringEntry>,
    },
    Nsg(NsgDef),
    Rule {
        nsg: String,
        rule: RuleFile,
    },
    Asg(String),
    Nic(NicDef),
    Apim(ApimDef),
    Api(ApiDef),
    Ignored(IgnoredResource),
}

/// Maps resources, collecting unknowns and findings.
pub(crate) struct Mapper {
    /// The fixture's subscription id (resources elsewhere get their own `subscription`).
    pub subscription: String,
    pub unknowns: Vec<Unknown>,
    pub findings: Vec<Finding>,
    /// ASG names referenced by rules and NICs.
    pub referenced_asgs: Vec<String>,
    /// `--set SUBJECT=VALUE`: values supplied for deployment-time unknowns, by subject.
    pub sets: Vec<(String, serde_json::Value)>,
    /// Subjects of [`Mapper::sets`] that an unknown value used.
    pub used_sets: std::collections::BTreeSet<String>,
    /// `service/api` (lower case) → the backend URL the API's policy selects ([`super::policy`]).
    pub policy_backends: std::collections::BTreeMap<String, String>,
}

/// The items of an array member: none when it is missing; a list only known at deployment time
/// cannot be represented (`unknown_what` names it); any other value is invalid.
pub(crate) fn known_array<'v>(
    v: Option<&'v Val>,
    at: &Location,
    pointer: &str,
    key: &str,
    unknown_what: impl FnOnce() -> String,
) -> Result<&'v [Val], ImportError> {
    match read(v)? {
        Got::Missing => Ok(&[]),
        Got::Unknown(u) => Err(unrepresentable(&u, unknown_what())),
        Got::Known(Val::Arr(items)) => Ok(items),
        Got::Known(o) => Err(invalid(
            at,
            pointer,
            format!("{key} must be an array, got {}", o.type_name()),
        )),
    }
}

fn invalid(at: &Location, pointer: &str, message: impl Into<String>) -> ImportError {
    ImportError::Invalid {
        at: Location::new(at.input.clone(), pointer),
        message: message.into(),
    }
}

fn unrepresentable(p: &Pending, what: impl Into<String>) -> ImportError {
    ImportError::Unrepresentable {
        at: Location::new(p.input.clone(), p.pointer.clone()),
        what: what.into(),
        expression: p.expression.clone(),
        reason: p.reason.clone(),
    }
}

/// The last path segment of an id (a name when the id is not a full resource id).
fn last_segment(id: &str) -> String {
    id.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(id)
        .to_string()
}

// === impl Mapper ===

impl Mapper {
    /// The value `--set SUBJECT=VALUE` supplies for `subject`, if any (marked as used).
    pub fn supplied(&mut self, subject: &str) -> Option<serde_json::Value> {
        let v = self
            .sets
            .iter()
            .rev()
            .find(|(s, _)| s == subject)
            .map(|(_, v)| v.clone())?;
        self.used_sets.insert(subject.to_string());
        Some(v)
    }

    /// Records an unknown value landing in `subject` and returns its marker; a value supplied
    /// with `--set` for `subject` is returned instead (a string as is, any other JSON as text).
    pub fn mark(&mut self, p: &Pending, subject: &str) -> String {
        if let Some(v) = self.supplied(subject) {
            return match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
        }
        let m = marker(&p.pointer);
        if !self
            .unknowns
            .iter()
            .any(|u| u.pointer == p.pointer && u.input == p.input && u.subject == subject)
        {
            self.unknowns.push(Unknown {
                input: p.input.clone(),
                pointer: p.pointer.clone(),
                expression: p.expression.clone(),
                line: None,
                column: None,
                subject: subject.to_string(),
                reason: p.reason.clone(),
                marker: m.clone(),
            });
        }
        m
    }

    /// A string field: known text, a marker for an unknown, `None` when missing or empty.
    pub(crate) fn text(
        &mut self,
        v: Option<&Val>,
        at: &Location,
        pointer: &str,
        subject: &str,
        what: &str,
    ) -> Result<Option<String>, ImportError> {
        match read(v)? {
            Got::Missing => Ok(None),
            Got::Known(Val::Str(s)) if s.is_empty() => Ok(None),
            Got::Known(Val::Str(s)) => Ok(Some(s.clone())),
            Got::Known(Val::Int(i)) => Ok(Some(i.to_string())),
            Got::Known(o) => Err(invalid(
                at,
                pointer,
                format!("{what} must be a string, got {}", o.type_name()),
            )),
            Got::Unknown(p) => Ok(Some(self.mark(&p, subject))),
        }
    }

    /// A string-array field: `None` when missing or empty; unknown elements become markers; an
    /// unknown array is one marker.
    pub(crate) fn texts(
        &mut self,
        v: Option<&Val>,
        at: &Location,
        pointer: &str,
        subject: &str,
        what: &str,
    ) -> Result<Option<Vec<String>>, ImportError> {
        match read(v)? {
            Got::Missing => Ok(None),
            Got::Unknown(p) => Ok(Some(match self.supplied(subject) {
                Some(serde_json::Value::Array(items)) => items
                    .into_iter()
                    .map(|i| match i {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect(),
                _ => vec![self.mark(&p, subject)],
            })),
            Got::Known(Val::Arr(a)) if a.is_empty() => Ok(None),
            Got::Known(Val::Arr(a)) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, x) in a.iter().enumerate() {
                    let p = json::index(pointer, i);
                    if let Some(t) = self.text(Some(x), at, &p, subject, what)? {
                        out.push(t);
                    }
                }
                Ok((!out.is_empty()).then_some(out))
            }
            Got::Known(o) => Err(invalid(
                at,
                pointer,
                format!("{what} must be an array, got {}", o.type_name()),
            )),
        }
    }

    /// A name that must be known.
    fn name(
        &self,
        v: Option<&Val>,
        at: &Location,
        pointer: &str,
        what: &str,
    ) -> Result<String, ImportError> {
        match read(v)? {
            Got::Known(Val::Str(s)) if !s.is_empty() => Ok(s.clone()),
            Got::Unknown(p) => Err(unrepresentable(&p, what)),
            _ => Err(invalid(at, pointer, format!("{what} is missing"))),
        }
    }

    /// A reference `{ "id": ... }` turned into the name after `segment`.
    fn reference(
        &mut self,
        v: Option<&Val>,
        segment: &str,
        at: &Location,
        pointer: &str,
        subject: &str,
    ) -> Result<Option<String>, ImportError> {
        let obj = match read(v)? {
            Got::Missing => return Ok(None),
            Got::Unknown(p) => return Ok(Some(self.mark(&p, subject))),
            Got::Known(o) => o,
        };
        let ip = json::key(pointer, "id");
        Ok(self
            .text(obj.get("id"), at, &ip, subject, "a resource id")?
            .map(|id| {
                if super::is_marker(&id) {
                    id
                } else {
                    name_in_id(&id, segment).unwrap_or_else(|| last_segment(&id))
                }
            }))
    }

    /// Maps one resource.
    pub fn map(&mut self, r: &Res) -> Result<Mapped, ImportError> {
        match r.kind {
            Kind::Vnet => self.vnet(r).map(Mapped::Vnet),
            Kind::Subnet => {
                let (vnet, sub) = r.split_child()?;
                let entry = self.subnet(&r.body, &r.at.pointer, &r.at, &vnet, Some(&sub))?;
                Ok(Mapped::Subnet { vnet, entry })
            }
            Kind::Peering => {
                let (vnet, _) = r.split_child()?;
                let entry = self.peering(&r.body, &r.at.pointer, &r.at, &vnet)?;
                Ok(Mapped::Peering { vnet, entry })
            }
            Kind::Nsg => self.nsg(r).map(Mapped::Nsg),
            Kind::SecurityRule => {
                let (nsg, rule_name) = r.split_child()?;
                let rule = self.rule(&r.body, &r.at.pointer, &r.at, &nsg, Some(&rule_name))?;
                Ok(Mapped::Rule { nsg, rule })
            }
            Kind::Asg => Ok(Mapped::Asg(r.name.clone())),
            Kind::Nic => self.nic(r).map(Mapped::Nic),
            Kind::Apim => self.apim(r).map(Mapped::Apim),
            Kind::ApimApi => self.api(r),
            // Private endpoints, DNS zones, vaults, named values: `super::private_link`.
            _ => Err(ImportError::Invalid {
                at: r.at.clone(),
                message: format!("`{}` is mapped after the network resources", r.ty),
            }),
        }
    }

    fn location(&mut self, r: &Res, subject: &str) -> Result<String, ImportError> {
        let p = json::key(&r.at.pointer, "location");
        self.text(r.body.get("location"), &r.at, &p, subject, "location")?
            .ok_or_else(|| {
                invalid(
                    &r.at,
                    &r.at.pointer,
                    format!("{} `{}` has no location", r.ty, r.name),
                )
            })
    }

    fn own_subscription(&self, r: &Res) -> Option<String> {
        r.subscription
            .clone()
            .filter(|s| !s.eq_ignore_ascii_case(&self.subscription))
    }

    fn vnet(&mut self, r: &Res) -> Result<VnetDef, ImportError> {
        let subject = format!("vnets/{}", r.name);
        let region = self.location(r, &subject)?;
        let (p, pp) = r.props();
        let asp = json::key(&json::key(&pp, "addressSpace"), "addressPrefixes");
        let address_space = self
            .texts(
                p.get("addressSpace").and_then(|a| a.get("addressPrefixes")),
                &r.at,
                &asp,
                &format!("{subject}/address_space"),
                "an address prefix",
            )?
            .unwrap_or_default();
        let mut subnets = Vec::new();
        let sp = json::key(&pp, "subnets");
        let items = known_array(p.get("subnets"), &r.at, &sp, "subnets", || {
            format!("the subnet list of VNet `{}`", r.name)
        })?;
        for (i, item) in items.iter().enumerate() {
            subnets.push(self.subnet(item, &json::index(&sp, i), &r.at, &r.name, None)?);
        }
        let mut peerings = Vec::new();
        let pp2 = json::key(&pp, "virtualNetworkPeerings");
        let items = known_array(
            p.get("virtualNetworkPeerings"),
            &r.at,
            &pp2,
            "virtualNetworkPeerings",
            || format!("the peerings of VNet `{}`", r.name),
        )?;
        for (i, item) in items.iter().enumerate() {
            if let Some(e) = self.peering(item, &json::index(&pp2, i), &r.at, &r.name)? {
                peerings.push(e);
            }
        }
        Ok(VnetDef {
            name: r.name.clone(),
            region,
            subscription: self.own_subscription(r),
            address_space,
            subnets,
            peerings,
        })
    }

    /// A subnet: an inline item of a VNet, or a child resource (`name` given from the resource).
    fn subnet(
        &mut self,
        item: &Val,
        pointer: &str,
        at: &Location,
        vnet: &str,
        name: Option<&str>,
    ) -> Result<SubnetEntry, ImportError> {
        let name = match name {
            Some(n) => n.to_string(),
            None => self.name(
                item.get("name"),
                at,
                &json::key(pointer, "name"),
                "the subnet name",
            )?,
        };
        let subject = format!("vnets/{vnet}/subnets/{name}");
        let (p, pp) = props_of(item, pointer);
        let mut address_prefixes = self
            .texts(
                p.get("addressPrefixes"),
                at,
                &json::key(&pp, "addressPrefixes"),
                &subject,
                "an address prefix",
            )?
            .unwrap_or_default();
        if address_prefixes.is_empty() {
            if let Some(one) = self.text(
                p.get("addressPrefix"),
                at,
                &json::key(&pp, "addressPrefix"),
                &subject,
                "addressPrefix",
            )? {
                address_prefixes.push(one);
            }
        }
        if address_prefixes.is_empty() {
            return Err(invalid(
                at,
                &pp,
                format!("subnet `{vnet}/{name}` has no addressPrefix or addressPrefixes"),
            ));
        }
        let mut delegations = Vec::new();
        let dp = json::key(&pp, "delegations");
        match read(p.get("delegations"))? {
            Got::Missing => {}
            Got::Unknown(u) => delegations.push(self.mark(&u, &format!("{subject}/delegations"))),
            Got::Known(Val::Arr(ds)) => {
                for (i, d) in ds.iter().enumerate() {
                    let (dprops, dpp) = props_of(d, &json::index(&dp, i));
                    let sp = json::key(&dpp, "serviceName");
                    match self.text(
                        dprops.get("serviceName"),
                        at,
                        &sp,
                        &format!("{subject}/delegations"),
                        "serviceName",
                    )? {
                        Some(s) => delegations.push(s),
                        None => return Err(invalid(at, &sp, "a delegation needs a serviceName")),
                    }
                }
            }
            Got::Known(o) => {
                return Err(invalid(
                    at,
                    &dp,
                    format!("delegations must be an array, got {}", o.type_name()),
                ))
            }
        }
        let nsg = self.reference(
            p.get("networkSecurityGroup"),
            "networkSecurityGroups",
            at,
            &json::key(&pp, "networkSecurityGroup"),
            &format!("{subject}/nsg"),
        )?;
        // Issue 18: the subnet's route table and NAT gateway, by name (module `super::routing`
        // maps the resources themselves).
        let route_table = self.reference(
            p.get("routeTable"),
            "routeTables",
            at,
            &json::key(&pp, "routeTable"),
            &format!("{subject}/route_table"),
        )?;
        let nat_gateway = self.reference(
            p.get("natGateway"),
            "natGateways",
            at,
            &json::key(&pp, "natGateway"),
            &format!("{subject}/nat_gateway"),
        )?;
        let service_endpoints = self.service_endpoints(p, &pp, at, &subject)?;
        let pep = json::key(&pp, "privateEndpointNetworkPolicies");
        let private_endpoint_network_policies = match read(p.get("privateEndpointNetworkPolicies"))?
        {
            Got::Missing => PrivateEndpointPolicies::default(),
            Got::Known(Val::Str(s)) => PrivateEndpointPolicies::from_str(s)
                .map_err(|e| invalid(at, &pep, e.to_string()))?,
            Got::Known(o) => {
                return Err(invalid(
                    at,
                    &pep,
                    format!(
                        "privateEndpointNetworkPolicies must be a string, got {}",
                        o.type_name()
                    ),
                ))
            }
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    format!("privateEndpointNetworkPolicies of subnet `{vnet}/{name}`"),
                ))
            }
        };
        let mut attached = Vec::new();
        for key in ["ipConfigurations", "privateEndpoints"] {
            if let Some(Val::Arr(items)) = p.get(key) {
                attached.extend(
                    items
                        .iter()
                        .filter_map(|x| x.get("id").and_then(Val::as_str).map(str::to_string)),
                );
            }
        }
        Ok(SubnetEntry {
            file: SubnetFile {
                name,
                address_prefixes,
                delegations,
                nsg,
                resources: Vec::new(),
                private_endpoint_network_policies,
                route_table,
                nat_gateway,
                service_endpoints,
            },
            at: Location::new(at.input.clone(), pointer),
            attached,
        })
    }

    /// A subnet's `serviceEndpoints[]` (`service`, `locations`) as the fixture's
    /// `service_endpoints` ("Virtual Network service endpoints"; `Microsoft.Network
    /// virtualNetworks/subnets` `ServiceEndpointPropertiesFormat`). A value only known at
    /// deployment cannot be represented: the routes depend on it.
    fn service_endpoints(
        &mut self,
        p: &Val,
        pp: &str,
        at: &Location,
        subject: &str,
    ) -> Result<Vec<ServiceEndpointFile>, ImportError> {
        let sp = json::key(pp, "serviceEndpoints");
        let items = match read(p.get("serviceEndpoints"))? {
            Got::Missing => return Ok(Vec::new()),
            Got::Known(Val::Arr(items)) => items,
            Got::Known(o) => {
                return Err(invalid(
                    at,
                    &sp,
                    format!("serviceEndpoints must be an array, got {}", o.type_name()),
                ))
            }
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    format!("serviceEndpoints of subnet `{subject}`"),
                ))
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let (ep, epp) = props_of(item, &json::index(&sp, i));
            let svp = json::key(&epp, "service");
            let service = match read(ep.get("service"))? {
                Got::Known(Val::Str(s)) if !s.is_empty() => s.clone(),
                Got::Unknown(u) => {
                    return Err(unrepresentable(
                        &u,
                        format!("a service endpoint's service of subnet `{subject}`"),
                    ))
                }
                _ => {
                    return Err(invalid(
                        at,
                        &svp,
                        "a service endpoint needs a service (e.g. \"Microsoft.KeyVault\")",
                    ))
                }
            };
            let lp = json::key(&epp, "locations");
            let locations = match read(ep.get("locations"))? {
                Got::Unknown(u) => {
                    return Err(unrepresentable(
                        &u,
                        format!(
                            "the locations of service endpoint `{service}` of subnet `{subject}`"
                        ),
                    ))
                }
                _ => self.texts(
                    ep.get("locations"),
                    at,
                    &lp,
                    &format!("{subject}/service_endpoints"),
                    "a location",
                )?,
            };
            if let Some(bad) = locations
                .iter()
                .flatten()
                .find(|l| crate::nsg::parse_unknown_marker(l).is_some())
            {
                return Err(invalid(
                    at,
                    &lp,
                    format!("location `{bad}` of service endpoint `{service}` is only known at deployment"),
                ));
            }
            out.push(ServiceEndpointFile { service, locations });
        }
        Ok(out)
    }

    /// A peering; `None` (with a finding) when it carries no traffic.
    fn peering(
        &mut self,
        item: &Val,
        pointer: &str,
        at: &Location,
        vnet: &str,
    ) -> Result<Option<PeeringEntry>, ImportError> {
        let (p, pp) = props_of(item, pointer);
        let rp = json::key(&pp, "remoteVirtualNetwork");
        let Some(remote) = self.reference(
            p.get("remoteVirtualNetwork"),
            "virtualNetworks",
            at,
            &rp,
            &format!("vnets/{vnet}/peerings"),
        )?
        else {
            return Err(invalid(
                at,
                &pp,
                format!("a peering of VNet `{vnet}` has no remoteVirtualNetwork"),
            ));
        };
        let state = p.get("peeringState").and_then(Val::as_str).unwrap_or("");
        let access = p.get("allowVirtualNetworkAccess");
        let why = if state.eq_ignore_ascii_case("Disconnected") {
            Some("its peeringState is Disconnected")
        } else if matches!(access, Some(Val::Bool(false))) {
            Some("allowVirtualNetworkAccess is false")
        } else {
            None
        };
        if let Some(why) = why {
            self.findings.push(Finding::new(
                FindingCode::PeeringNotConnected,
                format!("vnets/{vnet}/peerings/{remote}"),
                format!("the peering from `{vnet}` to `{remote}` carries no traffic: {why}; it is left out"),
            ).at(Some((&Location::new(at.input.clone(), pointer)).into())));
            return Ok(None);
        }
        let allow_forwarded_traffic =
            matches!(p.get("allowForwardedTraffic"), Some(Val::Bool(true)));
        Ok(Some(PeeringEntry {
            remote,
            allow_forwarded_traffic,
            at: Location::new(at.input.clone(), pointer),
        }))
    }
}
