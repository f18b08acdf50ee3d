//! Unknown values grouped by cause: the function (or parameter reference) that made them
//! unknown and the resource they land in, with a count, so a template with many unknowns reads
//! as a few lines (`vnetsim import` prints one per group).

use std::collections::BTreeMap;

use serde::Serialize;

use super::Unknown;

/// Unknown values with one cause in one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnknownGroup {
    /// What made them unknown: `reference()`, `listKeys()`, `a Key Vault reference`, ...
    pub cause: String,
    /// The resource they land in, as the start of their subjects (`nsgs/nsg-edge`).
    pub resource: String,
    /// How many.
    pub count: usize,
    /// Their subjects, for `--set SUBJECT=VALUE`.
    pub subjects: Vec<String>,
}

/// The cause of one unknown: the first `name()` its reason quotes, else the reason itself (up
/// to its first parenthesis).
pub fn cause(u: &Unknown) -> String {
    let r = &u.reason;
    if let Some(start) = r.find('`') {
        if let Some(len) = r[start + 1..].find('`') {
            let quoted = &r[start + 1..start + 1 + len];
            if quoted.ends_with(')') {
                return quoted.to_string();
            }
        }
    }
    if r.contains("Key Vault reference") {
        return "a Key Vault reference".to_string();
    }
    r.split(" (via ").next().unwrap_or(r).trim().to_string()
}

/// The resource part of a subject: its first two segments (`nsgs/n` of
/// `nsgs/n/security_rules/r/destination`).
fn resource_of(subject: &str) -> String {
    subject.splitn(3, '/').take(2).collect::<Vec<_>>().join("/")
}

/// Groups unknowns by (cause, resource), sorted.
///
/// ```
/// use sim::arm::{group_unknowns, Unknown};
/// let u = |subject: &str| Unknown {
///     input: "t.json".into(), pointer: "/x".into(), expression: "reference('p').ipAddress".into(),
///     line: None, column: None, subject: subject.into(),
///     reason: "`reference()` is known only at deployment time".into(), marker: "<unknown:/x>".into(),
/// };
/// let g = group_unknowns(&[u("nsgs/n/security_rules/a/destination"), u("nsgs/n/security_rules/b/source")]);
/// assert_eq!((g[0].cause.as_str(), g[0].resource.as_str(), g[0].count), ("reference()", "nsgs/n", 2));
/// ```
pub fn group_unknowns(unknowns: &[Unknown]) -> Vec<UnknownGroup> {
    let mut groups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for u in unknowns {
        groups
            .entry((cause(u), resource_of(&u.subject)))
            .or_default()
            .push(u.subject.clone());
    }
    groups
        .into_iter()
        .map(|((cause, resource), mut subjects)| {
            let count = subjects.len();
            subjects.sort();
            subjects.dedup();
            UnknownGroup {
                cause,
                resource,
                count,
                subjects,
            }
        })
        .collect()
}
