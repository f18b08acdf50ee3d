//! `vnetsim validate FIXTURE`: every finding at once, as a table or JSON; for Azure inputs also
//! every ignored resource, unknown value and import assumption.

use serde::Serialize;
use sim::arm::{IgnoredResource, Unknown};
use sim::{Assumption, Finding, ServiceTagsInfo};

use super::inputs::InputArgs;
use super::output::{findings_table, import_notes, out, tags_line};
use super::{Output, Status};

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    inputs: InputArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    output: Output,
}

impl Args {
    pub(crate) fn output(&self) -> Output {
        self.output
    }
}

/// The `validate --output json` document.
#[derive(Serialize)]
struct Report<'a> {
    valid: bool,
    fixture: &'a str,
    errors: usize,
    warnings: usize,
    findings: &'a [Finding],
    assumptions: Vec<Assumption>,
    ignored: &'a [IgnoredResource],
    unknowns: &'a [Unknown],
    service_tags: &'a ServiceTagsInfo,
}

pub(crate) fn run(a: &Args) -> anyhow::Result<Status> {
    let loaded = a.inputs.load(Vec::new())?;
    let findings = loaded.findings();
    let errors = findings.iter().filter(|f| f.is_error()).count();
    let warnings = findings.len() - errors;
    let tags = loaded.topology().service_tags().info();
    match a.output {
        Output::Json => out(&serde_json::to_string_pretty(&Report {
            valid: errors == 0,
            fixture: &loaded.name,
            errors,
            warnings,
            findings,
            assumptions: loaded.assumptions(),
            ignored: &loaded.ignored,
            unknowns: &loaded.unknowns,
            service_tags: tags,
        })?)?,
        Output::Text => {
            if !findings.is_empty() {
                out(&findings_table(findings))?;
                out("")?;
            }
            if let Some(notes) = import_notes(
                &loaded.ignored,
                &loaded.unknowns,
                &loaded.import_assumptions,
            ) {
                out(&notes)?;
                out("")?;
            }
            let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
            let unknowns = if loaded.unknowns.is_empty() {
                String::new()
            } else {
                format!(", {}", plural(loaded.unknowns.len(), "unknown value"))
            };
            out(&format!(
                "{}: {} — {}, {}{unknowns} (service tags: {})",
                loaded.name,
                if errors == 0 { "valid" } else { "invalid" },
                plural(errors, "error"),
                plural(warnings, "warning"),
                tags_line(tags)
            ))?;
        }
    }
    Ok(if errors == 0 {
        Status::Success
    } else {
        Status::Negative
    })
}
