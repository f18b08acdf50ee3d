//! Bad input as a JSON document: with `--output json`, every command prints on stdout
//! `{"error": {"code", "message", "location": {"file", "line", "column"} | null}}` instead of
//! (only) text on stderr. The codes are one table ([`ErrorCode`]), documented in
//! `docs/cli-errors.md`; a test keeps the two in step.

use serde::Serialize;
use serde_json::json;

use crate::expect::ExpectError;
use crate::harness::HarnessError;
use crate::load::LoadError;
use crate::query::QueryError;

macro_rules! error_codes {
    ($($variant:ident => $code:literal,)+) => {
        /// Why a command refused its input (the `code` of a JSON error).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum ErrorCode { $($variant),+ }

        impl ErrorCode {
            /// Every code, in table order (the docs test reads it).
            #[cfg_attr(not(test), allow(dead_code))]
            pub(crate) const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];
            /// The stable code.
            pub(crate) fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code),+ }
            }
        }
    };
}

error_codes! {
    Usage => "USAGE",
    FileUnreadable => "FILE_UNREADABLE",
    Parse => "PARSE_ERROR",
    BadArguments => "BAD_ARGUMENTS",
    BadFlow => "BAD_FLOW",
    BadUpstream => "BAD_UPSTREAM",
    BadExpectation => "BAD_EXPECTATION",
    StructuralFindings => "STRUCTURAL_FINDINGS",
    ErrorFindings => "ERROR_FINDINGS",
    StartFailed => "START_FAILED",
    WriteFailed => "WRITE_FAILED",
    Failed => "FAILED",
}

/// Where the bad input is: a file, and the line and column when known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct ErrorLocation {
    pub(crate) file: String,
    pub(crate) line: Option<usize>,
    pub(crate) column: Option<usize>,
}

impl ErrorLocation {
    fn at(file: impl Into<String>, line: Option<usize>, column: Option<usize>) -> ErrorLocation {
        ErrorLocation {
            file: file.into(),
            line,
            column,
        }
    }

    fn of(l: &sim::Location) -> Option<ErrorLocation> {
        Some(ErrorLocation::at(l.file.clone()?, l.line, l.column))
    }
}

/// A code (one of [`ErrorCode`], or an importer's own `ARM_*` code) and where.
fn classify_load(e: &LoadError) -> (&'static str, Option<ErrorLocation>) {
    use ErrorCode as C;
    let file = |p: &std::path::Path| Some(ErrorLocation::at(p.display().to_string(), None, None));
    match e {
        LoadError::Read { path, .. }
        | LoadError::TagsRead { path, .. }
        | LoadError::ReadDir { path, .. }
        | LoadError::ReadParameters { path, .. }
        | LoadError::EmptyDir { path } => (C::FileUnreadable.as_str(), file(path)),
        LoadError::Parse { name, error } => (
            C::Parse.as_str(),
            Some(ErrorLocation::at(name.clone(), error.line, error.column)),
        ),
        LoadError::TagsParse { path, .. } => (C::Parse.as_str(), file(path)),
        LoadError::FileRef { name, .. } | LoadError::AzureOptionsForFixture { name, .. } => (
            C::BadArguments.as_str(),
            Some(ErrorLocation::at(name.clone(), None, None)),
        ),
        LoadError::NotAzure { path, .. } | LoadError::Bicep { path, .. } => {
            (C::BadArguments.as_str(), file(path))
        }
        LoadError::Import { source } => (
            source.code(),
            source
                .location()
                .map(|l| ErrorLocation::at(l.input.clone(), l.line, l.column)),
        ),
        LoadError::Upstream { .. } => (C::BadUpstream.as_str(), None),
    }
}

fn classify_expect(e: &ExpectError) -> (&'static str, Option<ErrorLocation>) {
    use ErrorCode as C;
    match e {
        ExpectError::Read { path, .. } => (
            C::FileUnreadable.as_str(),
            Some(ErrorLocation::at(path.display().to_string(), None, None)),
        ),
        ExpectError::Parse {
            name, line, column, ..
        } => (
            C::Parse.as_str(),
            Some(ErrorLocation::at(name.clone(), *line, *column)),
        ),
        ExpectError::Invalid { name, problems } => (
            C::BadExpectation.as_str(),
            problems.first().map(|p| {
                ErrorLocation::at(name.clone(), Some(p.position.line), Some(p.position.column))
            }),
        ),
        ExpectError::Topology {
            name,
            position,
            source,
        } => {
            let (code, inner) = classify_load(source);
            let here = ErrorLocation::at(name.clone(), Some(position.line), Some(position.column));
            (code, inner.or(Some(here)))
        }
    }
}

/// The code and location of an error: the first error in its chain vnetsim knows.
pub(crate) fn classify(e: &anyhow::Error) -> (&'static str, Option<ErrorLocation>) {
    use ErrorCode as C;
    for cause in e.chain() {
        if let Some(e) = cause.downcast_ref::<LoadError>() {
            return classify_load(e);
        }
        if let Some(e) = cause.downcast_ref::<ExpectError>() {
            return classify_expect(e);
        }
        if cause.downcast_ref::<QueryError>().is_some() {
            return (C::BadFlow.as_str(), None);
        }
        if let Some(e) = cause.downcast_ref::<HarnessError>() {
            return match e {
                HarnessError::Load(l) => classify_load(l),
                HarnessError::Findings { findings, .. } => (
                    C::ErrorFindings.as_str(),
                    findings
                        .iter()
                        .find_map(|f| f.location.as_ref().and_then(ErrorLocation::of)),
                ),
                HarnessError::Query(_) => (C::BadFlow.as_str(), None),
                HarnessError::Fault(_) => (C::BadArguments.as_str(), None),
                HarnessError::Start(_) | HarnessError::Tls(_) | HarnessError::Change(_) => {
                    (C::StartFailed.as_str(), None)
                }
            };
        }
        if cause.downcast_ref::<gateway::StartError>().is_some() {
            return (C::StartFailed.as_str(), None);
        }
        if cause.downcast_ref::<crate::atomic::WriteError>().is_some() {
            return (C::WriteFailed.as_str(), None);
        }
    }
    (C::Failed.as_str(), None)
}

/// The JSON error document.
pub(crate) fn document(code: &str, message: &str, location: Option<ErrorLocation>) -> String {
    let doc = json!({"error": {"code": code, "message": message, "location": location}});
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// The JSON error document of `e`: its message with every cause it does not already quote.
pub(crate) fn error_json(e: &anyhow::Error) -> String {
    let (code, location) = classify(e);
    let mut message = e.to_string();
    for cause in super::output::causes(e) {
        message.push_str(": ");
        message.push_str(&cause);
    }
    document(code, &message, location)
}

/// Whether raw arguments ask for JSON output (`--output json`, `--output=json`), read before
/// clap, so that a usage error can be reported as JSON too.
pub(crate) fn wants_json(args: &[std::ffi::OsString]) -> bool {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    args.iter().enumerate().any(|(i, a)| {
        a.eq_ignore_ascii_case("--output=json")
            || (a == "--output"
                && args
                    .get(i + 1)
                    .is_some_and(|v| v.eq_ignore_ascii_case("json")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_codes_are_the_table() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli-errors.md"),
        )
        .unwrap();
        for c in ErrorCode::ALL {
            assert!(
                doc.contains(&format!("| `{}` |", c.as_str())),
                "docs/cli-errors.md has no row for {}",
                c.as_str()
            );
        }
    }

    #[test]
    fn json_flag_forms() {
        let v = |s: &[&str]| {
            s.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert!(wants_json(&v(&["vnetsim", "check", "--output", "JSON"])));
        assert!(wants_json(&v(&["vnetsim", "check", "--output=json"])));
        assert!(!wants_json(&v(&["vnetsim", "check", "--output", "text"])));
    }
}
