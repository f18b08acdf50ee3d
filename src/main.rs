//! The `vnetsim` command line: `validate`, `check` and `test` (see `vnetsim --help`).
//!
//! Exit codes: 0 success (valid / Allow / every expectation passed), 1 a negative answer (error
//! findings / Deny or Unreachable / a mismatch), 2 bad input (unreadable or unparseable files,
//! malformed arguments, a fixture with structural errors). Run with no arguments it prints the
//! help and exits 2.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
