//! Argument parsing (clap derive) and dispatch for the `vnetsim` binary; one module per command.
//! Commands return a [`Status`] or an error; every error is bad input (exit 2) and is printed to
//! stderr as `error: <what, where, what was expected>`.

mod bench;
mod check;
mod demo;
mod diff;
mod error;
mod import;
mod inputs;
mod lint;
mod output;
mod reach;
mod routes;
mod space;
mod test;
mod up;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::TagSource;

/// Offline simulator for Azure API Management v2 outbound VNet integration.
#[derive(Debug, Parser)]
#[command(
    name = "vnetsim",
    version,
    after_help = "Exit codes: 0 success, 1 a negative answer (error findings, Deny/Unreachable, a failed expectation), 2 bad input."
)]
struct Cli {
    /// The command; without one, `vnetsim` runs `demo`.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole mission on the embedded default topology: real traffic through the gateway, eight checks with evidence (exit 0 all passed, 1 a check failed, 2 setup error).
    Demo(demo::Args),
    /// Check a fixture and report every finding (exit 0 valid, 1 error findings, 2 unreadable).
    Validate(validate::Args),
    /// Explain one flow's verdict: each NSG on its path, the deciding rule (exit 0 Allow, 1 Deny, Unreachable or Indeterminate, 2 bad input).
    Check(check::Args),
    /// Every flow from one source, partitioned into classes that share one outcome (verdict, code, deciding rules) (exit 0, 2 bad input).
    Reach(reach::Args),
    /// Lint every NSG's rules as sets: shadowed, redundant, conflicting, never matching the topology, port typos (exit 1 a finding at or above --fail-on, 2 bad input).
    Lint(lint::Args),
    /// The flows whose outcome differs between two topologies (exit 0 nothing changed, 1 something did, 2 bad input).
    Diff(diff::Args),
    /// Start the gateway and the fixture's echo backends on loopback until Ctrl-C or SIGTERM (exit 2 when the fixture has error findings).
    Up(up::Args),
    /// Write the vnetsim TOML fixture equivalent to Azure inputs (ARM templates, parameters files, exported resources), listing every ignored resource, unknown value and assumption (exit 0 written, 2 bad input).
    Import(import::Args),
    /// Network Watcher's next hop from a source in a subnet to a destination, as `az network watcher show-next-hop` prints it (JSON by default; exit 0, 2 bad input).
    NextHop(routes::NextHopArgs),
    /// A subnet's effective routes, as `az network nic show-effective-route-table` prints them (JSON by default; exit 0, 2 bad input).
    Routes(routes::RoutesArgs),
    /// Run an expectations file against its topology (exit 0 all passed, 1 a mismatch, 2 bad input).
    Test(test::Args),
    /// Measure the outbound path: direct, through the gateway and through nginx (when on PATH), CPU per request, policy cost, NSG evaluation.
    Bench(bench::Args),
    /// (bench child) Run a gateway until SIGTERM.
    #[command(name = "__gateway", hide = true)]
    GatewayChild(bench::GatewayArgs),
    /// (bench child) Run the hello backend until SIGTERM.
    #[command(name = "__echo", hide = true)]
    EchoChild(bench::EchoArgs),
}

/// Output format of every command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// A readable table.
    #[default]
    Text,
    /// One JSON document on stdout.
    Json,
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Valid, allowed, every expectation passed: exit 0.
    Success,
    /// Error findings, denied or unreachable, a failed expectation: exit 1.
    Negative,
    /// Bad input already reported on stderr: exit 2.
    BadInput,
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> ExitCode {
        match s {
            Status::Success => ExitCode::SUCCESS,
            Status::Negative => ExitCode::from(1),
            Status::BadInput => ExitCode::from(2),
        }
    }
}

/// The service tag table for `--service-tags FILE`, else the fixture's choice.
pub(crate) fn tag_source(file: &Option<PathBuf>) -> TagSource {
    match file {
        Some(p) => TagSource::File(p.clone()),
        None => TagSource::Fixture,
    }
}

impl Command {
    /// The output format the command was asked for (`up` and the bench children have none).
    fn output(&self) -> Output {
        match self {
            Command::Demo(a) => a.output(),
            Command::Validate(a) => a.output(),
            Command::Check(a) => a.output(),
            Command::Test(a) => a.output(),
            Command::Up(a) => a.output(),
            Command::Import(a) => a.output(),
            Command::Bench(a) => a.output(),
            Command::NextHop(a) => a.output(),
            Command::Routes(a) => a.output(),
            Command::Reach(a) => a.output,
            Command::Diff(a) => a.output,
            Command::Lint(a) => a.output.common(),
            Command::GatewayChild(_) | Command::EchoChild(_) => Output::Text,
        }
    }
}

/// Parses, runs and maps the result to an exit code. Bad input is `error: ...` lines on
/// stderr with every cause; with `--output json` also one JSON error document on stdout.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        // clap prints usage errors itself, exiting 2 (0 for --help and --version).
        Err(e) if !e.use_stderr() || !error::wants_json(&args) => e.exit(),
        Err(e) => {
            let _ = e.print();
            let text = e.to_string();
            // The lines before clap's usage hint, as one sentence.
            let message = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(|l| l.trim().trim_start_matches("error: "))
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let _ = output::out(&error::document(
                error::ErrorCode::Usage.as_str(),
                &message,
                None,
            ));
            return Status::BadInput.into();
        }
    };
    let demo_default = demo::Args::default();
    let result = match &cli.command {
        None => demo::run(&demo_default),
        Some(Command::Demo(a)) => demo::run(a),
        Some(Command::Validate(a)) => validate::run(a),
        Some(Command::Check(a)) => check::run(a),
        Some(Command::Test(a)) => test::run(a),
        Some(Command::NextHop(a)) => routes::next_hop(a),
        Some(Command::Routes(a)) => routes::routes(a),
        Some(Command::Reach(a)) => reach::run(a),
        Some(Command::Lint(a)) => lint::run(a),
        Some(Command::Diff(a)) => diff::run(a),
        Some(Command::Up(a)) => up::run(a),
        Some(Command::Import(a)) => import::run(a),
        Some(Command::Bench(a)) => bench::run(a),
        Some(Command::GatewayChild(a)) => bench::run_gateway(a),
        Some(Command::EchoChild(a)) => bench::run_echo(a),
    };
    match result {
        Ok(status) => status.into(),
        Err(e) => {
            output::report_error(&e);
            if cli.command.as_ref().map_or(Output::Text, Command::output) == Output::Json {
                let _ = output::out(&error::error_json(&e));
            }
            Status::BadInput.into()
        }
    }
}
