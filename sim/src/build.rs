//! The build stage: a [`Fixture`] becomes a [`Topology`] plus every finding about it ([`Built`]).
//!
//! One file per stage, run in this order (later stages refer to what earlier ones built):
//! - `nsgs` — security rules, checked and parsed; the set of ASG names;
//! - `network` — VNets, subnets and peerings, with their address checks;
//! - `hosts` — NICs, private endpoints and external hosts, their DNS names and services;
//! - `apim` — the instance's subnet and addresses;
//! - `dns` — private DNS zones, and the gateway's APIs;
//! - `gateway` — the gateway's own settings.
//!
//! Then each NSG is compiled once per VNet it is applied in, and the APIM preflight
//! ([`crate::apim::preflight`]) runs over the finished model. The model types and their queries
//! live in [`crate::topology`]; this module only constructs them.

use std::collections::BTreeSet;

use crate::finding::{sort_findings, Finding, FindingCode};
use crate::fixture::{Fixture, RawRule, RuleFile};
use crate::tags::ServiceTagTable;
use crate::topology::{Built, Topology};

mod apim;
mod dns;
mod gateway;
mod hosts;
mod network;
mod nsgs;

// === impl Topology ===

impl Topology {
    /// Builds the model from a fixture, collecting every finding.
    ///
    /// ```
    /// use sim::{fixture::{Fixture, Format}, topology::Topology, ServiceTagTable};
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
        Builder::new(fixture, tags).build()
    }

    /// A new topology with one NSG's custom rules replaced (a live rule change). The result
    /// carries the findings of the whole new topology.
    ///
    /// # Errors
    /// When no NSG has that name.
    pub fn with_nsg_rules(&self, nsg: &str, rules: &[RawRule]) -> Result<Built, String> {
        let mut fixture = self.fixture.clone();
        let Some(target) = fixture
            .nsgs
            .iter_mut()
            .find(|n| n.name.eq_ignore_ascii_case(nsg.trim()))
        else {
            return Err(format!("no NSG named `{nsg}`"));
        };
        let mut parsed = Vec::with_capacity(rules.len());
        for r in rules {
            parsed.push(
                RuleFile::try_from(r.clone()).map_err(|e| format!("nsgs/{}: {e}", target.name))?,
            );
        }
        target.security_rules = parsed;
        Ok(Topology::build(&fixture, self.tags.clone()))
    }

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

/// The fixture being built and the findings so far; each stage adds an `impl Builder` block.
struct Builder<'a> {
    fx: &'a Fixture,
    tags: ServiceTagTable,
    f: Vec<Finding>,
}

impl<'a> Builder<'a> {
    fn new(fx: &'a Fixture, tags: ServiceTagTable) -> Self {
        Builder {
            fx,
            tags,
            f: Vec::new(),
        }
    }

    fn push(&mut self, code: FindingCode, subject: impl Into<String>, msg: impl Into<String>) {
        self.f.push(Finding::new(code, subject, msg));
    }

    fn dup_names<'n>(&mut self, kind: &str, names: impl Iterator<Item = &'n str>) {
        let mut seen = BTreeSet::new();
        for n in names {
            if !seen.insert(n.to_ascii_lowercase()) {
                self.push(
                    FindingCode::NameDuplicate,
                    format!("{kind}/{n}"),
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
        let vnets = self.network(&nsgs, &subscription_id);
        let placed = self.hosts(&vnets, &nsgs, &known_asgs);
        let apim = self.apim(&vnets, &placed, &subscription_id);
        let zones = self.zones(&vnets);
        let gateway = self.gateway();
        let apis = self.apis(&placed.hosts);

        let mut t = Topology {
            fixture: fx.clone(),
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
        };
        t.compile_all();
        let mut findings = self.f;
        findings.extend(crate::apim::preflight(&t));
        sort_findings(&mut findings);
        Built {
            topology: t,
            findings,
        }
    }
}

fn unknown_address_message(what: &str, pointer: &str) -> String {
    format!("{what} is only known at deployment time (<unknown:{pointer}>); flows cannot be evaluated without it — give the value as a parameter or write it into the fixture")
}
