//! `vnetsim test EXPECTATIONS`: every expectation of a file against its topology, with an
//! optional JUnit XML report.

use std::path::PathBuf;

use crate::expect::Expectations;

use super::error::{ErrorCode, ErrorLocation};
use super::inputs::AzureArgs;
use super::output::{out, refuse_fixture};
use super::{Output, Status};

/// Arguments of `test`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The expectations file (TOML: `topology = "PATH"` and `[[expect]]` entries).
    expectations: PathBuf,
    /// Also write a JUnit XML report to FILE (atomically).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    output: Output,
    /// Import options for an Azure topology (added to the file's `parameters`, `parameter`, ...: these win) and the service tag table.
    #[command(flatten)]
    azure: AzureArgs,
}

impl Args {
    pub(crate) fn output(&self) -> Output {
        self.output
    }
}

pub(crate) fn run(a: &Args) -> anyhow::Result<Status> {
    // Entries with problems are set aside (`bad`), not fatal.
    let exp = Expectations::load_lenient(&a.expectations)?;
    let loaded = exp.load_topology_with(&a.azure.load_options())?;
    let structural = loaded.structural_errors();
    if !structural.is_empty() {
        return Ok(refuse_fixture(&loaded.name, &structural, a.output));
    }
    let report = exp.run_lenient(loaded.topology());
    if let Some(path) = &a.junit {
        crate::atomic::write(path, crate::junit::render(&report).as_bytes())?;
    }
    // A bad entry does not stop the others: it is an error test case, and the run exits 2.
    let error = report.errors.first().map(|e| {
        let message = format!(
            "{}: {} expectation(s) could not be evaluated (the others ran); first: {}:{}:{}: {}",
            exp.name,
            report.errors.len(),
            exp.name,
            e.line,
            e.column,
            e.message
        );
        let location = ErrorLocation {
            file: exp.name.clone(),
            line: Some(e.line),
            column: Some(e.column),
        };
        (message, location)
    });
    match a.output {
        Output::Json => {
            // The report, with the JSON error object beside it when an entry was bad.
            let mut doc = serde_json::to_value(&report)?;
            if let (Some((message, location)), Some(map)) = (&error, doc.as_object_mut()) {
                map.insert(
                    "error".into(),
                    serde_json::json!({"code": ErrorCode::BadExpectation.as_str(), "message": message, "location": location}),
                );
            }
            out(&serde_json::to_string_pretty(&doc)?)?;
        }
        Output::Text => out(&report.to_string())?,
    }
    if let Some((message, _)) = error {
        eprintln!("error: {message}");
        return Ok(Status::BadInput);
    }
    Ok(if report.passed {
        Status::Success
    } else {
        Status::Negative
    })
}
