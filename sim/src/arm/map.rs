//! Mapping resources onto the fixture schema, one resource at a time: VNets with their subnets
//! and peerings, NSGs with their rules (both shapes; singular and plural fields, where null or
//! empty means unused), ASGs, NICs, the APIM instance and its APIs. Unknown values become
//! markers ([`super::marker`]); values the schema cannot mark are errors. Merging, references
//! and addresses are settled afterwards in [`super::assemble`].

use std::str::FromStr;
use std::sync::Arc;

use super::error::{ImportError, Location};
use super::json;
use super::resource::{name_in_id, subnet_of_id, Kind, Res};
use super::value::{Pending, Val};
use super::{marker, IgnoredResource, Unknown};
use crate::finding::{Finding, FindingCode};
use crate::fixture::{
    ApiFile, ApimFile, NetworkMode, PrivateEndpointPolicies, RawRule, RuleFile, Sku, SubnetFile,
};
use crate::proto::{Access, Direction, RuleProtocol};

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
    /// Records an unknown value landing in `subject` and returns its marker.
    pub fn mark(&mut self, p: &Pending, subject: &str) -> String {
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
    fn text(
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
    fn texts(
        &mut self,
        v: Option<&Val>,
        at: &Location,
        pointer: &str,
        subject: &str,
        what: &str,
    ) -> Result<Option<Vec<String>>, ImportError> {
        match read(v)? {
            Got::Missing => Ok(None),
            Got::Unknown(p) => Ok(Some(vec![self.mark(&p, subject)])),
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
                let (vnet, sub) = split_child(r)?;
                let entry = self.subnet(&r.body, &r.at.pointer, &r.at, &vnet, Some(&sub))?;
                Ok(Mapped::Subnet { vnet, entry })
            }
            Kind::Peering => {
                let (vnet, _) = split_child(r)?;
                let entry = self.peering(&r.body, &r.at.pointer, &r.at, &vnet)?;
                Ok(Mapped::Peering { vnet, entry })
            }
            Kind::Nsg => self.nsg(r).map(Mapped::Nsg),
            Kind::SecurityRule => {
                let (nsg, rule_name) = split_child(r)?;
                let rule = self.rule(&r.body, &r.at.pointer, &r.at, &nsg, Some(&rule_name))?;
                Ok(Mapped::Rule { nsg, rule })
            }
            Kind::Asg => Ok(Mapped::Asg(r.name.clone())),
            Kind::Nic => self.nic(r).map(Mapped::Nic),
            Kind::Apim => self.apim(r).map(Mapped::Apim),
            Kind::ApimApi => self.api(r),
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
        match read(p.get("subnets"))? {
            Got::Missing => {}
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    format!("the subnet list of VNet `{}`", r.name),
                ))
            }
            Got::Known(Val::Arr(items)) => {
                for (i, item) in items.iter().enumerate() {
                    subnets.push(self.subnet(item, &json::index(&sp, i), &r.at, &r.name, None)?);
                }
            }
            Got::Known(o) => {
                return Err(invalid(
                    &r.at,
                    &sp,
                    format!("subnets must be an array, got {}", o.type_name()),
                ))
            }
        }
        let mut peerings = Vec::new();
        let pp2 = json::key(&pp, "virtualNetworkPeerings");
        match read(p.get("virtualNetworkPeerings"))? {
            Got::Missing => {}
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    format!("the peerings of VNet `{}`", r.name),
                ))
            }
            Got::Known(Val::Arr(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(e) = self.peering(item, &json::index(&pp2, i), &r.at, &r.name)? {
                        peerings.push(e);
                    }
                }
            }
            Got::Known(o) => {
                return Err(invalid(
                    &r.at,
                    &pp2,
                    format!(
                        "virtualNetworkPeerings must be an array, got {}",
                        o.type_name()
                    ),
                ))
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
            },
            at: Location::new(at.input.clone(), pointer),
            attached,
        })
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
            ));
            return Ok(None);
        }
        Ok(Some(PeeringEntry { remote }))
    }

    fn nsg(&mut self, r: &Res) -> Result<NsgDef, ImportError> {
        let (p, pp) = r.props();
        let fp = json::key(&pp, "flushConnection");
        let flush_connection = match read(p.get("flushConnection"))? {
            Got::Missing => false,
            Got::Known(Val::Bool(b)) => *b,
            Got::Known(o) => {
                return Err(invalid(
                    &r.at,
                    &fp,
                    format!("flushConnection must be a bool, got {}", o.type_name()),
                ))
            }
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    format!("flushConnection of NSG `{}`", r.name),
                ))
            }
        };
        let mut rules = Vec::new();
        let rp = json::key(&pp, "securityRules");
        match read(p.get("securityRules"))? {
            Got::Missing => {}
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    format!("the rule list of NSG `{}`", r.name),
                ))
            }
            Got::Known(Val::Arr(items)) => {
                for (i, item) in items.iter().enumerate() {
                    rules.push(self.rule(item, &json::index(&rp, i), &r.at, &r.name, None)?);
                }
            }
            Got::Known(o) => {
                return Err(invalid(
                    &r.at,
                    &rp,
                    format!("securityRules must be an array, got {}", o.type_name()),
                ))
            }
        }
        if let Some(Val::Arr(defaults)) = p.get("defaultSecurityRules") {
            self.check_defaults(&r.name, defaults);
        }
        Ok(NsgDef {
            name: r.name.clone(),
            flush_connection,
            rules,
        })
    }

    /// A security rule: inline in an NSG, or a child resource (`name` given from the resource).
    pub(crate) fn rule(
        &mut self,
        item: &Val,
        pointer: &str,
        at: &Location,
        nsg: &str,
        name: Option<&str>,
    ) -> Result<RuleFile, ImportError> {
        let name = match name {
            Some(n) => n.to_string(),
            None => self.name(
                item.get("name"),
                at,
                &json::key(pointer, "name"),
                &format!("the name of a rule of NSG `{nsg}`"),
            )?,
        };
        let subject = format!("nsgs/{nsg}/security_rules/{name}");
        let (p, pp) = props_of(item, pointer);
        let field = |k: &str| json::key(&pp, k);
        let priority = match read(p.get("priority"))? {
            Got::Known(Val::Int(i)) => *i,
            Got::Known(Val::Str(s)) if s.trim().parse::<i64>().is_ok() => {
                s.trim().parse::<i64>().unwrap_or_default()
            }
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    format!(
                        "the priority of rule `{name}` (it decides which rules are examined first)"
                    ),
                ))
            }
            Got::Missing => return Err(invalid(at, &pp, format!("rule `{name}` has no priority"))),
            Got::Known(o) => {
                return Err(invalid(
                    at,
                    &field("priority"),
                    format!("priority must be an int, got {}", o.type_name()),
                ))
            }
        };
        let direction = match read(p.get("direction"))? {
            Got::Known(Val::Str(s)) => Direction::from_str(s)
                .map_err(|e| invalid(at, &field("direction"), e.to_string()))?,
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    format!("the direction of rule `{name}`"),
                ))
            }
            Got::Missing => {
                return Err(invalid(at, &pp, format!("rule `{name}` has no direction")))
            }
            Got::Known(o) => {
                return Err(invalid(
                    at,
                    &field("direction"),
                    format!("direction must be a string, got {}", o.type_name()),
                ))
            }
        };
        // Unknown access or protocol: the rule is kept widened (Deny, `*`) and its source ports
        // become the marker, so every flow that reaches it and matches the rest is unknown.
        let mut rule_markers = Vec::new();
        let access = match read(p.get("access"))? {
            Got::Known(Val::Str(s)) => {
                Access::from_str(s).map_err(|e| invalid(at, &field("access"), e.to_string()))?
            }
            Got::Unknown(u) => {
                rule_markers.push(self.mark(&u, &format!("{subject}/access")));
                Access::Deny
            }
            Got::Missing => return Err(invalid(at, &pp, format!("rule `{name}` has no access"))),
            Got::Known(o) => {
                return Err(invalid(
                    at,
                    &field("access"),
                    format!("access must be a string, got {}", o.type_name()),
                ))
            }
        };
        let protocol = match read(p.get("protocol"))? {
            Got::Known(Val::Str(s)) => RuleProtocol::from_str(s)
                .map_err(|e| invalid(at, &field("protocol"), e.to_string()))?,
            Got::Unknown(u) => {
                rule_markers.push(self.mark(&u, &format!("{subject}/protocol")));
                RuleProtocol::Any
            }
            Got::Missing => return Err(invalid(at, &pp, format!("rule `{name}` has no protocol"))),
            Got::Known(o) => {
                return Err(invalid(
                    at,
                    &field("protocol"),
                    format!("protocol must be a string, got {}", o.type_name()),
                ))
            }
        };
        let mut raw = RawRule {
            name: name.clone(),
            priority,
            direction: Some(direction),
            access: Some(access),
            protocol: Some(protocol),
            ..RawRule::default()
        };
        for side in ["source", "destination"] {
            let (one, many, asgs) = self.address_side(p, &pp, at, side, &subject)?;
            let (range, ranges) = self.port_side(p, &pp, at, side, &subject)?;
            if side == "source" {
                raw.source_address_prefix = one;
                raw.source_address_prefixes = many;
                raw.source_application_security_groups = asgs;
                raw.source_port_range = range;
                raw.source_port_ranges = ranges;
            } else {
                raw.destination_address_prefix = one;
                raw.destination_address_prefixes = many;
                raw.destination_application_security_groups = asgs;
                raw.destination_port_range = range;
                raw.destination_port_ranges = ranges;
            }
        }
        if !rule_markers.is_empty() {
            raw.source_port_range = None;
            raw.source_port_ranges = Some(rule_markers);
        }
        raw.description = match read(p.get("description"))? {
            Got::Known(Val::Str(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        RuleFile::try_from(raw).map_err(|m| invalid(at, &pp, m))
    }

    /// One side's address: `(prefix, prefixes, asgs)`, exactly one set.
    #[allow(clippy::type_complexity)]
    fn address_side(
        &mut self,
        p: &Val,
        pp: &str,
        at: &Location,
        side: &str,
        subject: &str,
    ) -> Result<(Option<String>, Option<Vec<String>>, Option<Vec<String>>), ImportError> {
        let sub = format!("{subject}/{side}");
        let k1 = format!("{side}AddressPrefix");
        let k2 = format!("{side}AddressPrefixes");
        let k3 = format!("{side}ApplicationSecurityGroups");
        let single_unknown = matches!(p.get(&k1), Some(Val::Unknown(_)));
        let plural_unknown = matches!(p.get(&k2), Some(Val::Unknown(_)));
        let asgs_unknown = matches!(p.get(&k3), Some(Val::Unknown(_)));
        let one = self.text(p.get(&k1), at, &json::key(pp, &k1), &sub, &k1)?;
        let many = self.texts(p.get(&k2), at, &json::key(pp, &k2), &sub, &k2)?;
        let asgs = self.asg_list(p.get(&k3), at, &json::key(pp, &k3), &sub)?;
        let mut markers = Vec::new();
        let mut known: Vec<(&str, Vec<String>)> = Vec::new();
        for (key, unknown, v) in [
            (&k1, single_unknown, one.map(|x| vec![x])),
            (&k2, plural_unknown, many),
            (&k3, asgs_unknown, asgs),
        ] {
            match (unknown, v) {
                (true, Some(m)) => markers.extend(m),
                (false, Some(items)) => known.push((key.as_str(), items)),
                _ => {}
            }
        }
        if known.len() > 1 {
            return Err(invalid(
                at,
                pp,
                format!(
                    "rule `{subject}` sets both {} and {}; Azure accepts one of them",
                    known[0].0, known[1].0
                ),
            ));
        }
        let is_asgs = known.first().is_some_and(|(k, _)| *k == k3.as_str());
        let is_single = known.first().is_some_and(|(k, _)| *k == k1.as_str());
        Ok(match (known.pop(), markers.is_empty()) {
            (None, true) => {
                return Err(invalid(
                    at,
                    pp,
                    format!("rule `{subject}` has no {side} address ({k1}, {k2} or {k3})"),
                ));
            }
            (Some((_, items)), true) if is_single => (items.into_iter().next(), None, None),
            (Some((_, items)), true) if is_asgs => (None, None, Some(items)),
            (Some((_, items)), true) => (None, Some(items), None),
            (Some((_, mut items)), false) if is_asgs => {
                items.extend(markers);
                (None, None, Some(items))
            }
            (Some((_, mut items)), false) => {
                items.extend(markers);
                (None, Some(items), None)
            }
            (None, false) if markers.len() == 1 && single_unknown => (markers.pop(), None, None),
            (None, false) => (None, Some(markers), None),
        })
    }

    /// One side's ports: `(range, ranges)`, exactly one set.
    fn port_side(
        &mut self,
        p: &Val,
        pp: &str,
        at: &Location,
        side: &str,
        subject: &str,
    ) -> Result<(Option<String>, Option<Vec<String>>), ImportError> {
        let sub = format!("{subject}/{side}_ports");
        let k1 = format!("{side}PortRange");
        let k2 = format!("{side}PortRanges");
        let single_unknown = matches!(p.get(&k1), Some(Val::Unknown(_)));
        let plural_unknown = matches!(p.get(&k2), Some(Val::Unknown(_)));
        let one = self.text(p.get(&k1), at, &json::key(pp, &k1), &sub, &k1)?;
        let many = self.texts(p.get(&k2), at, &json::key(pp, &k2), &sub, &k2)?;
        let mut markers = Vec::new();
        let mut known_one = None;
        let mut known_many = None;
        match (single_unknown, one) {
            (true, Some(m)) => markers.push(m),
            (false, Some(x)) => known_one = Some(x),
            _ => {}
        }
        match (plural_unknown, many) {
            (true, Some(m)) => markers.extend(m),
            (false, Some(x)) => known_many = Some(x),
            _ => {}
        }
        Ok(match (known_one, known_many, markers.is_empty()) {
            (Some(_), Some(_), _) => {
                return Err(invalid(
                    at,
                    pp,
                    format!("rule `{subject}` sets both {k1} and {k2}; Azure accepts one of them"),
                ));
            }
            (None, None, true) => {
                return Err(invalid(
                    at,
                    pp,
                    format!("rule `{subject}` has no {side} port ({k1} or {k2})"),
                ));
            }
            (Some(x), None, true) => (Some(x), None),
            (None, Some(xs), true) => (None, Some(xs)),
            (Some(x), None, false) => (None, Some(std::iter::once(x).chain(markers).collect())),
            (None, Some(mut xs), false) => {
                xs.extend(markers);
                (None, Some(xs))
            }
            (None, None, false) if markers.len() == 1 && single_unknown => (markers.pop(), None),
            (None, None, false) => (None, Some(markers)),
        })
    }

    /// ASG references `[{ "id": ... }]` → names (markers for unknown ones).
    fn asg_list(
        &mut self,
        v: Option<&Val>,
        at: &Location,
        pointer: &str,
        subject: &str,
    ) -> Result<Option<Vec<String>>, ImportError> {
        match read(v)? {
            Got::Missing => Ok(None),
            Got::Unknown(p) => Ok(Some(vec![self.mark(&p, subject)])),
            Got::Known(Val::Arr(a)) if a.is_empty() => Ok(None),
            Got::Known(Val::Arr(a)) => {
                let mut out = Vec::new();
                for (i, x) in a.iter().enumerate() {
                    if let Some(n) = self.reference(
                        Some(x),
                        "applicationSecurityGroups",
                        at,
                        &json::index(pointer, i),
                        subject,
                    )? {
                        if !super::is_marker(&n)
                            && !self
                                .referenced_asgs
                                .iter()
                                .any(|a| a.eq_ignore_ascii_case(&n))
                        {
                            self.referenced_asgs.push(n.clone());
                        }
                        out.push(n);
                    }
                }
                Ok((!out.is_empty()).then_some(out))
            }
            Got::Known(o) => Err(invalid(
                at,
                pointer,
                format!(
                    "application security groups must be an array, got {}",
                    o.type_name()
                ),
            )),
        }
    }

    /// Compares an export's `defaultSecurityRules` with the six rules vnetsim applies.
    fn check_defaults(&mut self, nsg: &str, defaults: &[Val]) {
        let expected = crate::nsg::default_rules();
        let norm_addr = |s: &str| -> String {
            let t = s.trim();
            if t == "*" || t == "0.0.0.0/0" || t.eq_ignore_ascii_case("any") {
                "*".into()
            } else {
                t.to_ascii_lowercase()
            }
        };
        let norm_port = |s: &str| -> String {
            if s.trim() == "0-65535" {
                "*".into()
            } else {
                s.trim().to_string()
            }
        };
        let mut seen = Vec::new();
        for item in defaults {
            let (p, _) = props_of(item, "");
            let name = item
                .get("name")
                .and_then(Val::as_str)
                .unwrap_or("")
                .to_string();
            let subject = format!("nsgs/{nsg}/defaultSecurityRules/{name}");
            let Some(e) = expected.iter().find(|e| e.name.eq_ignore_ascii_case(&name)) else {
                self.findings.push(Finding::new(
                    FindingCode::DefaultRulesMismatch,
                    subject,
                    format!("the export lists default rule `{name}`, which is not one of the six default rules vnetsim applies"),
                ));
                continue;
            };
            seen.push(e.name.clone());
            let s = |k: &str| p.get(k).and_then(Val::as_str).unwrap_or("").to_string();
            let mut diffs = Vec::new();
            if p.get("priority")
                .and_then(|v| if let Val::Int(i) = v { Some(*i) } else { None })
                != Some(i64::from(e.priority))
            {
                diffs.push(format!("priority (vnetsim: {})", e.priority));
            }
            if !s("direction").eq_ignore_ascii_case(e.direction.as_str()) {
                diffs.push(format!("direction (vnetsim: {})", e.direction));
            }
            if !s("access").eq_ignore_ascii_case(e.access.as_str()) {
                diffs.push(format!("access (vnetsim: {})", e.access));
            }
            if RuleProtocol::from_str(&s("protocol")).ok() != Some(e.protocol) {
                diffs.push(format!("protocol (vnetsim: {})", e.protocol));
            }
            for (k, spec) in [
                ("sourceAddressPrefix", &e.source),
                ("destinationAddressPrefix", &e.destination),
            ] {
                let want = norm_addr(spec.text.first().map_or("*", String::as_str));
                if norm_addr(&s(k)) != want {
                    diffs.push(format!("{k} (vnetsim: {})", spec.text.join(", ")));
                }
            }
            for k in ["sourcePortRange", "destinationPortRange"] {
                if norm_port(&s(k)) != "*" {
                    diffs.push(format!("{k} (vnetsim: *)"));
                }
            }
            if !diffs.is_empty() {
                self.findings.push(Finding::new(
                    FindingCode::DefaultRulesMismatch,
                    subject,
                    format!("the export's default rule `{name}` differs from vnetsim's in {}; vnetsim evaluates its own", diffs.join(", ")),
                ));
            }
        }
        for e in &expected {
            if !seen.iter().any(|s| s == &e.name) {
                self.findings.push(Finding::new(
                    FindingCode::DefaultRulesMismatch,
                    format!("nsgs/{nsg}/defaultSecurityRules/{}", e.name),
                    format!(
                        "the export's defaultSecurityRules lack `{}`; vnetsim applies it anyway",
                        e.name
                    ),
                ));
            }
        }
    }

    fn nic(&mut self, r: &Res) -> Result<NicDef, ImportError> {
        let subject = format!("hosts/{}", r.name);
        let (p, pp) = r.props();
        let nsg = self.reference(
            p.get("networkSecurityGroup"),
            "networkSecurityGroups",
            &r.at,
            &json::key(&pp, "networkSecurityGroup"),
            &format!("{subject}/nsg"),
        )?;
        let cp = json::key(&pp, "ipConfigurations");
        let items = match read(p.get("ipConfigurations"))? {
            Got::Known(Val::Arr(items)) if !items.is_empty() => items,
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    format!("the IP configurations of NIC `{}`", r.name),
                ))
            }
            _ => {
                return Err(invalid(
                    &r.at,
                    &pp,
                    format!("NIC `{}` has no ipConfigurations", r.name),
                ))
            }
        };
        let mut ip_configs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ptr = json::index(&cp, i);
            let name = self.name(
                item.get("name"),
                &r.at,
                &json::key(&ptr, "name"),
                "the IP configuration name",
            )?;
            let (c, cpp) = props_of(item, &ptr);
            let method = c
                .get("privateIPAllocationMethod")
                .and_then(Val::as_str)
                .unwrap_or("Dynamic");
            let address = match self.text(
                c.get("privateIPAddress"),
                &r.at,
                &json::key(&cpp, "privateIPAddress"),
                &format!("{subject}/address"),
                "privateIPAddress",
            )? {
                Some(a) => Addr::Static(a),
                None if method.eq_ignore_ascii_case("Static") => {
                    return Err(invalid(&r.at, &cpp, format!("IP configuration `{name}` of NIC `{}` is Static but has no privateIPAddress", r.name)));
                }
                None => Addr::Dynamic,
            };
            let subnet = match self.reference(
                c.get("subnet"),
                "subnets",
                &r.at,
                &json::key(&cpp, "subnet"),
                &format!("{subject}/subnet"),
            )? {
                Some(m) if super::is_marker(&m) => m,
                Some(_) => {
                    let id = c
                        .get("subnet")
                        .and_then(|s| s.get("id"))
                        .and_then(Val::as_str)
                        .unwrap_or("");
                    subnet_of_id(id).ok_or_else(|| {
                        invalid(
                            &r.at,
                            &json::key(&cpp, "subnet"),
                            format!("`{id}` is not a subnet id"),
                        )
                    })?
                }
                None => {
                    return Err(invalid(
                        &r.at,
                        &cpp,
                        format!(
                            "IP configuration `{name}` of NIC `{}` has no subnet",
                            r.name
                        ),
                    ))
                }
            };
            let asgs = self
                .asg_list(
                    c.get("applicationSecurityGroups"),
                    &r.at,
                    &json::key(&cpp, "applicationSecurityGroups"),
                    &format!("{subject}/application_security_groups"),
                )?
                .unwrap_or_default();
            let primary = matches!(c.get("primary"), Some(Val::Bool(true)));
            let ipv6 = c
                .get("privateIPAddressVersion")
                .and_then(Val::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case("IPv6"));
            ip_configs.push(IpConfig {
                name,
                address,
                subnet,
                asgs,
                primary,
                ipv6,
            });
        }
        Ok(NicDef {
            name: r.name.clone(),
            nsg,
            ip_configs,
        })
    }

    fn apim(&mut self, r: &Res) -> Result<ApimDef, ImportError> {
        let region = self.location(r, "apim/region")?;
        let sku_v = r.body.get("sku");
        let sp = json::key(&r.at.pointer, "sku");
        let sku = match read(sku_v.and_then(|s| s.get("name")))? {
            Got::Known(Val::Str(s)) => Sku::from_str(s)
                .map_err(|e| invalid(&r.at, &json::key(&sp, "name"), e.to_string()))?,
            Got::Unknown(u) => {
                return Err(unrepresentable(&u, "the API Management tier (sku.name)"))
            }
            _ => {
                return Err(invalid(
                    &r.at,
                    &sp,
                    format!("API Management instance `{}` has no sku.name", r.name),
                ))
            }
        };
        let capacity = match read(sku_v.and_then(|s| s.get("capacity")))? {
            Got::Missing => 1,
            Got::Known(Val::Int(i)) => u32::try_from(*i).map_err(|_| {
                invalid(
                    &r.at,
                    &json::key(&sp, "capacity"),
                    format!("capacity {i} is not a unit count"),
                )
            })?,
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    "the API Management capacity (sku.capacity)",
                ))
            }
            Got::Known(o) => {
                return Err(invalid(
                    &r.at,
                    &json::key(&sp, "capacity"),
                    format!("capacity must be an int, got {}", o.type_name()),
                ))
            }
        };
        let (p, pp) = r.props();
        let tp = json::key(&pp, "virtualNetworkType");
        let vnet_type = match read(p.get("virtualNetworkType"))? {
            Got::Missing => "none".to_string(),
            Got::Known(Val::Str(s)) => s.to_ascii_lowercase(),
            Got::Unknown(u) => return Err(unrepresentable(&u, "virtualNetworkType")),
            Got::Known(o) => {
                return Err(invalid(
                    &r.at,
                    &tp,
                    format!("virtualNetworkType must be a string, got {}", o.type_name()),
                ))
            }
        };
        let cp = json::key(
            &json::key(&pp, "virtualNetworkConfiguration"),
            "subnetResourceId",
        );
        let subnet = match self.text(
            p.get("virtualNetworkConfiguration")
                .and_then(|c| c.get("subnetResourceId")),
            &r.at,
            &cp,
            "apim/subnet",
            "subnetResourceId",
        )? {
            Some(m) if super::is_marker(&m) => Some(m),
            Some(id) => Some(
                subnet_of_id(&id)
                    .ok_or_else(|| invalid(&r.at, &cp, format!("`{id}` is not a subnet id")))?,
            ),
            None => None,
        };
        let v2 = matches!(sku, Sku::BasicV2 | Sku::StandardV2 | Sku::PremiumV2);
        let (mode, classic) = match vnet_type.as_str() {
            "none" | "" => (NetworkMode::None, None),
            "external" if v2 => (NetworkMode::Integration, None),
            "internal" if v2 => (NetworkMode::Injection, None),
            "external" | "internal" => (NetworkMode::None, Some(vnet_type.clone())),
            other => {
                return Err(invalid(
                    &r.at,
                    &tp,
                    format!("virtualNetworkType `{other}` is not None, External or Internal"),
                ))
            }
        };
        let mut address = None;
        let mut public_address = None;
        if r.export {
            let first = |k: &str| match p.get(k) {
                Some(Val::Arr(a)) => a.first().and_then(Val::as_str).map(str::to_string),
                _ => None,
            };
            if mode == NetworkMode::Injection {
                address = first("privateIPAddresses");
            }
            public_address = first("publicIPAddresses").filter(|a| {
                a.parse::<std::net::IpAddr>()
                    .is_ok_and(crate::cidr::is_public)
            });
        }
        if let Some(kind) = &classic {
            self.findings.push(Finding::new(
                FindingCode::ClassicTierVnet,
                "apim",
                format!(
                    "`{}` is a classic {sku} instance with virtualNetworkType {kind}: classic VNet injection, not v2 integration or injection, so the v2 preflight does not apply; it is imported with virtual_network = \"none\" (subnet kept for reference), and the subnet's NSG rules still evaluate for flows in the VNet",
                    r.name
                ),
            ));
        }
        Ok(ApimDef {
            file: ApimFile {
                name: r.name.clone(),
                sku,
                capacity,
                region,
                subscription: self.own_subscription(r),
                virtual_network: mode,
                subnet,
                previous_virtual_network: None,
                address,
                public_address,
            },
            classic_vnet: classic,
        })
    }

    fn api(&mut self, r: &Res) -> Result<Mapped, ImportError> {
        let (service, api) = split_child(r)?;
        let ignore = |reason: String| {
            Ok(Mapped::Ignored(IgnoredResource {
                resource_type: r.ty.clone(),
                name: r.name.clone(),
                input: r.at.input.clone(),
                pointer: r.at.pointer.clone(),
                reason,
            }))
        };
        if api.contains(";rev=") {
            return ignore("an API revision (only the current revision is routed)".into());
        }
        let (p, pp) = r.props();
        if matches!(p.get("isCurrent"), Some(Val::Bool(false))) {
            return ignore("not the current revision".into());
        }
        let subject = format!("apis/{api}");
        let path = self
            .text(
                p.get("path"),
                &r.at,
                &json::key(&pp, "path"),
                &format!("{subject}/path"),
                "path",
            )?
            .unwrap_or_default();
        let Some(backend) = self.text(
            p.get("serviceUrl"),
            &r.at,
            &json::key(&pp, "serviceUrl"),
            &format!("{subject}/backend"),
            "serviceUrl",
        )?
        else {
            return ignore(
                "the API has no serviceUrl (a backend set by policy is not modelled)".into(),
            );
        };
        let path = if super::is_marker(&path) {
            path
        } else {
            format!("/{}", path.trim_start_matches('/'))
        };
        Ok(Mapped::Api(ApiDef {
            service,
            file: ApiFile {
                name: api,
                path,
                backend,
            },
        }))
    }
}

/// `parent/child` of a child resource's full name.
fn split_child(r: &Res) -> Result<(String, String), ImportError> {
    match r.name.rsplit_once('/') {
        Some((parent, child)) if !parent.is_empty() && !child.is_empty() => Ok((
            parent.rsplit('/').next().unwrap_or(parent).to_string(),
            child.to_string(),
        )),
        _ => Err(ImportError::Invalid {
            at: r.at.clone(),
            message: format!("{} name `{}` must be `parent/child`", r.ty, r.name),
        }),
    }
}
