//! Where each entry of a topology is written: [`Location`] (file, line, column and pointer) and
//! [`SourceMap`], which answers that question for a fixture pointer — an RFC 6901 JSON pointer
//! into the [`Fixture`](crate::fixture::Fixture) such as `/nsgs/1/security_rules/2`.
//!
//! A map is built from the text the caller read ([`SourceMap::from_text`]: TOML through `toml`'s
//! spanned parser, JSON through the importer's scanner, YAML through a scan of block-style lines),
//! or entry by entry for Azure inputs ([`SourceMap::imported`]: each fixture pointer to the input
//! file, ARM pointer and line it was imported from). This module owns positions only; the build
//! stage decides which entry a finding or rule is about, and the CLI decides how to print it.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::fixture::Format;

/// Where something is written. Every field is optional: a fixture built in memory knows only its
/// pointer, an Azure input may know no line for a value an expression produced.
///
/// For a fixture file `pointer` is the fixture pointer (`/nsgs/1/security_rules/2`); for Azure
/// inputs it is the ARM pointer in `file` (`/resources/3/properties/securityRules/0`).
///
/// ```
/// use sim::Location;
/// let at = Location { file: Some("x.toml".into()), line: Some(42), column: Some(1), pointer: None };
/// assert_eq!(at.to_string(), "x.toml:42");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Location {
    /// The input file (as the caller named it), when known.
    pub file: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// RFC 6901 pointer of the entry in `file` (or in the fixture, when no file is known).
    pub pointer: Option<String>,
}

impl Location {
    /// `file:line` (or `file`) for a message prefix; `None` when no file is known.
    ///
    /// ```
    /// use sim::Location;
    /// let at = Location { file: Some("a.json".into()), ..Location::default() };
    /// assert_eq!(at.file_line().as_deref(), Some("a.json"));
    /// assert_eq!(Location::default().file_line(), None);
    /// ```
    pub fn file_line(&self) -> Option<String> {
        let file = self.file.as_ref()?;
        Some(match self.line {
            Some(l) => format!("{file}:{l}"),
            None => file.clone(),
        })
    }
}

impl fmt::Display for Location {
    /// `file:line`, `file`, or the pointer alone when no file is known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file_line(), &self.pointer) {
            (Some(fl), _) => f.write_str(&fl),
            (None, Some(p)) => f.write_str(p),
            (None, None) => f.write_str("?"),
        }
    }
}

/// Answers where the entry at a fixture pointer is written (see the module doc).
///
/// A pointer without an entry of its own is located at its nearest ancestor that has one, so a
/// finding about a value is at least placed on its resource.
///
/// ```
/// use sim::{fixture::Format, SourceMap};
/// let text = "[[nsgs]]\nname = \"a\"\n\n[[nsgs]]\nname = \"b\"\n[[nsgs.security_rules]]\nname = \"r\"\n";
/// let map = SourceMap::from_text("x.toml", text, Format::Toml);
/// let at = map.locate("/nsgs/1/security_rules/0").unwrap();
/// assert_eq!((at.file.as_deref(), at.line), (Some("x.toml"), Some(6)));
/// // Without a file, only the pointer is known.
/// assert_eq!(SourceMap::default().locate("/apim").unwrap().line, None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceMap {
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// A fixture: its file (when the caller named one) and the line and column of each pointer.
    Fixture {
        file: Option<String>,
        at: BTreeMap<String, (usize, usize)>,
    },
    /// A fixture imported from Azure inputs: each fixture pointer to where it came from. The
    /// fixture itself was never written, so a pointer not in the table is not located at all.
    Imported(BTreeMap<String, Location>),
}

impl Default for Kind {
    fn default() -> Kind {
        Kind::Fixture {
            file: None,
            at: BTreeMap::new(),
        }
    }
}

// === impl SourceMap ===

impl SourceMap {
    /// The map of a fixture's text. Text that does not parse gives a map that still names the
    /// file (a load error reports the parse error itself).
    pub fn from_text(file: &str, text: &str, format: Format) -> SourceMap {
        let offsets = match format {
            Format::Toml => toml_offsets(text),
            Format::Json => crate::arm::json_offsets(text),
            Format::Yaml => yaml_offsets(text),
        };
        let at = offsets
            .into_iter()
            .map(|(p, o)| (p, line_col(text, o)))
            .collect();
        SourceMap {
            kind: Kind::Fixture {
                file: Some(file.to_string()),
                at,
            },
        }
    }

    /// The map of a fixture imported from Azure inputs: fixture pointer → where it came from.
    pub fn imported(entries: impl IntoIterator<Item = (String, Location)>) -> SourceMap {
        SourceMap {
            kind: Kind::Imported(entries.into_iter().collect()),
        }
    }

    /// Where the entry at `pointer` (a fixture pointer) is written; see the type's doc.
    pub fn locate(&self, pointer: &str) -> Option<Location> {
        match &self.kind {
            Kind::Fixture { file, at } => {
                let found = ancestors(pointer).find_map(|p| at.get(p).map(|lc| (p, lc)));
                Some(match found {
                    Some((p, &(line, column))) => Location {
                        file: file.clone(),
                        line: Some(line),
                        column: Some(column),
                        pointer: Some(p.to_string()),
                    },
                    None => Location {
                        file: file.clone(),
                        line: None,
                        column: None,
                        pointer: Some(pointer.to_string()),
                    },
                })
            }
            Kind::Imported(entries) => ancestors(pointer).find_map(|p| entries.get(p).cloned()),
        }
    }

    /// The same map without the entries at and under `pointer` (they no longer come from the
    /// file, e.g. rules replaced by a live change): such pointers are located at an ancestor.
    pub fn without(&self, pointer: &str) -> SourceMap {
        self.rewrite(|p| {
            let under = p == pointer
                || p.strip_prefix(pointer)
                    .is_some_and(|rest| rest.starts_with('/'));
            (!under).then(|| p.to_string())
        })
    }

    /// The same map with item `index` of the list at `list` removed: its entries are dropped
    /// and the later items' pointers move down by one, so the items that stay keep their place
    /// in the file (a rule deleted by a live change).
    ///
    /// ```
    /// use sim::{fixture::Format, SourceMap};
    /// let text = "[[nsgs]]\nname = \"a\"\n[[nsgs.security_rules]]\nname = \"r0\"\n[[nsgs.security_rules]]\nname = \"r1\"\n";
    /// let map = SourceMap::from_text("x.toml", text, Format::Toml).without_item("/nsgs/0/security_rules", 0);
    /// // r1 is now item 0, still on line 5.
    /// assert_eq!(map.locate("/nsgs/0/security_rules/0").unwrap().line, Some(5));
    /// ```
    pub fn without_item(&self, list: &str, index: usize) -> SourceMap {
        self.rewrite(|p| {
            let Some(rest) = p.strip_prefix(list).and_then(|r| r.strip_prefix('/')) else {
                return Some(p.to_string());
            };
            let (token, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match token.parse::<usize>() {
                Ok(k) if k == index => None,
                Ok(k) if k > index => Some(format!("{list}/{}{tail}", k - 1)),
                _ => Some(p.to_string()),
            }
        })
    }

    /// The same map without the one entry at `pointer` (its children stay): a list whose
    /// items are not all from the file, so that an item without an entry of its own is located
    /// at the list's parent rather than where the list's first item is written.
    pub(crate) fn without_entry(&self, pointer: &str) -> SourceMap {
        self.rewrite(|p| (p != pointer).then(|| p.to_string()))
    }

    /// Every entry's pointer through `f`: `None` drops the entry, `Some` renames it.
    fn rewrite(&self, f: impl Fn(&str) -> Option<String>) -> SourceMap {
        let kind = match &self.kind {
            Kind::Fixture { file, at } => Kind::Fixture {
                file: file.clone(),
                at: at
                    .iter()
                    .filter_map(|(p, lc)| f(p.as_str()).map(|p| (p, *lc)))
                    .collect(),
            },
            Kind::Imported(entries) => Kind::Imported(
                entries
                    .iter()
                    .filter_map(|(p, l)| f(p.as_str()).map(|p| (p, l.clone())))
                    .collect(),
            ),
        };
        SourceMap { kind }
    }
}

/// `pointer`, then each ancestor up to the whole document (`""`).
fn ancestors(pointer: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(pointer);
    std::iter::from_fn(move || {
        let p = next?;
        next = p.rfind('/').map(|i| &p[..i]);
        Some(p)
    })
}

/// `pointer` extended by one reference token (escaped per RFC 6901).
pub(crate) fn child(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", token.replace('~', "~0").replace('/', "~1"))
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

// === TOML ===

/// Byte offset of every key and array item, by pointer. A key's offset is where the key is
/// written; an item of an array of tables (`[[nsgs]]`) starts at its header.
fn toml_offsets(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    if let Ok(doc) = toml::de::DeTable::parse(text) {
        toml_table(doc.get_ref(), "", &mut out);
    }
    out
}

fn toml_table(t: &toml::de::DeTable<'_>, pointer: &str, out: &mut Vec<(String, usize)>) {
    for (k, v) in t {
        let p = child(pointer, k.get_ref());
        // A key written as a header (`[apim]`) spans the header; a dotted or plain key its name.
        out.push((p.clone(), k.span().start.min(v.span().start)));
        toml_value(v.get_ref(), &p, out);
    }
}

fn toml_value(v: &toml::de::DeValue<'_>, pointer: &str, out: &mut Vec<(String, usize)>) {
    match v {
        toml::de::DeValue::Table(t) => toml_table(t, pointer, out),
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{pointer}/{i}");
                out.push((p.clone(), item.span().start));
                toml_value(item.get_ref(), &p, out);
            }
        }
        _ => {}
    }
}

// === YAML ===

/// Byte offset of every key and item of block-style YAML, by pointer, from a scan of its lines
/// (`serde_yaml_ng` has no spans). Flow collections (`[a, b]`, `{k: v}`) are located at their
/// key; anchors, multi-line scalars and documents after the first are skipped.
fn yaml_offsets(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut scan = YamlScan::default();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start_matches(' ');
        // Blank lines may sit inside a block scalar; deeper lines belong to it.
        if trimmed.is_empty() || scan.in_block_scalar(body.len() - trimmed.len()) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        if trimmed.starts_with("---") || trimmed.starts_with("...") {
            if scan.seen_content {
                break;
            }
            continue;
        }
        scan.seen_content = true;
        scan.line(body, start, &mut out);
    }
    out
}

/// An open block collection: the column its entries start at, its pointer, and the pointer of
/// its last key or item, whose value may follow on the next, deeper lines.
struct Frame {
    indent: usize,
    pointer: String,
    seq: bool,
    next_item: usize,
    pending: Option<String>,
}

#[derive(Default)]
struct YamlScan {
    stack: Vec<Frame>,
    seen_content: bool,
    /// Indentation of the line that opened a `|`/`>` block scalar: deeper lines belong to it.
    block_scalar: Option<usize>,
}

impl YamlScan {
    fn in_block_scalar(&mut self, indent: usize) -> bool {
        match self.block_scalar {
            Some(i) if indent > i => true,
            _ => {
                self.block_scalar = None;
                false
            }
        }
    }

    /// One content line: any number of `- ` item markers, then a `key: value` or a scalar.
    fn line(&mut self, body: &str, start: usize, out: &mut Vec<(String, usize)>) {
        let line_indent = body.len() - body.trim_start_matches(' ').len();
        let mut col = line_indent;
        let mut rest = &body[col..];
        while rest == "-" || rest.starts_with("- ") {
            let p = self.open(col, true);
            out.push((p, start + col));
            let after = rest[1..].trim_start_matches(' ');
            col += rest.len() - after.len();
            rest = after;
        }
        if let Some((key, value)) = split_key(rest) {
            let p = self.open(col, false);
            let p = child(&p, &key);
            if let Some(f) = self.stack.last_mut() {
                f.pending = Some(p.clone());
            }
            out.push((p, start + col));
            if value.trim_start().starts_with(['|', '>']) {
                self.block_scalar = Some(line_indent);
            }
        }
    }

    /// Enters the collection an entry at `col` belongs to: closes the ones that ended, opens a
    /// new one under the pending key or item when needed. Returns a sequence's new item pointer,
    /// or a mapping's pointer.
    fn open(&mut self, col: usize, seq: bool) -> String {
        // A sequence may sit at its parent key's column (`key:` then `- item`); a key at a
        // sequence's column ends it.
        while let Some(f) = self.stack.last() {
            if f.indent > col || (f.indent == col && f.seq && !seq) {
                self.stack.pop();
            } else {
                break;
            }
        }
        let continues = self
            .stack
            .last()
            .is_some_and(|f| f.indent == col && f.seq == seq);
        if !continues {
            let pointer = match self.stack.last_mut() {
                Some(f) => f.pending.take().unwrap_or_else(|| f.pointer.clone()),
                None => String::new(),
            };
            self.stack.push(Frame {
                indent: col,
                pointer,
                seq,
                next_item: 0,
                pending: None,
            });
        }
        let f = self.stack.last_mut().expect("a frame was entered above");
        if seq {
            let p = format!("{}/{}", f.pointer, f.next_item);
            f.next_item += 1;
            f.pending = Some(p.clone());
            p
        } else {
            f.pointer.clone()
        }
    }
}

/// `key: value` (or `key:`) → the unquoted key and the value text; `None` for a scalar line.
fn split_key(s: &str) -> Option<(String, &str)> {
    let (key, rest) = if let Some(q) = s.strip_prefix('"') {
        let end = q.find('"')?;
        (q[..end].to_string(), &q[end + 1..])
    } else if let Some(q) = s.strip_prefix('\'') {
        let end = q.find('\'')?;
        (q[..end].to_string(), &q[end + 1..])
    } else {
        let end = s
            .find(": ")
            .or_else(|| s.ends_with(':').then(|| s.len() - 1))?;
        if s[..end].starts_with(['[', '{', '&', '*', '!', '|', '>']) {
            return None;
        }
        (s[..end].trim_end().to_string(), &s[end..])
    };
    let rest = rest.trim_start_matches(' ');
    let value = rest.strip_prefix(':')?;
    (value.is_empty() || value.starts_with(' ')).then_some((key, value))
}

#[cfg(test)]
mod tests;
