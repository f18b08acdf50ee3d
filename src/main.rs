//! The `vnetsim` command line: `demo`, `validate`, `check`, `test`, `up`, `import`, `bench` (see
//! `vnetsim --help`).
//!
//! Exit codes: 0 success (valid / Allow / every expectation passed), 1 a negative answer (error
//! findings / Deny or Unreachable / a mismatch), 2 bad input (unreadable or unparseable files,
//! malformed arguments, a fixture with structural errors). Run with no arguments it runs `demo`.

fn main() -> std::process::ExitCode {
    vnetsim::cli::main()
}
