//! The fixtures table: every `fixtures/invalid/<code>.toml` produces its code and no other
//! error; every finding code has such a file; every valid fixture validates without errors; every
//! shipped expectations file passes. Adding a file adds a case.

use std::collections::BTreeSet;
use std::path::PathBuf;

use sim::{FindingCode, Severity};
use vnetsim::expect::Expectations;
use vnetsim::{load_path, TagSource};

use crate::support::fixture;

/// Codes no fixture can produce, with the reason. When one becomes producible, add its
/// fixture and remove it here (the test below fails until both are done).
const NOT_PRODUCIBLE: &[(FindingCode, &str)] = &[
    (
        FindingCode::DefaultRulesMismatch,
        "emitted only by the ARM importer (sim::arm): a fixture has no defaultSecurityRules",
    ),
    (
        FindingCode::ApiPolicyInvalid,
        "emitted only by the ARM importer (sim::arm): a fixture has no API policy XML",
    ),
];

fn toml_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixture(dir))
        .unwrap_or_else(|e| panic!("read fixtures/{dir}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

fn code_of(path: &std::path::Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .expect("a UTF-8 file name")
        .to_ascii_uppercase()
        .replace('-', "_")
}

#[test]
fn each_invalid_fixture_produces_its_code_and_no_other_error() {
    let files = toml_files("invalid");
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for f in &files {
        let code = code_of(f);
        let loaded = match load_path(f, &TagSource::Fixture) {
            Ok(l) => l,
            Err(e) => {
                failures.push(format!("{}: does not load: {e}", f.display()));
                continue;
            }
        };
        let found = loaded.findings().iter().any(|x| x.code.as_str() == code);
        let others: BTreeSet<&str> = loaded
            .findings()
            .iter()
            .filter(|x| x.severity == Severity::Error && x.code.as_str() != code)
            .map(|x| x.code.as_str())
            .collect();
        if !found {
            failures.push(format!(
                "{}: {code} not reported (got {:?})",
                f.display(),
                loaded.findings()
            ));
        }
        if !others.is_empty() {
            failures.push(format!("{}: other error codes {others:?}", f.display()));
        }
        let text = std::fs::read_to_string(f).expect("readable");
        if !text.starts_with('#') {
            failures.push(format!(
                "{}: no top comment saying what is wrong",
                f.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_finding_code_has_an_invalid_fixture() {
    let have: BTreeSet<String> = toml_files("invalid").iter().map(|p| code_of(p)).collect();
    let known: BTreeSet<&str> = FindingCode::ALL.iter().map(|c| c.as_str()).collect();
    // No file is named for a code that does not exist (a typo would silently test nothing new).
    for h in &have {
        assert!(
            known.contains(h.as_str()),
            "fixtures/invalid names unknown code {h}"
        );
    }
    let mut missing = Vec::new();
    for c in FindingCode::ALL {
        let gap = NOT_PRODUCIBLE.iter().any(|(g, _)| g == c);
        match (have.contains(c.as_str()), gap) {
            (false, false) => missing.push(c.as_str()),
            (true, true) => panic!("{c} has a fixture now: remove it from NOT_PRODUCIBLE"),
            _ => {}
        }
    }
    assert!(
        missing.is_empty(),
        "no fixtures/invalid/<code-in-kebab-case>.toml for {missing:?}: add one, or, if no \
         fixture can produce the code, list it in NOT_PRODUCIBLE with the reason"
    );
}

#[test]
fn valid_fixtures_have_no_error_findings() {
    let files: Vec<PathBuf> = toml_files(".")
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".expect.toml"))
        .collect();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "default.toml",
        "peered-hub-spoke.toml",
        "premium-v2-injection.toml",
        "dual-stack.toml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    for f in &files {
        let loaded = load_path(f, &TagSource::Fixture).unwrap_or_else(|e| panic!("{e}"));
        let errors: Vec<_> = loaded.findings().iter().filter(|x| x.is_error()).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
    }
}

#[test]
fn shipped_expectations_pass() {
    let files: Vec<PathBuf> = toml_files(".")
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".expect.toml"))
        .collect();
    assert!(!files.is_empty(), "fixtures/default.expect.toml is shipped");
    for f in files {
        let e = Expectations::load(&f).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            e.entries.len() >= 8,
            "{}: at least 8 expectations",
            f.display()
        );
        let loaded = e
            .load_topology(&TagSource::Fixture)
            .unwrap_or_else(|e| panic!("{e}"));
        let report = e.run(loaded.topology()).unwrap_or_else(|e| panic!("{e}"));
        assert!(report.passed, "{report}");
    }
}
