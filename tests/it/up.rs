//! `vnetsim up` as a child process: every valid fixture with `[[apis]]` starts and serves, the
//! ready file is complete, SIGTERM shuts it down cleanly; a broken fixture exits 2 with findings.
//! Also `vnetsim demo --output json` reports all ten checks passed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vnetsim::client::Client;

use crate::support::stop_cleanly;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vnetsim")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures_with_apis() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root().join("fixtures")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.extension().is_some_and(|x| x == "toml") && !name.contains(".expect.") {
            let text = std::fs::read_to_string(&p).unwrap();
            if text.contains("[[apis]]") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn wait_for(path: &Path, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text)
                .expect("the ready file is complete JSON (written atomically)");
        }
        assert!(
            start.elapsed() < limit,
            "no ready file at {} after {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_starts_and_serves_every_fixture_with_apis() {
    let fixtures = fixtures_with_apis();
    assert!(
        !fixtures.is_empty(),
        "fixtures/ has topologies with [[apis]]"
    );
    for fx in fixtures {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready.json");
        let child = Command::new(bin())
            .args([
                "up",
                fx.to_str().unwrap(),
                "--ready-file",
                ready.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let doc = wait_for(&ready, Duration::from_secs(30));
        for key in [
            "gateway_url",
            "admin_url",
            "admin_token",
            "ca_cert",
            "backends",
        ] {
            assert!(
                doc.get(key).is_some(),
                "{}: ready file lacks {key}: {doc}",
                fx.display()
            );
        }
        let url = doc["gateway_url"].as_str().unwrap();
        let addr = url.trim_start_matches("http://").parse().unwrap();
        let client = Client::new(addr, "gateway.test", None);
        for (name, b) in doc["backends"].as_object().unwrap() {
            let path = format!(
                "{}/probe",
                b["path"].as_str().unwrap().trim_end_matches('/')
            );
            let r = client.get(&path).await.unwrap();
            match b["verdict"].as_str().unwrap() {
                // An allowed backend answers (a built-in echo names the host it plays).
                "Allow" => assert_eq!(r.status, 200, "{}: api {name}: {}", fx.display(), r.text()),
                // Anything else is a documented failure code, with the same code as the table.
                _ => {
                    let p = r
                        .problem()
                        .unwrap_or_else(|| panic!("{}: api {name}: no problem body", fx.display()));
                    assert_eq!(
                        p.code,
                        b["code"].as_str().unwrap(),
                        "{}: api {name}",
                        fx.display()
                    );
                }
            }
        }
        let out = stop_cleanly(child, &fx.display().to_string());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("gateway") && stdout.contains("admin"),
            "{stdout}"
        );
    }
}

#[test]
fn up_refuses_a_fixture_with_error_findings() {
    let fx = root().join("fixtures/invalid/subnet-overlap.toml");
    let out = Command::new(bin())
        .args(["up", fx.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SUBNET_OVERLAP"), "{stderr}");
    assert!(stderr.contains("nothing was started"), "{stderr}");
    // The finding's resource line and its Learn page.
    assert!(stderr.contains("subnet-overlap.toml:"), "{stderr}");
    assert!(stderr.contains("https://learn.microsoft.com/"), "{stderr}");
    // With --output json, the JSON error on stdout.
    let out = Command::new(bin())
        .args(["up", fx.to_str().unwrap(), "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let j: Value = serde_json::from_slice(&out.stdout).expect("a JSON error on stdout");
    assert_eq!(j["error"]["code"], "ERROR_FINDINGS");
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SUBNET_OVERLAP"),
        "{j}"
    );
    assert!(j["error"]["location"]["line"].as_u64().is_some(), "{j}");
}

#[test]
fn demo_json_reports_all_ten_checks_passed() {
    let out = Command::new(bin())
        .args([
            "demo",
            "--output",
            "json",
            "--sample-ms",
            "200",
            "--connections",
            "4",
        ])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let names: Vec<&str> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vnetsim::testing::CHECKS);
    for c in doc["checks"].as_array().unwrap() {
        assert_eq!(
            c["passed"], true,
            "check {} failed: {}",
            c["name"], c["summary"]
        );
    }
    assert_eq!(doc["passed"], true);
    assert_eq!(out.status.code(), Some(0));
}

/// The first ```toml block of a Markdown file.
fn toml_block(markdown: &str) -> &str {
    let start = markdown.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let len = markdown[start..].find("```").expect("the block ends");
    &markdown[start..start + len]
}

/// What users copy must load: the README's minimal topology validates clean, and the full key
/// reference in docs/fixture.md parses (every key and value it shows is accepted).
#[test]
fn readme_and_fixture_reference_examples_load() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let f = sim::fixture::Fixture::parse(toml_block(&readme), sim::fixture::Format::Toml)
        .unwrap_or_else(|e| panic!("README example: {e}"));
    let built = sim::Topology::build(&f, sim::ServiceTagTable::builtin());
    assert!(built.findings.is_empty(), "{:#?}", built.findings);
    let reference = std::fs::read_to_string(root().join("docs/fixture.md")).unwrap();
    sim::fixture::Fixture::parse(toml_block(&reference), sim::fixture::Format::Toml)
        .unwrap_or_else(|e| panic!("docs/fixture.md: {e}"));
}

#[test]
fn readme_lists_every_code_and_the_two_commands() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for c in sim::FindingCode::ALL {
        assert!(
            readme.contains(&format!("`{}`", c.as_str())),
            "README lacks finding code {c}"
        );
    }
    for a in sim::Assumption::ALL {
        assert!(
            readme.contains(a.code()),
            "README lacks assumption {}",
            a.code()
        );
    }
    assert!(readme.contains("cargo run --release -- demo"));
    assert!(readme.contains("cargo test --workspace"));
}
