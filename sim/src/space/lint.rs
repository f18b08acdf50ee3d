//! `lint`: each NSG's rule list as a sequence of set operations, per VNet context the NSG is
//! compiled for and per direction. A rule's match set is a union of products (protocols ×
//! source addresses × source ports × destination addresses × destination ports), split so that
//! every point is a real flow (one address family; ports only for Tcp/Udp), and restricted to
//! the addresses of what the NSG is applied to on the rule's local side (inbound: destination,
//! outbound: source) — the only flows the rule can ever see.
//!
//! Codes (lint's own table, not `validate` findings): [`LintCode`].

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::ranges::{intersect, subtract};
use crate::cidr::AddrSet;
use crate::flow::Flow;
use crate::nsg::RuleSets;
use crate::proto::{Direction, Protocol, NO_PORT};
use crate::source::Location;
use crate::topology::Topology;

/// A lint code: stable, as printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LintCode {
    /// No flow is ever decided by the rule: higher-priority rules cover it.
    RuleShadowed,
    /// Removing the rule changes no verdict: the flows it decides get the same access from
    /// the next rule that matches them.
    RuleRedundant,
    /// A higher-priority rule of the opposite access takes part of the rule's flows.
    RuleConflict,
    /// The rule's local side (inbound: destination, outbound: source) lies outside every
    /// address the NSG can see where it is applied.
    RuleNeverMatchesTopology,
    /// A port one keystroke away from a port other rules of the NSG use (TCP 433 beside 443).
    RulePortTypo,
}

impl LintCode {
    /// Every code.
    pub const ALL: [LintCode; 5] = [
        LintCode::RuleShadowed,
        LintCode::RuleRedundant,
        LintCode::RuleConflict,
        LintCode::RuleNeverMatchesTopology,
        LintCode::RulePortTypo,
    ];
    /// `RULE_SHADOWED`, `RULE_REDUNDANT`, `RULE_CONFLICT`, `RULE_NEVER_MATCHES_TOPOLOGY`,
    /// `RULE_PORT_TYPO`.
    pub fn as_str(self) -> &'static str {
        match self {
            LintCode::RuleShadowed => "RULE_SHADOWED",
            LintCode::RuleRedundant => "RULE_REDUNDANT",
            LintCode::RuleConflict => "RULE_CONFLICT",
            LintCode::RuleNeverMatchesTopology => "RULE_NEVER_MATCHES_TOPOLOGY",
            LintCode::RulePortTypo => "RULE_PORT_TYPO",
        }
    }
    /// The one-line fix hint.
    pub fn hint(self) -> &'static str {
        match self {
            LintCode::RuleShadowed => "delete the rule, or give it a lower priority number than the rules that cover it",
            LintCode::RuleRedundant => "delete the rule: the next matching rule gives the same access",
            LintCode::RuleConflict => "check that the higher-priority rule is meant to take these flows; narrow one of the two if not",
            LintCode::RuleNeverMatchesTopology => "fix the rule's address (inbound: destination, outbound: source) or delete the rule",
            LintCode::RulePortTypo => "check the port number",
        }
    }
}

impl fmt::Display for LintCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for LintCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// How much a lint finding matters (ordered: `Info < Warning < Error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LintSeverity {
    /// A hint.
    Info,
    /// Probably a mistake.
    Warning,
    /// A mistake.
    Error,
}

impl LintSeverity {
    /// `info`, `warning`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            LintSeverity::Info => "info",
            LintSeverity::Warning => "warning",
            LintSeverity::Error => "error",
        }
    }
}

/// One lint finding about one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LintFinding {
    /// Code.
    pub code: LintCode,
    /// Severity.
    pub severity: LintSeverity,
    /// NSG name.
    pub nsg: String,
    /// The VNet context (`vnets/<name>`) the finding holds in; `None` for findings about the
    /// rule's text (port typos).
    pub context: Option<String>,
    /// Direction of the rule.
    pub direction: Direction,
    /// `securityRules/<name>`.
    pub rule: String,
    /// One sentence on what is wrong.
    pub message: String,
    /// One-line fix.
    pub hint: &'static str,
    /// The other rules involved (`securityRules/…` or `defaultSecurityRules/…`).
    pub related: Vec<String>,
    /// A flow showing the finding (shadowed: a flow the covering rules take; conflict: a flow of
    /// the overlap; redundant: a flow the rule decides), when one exists.
    pub example: Option<Flow>,
    /// Where the rule is written.
    pub location: Option<Location>,
}

// === products ===

const PORTED: u8 = (1 << Protocol::Tcp as u8) | (1 << Protocol::Udp as u8);

/// A product of per-field sets; every point is a real flow.
#[derive(Clone, Debug)]
struct Product {
    proto: u8,
    src: AddrSet,
    sport: Vec<(u32, u32)>,
    dst: AddrSet,
    dport: Vec<(u32, u32)>,
}

impl Product {
    fn is_empty(&self) -> bool {
        self.proto == 0
            || self.src.is_empty()
            || self.dst.is_empty()
            || self.sport.is_empty()
            || self.dport.is_empty()
    }

    fn intersect(&self, o: &Product) -> Product {
        Product {
            proto: self.proto & o.proto,
            src: self.src.intersection(&o.src),
            sport: intersect(&self.sport, &o.sport),
            dst: self.dst.intersection(&o.dst),
            dport: intersect(&self.dport, &o.dport),
        }
    }

    fn intersects(&self, o: &Product) -> bool {
        self.proto & o.proto != 0
            && !intersect(&self.sport, &o.sport).is_empty()
            && !intersect(&self.dport, &o.dport).is_empty()
            && self.src.intersects(&o.src)
            && self.dst.intersects(&o.dst)
    }

    /// `self − o` as disjoint products.
    fn subtract(&self, o: &Product, out: &mut Vec<Product>) {
        if !self.intersects(o) {
            out.push(self.clone());
            return;
        }
        let mut cur = self.clone();
        let mut push = |p: Product| {
            if !p.is_empty() {
                out.push(p);
            }
        };
        push(Product {
            proto: cur.proto & !o.proto,
            ..cur.clone()
        });
        cur.proto &= o.proto;
        push(Product {
            src: cur.src.difference(&o.src),
            ..cur.clone()
        });
        cur.src = cur.src.intersection(&o.src);
        push(Product {
            sport: subtract(&cur.sport, &o.sport),
            ..cur.clone()
        });
        cur.sport = intersect(&cur.sport, &o.sport);
        push(Product {
            dst: cur.dst.difference(&o.dst),
            ..cur.clone()
        });
        cur.dst = cur.dst.intersection(&o.dst);
        push(Product {
            dport: subtract(&cur.dport, &o.dport),
            ..cur
        });
    }

    /// One flow of the (non-empty) product.
    fn example(&self) -> Flow {
        let protocol = Protocol::ALL
            .iter()
            .copied()
            .find(|p| self.proto & p.bit() != 0)
            .expect("non-empty product has a protocol");
        // A host-like address (past a subnet's reserved first four) when the range allows.
        let first = |s: &AddrSet| -> IpAddr {
            match s.v4_intervals().first() {
                Some(&(lo, hi)) => IpAddr::V4(if hi - lo >= 5 { lo + 4 } else { lo }.into()),
                None => {
                    let (lo, hi) = s.v6_intervals()[0];
                    IpAddr::V6(if hi - lo >= 5 { lo + 4 } else { lo }.into())
                }
            }
        };
        let ports = protocol.has_ports();
        let sport = if self.sport.iter().any(|&(a, b)| a <= 60000 && 60000 <= b) {
            60000
        } else {
            self.sport[0].0
        };
        Flow {
            protocol,
            source: first(&self.src),
            source_port: ports.then_some(sport as u16),
            destination: first(&self.dst),
            destination_port: ports.then_some(self.dport[0].0 as u16),
        }
    }
}

/// A rule's real match set, restricted on its local side to `local`.
fn products(r: &RuleSets<'_>, dir: Direction, local: &AddrSet) -> Vec<Product> {
    let (src, dst) = match dir {
        Direction::Inbound => (r.src.clone(), r.dst.intersection(local)),
        Direction::Outbound => (r.src.intersection(local), r.dst.clone()),
    };
    let mut out = Vec::new();
    for v6 in [false, true] {
        let fam = |s: &AddrSet| AddrSet::from_intervals(v6, s.family_intervals(v6));
        let (s, d) = (fam(&src), fam(&dst));
        let ported = Product {
            proto: r.proto & PORTED,
            src: s.clone(),
            sport: intersect(r.sport.ranges(), &[(0, 65_535)]),
            dst: d.clone(),
            dport: intersect(r.dport.ranges(), &[(0, NO_PORT - 1)]),
        };
        let portless = Product {
            proto: r.proto & !PORTED,
            src: s,
            sport: intersect(r.sport.ranges(), &[(NO_PORT, NO_PORT)]),
            dst: d,
            dport: intersect(r.dport.ranges(), &[(NO_PORT, NO_PORT)]),
        };
        out.extend([ported, portless].into_iter().filter(|p| !p.is_empty()));
    }
    out
}

fn subtract_all(region: Vec<Product>, cover: &[Product]) -> Vec<Product> {
    let mut cur = region;
    for q in cover {
        let mut next = Vec::with_capacity(cur.len());
        for p in &cur {
            p.subtract(q, &mut next);
        }
        cur = next;
        if cur.is_empty() {
            break;
        }
    }
    cur
}

// === the analysis ===

struct ListRule<'t> {
    sets: RuleSets<'t>,
    products: Vec<Product>,
    unknown: bool,
    default: bool,
    name: String,
}

impl Topology {
    /// Lints every NSG: per VNet context it is compiled for and per direction, rules as sets
    /// ([`LintCode`]). Findings are sorted by NSG, context, rule order and code.
    pub fn lint(&self) -> Vec<LintFinding> {
        let mut out = Vec::new();
        for (n, nsg) in self.nsgs.iter().enumerate() {
            for v in 0..self.vnets.len() {
                let Some(c) = self.compiled(n, v) else {
                    continue;
                };
                let local = self.applied_addresses(n, v);
                for dir in [Direction::Outbound, Direction::Inbound] {
                    let rules: Vec<ListRule<'_>> = c
                        .rule_sets(dir)
                        .map(|sets| {
                            let r = &nsg.rules[sets.index];
                            ListRule {
                                products: products(&sets, dir, &local),
                                sets,
                                unknown: !r.unknown.is_empty(),
                                default: r.is_default,
                                name: r.qualified_name(),
                            }
                        })
                        .collect();
                    self.lint_list(n, v, dir, &rules, &mut out);
                }
            }
            port_typos(self, n, &mut out);
        }
        out
    }

    /// Every address an NSG applied in VNet `v` sees on its side: the prefixes of the subnets
    /// and the addresses of the NICs it is applied to there.
    fn applied_addresses(&self, n: usize, v: usize) -> AddrSet {
        let mut cidrs = Vec::new();
        for s in &self.vnets[v].subnets {
            if s.nsg == Some(n) {
                cidrs.extend(s.prefixes.iter().copied());
            }
        }
        for h in &self.hosts {
            if h.nsg == Some(n) && h.placement.is_some_and(|(hv, _)| hv == v) {
                cidrs.push(crate::cidr::Cidr::host(h.address));
            }
        }
        AddrSet::from_cidrs(cidrs)
    }

    fn lint_list(
        &self,
        n: usize,
        v: usize,
        dir: Direction,
        rules: &[ListRule<'_>],
        out: &mut Vec<LintFinding>,
    ) {
        let nsg = &self.nsgs[n];
        let context = format!("vnets/{}", self.vnets[v].name);
        let finding = |i: usize, code: LintCode, severity, message: String, related, example| {
            let r = &rules[i];
            LintFinding {
                code,
                severity,
                nsg: nsg.name.clone(),
                context: Some(context.clone()),
                direction: dir,
                rule: r.name.clone(),
                message,
                hint: code.hint(),
                related,
                example,
                location: self.nsg_rule_location(n, r.sets.index),
            }
        };
        let place = match dir {
            Direction::Inbound => "destination",
            Direction::Outbound => "source",
        };
        for (i, r) in rules.iter().enumerate() {
            if r.default || r.unknown {
                continue;
            }
            if r.products.is_empty() {
                out.push(finding(
                    i,
                    LintCode::RuleNeverMatchesTopology,
                    LintSeverity::Warning,
                    format!(
                        "no flow this rule matches can reach it in {context}: its {} lies outside every subnet and NIC the NSG is applied to there (or its protocol carries no ports but the rule names some)",
                        place
                    ),
                    Vec::new(),
                    None,
                ));
                continue;
            }
            let earlier: Vec<&ListRule<'_>> = rules[..i]
                .iter()
                .filter(|e| {
                    !e.unknown
                        && e.products
                            .iter()
                            .any(|q| r.products.iter().any(|p| p.intersects(q)))
                })
                .collect();
            let cover: Vec<Product> = earlier
                .iter()
                .flat_map(|e| e.products.iter().cloned())
                .collect();
            let decided = subtract_all(r.products.clone(), &cover);
            if decided.is_empty() {
                let related: Vec<String> = earlier.iter().map(|e| e.name.clone()).collect();
                out.push(finding(
                    i,
                    LintCode::RuleShadowed,
                    LintSeverity::Warning,
                    format!(
                        "no flow is ever decided by this rule in {context}: higher-priority rules cover it ({})",
                        related.join(", ")
                    ),
                    related,
                    Some(r.products[0].example()),
                ));
                continue;
            }
            let opposite: Vec<&&ListRule<'_>> = earlier
                .iter()
                .filter(|e| e.sets.access != r.sets.access)
                .collect();
            if let Some(first) = opposite.first() {
                let overlap = first
                    .products
                    .iter()
                    .flat_map(|q| r.products.iter().map(move |p| p.intersect(q)))
                    .find(|p| !p.is_empty())
                    .expect("an earlier rule that intersects has a non-empty overlap");
                let related: Vec<String> = opposite.iter().map(|e| e.name.clone()).collect();
                out.push(finding(
                    i,
                    LintCode::RuleConflict,
                    LintSeverity::Info,
                    format!(
                        "part of this rule's flows is taken first by higher-priority rules of the opposite access ({}) in {context}",
                        related.join(", ")
                    ),
                    related,
                    Some(overlap.example()),
                ));
            }
            if let Some(absorbers) = redundant(r, &rules[i + 1..], decided.clone()) {
                let all_default = absorbers.iter().all(|k| rules[i + 1 + k].default);
                let related: Vec<String> = absorbers
                    .iter()
                    .map(|&k| rules[i + 1 + k].name.clone())
                    .collect();
                out.push(finding(
                    i,
                    LintCode::RuleRedundant,
                    if all_default { LintSeverity::Info } else { LintSeverity::Warning },
                    format!(
                        "removing this rule changes no verdict in {context}: the flows it decides get {} from the next matching rule ({})",
                        r.sets.access,
                        related.join(", ")
                    ),
                    related,
                    Some(decided[0].example()),
                ));
            }
        }
    }
}

/// For a rule deciding `decided`: the later rules that would decide those flows with the same
/// access, when every such flow would (else `None`).
fn redundant(
    r: &ListRule<'_>,
    later: &[ListRule<'_>],
    mut decided: Vec<Product>,
) -> Option<Vec<usize>> {
    let mut absorbers = Vec::new();
    for (k, l) in later.iter().enumerate() {
        let hits = l
            .products
            .iter()
            .any(|q| decided.iter().any(|p| p.intersects(q)));
        if !hits {
            continue;
        }
        if l.unknown || l.sets.access != r.sets.access {
            return None;
        }
        absorbers.push(k);
        decided = subtract_all(decided, &l.products);
        if decided.is_empty() {
            return Some(absorbers);
        }
    }
    // Unreachable with the default rules in place (DenyAll matches every flow); without them
    // nothing decides the rest, so removing the rule would change it.
    None
}

// === port typos ===

/// Ports every operator knows; a port one keystroke away from one of these that another rule
/// uses is a probable typo.
const WELL_KNOWN: &[u32] = &[
    20, 21, 22, 23, 25, 53, 80, 88, 110, 123, 143, 389, 443, 445, 465, 587, 636, 993, 995, 1433,
    1434, 1521, 2049, 3306, 3389, 5432, 5671, 5672, 5985, 5986, 6379, 6380, 8080, 8443, 9000, 9200,
    9443, 27017,
];

/// Whether `a` becomes `b` by one substitution, one adjacent swap, or one inserted or deleted
/// digit.
fn one_keystroke(a: &str, b: &str) -> bool {
    let (x, y): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if x == y {
        return false;
    }
    if x.len() == y.len() {
        let diff: Vec<usize> = (0..x.len()).filter(|&i| x[i] != y[i]).collect();
        return diff.len() == 1
            || (diff.len() == 2
                && diff[1] == diff[0] + 1
                && x[diff[0]] == y[diff[1]]
                && x[diff[1]] == y[diff[0]]);
    }
    let (short, long) = if x.len() < y.len() {
        (&x, &y)
    } else {
        (&y, &x)
    };
    long.len() == short.len() + 1
        && (0..long.len()).any(|i| {
            let mut l = long.clone();
            l.remove(i);
            &l == short
        })
}

fn port_typos(t: &Topology, n: usize, out: &mut Vec<LintFinding>) {
    let nsg = &t.nsgs[n];
    let singles = |i: usize| -> Vec<u32> {
        nsg.rules[i]
            .destination_ports
            .ranges()
            .iter()
            .filter(|(a, b)| a == b)
            .map(|r| r.0)
            .collect()
    };
    for (i, r) in nsg.rules.iter().enumerate() {
        if r.is_default {
            continue;
        }
        for p in singles(i) {
            if WELL_KNOWN.contains(&p) {
                continue;
            }
            let others: Vec<(usize, u32)> = (0..nsg.rules.len())
                .filter(|&j| j != i && !nsg.rules[j].is_default)
                .flat_map(|j| singles(j).into_iter().map(move |q| (j, q)))
                .collect();
            if others.iter().any(|&(_, q)| q == p) {
                continue;
            }
            let near: Vec<&(usize, u32)> = others
                .iter()
                .filter(|(_, q)| {
                    WELL_KNOWN.contains(q) && one_keystroke(&p.to_string(), &q.to_string())
                })
                .collect();
            let Some(&&(j, q)) = near.first() else {
                continue;
            };
            out.push(LintFinding {
                code: LintCode::RulePortTypo,
                severity: LintSeverity::Info,
                nsg: nsg.name.clone(),
                context: None,
                direction: r.direction,
                rule: r.qualified_name(),
                message: format!(
                    "{} port {p} is one keystroke from port {q}, which {} uses, and no other rule uses {p}: a typo?",
                    r.protocol, nsg.rules[j].qualified_name()
                ),
                hint: LintCode::RulePortTypo.hint(),
                related: vec![nsg.rules[j].qualified_name()],
                example: None,
                location: t.nsg_rule_location(n, i),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystrokes() {
        assert!(one_keystroke("433", "443"));
        assert!(one_keystroke("434", "443"), "adjacent swap");
        assert!(one_keystroke("4433", "443"), "inserted digit");
        assert!(!one_keystroke("9999", "443"));
        assert!(!one_keystroke("443", "443"));
        assert!(!one_keystroke("22", "443"));
    }
}

#[cfg(test)]
mod fixture_tests {
    use crate::fixture::{Fixture, Format};
    use crate::tags::ServiceTagTable;
    use crate::topology::Topology;

    #[test]
    fn default_fixture_findings() {
        let fx =
            Fixture::parse(include_str!("../../../fixtures/default.toml"), Format::Toml).unwrap();
        let t = Topology::build(&fx, ServiceTagTable::builtin()).topology;
        let findings = t.lint();
        let got: Vec<(&str, &str, &str)> = findings
            .iter()
            .map(|f| (f.code.as_str(), f.severity.as_str(), f.rule.as_str()))
            .collect();
        // deny-legacy (Deny 10.0.2.5:8080) takes part of allow-backends-https; the VNet
        // default allows the rest anyway (info: only a default rule absorbs it).
        assert_eq!(
            got,
            [
                (
                    "RULE_CONFLICT",
                    "info",
                    "securityRules/allow-backends-https"
                ),
                (
                    "RULE_REDUNDANT",
                    "info",
                    "securityRules/allow-backends-https"
                ),
                ("RULE_CONFLICT", "info", "securityRules/deny-internet"),
                ("RULE_CONFLICT", "info", "securityRules/deny-vnet-inbound"),
            ]
        );
    }
}
