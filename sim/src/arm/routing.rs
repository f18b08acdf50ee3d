//! Routing resources (issue 18), mapped after the network:
//!
//! | Azure | Fixture |
//! |---|---|
//! | `Microsoft.Network/routeTables` (+ inline `routes`, `disableBgpRoutePropagation`) and `…/routeTables/routes` | `[[route_tables]]` with `routes` (`addressPrefix`, `nextHopType`, `nextHopIpAddress`) |
//! | a subnet's `routeTable.id`, `natGateway.id` | the subnet's `route_table`, `nat_gateway` (module `map`) |
//! | a subnet's `serviceEndpoints[]` (`service`, `locations`) | the subnet's `service_endpoints` (module `map`) |
//! | `Microsoft.Network/natGateways`: `publicIpAddresses[].id` | `[[nat_gateways]]`; each address from the public IP resource's `ipAddress`, else an unknown (allocated at deployment) |
//! | `Microsoft.Network/azureFirewalls`: `ipConfigurations[]` (`subnet.id`, `publicIPAddress.id`, `privateIPAddress`), classic `networkRuleCollections` / `applicationRuleCollections` / `natRuleCollections` (`translatedAddress`, `translatedFqdn`, `translatedPort`), `firewallPolicy.id` | `[[firewalls]]`; the private address, when not given, is the first usable address of its subnet (`ASSUMPTION_FIREWALL_PRIVATE_ADDRESS`) |
//! | `Microsoft.Network/firewallPolicies` + `…/ruleCollectionGroups` (`priority`, `ruleCollections`: filter and NAT collections, network and application rules) | the firewall's `rule_collection_groups` |
//! | VNet peerings' `allowForwardedTraffic`, NICs' `enableIPForwarding` | `peerings` tables, host `ip_forwarding` (module `map`) |
//!
//! A NAT gateway or firewall whose references are not among the inputs (its subnet, public IP
//! or policy) or whose lists are known only at deployment is left out, listed in
//! [`super::ImportResult::ignored`] with the reason. Rule fields vnetsim cannot evaluate (IP groups, FQDN tags, network-rule FQDNs, web
//! categories, target URLs, TLS inspection) and parent policies (`basePolicy`) leave the
//! firewall out, listed in [`super::ImportResult::ignored`] with the reason; a route that sends
//! traffic to it then names a next hop the build reports.
//!
//! "Create, change, or delete a route table",
//! <https://learn.microsoft.com/azure/virtual-network/manage-route-table>; ARM references
//! <https://learn.microsoft.com/azure/templates/microsoft.network/routetables>,
//! <https://learn.microsoft.com/azure/templates/microsoft.network/azurefirewalls>,
//! <https://learn.microsoft.com/azure/templates/microsoft.network/firewallpolicies/rulecollectiongroups>.

use std::collections::BTreeSet;
use std::str::FromStr;

use super::error::{ImportError, Location};
use super::json;
use super::map::{known_array, props_of, read, Got, Mapper};
use super::resource::{name_in_id, Kind, Res};
use super::value::{Pending, Val};
use super::IgnoredResource;
use crate::cidr::Cidr;
use crate::finding::Assumption;
use crate::fixture::{
    CollectionKind, FirewallAction, FirewallFile, FirewallRuleFile, Fixture, NatGatewayFile,
    NextHopType, RouteFile, RouteTableFile, RuleCollectionFile, RuleCollectionGroupFile,
};

/// Name of the group classic rule collections are put in (after any policy group).
const CLASSIC_GROUP: &str = "classic-rules";
/// The offset of a subnet's first usable address (Azure reserves the first four).
const FIRST_USABLE: u128 = 4;

/// What the mapping added, besides the fixture changes.
#[derive(Default)]
pub(crate) struct Outcome {
    pub ignored: Vec<IgnoredResource>,
    pub assumptions: BTreeSet<Assumption>,
}

fn invalid(at: &Location, pointer: &str, message: impl Into<String>) -> ImportError {
    ImportError::Invalid {
        at: Location::new(at.input.clone(), pointer),
        message: message.into(),
    }
}

fn missing(at: &Location, pointer: &str, message: impl Into<String>) -> ImportError {
    ImportError::MissingReference {
        at: Location::new(at.input.clone(), pointer),
        message: message.into(),
    }
}

/// The segment after `key` in an id (case-insensitively), else the id's last segment.
fn id_name(id: &str, key: &str) -> String {
    if super::is_marker(id) {
        return id.to_string();
    }
    name_in_id(id, key).unwrap_or_else(|| {
        id.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(id)
            .to_string()
    })
}

/// `{ "id": ... }` → the id text (known or a marker).
fn id_of(
    m: &mut Mapper,
    v: Option<&Val>,
    at: &Location,
    pointer: &str,
    subject: &str,
) -> Result<Option<String>, ImportError> {
    match read(v)? {
        Got::Missing => Ok(None),
        Got::Unknown(p) => Ok(Some(m.mark(&p, subject))),
        Got::Known(o) => m.text(
            o.get("id"),
            at,
            &json::key(pointer, "id"),
            subject,
            "a resource id",
        ),
    }
}

fn required(
    m: &mut Mapper,
    v: Option<&Val>,
    at: &Location,
    pointer: &str,
    subject: &str,
    what: &str,
) -> Result<String, ImportError> {
    m.text(v, at, pointer, subject, what)?
        .ok_or_else(|| invalid(at, pointer, format!("{what} is missing")))
}

fn list(
    m: &mut Mapper,
    v: Option<&Val>,
    at: &Location,
    pointer: &str,
    subject: &str,
    what: &str,
) -> Result<Vec<String>, ImportError> {
    Ok(m.texts(v, at, pointer, subject, what)?.unwrap_or_default())
}

fn priority(v: Option<&Val>, at: &Location, pointer: &str) -> Result<u32, ImportError> {
    match read(v)? {
        Got::Known(Val::Int(i)) if (100..=65000).contains(i) => Ok(*i as u32),
        Got::Unknown(p) => Err(ImportError::Unrepresentable {
            at: Location::new(p.input.clone(), p.pointer.clone()),
            what: "a rule collection priority".into(),
            expression: p.expression.clone(),
            reason: p.reason.clone(),
        }),
        _ => Err(invalid(
            at,
            pointer,
            "priority must be an integer from 100 to 65000",
        )),
    }
}

fn parse_enum<T: FromStr>(
    v: Option<&Val>,
    at: &Location,
    pointer: &str,
    what: &str,
) -> Result<T, ImportError>
where
    T::Err: std::fmt::Display,
{
    match read(v)? {
        Got::Known(Val::Str(s)) => T::from_str(s).map_err(|e| invalid(at, pointer, e.to_string())),
        Got::Unknown(p) => Err(ImportError::Unrepresentable {
            at: Location::new(p.input.clone(), p.pointer.clone()),
            what: what.into(),
            expression: p.expression.clone(),
            reason: p.reason.clone(),
        }),
        _ => Err(invalid(at, pointer, format!("{what} must be a string"))),
    }
}

/// One route (an inline item or the properties of a route resource).
fn route(
    m: &mut Mapper,
    name: String,
    p: &Val,
    at: &Location,
    pp: &str,
    subject: &str,
) -> Result<RouteFile, ImportError> {
    let address_prefix = required(
        m,
        p.get("addressPrefix"),
        at,
        &json::key(pp, "addressPrefix"),
        subject,
        "addressPrefix",
    )?;
    let next_hop_type: NextHopType = parse_enum(
        p.get("nextHopType"),
        at,
        &json::key(pp, "nextHopType"),
        "nextHopType",
    )?;
    let next_hop_ip_address = m.text(
        p.get("nextHopIpAddress"),
        at,
        &json::key(pp, "nextHopIpAddress"),
        subject,
        "nextHopIpAddress",
    )?;
    Ok(RouteFile {
        name,
        address_prefix,
        next_hop_type,
        next_hop_ip_address,
    })
}

fn item_name(item: &Val, at: &Location, pointer: &str, what: &str) -> Result<String, ImportError> {
    match read(item.get("name"))? {
        Got::Known(Val::Str(s)) if !s.is_empty() => Ok(s.clone()),
        Got::Unknown(p) => Err(ImportError::Unrepresentable {
            at: Location::new(p.input.clone(), p.pointer.clone()),
            what: what.into(),
            expression: p.expression.clone(),
            reason: p.reason.clone(),
        }),
        _ => Err(invalid(
            at,
            &json::key(pointer, "name"),
            format!("{what} is missing"),
        )),
    }
}

/// Maps the issue-18 kinds among `resources` into `f`.
pub(crate) fn apply(
    resources: &[&Res],
    f: &mut Fixture,
    m: &mut Mapper,
) -> Result<Outcome, ImportError> {
    let mut out = Outcome::default();
    let of = |k: Kind| resources.iter().filter(move |r| r.kind == k);
    // Route tables, then their child routes.
    for r in of(Kind::RouteTable) {
        let subject = format!("route_tables/{}", r.name);
        let (p, pp) = r.props();
        let disable_bgp_route_propagation =
            matches!(p.get("disableBgpRoutePropagation"), Some(Val::Bool(true)));
        let rp = json::key(&pp, "routes");
        let mut routes = Vec::new();
        for (i, item) in known_array(p.get("routes"), &r.at, &rp, "routes", || {
            format!("the routes of route table `{}`", r.name)
        })?
        .iter()
        .enumerate()
        {
            let ip = json::index(&rp, i);
            let name = item_name(item, &r.at, &ip, "the route name")?;
            let (ps, ppp) = props_of(item, &ip);
            routes.push(route(m, name, ps, &r.at, &ppp, &subject)?);
        }
        let table = RouteTableFile {
            name: r.name.clone(),
            disable_bgp_route_propagation,
            routes,
        };
        match f
            .route_tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(&r.name))
        {
            Some(t0) if *t0 != table => {
                return Err(invalid(
                    &r.at,
                    &r.at.pointer,
                    format!("route table `{}` is defined twice, differently", r.name),
                ))
            }
            Some(_) => {}
            None => f.route_tables.push(table),
        }
    }
    for r in of(Kind::Route) {
        let (table, name) = r.split_child()?;
        let subject = format!("route_tables/{table}");
        let (p, pp) = r.props();
        let rt = route(m, name, p, &r.at, &pp, &subject)?;
        let Some(t) = f
            .route_tables
            .iter_mut()
            .find(|t| t.name.eq_ignore_ascii_case(&table))
        else {
            return Err(missing(
                &r.at,
                &r.at.pointer,
                format!("route `{}` belongs to route table `{table}`, which is not among the inputs (`az network route-table show` provides it)", r.name),
            ));
        };
        if !t
            .routes
            .iter()
            .any(|x| x.name.eq_ignore_ascii_case(&rt.name))
        {
            t.routes.push(rt);
        }
    }
    // Public IP addresses by lower-cased name: the known address, else a marker.
    let public_ips: Vec<&&Res> = of(Kind::PublicIp).collect();
    let used_ips = std::cell::RefCell::new(BTreeSet::new());
    let public_ip = |m: &mut Mapper, id: &str, at: &Location, pointer: &str, subject: &str| {
        if super::is_marker(id) {
            return Ok(id.to_string());
        }
        let name = id_name(id, "publicIPAddresses");
        let Some(r) = public_ips
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(&name))
        else {
            return Err(missing(
                at,
                pointer,
                format!("public IP address `{name}` is not among the inputs (`az network public-ip show` provides it)"),
            ));
        };
        used_ips.borrow_mut().insert(r.name.to_ascii_lowercase());
        let (p, pp) = r.props();
        let ap = json::key(&pp, "ipAddress");
        match m.text(p.get("ipAddress"), &r.at, &ap, subject, "ipAddress")? {
            Some(a) => Ok(a),
            // Not in the template: Azure allocates it at deployment; an explicit unknown.
            None => Ok(m.mark(
                &Pending {
                    input: r.at.input.clone(),
                    pointer: ap,
                    expression: String::new(),
                    reason: format!(
                        "public IP address `{}` is allocated at deployment (no ipAddress given)",
                        r.name
                    ),
                },
                subject,
            )),
        }
    };
    for r in of(Kind::NatGateway) {
        let res = (|| -> Result<(), ImportError> {
            let subject = format!("nat_gateways/{}/public_addresses", r.name);
            let (p, pp) = r.props();
            let ap = json::key(&pp, "publicIpAddresses");
            let mut public_addresses = Vec::new();
            for (i, item) in known_array(
                p.get("publicIpAddresses"),
                &r.at,
                &ap,
                "publicIpAddresses",
                || format!("the public addresses of NAT gateway `{}`", r.name),
            )?
            .iter()
            .enumerate()
            {
                let ip = json::index(&ap, i);
                if let Some(id) = id_of(m, Some(item), &r.at, &ip, &subject)? {
                    public_addresses.push(public_ip(m, &id, &r.at, &ip, &subject)?);
                }
            }
            if !f
                .nat_gateways
                .iter()
                .any(|g| g.name.eq_ignore_ascii_case(&r.name))
            {
                f.nat_gateways.push(NatGatewayFile {
                    name: r.name.clone(),
                    public_addresses,
                });
            }
            Ok(())
        })();
        leave_out(res, r, &format!("nat_gateways/{}", r.name), m, &mut out)?;
    }
    // Firewalls.
    let policies: Vec<&&Res> = of(Kind::FirewallPolicy).collect();
    let groups: Vec<&&Res> = of(Kind::RuleCollectionGroup).collect();
    let mut used_policies: BTreeSet<String> = BTreeSet::new();
    for r in of(Kind::AzureFirewall) {
        let res = (|| -> Result<(), ImportError> {
            let subject = format!("firewalls/{}", r.name);
            let (p, pp) = r.props();
            let cp = json::key(&pp, "ipConfigurations");
            let mut subnet = None;
            let mut private_address = None;
            let mut public_addresses = Vec::new();
            for (i, item) in known_array(
                p.get("ipConfigurations"),
                &r.at,
                &cp,
                "ipConfigurations",
                || format!("the IP configurations of firewall `{}`", r.name),
            )?
            .iter()
            .enumerate()
            {
                let (c, cpp) = props_of(item, &json::index(&cp, i));
                if let Some(id) = id_of(
                    m,
                    c.get("subnet"),
                    &r.at,
                    &json::key(&cpp, "subnet"),
                    &format!("{subject}/subnet"),
                )? {
                    subnet.get_or_insert_with(|| {
                        if super::is_marker(&id) {
                            id.clone()
                        } else {
                            format!(
                                "{}/{}",
                                id_name(&id, "virtualNetworks"),
                                id_name(&id, "subnets")
                            )
                        }
                    });
                }
                if private_address.is_none() {
                    private_address = m.text(
                        c.get("privateIPAddress"),
                        &r.at,
                        &json::key(&cpp, "privateIPAddress"),
                        &format!("{subject}/private_address"),
                        "privateIPAddress",
                    )?;
                }
                let pip = json::key(&cpp, "publicIPAddress");
                if let Some(id) = id_of(
                    m,
                    c.get("publicIPAddress"),
                    &r.at,
                    &pip,
                    &format!("{subject}/public_addresses"),
                )? {
                    public_addresses.push(public_ip(
                        m,
                        &id,
                        &r.at,
                        &pip,
                        &format!("{subject}/public_addresses"),
                    )?);
                }
            }
            let Some(subnet) = subnet else {
                return Err(invalid(
                    &r.at,
                    &cp,
                    format!("firewall `{}` has no ipConfigurations[].subnet", r.name),
                ));
            };
            let private_address = match private_address {
                Some(a) => a,
                None => {
                    // ASSUMPTION_FIREWALL_PRIVATE_ADDRESS: Azure assigns the firewall's private
                    // address at deployment, from its AzureFirewallSubnet; the docs do not say which.
                    let Some(a) = first_usable(f, &subnet) else {
                        return Err(missing(&r.at, &cp, format!("firewall `{}` is in subnet `{subnet}`, which is not among the inputs or has no IPv4 prefix", r.name)));
                    };
                    out.assumptions.insert(Assumption::FirewallPrivateAddress);
                    a
                }
            };
            let mut rule_collection_groups = Vec::new();
            let mut why_not: Option<String> = None;
            if let Some(pid) = id_of(
                m,
                p.get("firewallPolicy"),
                &r.at,
                &json::key(&pp, "firewallPolicy"),
                &format!("{subject}/policy"),
            )? {
                let policy = id_name(&pid, "firewallPolicies");
                used_policies.insert(policy.to_ascii_lowercase());
                let Some(pr) = policies
                    .iter()
                    .find(|x| x.name.eq_ignore_ascii_case(&policy))
                else {
                    return Err(missing(&r.at, &json::key(&pp, "firewallPolicy"), format!("firewall policy `{policy}` is not among the inputs (`az network firewall policy show` provides it)")));
                };
                if !matches!(read(pr.props().0.get("basePolicy"))?, Got::Missing) {
                    why_not = Some(format!(
                        "its policy `{policy}` inherits a basePolicy, which vnetsim does not model"
                    ));
                }
                for g in groups.iter().filter(|g| {
                    g.name
                        .split('/')
                        .next()
                        .is_some_and(|pn| pn.eq_ignore_ascii_case(&policy))
                }) {
                    let (_, gname) = g.split_child()?;
                    let (gp, gpp) = g.props();
                    let prio = priority(gp.get("priority"), &g.at, &json::key(&gpp, "priority"))?;
                    let rcp = json::key(&gpp, "ruleCollections");
                    let mut rule_collections = Vec::new();
                    for (i, c) in known_array(
                        gp.get("ruleCollections"),
                        &g.at,
                        &rcp,
                        "ruleCollections",
                        || format!("the rule collections of group `{}`", g.name),
                    )?
                    .iter()
                    .enumerate()
                    {
                        let ip = json::index(&rcp, i);
                        match policy_collection(m, c, &g.at, &ip, &subject)? {
                            Ok(rc) => rule_collections.push(rc),
                            Err(why) => {
                                why_not.get_or_insert(why);
                            }
                        }
                    }
                    rule_collection_groups.push(RuleCollectionGroupFile {
                        name: gname,
                        priority: prio,
                        rule_collections,
                    });
                }
            }
            // Classic rules (firewalls without a policy).
            let mut classic = Vec::new();
            for (key, kind) in [
                ("networkRuleCollections", CollectionKind::Network),
                ("applicationRuleCollections", CollectionKind::Application),
                ("natRuleCollections", CollectionKind::Dnat),
            ] {
                let kp = json::key(&pp, key);
                for (i, c) in known_array(p.get(key), &r.at, &kp, key, || {
                    format!("the {key} of firewall `{}`", r.name)
                })?
                .iter()
                .enumerate()
                {
                    let ip = json::index(&kp, i);
                    let name = item_name(c, &r.at, &ip, "the rule collection name")?;
                    let (cp2, cpp) = props_of(c, &ip);
                    let prio = priority(cp2.get("priority"), &r.at, &json::key(&cpp, "priority"))?;
                    let action = action(cp2, &r.at, &cpp, kind)?;
                    let rp = json::key(&cpp, "rules");
                    let mut rules = Vec::new();
                    for (j, rule) in known_array(cp2.get("rules"), &r.at, &rp, "rules", || {
                        format!("the rules of collection `{name}`")
                    })?
                    .iter()
                    .enumerate()
                    {
                        match fw_rule(m, rule, kind, &r.at, &json::index(&rp, j), &subject)? {
                            Ok(x) => rules.push(x),
                            Err(why) => {
                                why_not.get_or_insert(why);
                            }
                        }
                    }
                    classic.push(RuleCollectionFile {
                        name,
                        priority: prio,
                        kind,
                        action,
                        rules,
                    });
                }
            }
            if !classic.is_empty() {
                rule_collection_groups.push(RuleCollectionGroupFile {
                    name: CLASSIC_GROUP.into(),
                    priority: 65000,
                    rule_collections: classic,
                });
            }
            if let Some(why) = why_not {
                out.ignored
                    .push(r.ignored(format!("firewall `{}` is left out: {why}", r.name)));
                return Ok(());
            }
            if !f
                .firewalls
                .iter()
                .any(|x| x.name.eq_ignore_ascii_case(&r.name))
            {
                f.firewalls.push(FirewallFile {
                    name: r.name.clone(),
                    subnet,
                    private_address,
                    public_addresses,
                    private_ranges: None,
                    rule_collection_groups,
                });
            }
            Ok(())
        })();
        leave_out(res, r, &format!("firewalls/{}", r.name), m, &mut out)?;
    }
    // Policies (and their groups) no firewall uses map onto nothing.
    for r in policies.iter().chain(&groups) {
        let policy = r.name.split('/').next().unwrap_or("").to_ascii_lowercase();
        if !used_policies.contains(&policy) {
            out.ignored
                .push(r.ignored("no Azure Firewall among the inputs uses this firewall policy"));
        }
    }
    // A public IP address no NAT gateway or firewall uses maps onto nothing.
    let used_ips = used_ips.into_inner();
    for r in public_ips {
        if !used_ips.contains(&r.name.to_ascii_lowercase()) {
            out.ignored.push(r.ignored(
                "no NAT gateway or firewall among the inputs uses this public IP address",
            ));
        }
    }
    Ok(out)
}

/// A resource whose references are not among the inputs, or whose values are known only at
/// deployment, is left out with the reason; other errors are raised.
/// Unknown values already recorded for it (subjects under `subject`) go with it.
fn leave_out(
    res: Result<(), ImportError>,
    r: &Res,
    subject: &str,
    m: &mut Mapper,
    out: &mut Outcome,
) -> Result<(), ImportError> {
    match res {
        Ok(()) => Ok(()),
        Err(e @ (ImportError::MissingReference { .. } | ImportError::Unrepresentable { .. })) => {
            let under = format!("{subject}/");
            m.unknowns
                .retain(|u| u.subject != subject && !u.subject.starts_with(&under));
            out.ignored.push(r.ignored(format!("left out: {e}")));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The first usable IPv4 address of `vnet/subnet` in `f`.
fn first_usable(f: &Fixture, subnet: &str) -> Option<String> {
    let (v, s) = subnet.split_once('/')?;
    let sub = f
        .vnets
        .iter()
        .find(|x| x.name.eq_ignore_ascii_case(v))?
        .subnets
        .iter()
        .find(|x| x.name.eq_ignore_ascii_case(s))?;
    sub.address_prefixes
        .iter()
        .filter_map(|p| p.trim().parse::<Cidr>().ok())
        .find(|c| c.is_ipv4())
        .and_then(|c| c.nth(FIRST_USABLE))
        .map(|ip| ip.to_string())
}

fn action(
    c: &Val,
    at: &Location,
    pointer: &str,
    kind: CollectionKind,
) -> Result<FirewallAction, ImportError> {
    if kind == CollectionKind::Dnat {
        return Ok(FirewallAction::Allow);
    }
    let ap = json::key(&json::key(pointer, "action"), "type");
    parse_enum(
        c.get("action").and_then(|a| a.get("type")),
        at,
        &ap,
        "action.type",
    )
}

/// A policy rule collection, or why the firewall is left out.
fn policy_collection(
    m: &mut Mapper,
    c: &Val,
    at: &Location,
    pointer: &str,
    subject: &str,
) -> Result<Result<RuleCollectionFile, String>, ImportError> {
    let name = item_name(c, at, pointer, "the rule collection name")?;
    let ty = c
        .get("ruleCollectionType")
        .and_then(Val::as_str)
        .unwrap_or("");
    let nat = ty.eq_ignore_ascii_case("FirewallPolicyNatRuleCollection");
    if !nat && !ty.eq_ignore_ascii_case("FirewallPolicyFilterRuleCollection") {
        return Err(invalid(
            at,
            &json::key(pointer, "ruleCollectionType"),
            format!("ruleCollectionType `{ty}` is not FirewallPolicyFilterRuleCollection or FirewallPolicyNatRuleCollection"),
        ));
    }
    let prio = priority(c.get("priority"), at, &json::key(pointer, "priority"))?;
    let rp = json::key(pointer, "rules");
    let items = known_array(c.get("rules"), at, &rp, "rules", || {
        format!("the rules of collection `{name}`")
    })?;
    let kind_of = |rule: &Val| match rule.get("ruleType").and_then(Val::as_str) {
        Some(t) if t.eq_ignore_ascii_case("NetworkRule") => Some(CollectionKind::Network),
        Some(t) if t.eq_ignore_ascii_case("ApplicationRule") => Some(CollectionKind::Application),
        Some(t) if t.eq_ignore_ascii_case("NatRule") => Some(CollectionKind::Dnat),
        _ => None,
    };
    let kind = if nat {
        CollectionKind::Dnat
    } else {
        match items.first().map(kind_of) {
            None => CollectionKind::Network,
            Some(Some(k)) => k,
            Some(None) => {
                return Err(invalid(
                    at,
                    &json::key(&json::index(&rp, 0), "ruleType"),
                    "ruleType must be NetworkRule, ApplicationRule or NatRule",
                ))
            }
        }
    };
    let act = action(c, at, pointer, kind)?;
    let mut rules = Vec::new();
    for (j, rule) in items.iter().enumerate() {
        let ip = json::index(&rp, j);
        if kind_of(rule) != Some(kind) {
            return Err(invalid(
                at,
                &json::key(&ip, "ruleType"),
                format!(
                    "a {} collection holds only {} rules",
                    kind.as_str(),
                    kind.as_str()
                ),
            ));
        }
        match fw_rule(m, rule, kind, at, &ip, subject)? {
            Ok(x) => rules.push(x),
            Err(why) => return Ok(Err(why)),
        }
    }
    Ok(Ok(RuleCollectionFile {
        name,
        priority: prio,
        kind,
        action: act,
        rules,
    }))
}

/// One firewall rule (classic or policy shape), or why the firewall is left out.
fn fw_rule(
    m: &mut Mapper,
    rule: &Val,
    kind: CollectionKind,
    at: &Location,
    pointer: &str,
    subject: &str,
) -> Result<Result<FirewallRuleFile, String>, ImportError> {
    let name = item_name(rule, at, pointer, "the rule name")?;
    let (p, pp) = props_of(rule, pointer);
    // Fields that change which flows a rule matches and that vnetsim cannot evaluate.
    for key in [
        "sourceIpGroups",
        "destinationIpGroups",
        "destinationFqdns",
        "fqdnTags",
        "webCategories",
        "targetUrls",
    ] {
        if matches!(p.get(key), Some(Val::Arr(a)) if !a.is_empty()) {
            return Ok(Err(format!(
                "rule `{name}` uses `{key}`, which vnetsim does not model"
            )));
        }
    }
    if matches!(p.get("terminateTLS"), Some(Val::Bool(true))) {
        return Ok(Err(format!(
            "rule `{name}` uses TLS inspection, which vnetsim does not model"
        )));
    }
    let get =
        |m: &mut Mapper, key: &str| list(m, p.get(key), at, &json::key(&pp, key), subject, key);
    let source_addresses = get(m, "sourceAddresses")?;
    let (protocols, destination_addresses, destination_ports, target_fqdns) = match kind {
        CollectionKind::Application => {
            let kp = json::key(&pp, "protocols");
            let mut protocols = Vec::new();
            for (i, x) in known_array(p.get("protocols"), at, &kp, "protocols", || {
                format!("the protocols of rule `{name}`")
            })?
            .iter()
            .enumerate()
            {
                let xp = json::index(&kp, i);
                let ty = required(
                    m,
                    x.get("protocolType"),
                    at,
                    &json::key(&xp, "protocolType"),
                    subject,
                    "protocolType",
                )?;
                let port = match x.get("port") {
                    Some(Val::Int(n)) => n.to_string(),
                    other => required(m, other, at, &json::key(&xp, "port"), subject, "port")?,
                };
                protocols.push(format!("{ty}:{port}"));
            }
            (protocols, Vec::new(), Vec::new(), get(m, "targetFqdns")?)
        }
        _ => {
            // Classic network rules: `protocols`; policy network and NAT rules: `ipProtocols`.
            let mut protocols = get(m, "ipProtocols")?;
            if protocols.is_empty() {
                protocols = get(m, "protocols")?;
            }
            (
                protocols,
                get(m, "destinationAddresses")?,
                get(m, "destinationPorts")?,
                Vec::new(),
            )
        }
    };
    // NAT rules: `translatedAddress` | `translatedFqdn`, `translatedPort` (classic and policy
    // shapes use the same names; "New-AzFirewallNatRule", "New-AzFirewallPolicyNatRule").
    let (translated_address, translated_fqdn, translated_port) = if kind == CollectionKind::Dnat {
        let one =
            |m: &mut Mapper, key: &str| m.text(p.get(key), at, &json::key(&pp, key), subject, key);
        (
            one(m, "translatedAddress")?,
            one(m, "translatedFqdn")?,
            one(m, "translatedPort")?,
        )
    } else {
        (None, None, None)
    };
    Ok(Ok(FirewallRuleFile {
        name,
        protocols,
        source_addresses,
        destination_addresses,
        destination_ports,
        target_fqdns,
        translated_address,
        translated_fqdn,
        translated_port,
    }))
}
