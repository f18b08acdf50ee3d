//! Expectations files — what `vnetsim test` checks in CI: a topology and the verdicts its flows
//! must have.
//!
//! ```toml
//! topology = "default.toml"            # a fixture, relative to this file
//!
//! [[expect]]
//! name = "apim reaches orders over HTTPS"
//! from = "apim"                        # apim, a host name or DNS name, or an IP
//! to = "orders:443"                    # [addr]:port for IPv6; no port for Icmp/Esp/Ah
//! protocol = "Tcp"                     # optional: Tcp (default), Udp, Icmp, Esp, Ah
//! source_port = 60000                  # optional: 60000 by default
//! verdict = "Allow"                    # Allow | Deny | Unreachable (case-insensitive)
//! rule = "securityRules/allow-apim-subnet"  # optional: compared with decided_by.rule
//! code = "ALLOWED"                     # optional: ALLOWED, NSG_DENIED, NO_ROUTE, ...
//! nsg = "nsg-backend"                  # optional: `rule` is then the rule THIS NSG matched
//!                                      # (bare `deny-x` or `securityRules/deny-x`)
//! ```
//!
//! An entry that cannot be evaluated (a malformed flow or rule, an unknown key or value, an
//! endpoint the topology does not have) does not stop the others: [`Expectations::parse_lenient`]
//! and [`Expectations::run_lenient`] report it as an error ([`EntryError`]), as `vnetsim test`
//! does (an error test case in JUnit, exit 2).
//!
//! `topology` may also name Azure input — an ARM template, exported resource JSON, or a folder
//! of them — with these optional keys for the import (paths relative to this file; the
//! command line's `--parameters`, `--parameter`, ... are added on top and win):
//!
//! ```toml
//! topology = "arm/apim-integration.json"
//! parameters = ["arm/apim-integration.parameters.json"]   # ARM parameters files
//! parameter = { backendCount = 3, allowSsh = true }      # read per the declared type
//! subscription_id = "11111111-2222-3333-4444-555555555555"
//! resource_group = "rg-prod"
//! location = "westeurope"
//! ```
//!
//! This module parses the file ([`Expectations::parse`], unknown keys and bad values are errors
//! with line:col), loads its topology, evaluates every expectation ([`Expectations::run`]) and
//! returns a [`Report`] whose `Display` is the pass/fail table. JUnit XML is [`crate::junit`]'s.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use sim::{Protocol, Topology, VerdictCode, VerdictKind};

use crate::azure::AzureOptions;
use crate::load::{at, load_inputs, LoadError, LoadOptions, Loaded, TagSource};
use crate::query::{FlowQuery, QueryError, Side};

mod report;

pub use report::{kind_str, Expected, Outcome, Report};

/// A 1-based line and column in an expectations file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Position {
    /// Line.
    pub line: usize,
    /// Column.
    pub column: usize,
}

impl Position {
    fn of(text: &str, offset: usize) -> Position {
        let offset = offset.min(text.len());
        let before = &text.as_bytes()[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        Position { line, column }
    }
}

/// One problem in an expectations file, at a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub position: Position,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Why an expectations file could not be run: bad input (`vnetsim test` exits 2).
#[derive(Debug, thiserror::Error)]
pub enum ExpectError {
    /// The file could not be read.
    #[error("{}: cannot read the expectations file: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file does not parse (syntax, unknown key, wrong type, missing key, bad value).
    #[error("{}", at(name, *line, *column, message))]
    Parse {
        /// The file's name.
        name: String,
        /// Line, when known.
        line: Option<usize>,
        /// Column, when known.
        column: Option<usize>,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Expectations that parse but cannot be evaluated (unknown host, bad port, ...).
    #[error("{}", .problems.iter().map(|p| at(name, Some(p.position.line), Some(p.position.column), &p.message)).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file's name.
        name: String,
        /// Every problem, in file order.
        problems: Vec<Problem>,
    },
    /// The topology named by `topology` could not be loaded.
    #[error("{}:{}:{}: topology: {source}", name, position.line, position.column)]
    Topology {
        /// The expectations file's name.
        name: String,
        /// Position of the `topology` value.
        position: Position,
        /// Why it could not be loaded.
        #[source]
        source: Box<LoadError>,
    },
}

/// The expected verdict as written (case-insensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ExpectedVerdict(VerdictKind);

impl<'de> Deserialize<'de> for ExpectedVerdict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        VerdictKind::ALL
            .into_iter()
            .find(|k| kind_str(*k).eq_ignore_ascii_case(s.trim()))
            .map(ExpectedVerdict)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                "unknown verdict `{s}`, expected one of: Allow, Deny, Unreachable, Indeterminate"
            ))
            })
    }
}

const CODES: [VerdictCode; VerdictCode::ALL.len()] = VerdictCode::ALL;

/// The expected verdict code as written (case-insensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ExpectedCode(VerdictCode);

impl<'de> Deserialize<'de> for ExpectedCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CODES
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .map(ExpectedCode)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown verdict code `{s}`, expected one of: {}",
                    CODES.map(VerdictCode::as_str).join(", ")
                ))
            })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    topology: Spanned<String>,
    #[serde(default)]
    parameters: Vec<String>,
    #[serde(default)]
    parameter: BTreeMap<String, toml::Value>,
    #[serde(default)]
    subscription_id: Option<String>,
    #[serde(default)]
    resource_group: Option<String>,
    #[serde(default)]
    location: Option<String>,
    /// `--set SUBJECT=VALUE` for the topology's deployment-time unknowns.
    #[serde(default)]
    set: BTreeMap<String, toml::Value>,
    #[serde(default)]
    expect: Vec<RawEntry>,
}

/// `name=value` for `--parameter`: strings as they are, numbers and booleans as written,
/// arrays and tables as JSON.
fn parameter_pair(name: &str, v: &toml::Value) -> String {
    let value = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    format!("{name}={value}")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: Spanned<String>,
    from: Spanned<String>,
    to: Spanned<String>,
    #[serde(default)]
    protocol: Option<Protocol>,
    #[serde(default)]
    source_port: Option<Spanned<u16>>,
    verdict: ExpectedVerdict,
    #[serde(default)]
    rule: Option<Spanned<String>>,
    #[serde(default)]
    code: Option<ExpectedCode>,
    #[serde(default)]
    nsg: Option<Spanned<String>>,
}

/// One expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// Its name (unique in the file).
    pub name: String,
    /// Where its `name` is.
    pub position: Position,
    /// The source as written.
    pub from: String,
    /// The destination as written.
    pub to: String,
    /// The parsed flow.
    pub query: FlowQuery,
    /// The expected verdict.
    pub verdict: VerdictKind,
    /// The expected deciding rule (`securityRules/<name>` or `defaultSecurityRules/<name>`).
    pub rule: Option<String>,
    /// The expected verdict code.
    pub code: Option<VerdictCode>,
    /// An NSG on the path whose matched rule `rule` is compared with (instead of the deciding
    /// rule); without `rule`, the NSG must be on the path.
    pub nsg: Option<String>,
    from_at: Position,
    to_at: Position,
    source_port_at: Option<Position>,
}

/// A parsed expectations file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectations {
    /// The file's path as given, or its name; messages start with it.
    pub name: String,
    /// The topology fixture, resolved against the file's directory.
    pub topology: PathBuf,
    /// Where the `topology` value is.
    pub topology_at: Position,
    /// Import options for an Azure topology (`parameters`, `parameter`, `subscription_id`,
    /// `resource_group`, `location`; parameters files resolved against the file's directory).
    pub azure: AzureOptions,
    /// The expectations, in file order.
    pub entries: Vec<Expectation>,
    /// Entries that cannot be evaluated ([`Expectations::parse_lenient`] only; `parse` fails
    /// on them), in file order.
    pub bad: Vec<EntryError>,
}

/// An expectation that cannot be evaluated: reported as an error test case, the others run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryError {
    /// The entry's `name`, or `entry at line N` when it has none that reads.
    pub name: String,
    /// Line of the problem.
    pub line: usize,
    /// Column of the problem.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// The byte ranges of the `[[expect]]` tables (header line to the next header or the end), or
/// `None` when the file has none written that way.
fn entry_chunks(text: &str) -> Option<Vec<std::ops::Range<usize>>> {
    let mut starts = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code = line.split('#').next().unwrap_or("");
        let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if compact == "[[expect]]" {
            starts.push(offset);
        }
        offset += line.len();
    }
    if starts.is_empty() {
        return None;
    }
    let mut chunks = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        chunks.push(start..starts.get(i + 1).copied().unwrap_or(text.len()));
    }
    Some(chunks)
}

/// `text` with every byte of `ranges` except line breaks turned into spaces: positions of the
/// rest stay where they were.
fn blank(text: &str, ranges: &[std::ops::Range<usize>]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for r in ranges {
        for b in &mut bytes[r.clone()] {
            if *b != b'\n' && *b != b'\r' {
                *b = b' ';
            }
        }
    }
    // Only ASCII spaces replaced whole ranges that started on line boundaries.
    String::from_utf8(bytes).unwrap_or_default()
}

/// The `name` an entry's text gives, if it reads: the whole entry as TOML, else its own
/// `name = "..."` line (the entry may be broken elsewhere).
fn chunk_name(chunk: &str) -> Option<String> {
    let body = chunk.split_once('\n').map_or("", |(_, b)| b);
    if let Ok(table) = toml::from_str::<toml::Table>(body) {
        return table.get("name")?.as_str().map(|s| s.trim().to_string());
    }
    body.lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        if key.trim() != "name" {
            return None;
        }
        let v: toml::Value = toml::from_str::<toml::Table>(&format!("v = {}", value.trim()))
            .ok()?
            .remove("v")?;
        v.as_str().map(|s| s.trim().to_string())
    })
}

// === impl Expectations ===

/// An expectations file's text (the same bounded read as every topology file: a FIFO or device
/// is refused) and the directory its `topology` is relative to.
fn read(path: &Path) -> Result<(String, &Path), ExpectError> {
    let text = gateway::file::read_to_string(path, gateway::file::DEFAULT_MAX_FILE_BYTES).map_err(
        |source| ExpectError::Read {
            path: path.to_path_buf(),
            source,
        },
    )?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((text, dir))
}

impl Expectations {
    /// Reads and parses an expectations file; `topology` is relative to its directory.
    ///
    /// # Errors
    /// [`ExpectError::Read`], [`ExpectError::Parse`] or [`ExpectError::Invalid`].
    pub fn load(path: &Path) -> Result<Expectations, ExpectError> {
        let (text, dir) = read(path)?;
        Expectations::parse(&path.display().to_string(), &text, dir)
    }

    /// Parses expectations text named `name`, with `topology` relative to `base_dir`.
    ///
    /// # Errors
    /// [`ExpectError::Parse`] for TOML errors, unknown keys, wrong types, missing keys, unknown
    /// verdicts or codes, or no `[[expect]]` at all; [`ExpectError::Invalid`] listing every
    /// expectation whose flow or rule is malformed, or whose name repeats an earlier one.
    ///
    /// ```
    /// use vnetsim::expect::Expectations;
    /// let text = "topology = \"default.toml\"\n[[expect]]\nname = \"n\"\nfrom = \"apim\"\nto = \"orders:443\"\nverdict = \"allow\"\n";
    /// let e = Expectations::parse("e.toml", text, "fixtures".as_ref()).unwrap();
    /// assert_eq!(e.topology, std::path::Path::new("fixtures/default.toml"));
    /// let bad = text.replace("verdict", "verdikt");
    /// let err = Expectations::parse("e.toml", &bad, "fixtures".as_ref()).unwrap_err();
    /// assert!(err.to_string().starts_with("e.toml:6:1: "), "{err}");
    /// ```
    pub fn parse(name: &str, text: &str, base_dir: &Path) -> Result<Expectations, ExpectError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| parse_error(name, text, &e))?;
        let (exp, mut problems) = Expectations::build(name, text, raw, base_dir, Vec::new())?;
        if !problems.is_empty() {
            problems.sort_by_key(|p| p.position);
            return Err(ExpectError::Invalid {
                name: name.to_string(),
                problems,
            });
        }
        Ok(exp)
    }

    /// Reads and parses an expectations file as `vnetsim test` does: bad entries are kept in
    /// [`Expectations::bad`] and the others parse.
    ///
    /// # Errors
    /// As [`Expectations::load`], except for problems inside one `[[expect]]` entry.
    pub fn load_lenient(path: &Path) -> Result<Expectations, ExpectError> {
        let (text, dir) = read(path)?;
        Expectations::parse_lenient(&path.display().to_string(), &text, dir)
    }

    /// Parses like [`Expectations::parse`], but a problem inside one `[[expect]]` entry (an
    /// unknown key or value, a malformed flow or rule, a repeated name) makes that entry an
    /// [`EntryError`] in [`Expectations::bad`] while the others parse.
    ///
    /// ```
    /// use vnetsim::expect::Expectations;
    /// let good = "[[expect]]\nname = \"ok\"\nfrom = \"apim\"\nto = \"orders:443\"\nverdict = \"Allow\"\n";
    /// let text = format!("topology = \"default.toml\"\n{good}{}", good.replace("\"ok\"", "\"bad\"").replace("verdict", "verdikt"));
    /// let e = Expectations::parse_lenient("e.toml", &text, "fixtures".as_ref()).unwrap();
    /// assert_eq!(e.entries.len(), 1);
    /// assert_eq!((e.bad[0].name.as_str(), e.bad[0].line), ("bad", 11));
    /// assert!(Expectations::parse("e.toml", &text, "fixtures".as_ref()).is_err());
    /// ```
    ///
    /// # Errors
    /// [`ExpectError::Parse`] for problems outside the entries (syntax of the file's own keys,
    /// a missing `topology`, no `[[expect]]` at all).
    pub fn parse_lenient(
        name: &str,
        text: &str,
        base_dir: &Path,
    ) -> Result<Expectations, ExpectError> {
        let (raw, mut bad) = match toml::from_str::<RawFile>(text) {
            Ok(raw) => (raw, Vec::new()),
            Err(e) => {
                let chunks = entry_chunks(text);
                let inside = |c: &[std::ops::Range<usize>]| {
                    e.span()
                        .is_some_and(|s| c.iter().any(|r| r.contains(&s.start)))
                };
                let Some(chunks) = chunks.filter(|c| inside(c)) else {
                    return Err(parse_error(name, text, &e));
                };
                // Each entry alone (the others blanked, positions kept): which ones fail.
                let mut bad = Vec::new();
                let mut bad_ranges = Vec::new();
                for (i, c) in chunks.iter().enumerate() {
                    let others: Vec<_> = chunks
                        .iter()
                        .enumerate()
                        .filter(|&(j, _)| j != i)
                        .map(|(_, r)| r.clone())
                        .collect();
                    if let Err(e) = toml::from_str::<RawFile>(&blank(text, &others)) {
                        let at = Position::of(text, e.span().map_or(c.start, |s| s.start));
                        bad.push(EntryError {
                            name: chunk_name(&text[c.clone()])
                                .unwrap_or_else(|| format!("entry at line {}", at.line)),
                            line: at.line,
                            column: at.column,
                            message: e.message().trim().to_string(),
                        });
                        bad_ranges.push(c.clone());
                    }
                }
                let raw = toml::from_str::<RawFile>(&blank(text, &bad_ranges))
                    .map_err(|e| parse_error(name, text, &e))?;
                (raw, bad)
            }
        };
        let (mut exp, _) =
            Expectations::build(name, text, raw, base_dir, std::mem::take(&mut bad))?;
        exp.bad.sort_by_key(|b| (b.line, b.column));
        Ok(exp)
    }

    /// The checked expectations from the file's shape, with every per-entry problem (the
    /// entries that have one are left out of `entries` and listed in `bad`, after `bad_toml`).
    fn build(
        name: &str,
        text: &str,
        raw: RawFile,
        base_dir: &Path,
        bad_toml: Vec<EntryError>,
    ) -> Result<(Expectations, Vec<Problem>), ExpectError> {
        let pos = |s: std::ops::Range<usize>| Position::of(text, s.start);
        if raw.expect.is_empty() && bad_toml.is_empty() {
            return Err(ExpectError::Parse {
                name: name.to_string(),
                line: None,
                column: None,
                message: "no [[expect]] entries: add at least one with name, from, to and verdict"
                    .into(),
            });
        }
        let mut all_problems = Vec::new();
        let mut bad = bad_toml;
        let mut seen: BTreeMap<String, Position> = BTreeMap::new();
        let mut entries = Vec::new();
        for e in raw.expect {
            // This entry's problems; an entry with any is not evaluated.
            let mut problems = Vec::new();
            let name_at = pos(e.name.span());
            let ename = e.name.get_ref().trim().to_string();
            if ename.is_empty() {
                problems.push(Problem {
                    position: name_at,
                    message: "expectation name is empty".into(),
                });
            } else if let Some(first) = seen.get(&ename) {
                problems.push(Problem {
                    position: name_at,
                    message: format!(
                        "expectation `{ename}` is already defined at line {}; names must be unique (each becomes a JUnit test case)",
                        first.line
                    ),
                });
            } else {
                seen.insert(ename.clone(), name_at);
            }
            if let Some(n) = &e.nsg {
                if n.get_ref().trim().is_empty() {
                    problems.push(Problem {
                        position: pos(n.span()),
                        message: format!(
                            "expectation `{ename}`: nsg is empty: name an NSG on the flow's path"
                        ),
                    });
                }
            }
            if let Some(r) = &e.rule {
                let text = r.get_ref().trim();
                let qualified = ["securityRules/", "defaultSecurityRules/"].iter().any(|p| {
                    text.get(..p.len())
                        .is_some_and(|head| head.eq_ignore_ascii_case(p))
                        && text.len() > p.len()
                });
                // With `nsg`, a bare rule name is that NSG's rule.
                let bare_ok = e.nsg.is_some() && !text.is_empty() && !text.contains('/');
                if !qualified && !bare_ok {
                    problems.push(Problem {
                        position: pos(r.span()),
                        message: format!(
                            "expectation `{ename}`: rule `{text}` must be written as Network Watcher names it: `securityRules/<name>` or `defaultSecurityRules/<name>`"
                        ),
                    });
                }
            }
            let from_at = pos(e.from.span());
            let to_at = pos(e.to.span());
            let source_port_at = e.source_port.as_ref().map(|s| pos(s.span()));
            let query = FlowQuery::parse(
                e.from.get_ref(),
                e.to.get_ref(),
                e.protocol,
                e.source_port.as_ref().map(|s| *s.get_ref()),
            );
            let query = match query {
                Ok(q) => Some(q),
                Err(err) => {
                    problems.push(Problem {
                        position: place(&err, from_at, to_at, source_port_at),
                        message: format!("expectation `{ename}`: {err}"),
                    });
                    None
                }
            };
            let query = match query {
                Some(q) if problems.is_empty() => q,
                _ => {
                    problems.sort_by_key(|p| p.position);
                    let first = problems[0].position;
                    bad.push(EntryError {
                        name: if ename.is_empty() {
                            format!("entry at line {}", name_at.line)
                        } else {
                            ename
                        },
                        line: first.line,
                        column: first.column,
                        message: problems
                            .iter()
                            .map(|p| p.message.as_str())
                            .collect::<Vec<_>>()
                            .join("; "),
                    });
                    all_problems.append(&mut problems);
                    continue;
                }
            };
            entries.push(Expectation {
                name: ename,
                position: name_at,
                from: e.from.get_ref().trim().to_string(),
                to: e.to.get_ref().trim().to_string(),
                query,
                verdict: e.verdict.0,
                rule: e.rule.map(|r| r.into_inner().trim().to_string()),
                code: e.code.map(|c| c.0),
                nsg: e.nsg.map(|n| n.into_inner().trim().to_string()),
                from_at,
                to_at,
                source_port_at,
            });
        }
        let azure = AzureOptions {
            parameter_files: raw.parameters.iter().map(|p| base_dir.join(p)).collect(),
            parameters: raw
                .parameter
                .iter()
                .map(|(k, v)| parameter_pair(k, v))
                .collect(),
            subscription_id: raw.subscription_id,
            resource_group: raw.resource_group,
            location: raw.location,
            sets: raw.set.iter().map(|(k, v)| parameter_pair(k, v)).collect(),
        };
        Ok((
            Expectations {
                name: name.to_string(),
                topology: base_dir.join(raw.topology.get_ref()),
                topology_at: pos(raw.topology.span()),
                azure,
                entries,
                bad,
            },
            all_problems,
        ))
    }

    /// Loads the topology the file names.
    ///
    /// # Errors
    /// [`ExpectError::Topology`] wrapping the [`LoadError`], at the `topology` value.
    pub fn load_topology(&self, tags: &TagSource) -> Result<Loaded, ExpectError> {
        self.load_topology_with(&LoadOptions {
            tags: tags.clone(),
            ..LoadOptions::default()
        })
    }

    /// Loads the topology the file names with the file's import options, `options.azure`
    /// added on top (winning), and `options`' service tags and upstream mappings.
    ///
    /// # Errors
    /// [`ExpectError::Topology`] wrapping the [`LoadError`], at the `topology` value.
    pub fn load_topology_with(&self, options: &LoadOptions) -> Result<Loaded, ExpectError> {
        let options = LoadOptions {
            azure: self.azure.merged_with(&options.azure),
            ..options.clone()
        };
        load_inputs(std::slice::from_ref(&self.topology), &options).map_err(|e| {
            ExpectError::Topology {
                name: self.name.clone(),
                position: self.topology_at,
                source: Box::new(e),
            }
        })
    }

    /// Evaluates every expectation against `t` (resolving them all first).
    ///
    /// # Errors
    /// [`ExpectError::Invalid`] listing every expectation whose endpoints do not resolve in
    /// the topology; nothing is evaluated then.
    pub fn run(&self, t: &Topology) -> Result<Report, ExpectError> {
        let (results, problems) = self.evaluate(t);
        if !problems.is_empty() {
            return Err(ExpectError::Invalid {
                name: self.name.clone(),
                problems: problems.into_iter().map(|(_, p)| p).collect(),
            });
        }
        Ok(self.report(t, results, Vec::new()))
    }

    /// Evaluates every expectation that can be: entries whose endpoints do not resolve join
    /// [`Expectations::bad`] as errors in the report ([`Report::errors`]), the others run.
    pub fn run_lenient(&self, t: &Topology) -> Report {
        let (results, problems) = self.evaluate(t);
        let mut errors = self.bad.clone();
        for (name, p) in problems {
            errors.push(EntryError {
                name,
                line: p.position.line,
                column: p.position.column,
                message: p.message,
            });
        }
        errors.sort_by_key(|b| (b.line, b.column));
        self.report(t, results, errors)
    }

    /// Each expectation's outcome, or the problem of one whose endpoints do not resolve.
    fn evaluate(&self, t: &Topology) -> (Vec<Outcome>, Vec<(String, Problem)>) {
        let mut problems = Vec::new();
        let mut results = Vec::new();
        for e in &self.entries {
            let started = std::time::Instant::now();
            match e.query.explain(t) {
                Ok(v) => results.push(Outcome::compare(e, v, started.elapsed())),
                Err(err) => problems.push((
                    e.name.clone(),
                    Problem {
                        position: place(&err, e.from_at, e.to_at, e.source_port_at),
                        message: format!("expectation `{}`: {err}", e.name),
                    },
                )),
            }
        }
        (results, problems)
    }

    fn report(&self, t: &Topology, results: Vec<Outcome>, errors: Vec<EntryError>) -> Report {
        let failed = results.iter().filter(|r| !r.passed).count();
        Report {
            passed: failed == 0 && errors.is_empty(),
            expectations: self.name.clone(),
            topology: self.topology.display().to_string(),
            total: results.len() + errors.len(),
            failed,
            errored: errors.len(),
            results,
            errors,
            service_tags: t.service_tags().info().clone(),
        }
    }
}

/// The [`ExpectError::Parse`] of a TOML error, at its position.
fn parse_error(name: &str, text: &str, e: &toml::de::Error) -> ExpectError {
    let pos = e.span().map(|s| Position::of(text, s.start));
    ExpectError::Parse {
        name: name.to_string(),
        line: pos.map(|p| p.line),
        column: pos.map(|p| p.column),
        message: e.message().trim().to_string(),
    }
}

/// Which field an error is about, for its position.
fn place(err: &QueryError, from: Position, to: Position, sport: Option<Position>) -> Position {
    match err {
        QueryError::Empty { side }
        | QueryError::BadPort { side, .. }
        | QueryError::BadBracket { side, .. }
        | QueryError::AmbiguousColon { side, .. }
        | QueryError::NoApim { side }
        | QueryError::UnknownHost { side, .. }
        | QueryError::UnknownSubnet { side, .. }
        | QueryError::Misplaced { side, .. }
        | QueryError::AmbiguousAddress { side, .. } => match side {
            Side::Source => from,
            Side::Destination => to,
        },
        QueryError::PortOnSource { .. } | QueryError::SourceNotInSubnet { .. } => from,
        QueryError::SourcePortNotAllowed { .. } => sport.unwrap_or(from),
        QueryError::PortRequired { .. }
        | QueryError::PortNotAllowed { .. }
        | QueryError::PortInSpace { .. }
        | QueryError::FamilyMismatch { .. } => to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "topology = \"default.toml\"\n";

    fn parse(body: &str) -> Result<Expectations, ExpectError> {
        Expectations::parse("e.toml", &format!("{HEAD}{body}"), Path::new("fixtures"))
    }

    fn entry(extra: &str) -> String {
        format!("[[expect]]\nname = \"n\"\nfrom = \"apim\"\nto = \"orders:443\"\nverdict = \"Allow\"\n{extra}")
    }

    fn run(body: &str) -> Report {
        let e = parse(body).unwrap();
        let loaded = e.load_topology(&TagSource::Fixture).unwrap();
        e.run(loaded.topology()).unwrap()
    }

    #[test]
    fn unknown_keys_and_values_are_errors_with_positions() {
        let e = parse(&entry("colour = \"red\"\n")).unwrap_err();
        assert!(e.to_string().starts_with("e.toml:7:1: "), "{e}");
        assert!(e.to_string().contains("colour"), "{e}");
        let e = parse(&entry("code = \"NOPE\"\n")).unwrap_err();
        assert!(e.to_string().starts_with("e.toml:7:"), "{e}");
        assert!(e.to_string().contains("NO_ROUTE"), "lists the codes: {e}");
        let e = parse(&entry("").replace("\"Allow\"", "\"Maybe\"")).unwrap_err();
        assert!(e.to_string().contains("Allow, Deny, Unreachable"), "{e}");
        let e = parse(&entry("source_port = 70000\n")).unwrap_err();
        assert!(e.to_string().starts_with("e.toml:7:"), "{e}");
        assert!(matches!(parse(""), Err(ExpectError::Parse { .. })));
        let e = Expectations::parse("e.toml", &entry(""), Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("topology"), "{e}");
    }

    #[test]
    fn malformed_flows_and_rules_are_all_reported() {
        let body = format!(
            "{}{}",
            entry("rule = \"deny-legacy\"\n"),
            entry("protocol = \"icmp\"\n")
        );
        let Err(ExpectError::Invalid { problems, .. }) = parse(&body) else {
            panic!("expected Invalid");
        };
        let msgs: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(problems.len(), 3, "{msgs:?}");
        assert!(msgs[0].contains("securityRules/<name>"), "{msgs:?}");
        assert!(
            msgs.iter().any(|m| m.contains("already defined")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("carry no ports")),
            "{msgs:?}"
        );
        // The port problem points at the `to` value of the second entry (line 11).
        assert!(
            problems
                .iter()
                .any(|p| p.position.line == 11 && p.message.contains("carry no ports")),
            "{problems:?}"
        );
    }

    #[test]
    fn lenient_parsing_sets_bad_entries_aside() {
        let good = entry("");
        let broken_syntax = entry("code = \"ALLOWED\n").replace("\"n\"", "\"syntax\"");
        let bad_value = entry("")
            .replace("\"n\"", "\"value\"")
            .replace("\"Allow\"", "\"Maybe\"");
        let bad_flow = entry("")
            .replace("\"n\"", "\"flow\"")
            .replace("orders:443", "orders");
        let text = format!("{HEAD}{good}{broken_syntax}{bad_value}{bad_flow}");
        let e = Expectations::parse_lenient("e.toml", &text, Path::new("fixtures")).unwrap();
        assert_eq!(e.entries.len(), 1);
        let bad: Vec<(&str, usize)> = e.bad.iter().map(|b| (b.name.as_str(), b.line)).collect();
        assert_eq!(
            bad,
            [("syntax", 12), ("value", 17), ("flow", 21)],
            "{:#?}",
            e.bad
        );
        assert!(
            e.bad[1].message.contains("Allow, Deny, Unreachable"),
            "{:#?}",
            e.bad
        );
        assert!(e.bad[2].message.contains("orders:PORT"), "{:#?}", e.bad);
        // Strict parsing refuses the same file; an error outside the entries is fatal for both.
        assert!(Expectations::parse("e.toml", &text, Path::new("fixtures")).is_err());
        let outside = text.replacen("topology = ", "topology = = ", 1);
        let err =
            Expectations::parse_lenient("e.toml", &outside, Path::new("fixtures")).unwrap_err();
        assert!(err.to_string().starts_with("e.toml:1:"), "{err}");
        // Every entry bad: still a file with entries, all reported.
        let all_bad = format!("{HEAD}{bad_flow}");
        let e = Expectations::parse_lenient("e.toml", &all_bad, Path::new("fixtures")).unwrap();
        assert_eq!((e.entries.len(), e.bad.len()), (0, 1));
    }

    #[test]
    fn case_insensitive_values() {
        let e = parse(&entry("protocol = \"TCP\"\ncode = \"allowed\"\n").replace("Allow", "aLLow"))
            .unwrap();
        assert_eq!(e.entries[0].verdict, VerdictKind::Allow);
        assert_eq!(e.entries[0].code, Some(VerdictCode::Allowed));
    }

    #[test]
    fn pass_and_fail() {
        let r = run(&entry(
            "rule = \"securityRules/ALLOW-apim-subnet\"\ncode = \"ALLOWED\"\n",
        ));
        assert!(r.passed, "{r}");
        assert_eq!((r.total, r.failed), (1, 0));
        let r = run(&entry("rule = \"securityRules/deny-legacy\"\n").replace("Allow", "Deny"));
        assert!(!r.passed);
        assert_eq!(r.failed, 1);
        let m = &r.results[0].mismatches;
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(
            m[0].starts_with("verdict: expected Deny, got Allow"),
            "{m:?}"
        );
        assert!(
            m[1].contains("nsg-backend / securityRules/allow-apim-subnet"),
            "{m:?}"
        );
        let text = r.to_string();
        assert!(text.contains("FAIL"), "{text}");
        assert!(text.contains("1. nsg-apim on vnets/vnet-app/subnets/snet-apim (Outbound): securityRules/allow-backends-https -> Allow"), "{text}");
        assert!(
            text.contains("0 of 1 expectations passed, 1 failed"),
            "{text}"
        );
    }

    #[test]
    fn unresolvable_endpoints_are_bad_input() {
        let e = parse(&entry("").replace("orders:443", "ordrs:443")).unwrap();
        let loaded = e.load_topology(&TagSource::Fixture).unwrap();
        let err = e.run(loaded.topology()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("e.toml:5:6: expectation `n`: destination `ordrs`"),
            "{err}"
        );
    }

    #[test]
    fn missing_topology_names_both_files() {
        let e = Expectations::parse(
            "e.toml",
            &format!("topology = \"nope.toml\"\n{}", entry("")),
            Path::new("fixtures"),
        )
        .unwrap();
        let err = e
            .load_topology(&TagSource::Fixture)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("e.toml:1:12: topology: "), "{err}");
        assert!(err.contains("nope.toml"), "{err}");
    }
}
