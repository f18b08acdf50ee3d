//! `vnetsim validate FIXTURE`: every finding at once, as a table or JSON.

use std::path::PathBuf;

use serde::Serialize;
use sim::{Assumption, Finding, ServiceTagsInfo};

use super::output::{findings_table, out, tags_line};
use super::{tag_source, Output, Status};

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The fixture: TOML, or JSON/YAML by extension (.json, .yaml, .yml).
    fixture: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    output: Output,
    /// A ServiceTags_Public JSON file to use instead of the fixture's [service_tags] (or the built-in table).
    #[arg(long, value_name = "FILE")]
    service_tags: Option<PathBuf>,
}

/// The `validate --output json` document.
#[derive(Serialize)]
struct Report<'a> {
    valid: bool,
    fixture: &'a str,
    errors: usize,
    warnings: usize,
    findings: &'a [Finding],
    assumptions: &'static [Assumption],
    service_tags: &'a ServiceTagsInfo,
}

pub(crate) fn run(a: &Args) -> anyhow::Result<Status> {
    let loaded = vnetsim::load_path(&a.fixture, &tag_source(&a.service_tags))?;
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
            assumptions: Assumption::ALL,
            service_tags: tags,
        })?)?,
        Output::Text => {
            if !findings.is_empty() {
                out(&findings_table(findings))?;
                out("")?;
            }
            let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
            out(&format!(
                "{}: {} — {}, {} (service tags: {})",
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
