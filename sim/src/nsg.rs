//! Network security groups: rules as parsed from a fixture ([`SecurityRule`]), the six default
//! rules, and three evaluators over one NSG in one direction:
//!
//! * [`ReferenceNsg`] — the oracle: a first-match linear scan over pre-parsed rules, written for
//!   obviousness (per-prefix `contains`, an `is_public` predicate for `Internet`).
//! * [`CompiledNsg::decide`] — the verdict-only path: rules sorted by priority, every address
//!   field an interval set, protocol a bit mask; allocates nothing.
//! * [`CompiledNsg::explain`] — the explaining path: per-field match flags for every rule
//!   examined, as Network Watcher's NSG diagnostics report them.
//!
//! Tags that depend on where the NSG is applied (`VirtualNetwork`, `Internet`) and application
//! security groups are resolved by a [`Context`]; the build stage compiles each NSG once per VNet
//! it is applied in.
//!
//! One file per part: `nsg/rule.rs` (rule fields, parsed and checked), `nsg/defaults.rs` (the
//! six default rules), `nsg/context.rs` (what tags and ASGs mean where the NSG is applied),
//! `nsg/compiled.rs` (the compiled evaluator) and `nsg/reference.rs` (the reference evaluator).
//! This file keeps the [`Nsg`] itself, its limits, and the flow key and per-rule results the
//! evaluators share.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::finding::{Finding, FindingCode};
use crate::fixture::{AddressField, RuleFile};
use crate::proto::{Access, Direction};
use crate::tags::ServiceTagTable;

mod compiled;
mod context;
mod defaults;
mod reference;
mod rule;

pub use compiled::CompiledNsg;
pub(crate) use compiled::RuleSets;
#[cfg(test)]
pub(crate) use compiled::LINEAR_SCAN_MAX;
pub use context::Context;
pub use defaults::default_rules;
pub use reference::ReferenceNsg;
pub use rule::{parse_unknown_marker, AddressSpec, SecurityRule, TagRef, UnknownFields};

/// Lowest custom rule priority number (processed first).
pub const MIN_PRIORITY: i64 = 100;
/// Highest custom rule priority number. Source: NSG overview, "Security rules" table.
pub const MAX_PRIORITY: i64 = 4096;
/// Most custom rules per NSG. Source: networking limits table ("NSG rules per NSG": 1,000).
pub const MAX_RULES: usize = 1000;
/// Most IP addresses and ranges per NSG, counted separately for source and destination.
pub const MAX_PREFIXES_PER_SIDE: usize = 4000;
/// Most application security groups referenced on one side of a rule.
pub const MAX_ASGS_PER_RULE_SIDE: usize = 10;
/// Longest rule name. Source: NSG overview ("up to 80 characters").
pub const MAX_RULE_NAME: usize = 80;
/// Longest description. Source: NSG swagger ("Restricted to 140 chars").
pub const MAX_DESCRIPTION: usize = 140;
/// The address of the `AzureLoadBalancer` tag (the host's virtual IP).
pub const AZURE_LOAD_BALANCER: &str = "168.63.129.16/32";

/// An NSG: its custom rules (valid ones) followed by the six default rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nsg {
    /// Name as the user spells it.
    pub name: String,
    /// `flushConnection`: re-evaluate established flows when rules change.
    pub flush_connection: bool,
    /// Custom rules then defaults; indices into this vector identify rules everywhere.
    pub rules: Vec<SecurityRule>,
}

// === impl Nsg ===

impl Nsg {
    /// An NSG with the given custom rules (the defaults are appended).
    pub fn new(name: impl Into<String>, flush_connection: bool, custom: Vec<SecurityRule>) -> Nsg {
        let mut rules = custom;
        rules.extend(default_rules());
        Nsg {
            name: name.into(),
            flush_connection,
            rules,
        }
    }

    /// Parses a fixture NSG's rules, returning the NSG (invalid rules left out) and every finding
    /// about its rules and the NSG-level limits.
    pub fn from_rules(
        name: &str,
        flush_connection: bool,
        rules: &[RuleFile],
        tags: &ServiceTagTable,
        known_asgs: &BTreeSet<String>,
    ) -> (Nsg, Vec<Finding>) {
        let (nsg, findings) =
            Nsg::from_rules_indexed(name, flush_connection, rules, tags, known_asgs);
        (nsg, findings.into_iter().map(|(_, f)| f).collect())
    }

    /// [`Nsg::from_rules`], each finding paired with the index of the rule it is about (`None`
    /// for the NSG-level limits), so the build stage can locate it.
    pub(crate) fn from_rules_indexed(
        name: &str,
        flush_connection: bool,
        rules: &[RuleFile],
        tags: &ServiceTagTable,
        known_asgs: &BTreeSet<String>,
    ) -> (Nsg, Vec<(Option<usize>, Finding)>) {
        let mut findings = Vec::new();
        let mut custom = Vec::new();
        let nsg_subject = format!("nsgs/{name}");
        if rules.len() > MAX_RULES {
            findings.push((
                None,
                Finding::new(
                    FindingCode::RuleLimitExceeded,
                    &nsg_subject,
                    format!("{} custom rules; an NSG holds at most 1,000", rules.len()),
                ),
            ));
        }
        let mut names: BTreeMap<String, &str> = BTreeMap::new();
        let mut prios: BTreeMap<(Direction, i64), &str> = BTreeMap::new();
        let (mut src_count, mut dst_count) = (0usize, 0usize);
        for (i, r) in rules.iter().enumerate() {
            let subject = format!("nsgs/{name}/securityRules/{}", r.name);
            let at = Some(i);
            if let Some(first) = names.insert(r.name.to_ascii_lowercase(), &r.name) {
                findings.push((at, Finding::new(
                    FindingCode::RuleNameDuplicate,
                    &subject,
                    format!("rule name `{}` is used twice in the NSG (first as `{first}`); names are unique within an NSG", r.name),
                )));
            }
            if let Some(first) = prios.insert((r.direction, r.priority), &r.name) {
                findings.push((at, Finding::new(
                    FindingCode::RulePriorityDuplicate,
                    &subject,
                    format!("priority {} {} is already used by rule `{first}`; two rules can't share a priority and direction", r.priority, r.direction),
                )));
            }
            src_count += count_prefixes(&r.source);
            dst_count += count_prefixes(&r.destination);
            match SecurityRule::from_file(r, tags, known_asgs, &subject) {
                Ok(mut rule) => {
                    rule.index = at;
                    if !rule.unknown.is_empty() {
                        findings.push((at, Finding::new(
                            FindingCode::UnknownValue,
                            &subject,
                            format!(
                                "{} only known at deployment time; it matches like `*` and flows that reach this rule are Indeterminate",
                                rule.unknown.pointers.join(", ")
                            ),
                        )));
                    }
                    custom.push(rule)
                }
                Err(fs) => findings.extend(fs.into_iter().map(|f| (at, f))),
            }
        }
        for (side, n) in [("source", src_count), ("destination", dst_count)] {
            if n > MAX_PREFIXES_PER_SIDE {
                findings.push((None, Finding::new(
                    FindingCode::RuleLimitExceeded,
                    &nsg_subject,
                    format!("{n} {side} addresses and ranges across the NSG's rules; the limit is 4,000 per side"),
                )));
            }
        }
        (Nsg::new(name, flush_connection, custom), findings)
    }

    /// Indices of the rules of one direction, in evaluation (priority) order.
    pub fn order(&self, direction: Direction) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.rules.len())
            .filter(|&i| self.rules[i].direction == direction)
            .collect();
        idx.sort_by_key(|&i| self.rules[i].priority);
        idx
    }
}

fn count_prefixes(a: &AddressField) -> usize {
    match a {
        AddressField::Prefix(_) => 1,
        AddressField::Prefixes(p) => p.len(),
        AddressField::Asgs(_) => 0,
    }
}

// === Results ===

pub use crate::flow::FlowKey;

/// The first matching rule of one NSG in one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleMatch {
    /// What the rule does.
    pub access: Access,
    /// Index of the rule in [`Nsg::rules`].
    pub rule: usize,
}

/// Per-field match flags of one rule for one flow (Network Watcher's `rulesEvaluationResult`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleEvaluation {
    /// `securityRules/<name>` or `defaultSecurityRules/<name>`.
    pub name: String,
    /// Priority.
    pub priority: u32,
    /// Access.
    pub access: Access,
    /// Source address matched.
    pub source_matched: bool,
    /// Source port matched.
    pub source_port_matched: bool,
    /// Destination address matched.
    pub destination_matched: bool,
    /// Destination port matched.
    pub destination_port_matched: bool,
    /// Protocol matched.
    pub protocol_matched: bool,
}

impl RuleEvaluation {
    /// Whether every field matched.
    pub fn matched(&self) -> bool {
        self.source_matched
            && self.source_port_matched
            && self.destination_matched
            && self.destination_port_matched
            && self.protocol_matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{Fixture, Format};

    fn nsg_from(toml_rules: &str) -> (Nsg, Vec<Finding>) {
        let text = format!("[[nsgs]]\nname = \"n\"\n{toml_rules}");
        let f = Fixture::parse(&text, Format::Toml).unwrap();
        let asgs: BTreeSet<String> = ["asgweb".to_string()].into();
        Nsg::from_rules(
            "n",
            false,
            &f.nsgs[0].security_rules,
            &ServiceTagTable::builtin(),
            &asgs,
        )
    }

    fn rule(name: &str, prio: i64, extra: &str) -> String {
        format!("[[nsgs.security_rules]]\nname = \"{name}\"\npriority = {prio}\ndirection = \"Outbound\"\naccess = \"Deny\"\nprotocol = \"Tcp\"\nsource_address_prefix = \"*\"\nsource_port_range = \"*\"\ndestination_port_range = \"80\"\n{extra}")
    }

    fn codes(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn rule_findings() {
        let (_, f) = nsg_from(&rule(
            "bad name-",
            50,
            "destination_address_prefix = \"10.0.0.1/24\"\n",
        ));
        assert_eq!(
            codes(&f),
            [
                "RULE_NAME_INVALID",
                "RULE_PRIORITY_OUT_OF_RANGE",
                "RULE_PREFIX_INVALID"
            ]
        );
        let (_, f) = nsg_from(&rule(
            "r",
            100,
            "destination_address_prefix = \"NotATag\"\n",
        ));
        assert_eq!(codes(&f), ["RULE_UNKNOWN_SERVICE_TAG"]);
        let (_, f) = nsg_from(&rule(
            "r",
            100,
            "destination_address_prefixes = [\"Storage\", \"SQL\"]\n",
        ));
        assert_eq!(codes(&f), ["RULE_MULTIPLE_SERVICE_TAGS"]);
        let (_, f) = nsg_from(&rule(
            "r",
            100,
            "destination_address_prefixes = [\"10.0.0.0/8\", \"fd00::/8\"]\n",
        ));
        assert_eq!(codes(&f), ["RULE_MIXED_ADDRESS_FAMILIES"]);
        let two = format!(
            "{}{}",
            rule("a", 100, "destination_address_prefix = \"*\"\n"),
            rule("A", 100, "destination_address_prefix = \"*\"\n")
        );
        let (_, f) = nsg_from(&two);
        assert_eq!(
            codes(&f),
            ["RULE_NAME_DUPLICATE", "RULE_PRIORITY_DUPLICATE"]
        );
        let (_, f) = nsg_from(&rule(
            "r",
            100,
            "destination_application_security_groups = [\"asg-nope\"]\n",
        ));
        assert_eq!(codes(&f), ["REFERENCE_UNKNOWN"]);
    }
}
