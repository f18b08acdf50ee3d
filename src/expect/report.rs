//! The result of running expectations: each [`Outcome`] (what was asked, what happened, the
//! actual chain) and the [`Report`] whose `Display` is `vnetsim test`'s pass/fail table and whose
//! JSON is `vnetsim test --output json`.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use sim::{ServiceTagsInfo, Verdict, VerdictCode, VerdictKind};

use super::{EntryError, Expectation};

/// `addr:port`, `[addr]:port` for IPv6, or the address alone when there is no port.
fn socket(addr: &str, port: Option<u16>) -> String {
    match port {
        Some(p) if addr.contains(':') => format!("[{addr}]:{p}"),
        Some(p) => format!("{addr}:{p}"),
        None => addr.to_string(),
    }
}

/// `Allow`, `Deny`, `Unreachable` or `Indeterminate`.
pub fn kind_str(k: VerdictKind) -> &'static str {
    k.as_str()
}

/// What an expectation asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expected {
    /// The verdict.
    pub verdict: VerdictKind,
    /// The deciding rule, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The code, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<VerdictCode>,
    /// The NSG whose matched rule `rule` names, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nsg: Option<String>,
}

/// One expectation's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The expectation's name.
    pub name: String,
    /// Whether everything it asked for holds.
    pub passed: bool,
    /// The source as written.
    pub from: String,
    /// The destination as written.
    pub to: String,
    /// What it asked for.
    pub expected: Expected,
    /// One line per field that differs (empty when passed).
    pub mismatches: Vec<String>,
    /// The actual verdict, with its chain.
    pub actual: Verdict,
    /// The line of the expectation's `name` in the expectations file.
    pub line: usize,
    /// How long the evaluation took (JUnit's `time`; not in the JSON, which stays the same
    /// from run to run).
    #[serde(skip)]
    pub time: Duration,
}

// === impl Outcome ===

impl Outcome {
    pub(super) fn compare(e: &Expectation, actual: Verdict, time: Duration) -> Outcome {
        let mut mismatches = Vec::new();
        let got_rule = actual
            .decided_by
            .as_ref()
            .map_or_else(|| "none".to_string(), |d| format!("{} / {}", d.nsg, d.rule));
        if actual.verdict != e.verdict {
            mismatches.push(format!(
                "verdict: expected {}, got {} ({})",
                kind_str(e.verdict),
                kind_str(actual.verdict),
                actual.code
            ));
        }
        match (&e.nsg, &e.rule) {
            (Some(nsg), rule) => nsg_mismatch(nsg, rule.as_deref(), &actual, &mut mismatches),
            (None, Some(rule)) => {
                let same = actual
                    .decided_by
                    .as_ref()
                    .is_some_and(|d| d.rule.eq_ignore_ascii_case(rule));
                if !same {
                    mismatches.push(format!("rule: expected {rule}, got {got_rule}"));
                }
            }
            (None, None) => {}
        }
        if let Some(code) = e.code {
            if actual.code != code {
                mismatches.push(format!("code: expected {code}, got {}", actual.code));
            }
        }
        Outcome {
            name: e.name.clone(),
            passed: mismatches.is_empty(),
            from: e.from.clone(),
            to: e.to.clone(),
            expected: Expected {
                verdict: e.verdict,
                rule: e.rule.clone(),
                code: e.code,
                nsg: e.nsg.clone(),
            },
            mismatches,
            actual,
            line: e.position.line,
            time,
        }
    }

    /// The actual chain, one line per NSG evaluated (in Azure's order) and a last line with
    /// the verdict, its code and why.
    pub fn chain(&self) -> Vec<String> {
        let v = &self.actual;
        let mut lines: Vec<String> = v
            .evaluated
            .iter()
            .enumerate()
            .map(|(i, e)| {
                format!(
                    "{}. {} on {} ({}): {} -> {}",
                    i + 1,
                    e.nsg,
                    e.applied_to,
                    e.direction,
                    e.matched_rule,
                    e.access
                )
            })
            .collect();
        if lines.is_empty() {
            lines.push("no NSG evaluated".into());
        }
        lines.push(format!(
            "=> {} ({}) for {} {} -> {}: {}",
            kind_str(v.verdict),
            v.code,
            v.flow.protocol,
            socket(&v.flow.source, v.flow.source_port),
            socket(
                v.flow
                    .destination
                    .as_deref()
                    .or(v.resolved.as_ref().map(|r| r.name.as_str()))
                    .unwrap_or("?"),
                v.flow.destination_port
            ),
            v.detail
        ));
        lines
    }
}

/// `nsg = "..."`: the named NSG must be on the path and, with `rule`, have matched that rule
/// (`deny-x`, `securityRules/deny-x` or `defaultSecurityRules/X`, case-insensitive) in one of
/// its evaluations.
fn nsg_mismatch(nsg: &str, rule: Option<&str>, actual: &Verdict, mismatches: &mut Vec<String>) {
    let evaluations: Vec<&str> = actual
        .evaluated
        .iter()
        .filter(|e| e.nsg.eq_ignore_ascii_case(nsg))
        .map(|e| e.matched_rule.as_str())
        .collect();
    if evaluations.is_empty() {
        let on_path: Vec<&str> = actual.evaluated.iter().map(|e| e.nsg.as_str()).collect();
        mismatches.push(format!(
            "nsg: {nsg} is not on the flow's path (evaluated: {})",
            if on_path.is_empty() {
                "none".to_string()
            } else {
                on_path.join(", ")
            }
        ));
        return;
    }
    let Some(rule) = rule else { return };
    let same = |matched: &str| {
        matched.eq_ignore_ascii_case(rule)
            || (!rule.contains('/')
                && matched
                    .rsplit_once('/')
                    .is_some_and(|(_, n)| n.eq_ignore_ascii_case(rule)))
    };
    if !evaluations.iter().any(|m| same(m)) {
        mismatches.push(format!(
            "rule: expected {nsg} / {rule}, got {nsg} / {}",
            evaluations.join(" and ")
        ));
    }
}

/// The result of running an expectations file (the `vnetsim test --output json` document).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[must_use]
pub struct Report {
    /// Whether every expectation passed.
    pub passed: bool,
    /// The expectations file.
    pub expectations: String,
    /// The topology fixture.
    pub topology: String,
    /// Number of expectations.
    pub total: usize,
    /// Number that failed.
    pub failed: usize,
    /// Number that could not be evaluated ([`Report::errors`]).
    pub errored: usize,
    /// Every result, in file order.
    pub results: Vec<Outcome>,
    /// Entries that could not be evaluated, in file order (`vnetsim test` exits 2).
    pub errors: Vec<EntryError>,
    /// The service tag table used.
    pub service_tags: ServiceTagsInfo,
}

impl fmt::Display for Report {
    /// The pass/fail table; failures show their mismatches and the actual chain.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self
            .results
            .iter()
            .map(|r| r.name.chars().count())
            .chain(self.errors.iter().map(|e| e.name.chars().count()))
            .max()
            .unwrap_or(4)
            .clamp(4, 80);
        writeln!(
            f,
            "{:<6} {:<w$}  {:<12} ACTUAL",
            "RESULT", "NAME", "EXPECTED"
        )?;
        for r in &self.results {
            let actual = match &r.actual.decided_by {
                Some(d) => format!(
                    "{} ({}) {} / {}",
                    kind_str(r.actual.verdict),
                    r.actual.code,
                    d.nsg,
                    d.rule
                ),
                None => format!("{} ({})", kind_str(r.actual.verdict), r.actual.code),
            };
            writeln!(
                f,
                "{:<6} {:<w$}  {:<12} {}",
                if r.passed { "pass" } else { "FAIL" },
                r.name,
                kind_str(r.expected.verdict),
                actual
            )?;
            if !r.passed {
                for m in &r.mismatches {
                    writeln!(f, "{:6}   {m}", "")?;
                }
                writeln!(f, "{:6}   actual chain ({} -> {}):", "", r.from, r.to)?;
                for line in r.chain() {
                    writeln!(f, "{:6}     {line}", "")?;
                }
            }
        }
        for e in &self.errors {
            writeln!(
                f,
                "{:<6} {:<w$}  {}:{}:{}: {}",
                "ERROR", e.name, self.expectations, e.line, e.column, e.message
            )?;
        }
        let tags = &self.service_tags;
        write!(
            f,
            "\n{}: {} of {} expectations passed, {} failed{} (topology {}; service tags {})",
            self.expectations,
            self.total - self.failed - self.errored,
            self.total,
            self.failed,
            if self.errored == 0 {
                String::new()
            } else {
                format!(", {} could not be evaluated", self.errored)
            },
            self.topology,
            tags.describe()
        )
    }
}
