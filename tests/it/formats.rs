//! The same fixture as JSON and YAML (generated from the TOML through the schema's serde
//! shapes) validates and checks exactly like the TOML; their load errors carry positions.

use sim::fixture::{Fixture, Format};

use crate::support::{arg, cli, fixture, tempdir, without_locations, write};

fn default_fixture() -> Fixture {
    let text = std::fs::read_to_string(fixture("default.toml")).unwrap();
    Fixture::parse(&text, Format::Toml).unwrap()
}

#[test]
fn json_and_yaml_fixtures_behave_like_toml() {
    let dir = tempdir();
    let f = default_fixture();
    let json = write(
        dir.path(),
        "default.json",
        &serde_json::to_string_pretty(&f).unwrap(),
    );
    let yaml = write(
        dir.path(),
        "default.yaml",
        &serde_yaml_ng::to_string(&f).unwrap(),
    );
    let toml = fixture("default.toml");
    let check = |p: &std::path::Path, to: &str| {
        let r = cli(&[
            "check",
            arg(p),
            "--from",
            "apim",
            "--to",
            to,
            "--output",
            "json",
        ]);
        // Rule locations name each file's own lines.
        (r.code, without_locations(r.json()))
    };
    for p in [&json, &yaml] {
        let r = cli(&["validate", arg(p), "--output", "json"]);
        r.expect_code(0);
        assert_eq!(
            r.json()["findings"],
            serde_json::json!([]),
            "{}",
            p.display()
        );
        for to in ["orders:443", "legacy:8080", "13.107.21.200:443"] {
            assert_eq!(check(p, to), check(&toml, to), "{} -> {to}", p.display());
        }
    }
}

#[test]
fn json_syntax_error_has_a_position() {
    let dir = tempdir();
    let p = write(
        dir.path(),
        "bad.json",
        "{\n  \"vnets\": [\n    {\"name\": \"v\",}\n  ]\n}\n",
    );
    let r = cli(&["validate", arg(&p)]);
    r.expect_code(2);
    assert!(
        r.stderr.contains(&format!("{}:3:", arg(&p))),
        "{}",
        r.stderr
    );
}

#[test]
fn yaml_unknown_key_has_a_position() {
    let dir = tempdir();
    let p = write(
        dir.path(),
        "bad.yml",
        "vnets:\n  - name: v\n    region: westeurope\n    address_space: [10.0.0.0/16]\n    subnetz: []\n",
    );
    let r = cli(&["validate", arg(&p)]);
    r.expect_code(2);
    assert!(
        r.stderr.contains(&format!("{}:5:", arg(&p))),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("subnetz"), "{}", r.stderr);
}
