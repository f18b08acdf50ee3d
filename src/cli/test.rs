//! `vnetsim test EXPECTATIONS`: every expectation of a file against its topology, with an
//! optional JUnit XML report.

use std::path::PathBuf;

use crate::expect::Expectations;

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
    let exp = Expectations::load(&a.expectations)?;
    let loaded = exp.load_topology_with(&a.azure.load_options())?;
    let structural = loaded.structural_errors();
    if !structural.is_empty() {
        return Ok(refuse_fixture(&loaded.name, &structural, a.output));
    }
    let report = exp.run(loaded.topology())?;
    if let Some(path) = &a.junit {
        crate::atomic::write(path, crate::junit::render(&report).as_bytes())?;
    }
    match a.output {
        Output::Json => out(&serde_json::to_string_pretty(&report)?)?,
        Output::Text => out(&report.to_string())?,
    }
    Ok(if report.passed {
        Status::Success
    } else {
        Status::Negative
    })
}
