//! Positions in JSON text: RFC 6901 pointers, where a pointer's value starts (for line:column in
//! messages), and which value a syntax error sits in. `serde_json` parses; this module only scans
//! the text again when a position is wanted, so values carry no spans.

/// Deepest nesting the scanner follows (serde_json itself stops at 128).
const MAX_DEPTH: usize = 256;

/// Escapes one reference token (`~` → `~0`, `/` → `~1`).
pub(crate) fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// `pointer` extended by an object key.
pub(crate) fn key(pointer: &str, k: &str) -> String {
    format!("{pointer}/{}", escape(k))
}

/// `pointer` extended by an array index.
pub(crate) fn index(pointer: &str, i: usize) -> String {
    format!("{pointer}/{i}")
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

pub(crate) use crate::source::line_col;

/// Line and column where the value at `pointer` starts, when the text has it.
pub(crate) fn position(text: &str, pointer: &str) -> Option<(usize, usize)> {
    locate(text, pointer).map(|o| line_col(text, o))
}

/// Byte offset where the value at `pointer` starts. Keys compare case-insensitively (ARM property
/// names are case-insensitive, and pointers are built from the keys the importer looked up).
pub(crate) fn locate(text: &str, pointer: &str) -> Option<usize> {
    let mut s = Scanner::new(text);
    s.ws();
    if pointer.is_empty() {
        return Some(s.i);
    }
    let tokens: Vec<String> = pointer
        .strip_prefix('/')?
        .split('/')
        .map(unescape)
        .collect();
    for tok in tokens {
        s.ws();
        match s.peek()? {
            b'{' => {
                s.i += 1;
                loop {
                    s.ws();
                    if s.peek()? == b'}' {
                        return None;
                    }
                    let k = s.string()?;
                    s.ws();
                    s.expect(b':')?;
                    s.ws();
                    if k.eq_ignore_ascii_case(&tok) {
                        break;
                    }
                    s.skip_value(0)?;
                    s.ws();
                    if s.peek()? == b',' {
                        s.i += 1;
                    } else {
                        return None;
                    }
                }
            }
            b'[' => {
                let want: usize = tok.parse().ok()?;
                s.i += 1;
                let mut k = 0;
                loop {
                    s.ws();
                    if s.peek()? == b']' {
                        return None;
                    }
                    if k == want {
                        break;
                    }
                    s.skip_value(0)?;
                    s.ws();
                    s.expect(b',')?;
                    k += 1;
                }
            }
            _ => return None,
        }
    }
    s.ws();
    Some(s.i)
}

/// Byte offset of every member and item of a JSON document, by pointer: a member where its key
/// is written, an item where its value starts. A document that breaks off yields what came
/// before the break.
pub(crate) fn offsets(text: &str) -> Vec<(String, usize)> {
    let mut s = Scanner::new(text);
    s.record = Some(Vec::new());
    s.ws();
    let _ = s.walk(&mut Vec::new(), 0);
    s.record.unwrap_or_default()
}

/// Where the object whose closing brace is at 1-based `line` and `column` starts (its `{`), as a
/// 1-based line and column. A deserializer that rejects a whole object (a missing key, a check
/// across keys) reports the position after reading it; the object's start is what names it.
pub(crate) fn object_start(text: &str, line: usize, column: usize) -> Option<(usize, usize)> {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n').nth(line - 2)?.0 + 1
    };
    let brace = line_start + column.checked_sub(1)?;
    let mut s = Scanner::new(text);
    s.closes = Some(Vec::new());
    s.ws();
    let _ = s.walk(&mut Vec::new(), 0);
    let (start, _) = s
        .closes
        .unwrap_or_default()
        .into_iter()
        .find(|&(_, end)| end == brace + 1)?;
    Some(line_col(text, start))
}

/// The pointer of the innermost value being read where the text stops being valid JSON.
pub(crate) fn error_pointer(text: &str) -> String {
    let mut s = Scanner::new(text);
    let mut path = Vec::new();
    s.ws();
    // The walk stops at the first error; what is left on the path is where it happened.
    let _ = s.walk(&mut path, 0);
    path.iter().map(|t| format!("/{}", escape(t))).collect()
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// When set, [`Scanner::walk`] records the pointer and offset of every member and item.
    record: Option<Vec<(String, usize)>>,
    /// When set, [`Scanner::walk`] records where each object starts and ends (after its `}`).
    closes: Option<Vec<(usize, usize)>>,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        let b = text.as_bytes();
        let i = if b.starts_with(&[0xEF, 0xBB, 0xBF]) {
            3
        } else {
            0
        };
        Scanner {
            b,
            i,
            record: None,
            closes: None,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// Reads a string literal and decodes its escapes.
    fn string(&mut self) -> Option<String> {
        self.expect(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) {
                                self.expect(b'\\')?;
                                self.expect(b'u')?;
                                let lo = self.hex4()?;
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo.checked_sub(0xDC00)?);
                            }
                            let ch = char::from_u32(cp)?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 => return None,
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let s = self.b.get(self.i..self.i + 4)?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
    }

    fn literal(&mut self) -> Option<()> {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
        {
            self.i += 1;
        }
        let word = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        let ok = matches!(word, "true" | "false" | "null") || word.parse::<f64>().is_ok();
        ok.then_some(())
    }

    fn skip_value(&mut self, depth: usize) -> Option<()> {
        let mut scratch = Vec::new();
        self.walk(&mut scratch, depth)
    }

    fn closed(&mut self, start: usize) {
        let end = self.i;
        if let Some(c) = &mut self.closes {
            c.push((start, end));
        }
    }

    fn note(&mut self, path: &[String], at: usize) {
        if let Some(r) = &mut self.record {
            r.push((path.iter().map(|t| format!("/{}", escape(t))).collect(), at));
        }
    }

    /// Validates one value, keeping `path` at the value being read; on error `path` is left
    /// pointing at it.
    fn walk(&mut self, path: &mut Vec<String>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        let start = self.i;
        match self.peek()? {
            b'{' => {
                self.i += 1;
                self.ws();
                if self.peek()? == b'}' {
                    self.i += 1;
                    self.closed(start);
                    return Some(());
                }
                loop {
                    self.ws();
                    let at = self.i;
                    let k = self.string()?;
                    path.push(k);
                    self.note(path, at);
                    self.ws();
                    self.expect(b':')?;
                    self.walk(path, depth + 1)?;
                    path.pop();
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            self.closed(start);
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                let mut k = 0usize;
                loop {
                    path.push(k.to_string());
                    self.ws();
                    let at = self.i;
                    self.note(path, at);
                    self.walk(path, depth + 1)?;
                    path.pop();
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                    k += 1;
                }
            }
            b'"' => self.string().map(|_| ()),
            _ => self.literal(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_nested_values() {
        let t = "{\n  \"a\": [1, {\"b/c\": \"x\"}],\n  \"Resources\": {\"k\": true}\n}";
        assert_eq!(position(t, "/a/1/b~1c"), Some((2, 20)));
        // Keys compare case-insensitively.
        assert_eq!(position(t, "/resources/k"), Some((3, 22)));
        assert_eq!(locate(t, "/a/5"), None);
        assert_eq!(locate(t, ""), Some(0));
    }

    #[test]
    fn error_pointer_names_the_broken_value() {
        let t = r#"{"resources": [{"name": "a"}, {"name": "b", "properties": {"x": }}]}"#;
        assert_eq!(error_pointer(t), "/resources/1/properties/x");
        assert_eq!(error_pointer("[1, 2"), "");
    }

    #[test]
    fn offsets_and_object_starts() {
        let t = "{\"a\": [1, {\n  \"b\": 2\n}]}";
        let o = offsets(t);
        assert_eq!(o[0], ("/a".to_string(), 1));
        assert_eq!(o[2], ("/a/1".to_string(), 10));
        assert_eq!(o[3], ("/a/1/b".to_string(), 14));
        // The `}` closing `/a/1` is on line 3, column 1: that object starts on line 1.
        assert_eq!(object_start(t, 3, 1), Some((1, 11)));
        assert_eq!(object_start(t, 2, 3), None);
        assert_eq!(object_start(t, 99, 1), None);
        assert_eq!(object_start(t, 1, 0), None);
    }

    #[test]
    fn escapes_round_trip() {
        assert_eq!(key("", "a/b~c"), "/a~1b~0c");
        assert_eq!(unescape("a~1b~0c"), "a/b~c");
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
