//! The build stage: a [`Fixture`] becomes a [`Topology`] plus every finding about it ([`Built`]).
//!
//! One file per stage, run in this order (later stages refer to what earlier ones built):
//! - `nsgs` — security rules, checked and parsed; the set of ASG names;
//! - `network` — VNets, subnets and peerings, with their address checks;
//! - `hosts` — NICs, private endpoints and external hosts, their DNS names and services;
//! - `apim` — the instance's subnet and addresses;
//! - `dns` — private DNS zones, and the gateway's APIs;
//! - `gateway` — the gateway's own settings;
//! - `faults` — `[faults]`, checked against the finished model.
//!
//! Then each NSG is compiled once per VNet it is applied in, and the APIM preflight
//! ([`crate::apim::preflight`]) runs over the finished model. The model types and their queries
//! live in [`crate::topology`]; this module only constructs them.
//!
//! Each stage knows the fixture position of what it checks, so every finding names its entry
//! ([`Entry`]: the resource path and the fixture pointer) and is located through the
//! [`SourceMap`] the caller passed.

use std::collections::BTreeSet;

use crate::finding::{sort_findings, Finding, FindingCode};
use crate::fixture::{Fixture, RawRule, RuleFile};
use crate::nsg::default_rules;
use crate::settings::{Applied, Change, ChangeError, RuleChanges};
use crate::source::SourceMap;
use crate::tags::ServiceTagTable;
use crate::topology::{Built, Document, Topology};

mod apim;
mod apis;
mod asgs;
mod dns;
mod faults;
mod gateway;
mod hosts;
mod network;
mod nsgs;
pub(crate) use crate::suggest::did_you_mean;
mod routing;

// === impl Topology ===

impl Topology {
    /// Builds the model from a fixture, collecting every finding.
    ///
    /// ```
    /// use sim::{fixture::{Fixture, Format}, ServiceTagTable, Topology};
    /// let f = Fixture::parse(r#"
    /// [[vnets]]
    /// name = "v"
    /// region = "westeurope"
    /// address_space = ["10.0.0.0/16"]
    ///   [[vnets.subnets]]
    ///   name = "a"
    ///   address_prefix = "10.1.0.0/24"
    /// "#, Format::Toml).unwrap();
    /// let built = Topology::build(&f, ServiceTagTable::builtin());
    /// assert_eq!(built.findings[0].code.as_str(), "SUBNET_OUTSIDE_ADDRESS_SPACE");
    /// ```
    pub fn build(fixture: &Fixture, tags: ServiceTagTable) -> Built {
        Topology::build_with_source(fixture, tags, SourceMap::default())
    }

    /// [`Topology::build`] for a fixture read from text: `source` tells where each entry is
    /// written, so findings and verdicts carry a [`Location`](crate::source::Location).
    ///
    /// ```
    /// use sim::{fixture::{Fixture, Format}, ServiceTagTable, SourceMap, Topology};
    /// let text = "[[vnets]]\nname = \"v\"\nregion = \"westeurope\"\naddress_space = [\"10.0.0.0/16\"]\n\n[[vnets.subnets]]\nname = \"a\"\naddress_prefix = \"10.1.0.0/24\"\n";
    /// let f = Fixture::parse(text, Format::Toml).unwrap();
    /// let source = SourceMap::from_text("v.toml", text, Format::Toml);
    /// let built = Topology::build_with_source(&f, ServiceTagTable::builtin(), source);
    /// let at = built.findings[0].location.as_ref().unwrap();
    /// assert_eq!(at.to_string(), "v.toml:6");
    /// ```
    pub fn build_with_source(fixture: &Fixture, tags: ServiceTagTable, source: SourceMap) -> Built {
        Builder::new(fixture, tags, source).build()
    }
}

// === impl Built (live changes) ===

impl Built {
    /// A new topology with one NSG's custom rules replaced (a live rule change). The result
    /// carries the findings of the whole new topology.
    ///
    /// # Errors
    /// [`ChangeError`] when no NSG has that name or a rule does not have the fixture shape.
    pub fn with_nsg_rules(&self, nsg: &str, rules: &[RawRule]) -> Result<Built, ChangeError> {
        self.apply(&Change::SetRules {
            nsg: nsg.to_string(),
            rules: rules.to_vec(),
        })
    }

    /// Applies a live [`Change`]: the new topology with every finding of it.
    ///
    /// # Errors
    /// [`ChangeError`] when the change names nothing of the topology or is malformed.
    pub fn apply(&self, change: &Change) -> Result<Built, ChangeError> {
        self.apply_change(change).map(|a| a.built)
    }

    /// [`Built::apply`], also saying which custom rules the change created, replaced and
    /// removed. A replaced rule keeps its place in the NSG's list and a created one is
    /// appended; rules written by the change are located at their NSG, the others keep their
    /// place in the file. Whether the new topology's findings refuse it is the caller's call.
    ///
    /// ```
    /// use sim::{fixture::{Fixture, Format, RawRule}, Access, Change, Direction, RuleProtocol};
    /// use sim::{ServiceTagTable, Topology};
    /// let f = Fixture::parse("[[nsgs]]\nname = \"n\"\n", Format::Toml).unwrap();
    /// let t = Topology::build(&f, ServiceTagTable::builtin());
    /// let rule = RawRule::new("deny-web", 100, Direction::Outbound, Access::Deny, RuleProtocol::Tcp, "*", "80");
    /// let put = Change::PutRule { nsg: "n".into(), rule: rule.into() };
    /// let a = t.apply_change(&put).unwrap();
    /// assert_eq!(a.rules.created, ["deny-web"]);
    /// // The same name again replaces it.
    /// let again = a.built.apply_change(&put).unwrap();
    /// assert_eq!(again.rules.replaced, ["deny-web"]);
    /// // Default rules cannot be deleted.
    /// let del = Change::DeleteRule { nsg: "n".into(), name: "AllowVnetOutBound".into() };
    /// assert!(matches!(t.apply_change(&del), Err(sim::ChangeError::DefaultRule { .. })));
    /// ```
    ///
    /// # Errors
    /// [`ChangeError::UnknownNsg`] when no NSG has that name, [`ChangeError::InvalidRule`]
    /// when a rule does not have the fixture shape, [`ChangeError::DefaultRule`] when a single
    /// rule change names a default rule, [`ChangeError::UnknownRule`] when a deletion names no
    /// custom rule.
    pub fn apply_change(&self, change: &Change) -> Result<Applied, ChangeError> {
        self.document.apply_change(&self.topology, change)
    }
}

// === impl Document ===

impl Document {
    /// [`Built::apply_change`] on the document of `topology` (what the gateway's snapshot
    /// holds: the model and, beside it, the document it was built from).
    ///
    /// # Errors
    /// As [`Built::apply_change`].
    pub fn apply_change(
        &self,
        topology: &Topology,
        change: &Change,
    ) -> Result<Applied, ChangeError> {
        let (Change::SetRules { nsg, .. }
        | Change::PutRule { nsg, .. }
        | Change::DeleteRule { nsg, .. }) = change;
        let mut fixture = self.fixture.clone();
        let Some((index, target)) = fixture
            .nsgs
            .iter_mut()
            .enumerate()
            .find(|(_, n)| n.name.eq_ignore_ascii_case(nsg.trim()))
        else {
            return Err(ChangeError::UnknownNsg(nsg.clone()));
        };
        let nsg = target.name.clone();
        let list = format!("/nsgs/{index}/security_rules");
        let parse = |i: usize, r: &RawRule| {
            RuleFile::try_from(r.clone()).map_err(|message| ChangeError::InvalidRule {
                nsg: nsg.clone(),
                index: i,
                message,
            })
        };
        let position = |rules: &[RuleFile], name: &str| {
            rules.iter().position(|r| r.name.eq_ignore_ascii_case(name))
        };
        let mut changes = RuleChanges::default();
        let source = match change {
            Change::SetRules { rules, .. } => {
                let parsed = rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| parse(i, r))
                    .collect::<Result<Vec<_>, _>>()?;
                for r in &parsed {
                    match position(&target.security_rules, &r.name) {
                        Some(_) => changes.replaced.push(r.name.clone()),
                        None => changes.created.push(r.name.clone()),
                    }
                }
                for r in &target.security_rules {
                    if position(&parsed, &r.name).is_none() {
                        changes.removed.push(r.name.clone());
                    }
                }
                target.security_rules = parsed;
                // The new rules are not in the file: they are located at their NSG.
                topology.source.without(&list)
            }
            Change::PutRule { rule, .. } => {
                let name = custom_rule_name(&nsg, &rule.name)?.to_string();
                let mut parsed = parse(0, rule.as_ref())?;
                parsed.name.clone_from(&name);
                // The new rule is not in the file: it is located at its NSG (not where the
                // list's first rule is written); the NSG's other rules keep their lines.
                let source = topology.source.without_entry(&list);
                match position(&target.security_rules, &name) {
                    Some(i) => {
                        target.security_rules[i] = parsed;
                        changes.replaced.push(name);
                        source.without(&format!("{list}/{i}"))
                    }
                    None => {
                        target.security_rules.push(parsed);
                        changes.created.push(name);
                        source
                    }
                }
            }
            Change::DeleteRule { name, .. } => {
                let bare = custom_rule_name(&nsg, name)?;
                let Some(i) = position(&target.security_rules, bare) else {
                    return Err(ChangeError::UnknownRule {
                        nsg: nsg.clone(),
                        name: name.clone(),
                    });
                };
                let removed = target.security_rules.remove(i);
                changes.removed.push(removed.name);
                topology.source.without_item(&list, i)
            }
        };
        Ok(Applied {
            built: Topology::build_with_source(&fixture, topology.tags.clone(), source),
            rules: changes,
        })
    }

    /// The custom rules of NSG `nsg` as they are in force, in the fixture's shape (`None`
    /// when no NSG has that name).
    pub fn nsg_rules(&self, nsg: &str) -> Option<Vec<RawRule>> {
        self.fixture
            .nsgs
            .iter()
            .find(|n| n.name.eq_ignore_ascii_case(nsg.trim()))
            .map(|n| n.security_rules.iter().map(RawRule::from).collect())
    }
}

impl Topology {
    fn compile_all(&mut self) {
        let nv = self.vnets.len();
        let mut used = vec![false; self.nsgs.len() * nv];
        for (vi, v) in self.vnets.iter().enumerate() {
            for s in &v.subnets {
                if let Some(n) = s.nsg {
                    used[n * nv + vi] = true;
                }
            }
        }
        for h in &self.hosts {
            if let (Some(n), Some((vi, _))) = (h.nsg, h.placement) {
                used[n * nv + vi] = true;
            }
        }
        let mut compiled = Vec::with_capacity(used.len());
        for (i, u) in used.iter().enumerate() {
            compiled.push(if *u {
                Some(self.nsgs[i / nv].compile(&self.context(i % nv)))
            } else {
                None
            });
        }
        self.compiled = compiled;
    }
}

// === Builder ===

/// What a finding is about: its subject (the resource path, `vnets/v/subnets/s`) and the
/// fixture pointer of the entry that holds it (`/vnets/0/subnets/2`).
pub(super) struct Entry {
    path: String,
    pointer: String,
}

impl Entry {
    pub(super) fn new(path: impl Into<String>, pointer: impl Into<String>) -> Entry {
        Entry {
            path: path.into(),
            pointer: pointer.into(),
        }
    }

    /// A child entry: `path` and `pointer` are appended after a `/`.
    pub(super) fn child(
        &self,
        path: impl std::fmt::Display,
        pointer: impl std::fmt::Display,
    ) -> Entry {
        Entry::new(
            format!("{}/{path}", self.path),
            format!("{}/{pointer}", self.pointer),
        )
    }

    /// The resource path.
    pub(super) fn path(&self) -> &str {
        &self.path
    }
}

/// The fixture being built, where it is written, and the findings so far; each stage adds an
/// `impl Builder` block.
struct Builder<'a> {
    fx: &'a Fixture,
    tags: ServiceTagTable,
    source: SourceMap,
    f: Vec<Finding>,
    /// VNets (by fixture index) with a rejected address space prefix, and with a rejected
    /// subnet prefix: what lies outside the remaining ranges is a consequence of that root cause
    /// and is not reported again (a subnet "outside" the space, a host "in no subnet").
    broken_space: BTreeSet<usize>,
    broken_subnets: BTreeSet<usize>,
}

impl<'a> Builder<'a> {
    fn new(fx: &'a Fixture, tags: ServiceTagTable, source: SourceMap) -> Self {
        Builder {
            fx,
            tags,
            source,
            f: Vec::new(),
            broken_space: BTreeSet::new(),
            broken_subnets: BTreeSet::new(),
        }
    }

    fn push(&mut self, code: FindingCode, at: &Entry, msg: impl Into<String>) {
        let location = self.source.locate(&at.pointer);
        self.f
            .push(Finding::new(code, at.path.clone(), msg).at(location));
    }

    /// `NAME_DUPLICATE` for each entry of the fixture list `kind` that repeats an earlier name.
    fn dup_names<'n>(&mut self, kind: &str, names: impl Iterator<Item = &'n str>) {
        let mut seen = BTreeSet::new();
        for (i, n) in names.enumerate() {
            if !seen.insert(n.to_ascii_lowercase()) {
                self.push(
                    FindingCode::NameDuplicate,
                    &Entry::new(format!("{kind}/{n}"), format!("/{kind}/{i}")),
                    format!("two {kind} are named `{n}` (names compare case-insensitively)"),
                );
            }
        }
    }

    fn build(mut self) -> Built {
        let fx = self.fx;
        let subscription_id = fx
            .subscription
            .as_ref()
            .map_or_else(|| "default".to_string(), |s| s.id.clone());
        let registered_providers = fx
            .subscription
            .as_ref()
            .and_then(|s| s.registered_providers.clone())
            .unwrap_or_else(|| vec!["Microsoft.Web".into(), "Microsoft.Network".into()]);
        let principal_actions = fx.principal.as_ref().map_or_else(
            || {
                vec![
                    "Microsoft.Network/virtualNetworks/read".into(),
                    "Microsoft.Network/virtualNetworks/subnets/read".into(),
                    "Microsoft.Network/virtualNetworks/subnets/join/action".into(),
                ]
            },
            |p| p.actions.clone(),
        );

        let (nsgs, known_asgs) = self.nsgs();
        let mut vnets = self.network(&nsgs, &subscription_id);
        let placed = self.hosts(&vnets, &nsgs, &known_asgs);
        self.asg_placement(&vnets, &placed.hosts, &nsgs);
        let routing = self.routing(&mut vnets, &placed.hosts, &nsgs);
        routing::widen_virtual_network_tags(&mut vnets, &routing.routes);
        let apim = self.apim(&vnets, &placed, &subscription_id);
        let zones = self.zones(&vnets);
        let gateway = self.gateway();
        let published: Vec<std::net::IpAddr> = routing
            .firewalls
            .iter()
            .flat_map(|f| f.public_addresses.iter().copied())
            .collect();
        let apis = self.apis(&placed.hosts, &published);

        let mut t = Topology {
            tags: self.tags.clone(),
            subscription_id,
            registered_providers,
            principal_actions,
            vnets,
            nsgs,
            hosts: placed.hosts,
            apim,
            zones,
            apis,
            gateway,
            asg_members: placed.asg_members,
            compiled: Vec::new(),
            host_by_addr: placed.host_by_addr,
            host_by_public: placed.host_by_public,
            // Every stage has pushed its findings: the map moves to the topology.
            source: std::mem::take(&mut self.source),
            faults: crate::fault::FaultSet::default(),
            route_tables: routing.route_tables,
            nat_gateways: routing.nat_gateways,
            firewalls: routing.firewalls,
            routes: routing.routes,
        };
        t.compile_all();
        routing::resolve_dnat_fqdns(&mut t);
        t.faults = self.faults(&t);
        let mut findings = self.f;
        findings.extend(crate::apim::preflight(&t));
        findings.extend(crate::keyvault::check(&t));
        sort_findings(&mut findings);
        Built {
            topology: t,
            findings,
            document: Document {
                fixture: fx.clone(),
            },
        }
    }
}

/// The custom rule a single-rule change names: `name` or `securityRules/name`. A default
/// rule's name (`AllowVnetOutBound`, `defaultSecurityRules/...`) is refused: Azure's default
/// rules cannot be changed or deleted.
fn custom_rule_name<'a>(nsg: &str, name: &'a str) -> Result<&'a str, ChangeError> {
    let refused = || ChangeError::DefaultRule {
        nsg: nsg.to_string(),
        name: name.to_string(),
    };
    if strip_prefix_ci(name, "defaultSecurityRules/").is_some() {
        return Err(refused());
    }
    let bare = strip_prefix_ci(name, "securityRules/").unwrap_or(name);
    if default_rules()
        .iter()
        .any(|r| r.name.eq_ignore_ascii_case(bare))
    {
        return Err(refused());
    }
    Ok(bare)
}

/// `s` without `prefix`, compared ASCII case-insensitively.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .and_then(|_| s.get(prefix.len()..))
}

fn unknown_address_message(what: &str, pointer: &str) -> String {
    format!("{what} is only known at deployment time (<unknown:{pointer}>); flows cannot be evaluated without it — give the value as a parameter or write it into the fixture")
}
