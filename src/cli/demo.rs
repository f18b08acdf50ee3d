//! `vnetsim demo`: the ten checks on the embedded topologies (also what `vnetsim` runs
//! with no arguments). Exit 0 when every check passed, 1 when one failed, 2 on a setup error.

use std::time::Duration;

use crate::demo::{self, DemoOptions};
use anyhow::Context as _;

use super::{Output, Status};

/// Arguments of `vnetsim demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: Output,
    /// Length of each throughput sample, in milliseconds (direct, then through the gateway).
    #[arg(long, default_value_t = DemoOptions::default().sample.as_millis() as u64, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    sample_ms: u64,
    /// Connections of the throughput sample.
    #[arg(long, default_value_t = DemoOptions::default().connections as u64, value_parser = clap::value_parser!(u64).range(1..=512))]
    connections: u64,
}

impl Args {
    pub(crate) fn output(&self) -> Output {
        self.output
    }
}

impl Default for Args {
    /// The same values as the flags' defaults (used when `vnetsim` runs without arguments).
    fn default() -> Self {
        let d = DemoOptions::default();
        Args {
            output: Output::Text,
            sample_ms: d.sample.as_millis() as u64,
            connections: d.connections as u64,
        }
    }
}

pub(crate) fn run(a: &Args) -> anyhow::Result<Status> {
    let opts = DemoOptions {
        sample: Duration::from_millis(a.sample_ms),
        connections: a.connections as usize,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    let report = rt
        .block_on(demo::run(&opts))
        .context("setting up the demo")?;
    match a.output {
        Output::Text => print!("{}", demo::render_text(&report)),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).context("serializing the report")?
        ),
    }
    Ok(if report.passed {
        Status::Success
    } else {
        Status::Negative
    })
}
