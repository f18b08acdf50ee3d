//! JUnit XML for an expectations [`Report`], so CI systems show each expectation as a test case:
//! one `<testsuite>` per expectations file, one `<testcase>` per expectation, and for a failure a
//! `<failure>` whose `message` lists the mismatches and whose text is the actual chain.
//!
//! Text is escaped for XML 1.0: the five markup characters become entities, line breaks in
//! attributes become character references (so they survive attribute normalisation), and
//! characters XML 1.0 cannot carry at all (other control characters) become U+FFFD.

use std::fmt::Write as _;

use crate::expect::Report;

/// Escapes text for element content or a double-quoted attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if allowed_in_xml(c) => out.push(c),
            _ => out.push('\u{fffd}'),
        }
    }
    out
}

/// Escapes text for an attribute value, keeping line breaks and tabs as character references.
fn escape_attr(s: &str) -> String {
    escape(s)
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;")
}

/// XML 1.0 `Char`: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
fn allowed_in_xml(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// Renders a report as JUnit XML: every test case carries its `time` (seconds) and the
/// expectations file and line (`file`, `line`); an entry that could not be evaluated is a test
/// case with an `<error>`.
pub fn render(report: &Report) -> String {
    let mut x = String::new();
    let suite = escape_attr(&report.expectations);
    let seconds: f64 = report.results.iter().map(|r| r.time.as_secs_f64()).sum();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    // Writing to a String cannot fail.
    let _ = writeln!(
        x,
        "<testsuites name=\"vnetsim test\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{seconds:.6}\">",
        report.total, report.failed, report.errored
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"{seconds:.6}\" file=\"{suite}\">",
        report.total, report.failed, report.errored
    );
    let _ = writeln!(x, "    <properties>");
    let _ = writeln!(
        x,
        "      <property name=\"topology\" value=\"{}\"/>",
        escape_attr(&report.topology)
    );
    let _ = writeln!(
        x,
        "      <property name=\"service_tags\" value=\"{}\"/>",
        escape_attr(&report.service_tags.describe())
    );
    let _ = writeln!(x, "    </properties>");
    // Results and errors together, in file order.
    let mut cases: Vec<(usize, String)> = Vec::new();
    for r in &report.results {
        let name = escape_attr(&r.name);
        let head = format!(
            "    <testcase name=\"{name}\" classname=\"{suite}\" time=\"{:.6}\" file=\"{suite}\" line=\"{}\"",
            r.time.as_secs_f64(),
            r.line
        );
        if r.passed {
            cases.push((r.line, format!("{head}/>\n")));
            continue;
        }
        cases.push((
            r.line,
            format!(
                "{head}>\n      <failure type=\"mismatch\" message=\"{}\">{}</failure>\n    </testcase>\n",
                escape_attr(&r.mismatches.join("; ")),
                escape(&format!(
                    "{}:{}: {}\nactual chain ({} -> {}):\n{}\n",
                    report.expectations,
                    r.line,
                    r.mismatches.join("\n"),
                    r.from,
                    r.to,
                    r.chain().join("\n")
                ))
            ),
        ));
    }
    for e in &report.errors {
        cases.push((
            e.line,
            format!(
                "    <testcase name=\"{}\" classname=\"{suite}\" time=\"0.000000\" file=\"{suite}\" line=\"{}\">\n      <error type=\"bad-input\" message=\"{}\">{}</error>\n    </testcase>\n",
                escape_attr(&e.name),
                e.line,
                escape_attr(&e.message),
                escape(&format!("{}:{}:{}: {}\n", report.expectations, e.line, e.column, e.message))
            ),
        ));
    }
    cases.sort_by_key(|(line, _)| *line);
    for (_, c) in cases {
        x.push_str(&c);
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_illegal_characters() {
        assert_eq!(
            escape("<a href='x'>&</a>"),
            "&lt;a href=&apos;x&apos;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("tab\tnl\n"), "tab\tnl\n");
        assert_eq!(escape("\u{0}\u{1b}\u{fffe}"), "\u{fffd}\u{fffd}\u{fffd}");
        assert_eq!(escape("é😀"), "é😀");
        assert_eq!(escape_attr("a\nb\tc"), "a&#10;b&#9;c");
    }
}

#[cfg(test)]
mod doc_examples {
    use super::*;

    #[test]
    fn escape_replaces_markup_and_control_characters() {
        assert_eq!(
            escape("a<b & \"c\"\u{1}"),
            "a&lt;b &amp; &quot;c&quot;\u{fffd}"
        );
    }
}
