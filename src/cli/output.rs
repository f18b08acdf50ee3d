//! Printing: stdout for reports (a closed pipe is not an error), stderr for errors, and the
//! findings table shared by `validate`, and by `check`/`test` when they refuse a fixture. Each
//! finding row starts with where its subject is written (`fixtures/x.toml:42:`), as compilers
//! print it, when any finding has a file.

use std::io::{self, Write};

use sim::arm::{IgnoredResource, Unknown};
use sim::Location;
use sim::{Assumption, Finding, ServiceTagsInfo, Severity};

use super::error::{document, ErrorCode, ErrorLocation};
use super::{Output, Status};

/// Writes `text` and a newline to stdout; a reader that went away (`| head`) is not an error.
pub(crate) fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Prints an error to stderr, one `error: ` line per line of its message, then every cause
/// below it (`  caused by: address in use`), so `error: starting the simulation` says why.
pub(crate) fn report_error(e: &anyhow::Error) {
    let mut stderr = io::stderr().lock();
    for line in e.to_string().lines() {
        let _ = writeln!(stderr, "error: {line}");
    }
    for cause in causes(e) {
        for line in cause.lines() {
            let _ = writeln!(stderr, "  caused by: {line}");
        }
    }
}

/// The messages of an error's causes, outermost first, without the ones its own message (or
/// an outer cause's) already quotes: many errors print their source inline.
pub(crate) fn causes(e: &anyhow::Error) -> Vec<String> {
    let mut said = e.to_string();
    let mut out = Vec::new();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !said.contains(&text) {
            said.push('\n');
            said.push_str(&text);
            out.push(text);
        }
    }
    out
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// A table of findings: `file:line:` (when known), severity, code, subject, message (input order
/// is kept: the model sorts).
pub(crate) fn findings_table<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> String {
    let findings: Vec<&Finding> = findings.into_iter().collect();
    let locations: Vec<Option<String>> = findings
        .iter()
        .map(|f| {
            f.location
                .as_ref()
                .and_then(Location::file_line)
                .map(|at| format!("{at}:"))
        })
        .collect();
    let lw = locations
        .iter()
        .flatten()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    // The location column, only when some finding has one.
    let at = |l: Option<&str>| {
        if lw == 0 {
            String::new()
        } else {
            format!("{:<lw$} ", l.unwrap_or("-"))
        }
    };
    let cw = findings
        .iter()
        .map(|f| f.code.as_str().len())
        .max()
        .unwrap_or(0)
        .max(4);
    let sw = findings
        .iter()
        .map(|f| f.subject.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(7, 48);
    let mut s = format!(
        "{}{:<8} {:<cw$} {:<sw$} MESSAGE",
        at(Some("LOCATION")),
        "SEVERITY",
        "CODE",
        "SUBJECT"
    );
    for (f, l) in findings.iter().zip(&locations) {
        s.push_str(&format!(
            "\n{}{:<8} {:<cw$} {:<sw$} {}",
            at(l.as_deref()),
            severity(f.severity),
            f.code.as_str(),
            f.subject,
            f.message
        ));
    }
    // The Learn page behind each code, once per code in table order.
    let mut codes: Vec<&Finding> = Vec::new();
    for f in &findings {
        if !codes.iter().any(|c| c.code == f.code) {
            codes.push(f);
        }
    }
    if !codes.is_empty() {
        s.push_str("\n\nLearn references:");
        for f in codes {
            s.push_str(&format!("\n  {:<cw$} {}", f.code.as_str(), f.reference));
        }
    }
    s
}

/// `built-in ServiceTags_Public changeNumber 375 (2025-10-28)` (see [`ServiceTagsInfo::describe`]).
pub(crate) fn tags_line(t: &ServiceTagsInfo) -> String {
    t.describe()
}

/// Prints the structural error findings that make a fixture unusable for flow evaluation (and,
/// with `--output json`, the JSON error on stdout); the command then exits 2.
pub(crate) fn refuse_fixture(name: &str, errors: &[&Finding], output: Output) -> Status {
    if output == Output::Json {
        let _ = out(&findings_json_error(
            ErrorCode::StructuralFindings,
            &format!(
                "{name}: {} structural error finding(s); flows are evaluated only on a fixture without them",
                errors.len()
            ),
            errors,
        ));
    }
    let mut stderr = io::stderr().lock();
    let _ = writeln!(
        stderr,
        "error: {name}: {} structural error finding{}; flows are evaluated only on a fixture without them (see `vnetsim validate {name}`):",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(stderr, "{}", findings_table(errors.iter().copied()));
    Status::BadInput
}

/// The JSON error for a fixture refused for its findings: the message lists them (code,
/// subject, message), the location is the first one's that has a file.
pub(crate) fn findings_json_error(code: ErrorCode, message: &str, errors: &[&Finding]) -> String {
    let mut text = message.to_string();
    for f in errors {
        text.push_str(&format!(
            "\n{} {}: {}",
            f.code.as_str(),
            f.subject,
            f.message
        ));
    }
    let location = errors.iter().find_map(|f| {
        let l = f.location.as_ref()?;
        Some(ErrorLocation {
            file: l.file.clone()?,
            line: l.line,
            column: l.column,
        })
    });
    document(code.as_str(), &text, location)
}

/// What an import noticed, as text: every ignored resource, unknown value and import
/// assumption, one per line under a heading; `None` when there is nothing.
pub(crate) fn import_notes(
    ignored: &[IgnoredResource],
    unknowns: &[Unknown],
    assumptions: &[Assumption],
) -> Option<String> {
    let mut parts = Vec::new();
    if !ignored.is_empty() {
        let mut s = format!("Ignored resources ({}):", ignored.len());
        for i in ignored {
            s.push_str(&format!("\n  {i}"));
        }
        parts.push(s);
    }
    if !unknowns.is_empty() {
        // One line per cause and resource; each subject is what `--set SUBJECT=VALUE` takes.
        let mut s = format!(
            "Unknown values ({}; flows that depend on them are Indeterminate; supply one with --set SUBJECT=VALUE):",
            unknowns.len()
        );
        for g in sim::arm::group_unknowns(unknowns) {
            let subjects: Vec<String> = g
                .subjects
                .iter()
                .map(|subject| {
                    let at = unknowns
                        .iter()
                        .find(|u| &u.subject == subject)
                        .map(|u| crate::load::at(&u.input, u.line, u.column, &u.expression))
                        .unwrap_or_default();
                    format!("{subject} ({at})")
                })
                .collect();
            s.push_str(&format!(
                "\n  {} × {} in {}: {}",
                g.count,
                g.cause,
                g.resource,
                subjects.join("; ")
            ));
        }
        parts.push(s);
    }
    if !assumptions.is_empty() {
        let mut s = format!("Import assumptions ({}):", assumptions.len());
        for a in assumptions {
            s.push_str(&format!("\n  {}: {}", a.code(), a.message()));
        }
        parts.push(s);
    }
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}
